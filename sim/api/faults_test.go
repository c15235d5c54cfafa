package api_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/amlsimtest"
	"github.com/amlsim/amlsim/sim/api"
	"github.com/amlsim/amlsim/sim/server"
)

// newFaultEnv is an environment served with --faults, on a test clock
// (amlsim serve --faults --test-clock).
func newFaultEnv(t *testing.T, tweak ...func(*sim.Config)) *env {
	t.Helper()
	return newServerEnv(t, tweak, amlsimtest.WithFaults(), amlsimtest.WithTestClock(time.Now()))
}

// audited reports whether a line of the server's audit log has all of
// parts.
func (e *env) audited(parts ...string) bool {
	b, err := os.ReadFile(filepath.Join(e.amlsim.Home(), server.AuditFile))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all && line != "" {
			return true
		}
	}
	return false
}

// putFault PUTs a rule and returns the status and body.
func (e *env) putFault(id, rule string) (int, string) {
	e.t.Helper()
	resp := e.raw("PUT", api.FaultsPath+"/"+id, e.token, rule)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func TestFaultRules(t *testing.T) {
	t.Parallel()
	plain := newEnv(t)
	if resp := plain.raw("GET", api.FaultsPath, plain.token, ""); resp.StatusCode != 404 {
		t.Errorf("GET %s without --faults: %d, want 404", api.FaultsPath, resp.StatusCode)
	}

	e := newFaultEnv(t, func(c *sim.Config) {
		c.Principals = append(c.Principals, sim.PrincipalConfig{ObjectID: "22222222-2222-2222-2222-222222222222", Name: "contributor"})
		c.RoleAssignments = append(c.RoleAssignments, sim.RoleAssignmentConfig{Principal: "22222222-2222-2222-2222-222222222222", Role: "Contributor"})
	})
	rule := `{"operation": "Create", "match": {"name": "cap-*"}, "effect": {"fail": {"code": "AllocationFailed"}}, "times": 1}`
	if status, body := e.putFault("cap", rule); status != 201 || !strings.Contains(body, "sufficient capacity") {
		t.Errorf("PUT a new rule: %d %s, want 201 with Azure's AllocationFailed text filled in", status, body)
	}
	if status, _ := e.putFault("cap", rule); status != 200 {
		t.Errorf("PUT the rule again: %d, want 200", status)
	}
	for name, bad := range map[string]string{
		"two effects":        `{"effect": {"status": 429, "delay": "PT1M"}}`,
		"no effect":          `{"operation": "Start", "effect": {}}`,
		"unknown operation":  `{"operation": "Explode", "effect": {"status": 500}}`,
		"status 404":         `{"effect": {"status": 404}}`,
		"fail a read":        `{"operation": "Get", "effect": {"fail": {"code": "AllocationFailed"}}}`,
		"bad delay":          `{"effect": {"delay": "ten minutes"}}`,
		"bad glob":           `{"match": {"name": "["}, "effect": {"status": 503}}`,
		"times 0":            `{"effect": {"status": 503}, "times": 0}`,
		"retryAfter on 500":  `{"effect": {"status": 500, "retryAfter": "PT5S"}}`,
		"fail without code":  `{"effect": {"fail": {}}}`,
		"unknown properties": `{"effect": {"status": 503}, "explode": true}`,
	} {
		if status, body := e.putFault("bad", bad); status != 400 || !strings.Contains(body, `"InvalidFaultRule"`) {
			t.Errorf("%s: PUT %s = %d %s, want 400 InvalidFaultRule", name, bad, status, body)
		}
	}
	if status, body := e.putFault("script", `{"operation": "Stop", "effect": {"setupScript": {"exitCode": 3}}}`); status != 400 || !strings.Contains(body, "InvalidFaultRule") {
		t.Errorf("a setup script failing at a stop, which runs none: %d %s, want 400 InvalidFaultRule", status, body)
	}
	if status, body := e.putFault("script", `{"effect": {"setupScript": {"exitCode": 0}}}`); status != 400 || !strings.Contains(body, "InvalidFaultRule") {
		t.Errorf("exit code 0: %d %s, want 400 InvalidFaultRule", status, body)
	}
	for _, bad := range []string{`{"effect": {"vm": "explode"}}`, `{"operation": "Stop", "effect": {"vm": "crash"}}`} {
		if status, body := e.putFault("vm", bad); status != 400 || !strings.Contains(body, "InvalidFaultRule") {
			t.Errorf("PUT %s = %d %s, want 400 InvalidFaultRule", bad, status, body)
		}
	}
	contributor, err := e.tokens.Mint("22222222-2222-2222-2222-222222222222", sim.DefaultOwner.TenantID, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if resp := e.raw("PUT", api.FaultsPath+"/mine", contributor, `{"effect": {"status": 503}}`); resp.StatusCode != 403 {
		t.Errorf("a Contributor puts a rule: %d, want 403", resp.StatusCode)
	}

	resp := e.raw("GET", api.FaultsPath, e.token, "")
	var list struct{ Value []sim.FaultRule }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Value) != 1 || list.Value[0].ID != "cap" || *list.Value[0].Times != 1 {
		t.Errorf("GET %s = %+v (%v), want the one rule cap, 1 time left", api.FaultsPath, list.Value, err)
	}
	if resp := e.raw("DELETE", api.FaultsPath+"/cap", e.token, ""); resp.StatusCode != 200 {
		t.Errorf("DELETE the rule: %d, want 200", resp.StatusCode)
	}
	if resp := e.raw("DELETE", api.FaultsPath+"/cap", e.token, ""); resp.StatusCode != 204 {
		t.Errorf("DELETE it again: %d, want 204", resp.StatusCode)
	}
}

// An AllocationFailed create ends CreateFailed with Azure's code and
// message in its operation and in the instance's errors; the rule, used
// up, lets the next create through.
func TestFaultAllocationFailed(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t)
	if status, body := e.putFault("cap", `{"operation": "Create", "match": {"name": "cap-*", "vmSize": "standard_ds2_v2"}, "effect": {"fail": {"code": "AllocationFailed"}}, "times": 1}`); status != 201 {
		t.Fatalf("PUT rule: %d %s", status, body)
	}
	e.mustCreate("other-a", "Standard_DS2_v2") // another name: untouched
	_, err := e.create("cap-a", instanceBody("Standard_DS2_v2"))
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != "AllocationFailed" || !strings.Contains(err.Error(), "We do not have sufficient capacity for the requested VM size in this region") {
		t.Fatalf("create cap-a = %v, want the operation failed with AllocationFailed and Azure's message", err)
	}
	ci := e.get("cap-a")
	if *ci.Properties.State != ml.ComputeInstanceStateCreateFailed {
		t.Errorf("cap-a is %s, want CreateFailed", *ci.Properties.State)
	}
	if errs := ci.Properties.Errors; len(errs) == 0 || *errs[0].Error.Code != "AllocationFailed" {
		t.Errorf("cap-a errors = %+v, want AllocationFailed", errs)
	}
	if !e.hasEvent("cap-a", "Fault cap injected: fail with AllocationFailed") {
		t.Errorf("cap-a has no event of the injected fault")
	}
	if !e.audited(`"method":"PUT"`, "/computes/cap-a", `"fault":"cap"`) {
		t.Errorf("the audit log has no line of cap-a's create naming the rule")
	}
	e.mustCreate("cap-b", "Standard_DS2_v2")
	if rules, _ := e.svc.Faults(); len(rules) != 0 {
		t.Errorf("rules after their one use = %+v, want none", rules)
	}
}

