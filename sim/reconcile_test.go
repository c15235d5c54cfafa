package sim

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim/store"
)

// One reconcile pass after a crash: the operation no instance runs ends
// Canceled, the one cut short resumes to its end, and a settled instance
// whose VM drifted follows it.
func TestReconcileAfterACrash(t *testing.T) {
	drv := fake.New()
	ctx := context.Background()
	for _, d := range []string{"d-run", "d-start"} {
		if err := drv.Define(ctx, hypervisor.Spec{Name: d, SSHPort: 40300 + len(d)}); err != nil {
			t.Fatal(err)
		}
	}
	r := newTestRunner(t, drv)
	c := &reconciler{st: r.st, drv: drv, runner: r, log: slog.Default(), now: time.Now}
	r.settle = c.settle
	running := Instance{Name: "ci-run", Location: "eastus", State: StateRunning, Domain: "d-run"} // its VM is off
	starting := Instance{Name: "ci-start", Location: "eastus", State: StateStarting, Domain: "d-start", Operation: "op-start",
		LastOperation: &LastOperation{Name: "Start", Status: "InProgress", Trigger: "User"}}
	put(t, r, starting, "op-start")
	err := r.st.Update(func(tx *store.Tx) error {
		if err := putInstance(tx, running); err != nil {
			return err
		}
		// Acknowledged, then superseded by a delete that finished before
		// the crash could record the create's end.
		return putOperation(tx, Operation{ID: "op-orphan", Action: "Create", Location: "eastus", Instance: "eastus/ci-gone", Status: OpInProgress})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, r, starting.key())
	if _, op := load(t, r, "", "op-orphan"); op.Status != OpCanceled {
		t.Errorf("orphaned operation = %s, want Canceled", op.Status)
	}
	got, op := load(t, r, starting.key(), "op-start")
	if got.State != StateRunning || op.Status != OpSucceeded {
		t.Errorf("interrupted start: instance %s, operation %s; want Running, Succeeded", got.State, op.Status)
	}
	if got, _ := load(t, r, running.key(), ""); got.State != StateStopped {
		t.Errorf("Running instance whose VM is off = %s, want Stopped", got.State)
	}
}
