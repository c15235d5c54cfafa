package api_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/amlsim/amlsim/sim/server"
)

func TestAuditLogSaysWhoDidWhat(t *testing.T) {
	t.Parallel()
	e := rbacEnv(t)
	tok, _ := e.tokens.Mint(oidReader, tenant, "", 3600e9)
	e.raw("POST", computesPath+"/ci-x/stop?api-version=2024-04-01", tok, "")
	// The server's audit log, in its home.
	log, err := os.ReadFile(filepath.Join(e.amlsim.Home(), server.AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(log), []byte("\n"))
	var rec struct {
		Principal, Name, Method, Path string
		Actions                       []string
		Status                        int
	}
	if err := json.Unmarshal(lines[len(lines)-1], &rec); err != nil {
		t.Fatalf("audit log %q: %v", log, err)
	}
	if rec.Principal != oidReader || rec.Name != "user-3" || rec.Method != "POST" || rec.Status != 403 ||
		len(rec.Actions) != 1 || rec.Actions[0] != "Microsoft.MachineLearningServices/workspaces/computes/stop/action" {
		t.Errorf("audit record = %+v", rec)
	}
}