// An injected setup-script failure ends the create SetupFailed with the
// exit code, the VM kept, as a real failing script does.
func TestFaultSetupScriptExitCode(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t)
	// No operation: only a create's creation script can take the rule
	// (the stop of another instance before it does not use it up).
	e.mustCreate("ci-before", "Standard_DS2_v2")
	e.putFault("script", `{"match": {"name": "ci-*"}, "effect": {"setupScript": {"exitCode": 3}}, "times": 1}`)
	e.stop("ci-before")
	_, err := e.create("ci-script", instanceBody("Standard_DS2_v2"))
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != "SetupScriptFailed" || !strings.Contains(err.Error(), "exited with code 3") {
		t.Fatalf("create = %v, want SetupScriptFailed with exit code 3", err)
	}
	if got := e.state("ci-script"); got != ml.ComputeInstanceStateSetupFailed {
		t.Errorf("ci-script is %s, want SetupFailed", got)
	}
	if !e.hasEvent("ci-script", "Fault script injected: creation script exits 3") {
		t.Errorf("ci-script has no event of the injected failure")
	}

	// A Start rule fails the startup script of the next start (the fake
	// driver runs no scripts: the outcome is the same). The instance is
	// SetupFailed, and starts again fine once the rule is used up.
	e.putFault("startup", `{"operation": "Start", "match": {"name": "ci-before"}, "effect": {"setupScript": {"exitCode": 4}}, "times": 1}`)
	poller, err := e.computes().BeginStart(ctx(t), rg, ws, "ci-before", nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx(t), nil)
	}
	if !errors.As(err, &re) || re.ErrorCode != "SetupScriptFailed" || !strings.Contains(err.Error(), "exited with code 4") {
		t.Fatalf("start = %v, want SetupScriptFailed with exit code 4", err)
	}
	if got := e.state("ci-before"); got != ml.ComputeInstanceStateSetupFailed {
		t.Errorf("ci-before is %s after the start, want SetupFailed", got)
	}
	if !e.hasEvent("ci-before", "Fault startup injected: startup script exits 4") {
		t.Errorf("ci-before has no event of the injected failure")
	}
	e.stop("ci-before")
	poller, err = e.computes().BeginStart(ctx(t), rg, ws, "ci-before", nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx(t), nil)
	}
	if err != nil || e.state("ci-before") != ml.ComputeInstanceStateRunning {
		t.Errorf("the start after the rule was used: %v, %s; want Running", err, e.state("ci-before"))
	}
}

