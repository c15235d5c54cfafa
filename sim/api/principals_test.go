package api_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
)

// GET /amlsim/principals lists the config's principals, never a secret,
// to the config's principals only.
func TestPrincipalsList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *sim.Config) {
		c.Principals = append(c.Principals, sim.PrincipalConfig{ObjectID: "55555555-5555-5555-5555-555555555555",
			Name: "ci robot", ClientID: "66666666-6666-6666-6666-666666666666", ClientSecret: "s3cret"})
	})
	resp := e.raw("GET", api.PrincipalsPath, e.token, "")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(b), "s3cret") {
		t.Fatalf("GET %s: %d %s, want 200 without secrets", api.PrincipalsPath, resp.StatusCode, b)
	}
	var list struct {
		Value []struct{ ObjectID, TenantID, DisplayName string } `json:"value"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range list.Value {
		got[p.ObjectID] = p.DisplayName + "@" + p.TenantID
	}
	if got[sim.DefaultOwner.ObjectID] != sim.DefaultOwner.Name+"@"+sim.DefaultOwner.TenantID || got["55555555-5555-5555-5555-555555555555"] != "ci robot@"+sim.DefaultOwner.TenantID {
		t.Errorf("principals = %v, want the owner and the robot, in the config's tenant", got)
	}

	stranger, err := e.tokens.Mint("77777777-7777-7777-7777-777777777777", sim.DefaultOwner.TenantID, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if resp := e.raw("GET", api.PrincipalsPath, stranger, ""); resp.StatusCode != 403 {
		t.Errorf("a principal outside the config lists principals: %d, want 403", resp.StatusCode)
	}
	if resp := e.raw("POST", api.PrincipalsPath, e.token, "{}"); resp.StatusCode != 405 {
		t.Errorf("POST %s: %d, want 405", api.PrincipalsPath, resp.StatusCode)
	}
}
