package api_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/amlsim/amlsim/sim/api"
)

func TestAuditLogSaysWhoDidWhat(t *testing.T) {
	e := rbacEnv(t)
	var log bytes.Buffer
	srv := httptest.NewTLSServer(api.New(e.svc, e.tokens, api.WithAudit(&log)))
	defer srv.Close()
	e.srv = srv
	tok, _ := e.tokens.Mint(oidReader, tenant, "", 3600e9)
	e.raw("POST", computesPath+"/ci-x/stop?api-version=2024-04-01", tok, "")
	var rec struct {
		Principal, Name, Method, Path string
		Actions                       []string
		Status                        int
	}
	if err := json.Unmarshal(bytes.TrimSpace(log.Bytes()), &rec); err != nil {
		t.Fatalf("audit log %q: %v", log.String(), err)
	}
	if rec.Principal != oidReader || rec.Name != "user-3" || rec.Method != "POST" || rec.Status != 403 ||
		len(rec.Actions) != 1 || rec.Actions[0] != "Microsoft.MachineLearningServices/workspaces/computes/stop/action" {
		t.Errorf("audit record = %+v", rec)
	}
}