// The Go SDK's retry policy meets an injected 429, waits Retry-After, and
// succeeds; without retries the client sees ARM's throttling answer.
func TestFaultThrottlingRetried(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t)
	e.mustCreate("ci-busy", "Standard_DS2_v2")
	if status, body := e.putFault("throttle", `{"operation": "Get", "match": {"name": "ci-*"}, "effect": {"status": 429, "retryAfter": "PT1S"}, "times": 1}`); status != 201 {
		t.Fatalf("PUT rule: %d %s", status, body)
	}
	var tries atomic.Int32
	opts := *e.opts
	opts.Retry = policy.RetryOptions{} // the SDK's defaults
	opts.PerRetryPolicies = []policy.Policy{countTries{&tries}}
	f, err := ml.NewClientFactory(sub, staticToken(e.token), &opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.NewComputeClient().Get(ctx(t), rg, ws, "ci-busy", nil); err != nil {
		t.Fatalf("get with the SDK's retries: %v", err)
	}
	if n := tries.Load(); n != 2 {
		t.Errorf("the SDK sent %d requests, want 2: the throttled one and its retry", n)
	}

	e.putFault("throttle", `{"operation": "List", "effect": {"status": 429, "retryAfter": "PT7S"}, "times": 1}`)
	resp := e.raw("GET", "/subscriptions/"+sub+"/resourceGroups/"+rg+"/providers/Microsoft.MachineLearningServices/workspaces/"+ws+"/computes?api-version=2024-04-01", e.token, "")
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" || resp.Header.Get("x-ms-ratelimit-remaining-subscription-reads") != "0" ||
		!strings.Contains(string(b), `"SubscriptionRequestsThrottled"`) || !strings.Contains(string(b), "Please try again after '7' seconds") {
		t.Errorf("throttled list: %d, Retry-After %q, body %s; want 429, 7 and ARM's SubscriptionRequestsThrottled", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if !e.audited(`"status":429`, `"fault":"throttle"`) {
		t.Errorf("the audit log has no 429 line naming the rule")
	}
	e.putFault("down", `{"operation": "Start", "effect": {"status": 503}, "times": 1}`)
	resp = e.raw("POST", "/subscriptions/"+sub+"/resourceGroups/"+rg+"/providers/Microsoft.MachineLearningServices/workspaces/"+ws+"/computes/ci-busy/start?api-version=2024-04-01", e.token, "")
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 503 || !strings.Contains(string(b), "ServerTimeout") {
		t.Errorf("start under a 503 rule: %d %s, want 503 ServerTimeout", resp.StatusCode, b)
	}
	if e.state("ci-busy") != ml.ComputeInstanceStateRunning {
		t.Errorf("a start answered 503 changed the instance")
	}
}

type countTries struct{ n *atomic.Int32 }

func (c countTries) Do(req *policy.Request) (*http.Response, error) {
	c.n.Add(1)
	return req.Next()
}

// A delayed start waits on the test clock: it stays Starting until the
// clock passes the delay.
func TestFaultDelayedStartOnTheTestClock(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t)
	e.mustCreate("ci-slow", "Standard_DS2_v2")
	e.stop("ci-slow")
	e.putFault("slow", `{"operation": "Start", "effect": {"delay": "PT10M"}}`)
	start, err := e.computes().BeginStart(ctx(t), rg, ws, "ci-slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The fake VM starts in 20 ms: half a second later, only the delay
	// can hold it.
	time.Sleep(500 * time.Millisecond)
	if got := e.state("ci-slow"); got != ml.ComputeInstanceStateStarting {
		t.Fatalf("ci-slow is %s during the injected delay, want Starting", got)
	}
	e.amlsim.Clock().Advance(10 * time.Minute)
	if _, err := start.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatalf("start after the delay: %v", err)
	}
	if got := e.state("ci-slow"); got != ml.ComputeInstanceStateRunning {
		t.Errorf("ci-slow is %s after the delay, want Running", got)
	}
	if !e.hasEvent("ci-slow", "Fault slow injected: delay PT10M") {
		t.Errorf("ci-slow has no event of the injected delay")
	}
}

// VM faults: a crash and a power-off of a Running instance's VM are seen
// within 5 s, the instance following its VM (Stopped, as for any drift);
// a VM that hangs after the next start is paused while the instance
// says Running.
func TestFaultVM(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t)
	e.mustCreate("ci-crash", "Standard_DS2_v2")
	e.mustCreate("ci-off", "Standard_DS2_v2")
	e.mustCreate("ci-hang", "Standard_DS2_v2")
	if status, body := e.putFault("crash", `{"match": {"name": "ci-crash"}, "effect": {"vm": "crash"}, "times": 1}`); status != 201 || !strings.Contains(body, `"applied":1`) {
		t.Fatalf("PUT a crash rule: %d %s, want 201, applied at once to ci-crash", status, body)
	}
	e.putFault("off", `{"match": {"name": "ci-off"}, "effect": {"vm": "poweroff"}}`)
	for _, name := range []string{"ci-crash", "ci-off"} {
		deadline := time.Now().Add(5 * time.Second)
		for e.state(name) != ml.ComputeInstanceStateStopped {
			if time.Now().After(deadline) {
				t.Fatalf("%s is %s 5 s after its VM fault, want Stopped", name, e.state(name))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !e.hasEvent("ci-crash", "Fault crash injected: crash the VM") || !e.hasEvent("ci-off", "Fault off injected: power the VM off") {
		t.Errorf("the VM faults are not in the instances' events")
	}
	// Applied outside a request (the PUT of the rule is audited apart):
	// a line of their own, naming the instance.
	if !e.audited(`"path":"/subscriptions/`+sub+`/resourceGroups/`+rg+`/providers/Microsoft.MachineLearningServices/workspaces/`+ws+`/computes/ci-crash"`, `"fault":"crash"`, `"effect":"crash the VM"`) {
		t.Errorf("the crash has no audit line of its own")
	}

	e.putFault("hang", `{"operation": "Start", "match": {"name": "ci-hang"}, "effect": {"vm": "hang"}, "times": 1}`)
	e.stop("ci-hang")
	start, err := e.computes().BeginStart(ctx(t), rg, ws, "ci-hang", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := start.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	inst, err := e.svc.Compute(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "ci-hang")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := e.drv.Lookup(ctx(t), inst.Domain)
		if err == nil && d.State == hypervisor.StatePaused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ci-hang's VM is %+v (%v) 5 s after its start, want paused", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := e.state("ci-hang"); got != ml.ComputeInstanceStateRunning {
		t.Errorf("ci-hang is %s with its VM hung, want Running (as Azure would still say)", got)
	}
	if !e.audited(`/computes/ci-hang"`, `"fault":"hang"`, `"effect":"hang the VM"`) {
		t.Errorf("the hang, applied when the start ended, has no audit line")
	}
}

// hasEvent reports whether an instance's events include one with msg.
func (e *env) hasEvent(name, msg string) bool {
	e.t.Helper()
	resp := e.raw("GET", "/subscriptions/"+sub+"/resourceGroups/"+rg+"/providers/Microsoft.MachineLearningServices/workspaces/"+ws+"/computes/"+name+"/amlsim/events?api-version=2024-04-01", e.token, "")
	var ev struct{ Value []sim.Event }
	json.NewDecoder(resp.Body).Decode(&ev)
	for _, v := range ev.Value {
		if v.Message == msg {
			return true
		}
	}
	return false
}
