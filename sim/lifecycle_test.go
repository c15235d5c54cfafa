package sim

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// declaredStates returns every constant of type State declared in the
// package's source, so a state added without a row in the table fails
// TestLifecycleTableIsComplete.
func declaredStates(t *testing.T) []State {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []State
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "State" {
					continue
				}
				for _, v := range vs.Values {
					lit := v.(*ast.BasicLit)
					out = append(out, State(strings.Trim(lit.Value, `"`)))
				}
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("found %d State constants in the source, want at least 10: %v", len(out), out)
	}
	return out
}

// Azure's enums, from the REST spec (azure-rest-api-specs,
// specification/machinelearningservices/resource-manager/
// Microsoft.MachineLearningServices/preview/2026-09-15-preview/openapi.json:
// ComputeInstanceState, ProvisioningState, AmlComputeNodeInformation.nodeState,
// ComputeInstanceLastOperation.operationName and operationTrigger; Resizing
// and Resize are in the stable 2026-09-01 too).
var (
	azureStates = []State{"Creating", "CreateFailed", "Deleting", "Running", "Restarting", "Resizing", "JobRunning",
		"SettingUp", "SetupFailed", "Starting", "Stopped", "Stopping", "UserSettingUp", "UserSetupFailed", "Unknown", "Unusable"}
	azureProvisioning = []string{"Unknown", "Updating", "Creating", "Deleting", "Succeeded", "Failed", "Canceled"}
	azureNodeStates   = []string{"idle", "running", "preparing", "unusable", "leaving", "preempted"}
	azureOperations   = []Action{"Create", "Start", "Stop", "Restart", "Resize", "Reimage", "Delete"}
	azureTriggers     = []Trigger{"User", "Schedule", "IdleShutdown"}
)

func TestLifecycleTableIsComplete(t *testing.T) {
	states := declaredStates(t)
	for _, s := range states {
		row, ok := lifecycle[s]
		if !ok {
			t.Errorf("state %s has no row in the lifecycle table", s)
			continue
		}
		if !slices.Contains(azureStates, s) {
			t.Errorf("state %s is not one of Azure's ComputeInstanceState values", s)
		}
		if !slices.Contains(azureProvisioning, row.Provisioning) {
			t.Errorf("%s: provisioningState %q is not one of Azure's", s, row.Provisioning)
		}
		if row.Node != "" && !slices.Contains(azureNodeStates, row.Node) {
			t.Errorf("%s: nodeState %q is not one of Azure's", s, row.Node)
		}
		if op := row.Op; op != nil {
			checkOperation(t, s, op)
			continue
		}
		checkSettled(t, s, row)
	}
	for s := range lifecycle {
		if !slices.Contains(states, s) {
			t.Errorf("the table has a row for %q, which is no declared State", s)
		}
	}
}

func checkOperation(t *testing.T, s State, op *operation) {
	t.Helper()
	if op.Work == nil || op.Resume == nil {
		t.Errorf("%s: no work, or no way to resume it after a crash", s)
	}
	if !slices.Contains(azureOperations, op.Action) {
		t.Errorf("%s: operation %q is not one of Azure's operationName values", s, op.Action)
	}
	if rq, ok := requests[op.Action]; !ok || rq.Enters != s {
		t.Errorf("%s: the request %s does not enter it (requests[%s] = %+v)", s, op.Action, op.Action, rq)
	}
	if row := lifecycle[s]; row.Power != PowerAny || row.OnPowerOff != "" || row.OnPowerOn != "" || row.OnVanished != "" {
		t.Errorf("%s: a transitional state promises nothing about the VM and never drifts: %+v", s, row)
	}
	for name, to := range map[string]State{"done": op.Done, "failed": op.Failed, "setup failed": op.SetupFailed, "vanished": op.Vanished} {
		if to == "" {
			// Only a delete may end with the instance gone.
			if op.Action != ActionDelete || name == "failed" || name == "setup failed" {
				t.Errorf("%s: no outcome when %s", s, name)
			}
			continue
		}
		row, ok := lifecycle[to]
		if !ok {
			t.Errorf("%s: outcome %s when %s has no row", s, to, name)
			continue
		}
		if row.Op != nil {
			t.Errorf("%s: outcome %s when %s is transitional: an operation must settle", s, to, name)
		}
	}
	if op.Vanished == StateRunning || op.Vanished == StateStopped || op.Vanished == StateSetupFailed {
		t.Errorf("%s: a vanished VM ends in %s, which promises a VM", s, op.Vanished)
	}
}

func checkSettled(t *testing.T, s State, row stateRow) {
	t.Helper()
	for name, to := range map[string]State{"powered off": row.OnPowerOff, "powered on": row.OnPowerOn, "vanished": row.OnVanished} {
		if to == "" {
			continue
		}
		if r, ok := lifecycle[to]; !ok || r.Op != nil {
			t.Errorf("%s: drift when %s goes to %s, which is not a settled state", s, name, to)
		}
	}
	switch row.Power {
	case PowerOn:
		if row.OnPowerOff == "" || row.OnVanished == "" {
			t.Errorf("%s promises a running VM but does not follow it when it powers off or vanishes: %+v", s, row)
		}
		if lifecycle[row.OnPowerOff].Power == PowerOn {
			t.Errorf("%s: a powered-off VM leads to %s, which promises a running one", s, row.OnPowerOff)
		}
	case PowerOff:
		if row.OnPowerOn == "" || row.OnVanished == "" {
			t.Errorf("%s promises a VM that is off but does not follow it when it runs or vanishes: %+v", s, row)
		}
	}
	if row.OnVanished != "" && lifecycle[row.OnVanished].Power != PowerAny {
		t.Errorf("%s: a vanished VM leads to %s, which promises a VM", s, row.OnVanished)
	}
}

// Every cell of states × requests: allowed ones enter the request's
// transitional state; refused ones give the ARM conflict naming the
// current state.
func TestEveryRequestInEveryState(t *testing.T) {
	for _, s := range declaredStates(t) {
		for a, rq := range requests {
			if a == ActionCreate {
				continue // a create makes a new instance: it has no state to come from
			}
			to, late, err := Next(s, a, "ci-x")
			if slices.Contains(rq.From, s) {
				if err != nil || late || to != rq.Enters {
					t.Errorf("%s in %s = %s, %v, %v; want %s", a, s, to, late, err, rq.Enters)
				}
				continue
			}
			// Refused: at once with 409, or (Late) as the operation's
			// BadRequest.
			wantKind := KindConflict
			if slices.Contains(rq.Late, s) {
				wantKind = KindBadRequest
			}
			e := AsError(err)
			if err == nil || e.Kind != wantKind || late != (wantKind == KindBadRequest) {
				t.Errorf("%s in %s = %s, late %v, %v; want kind %d", a, s, to, late, err, wantKind)
				continue
			}
			if want := string(a) + "ComputeInstanceOnlyAllowedIn" + rq.Refusal + "State"; e.Code != want {
				t.Errorf("%s in %s: code %s, want %s", a, s, e.Code, want)
			}
			if !strings.Contains(e.Message, "when the instance ci-x is in '") {
				t.Errorf("%s in %s: message %q does not name the instance as Azure does", a, s, e.Message)
			}
		}
	}
	for a, rq := range requests {
		if len(rq.Triggers) == 0 {
			t.Errorf("request %s: no trigger may make it", a)
		}
		for _, tr := range rq.Triggers {
			if !slices.Contains(azureTriggers, tr) {
				t.Errorf("request %s: trigger %s is not one of Azure's operationTrigger values", a, tr)
			}
		}
		for _, from := range append(slices.Clone(rq.From), rq.Late...) {
			if _, ok := lifecycle[from]; !ok {
				t.Errorf("request %s: allowed from %s, which has no row", a, from)
			}
		}
		for _, l := range rq.Late {
			if slices.Contains(rq.From, l) || Transitional(l) {
				t.Errorf("request %s: late refusal in %s, which is allowed or transitional (a request during an operation is a 409)", a, l)
			}
		}
		if lifecycle[rq.Enters].Op == nil || lifecycle[rq.Enters].Op.Action != a {
			t.Errorf("request %s enters %s, whose operation is not %s", a, rq.Enters, a)
		}
	}
	// The exact text of microsoft/vscode-tools-for-ai#2096.
	want := "Start Azure ML Compute Instance is only allowed when the instance ci-x is in 'stopped' state"
	if _, _, err := Next(StateRunning, ActionStart, "ci-x"); err == nil || AsError(err).Message != want {
		t.Errorf("start of a running instance: %v, want the message %q", err, want)
	}
	if _, _, err := Next(StateRunning, "Reimage", "ci-x"); err == nil {
		t.Error("a request missing from the table was allowed")
	}
}

// The drift rules as a client sees them: a settled instance follows its VM,
// an instance in an operation is left to the operation.
func TestDrift(t *testing.T) {
	for _, c := range []struct {
		from     State
		on, gone bool
		want     State
		changed  bool
	}{
		{StateRunning, false, false, StateStopped, true},
		{StateRunning, true, false, StateRunning, false},
		{StateRunning, false, true, StateUnusable, true},
		{StateSetupFailed, false, false, StateStopped, true},
		{StateStopped, true, false, StateRunning, true},
		{StateStopped, false, false, StateStopped, false},
		{StateStopped, false, true, StateUnusable, true},
		{StateCreateFailed, false, true, StateCreateFailed, false},
		{StateUnusable, true, false, StateUnusable, false},
		{StateStopping, false, false, StateStopping, false},
		{StateCreating, false, true, StateCreating, false},
	} {
		got, changed := c.from.drift(c.on, c.gone)
		if changed != c.changed || (changed && got != c.want) {
			t.Errorf("%s with VM on=%v gone=%v → %s (changed %v), want %s (changed %v)", c.from, c.on, c.gone, got, changed, c.want, c.changed)
		}
	}
}
