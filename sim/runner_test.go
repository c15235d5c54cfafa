package sim

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim/store"
)

// readyGuest is a Guest whose VMs are ready as soon as they run.
type readyGuest struct{}

func (readyGuest) Seed(Instance) ([]byte, error)             { return nil, nil }
func (readyGuest) WaitReady(context.Context, Instance) error { return nil }
func (readyGuest) RunSetup(context.Context, Instance, func(string)) ([]ScriptRun, error) {
	return nil, nil
}
func (readyGuest) Activity(context.Context, Instance) (Activity, error) { return Activity{}, nil }
func (readyGuest) StartJob(context.Context, Instance, Job) error        { return nil }
func (readyGuest) WaitJob(context.Context, Instance, Job, io.Writer, int64) (int, error) {
	return 0, nil
}
func (readyGuest) StopJob(context.Context, Instance, Job) (int, error) { return 143, nil }

func newTestRunner(t *testing.T, drv hypervisor.Driver) *runner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{cfg: DefaultConfig(), st: openStore(t), drv: drv, guest: readyGuest{}, log: slog.Default(),
		now: time.Now, ctx: ctx, cancel: cancel, workers: map[string]*worker{}}
	t.Cleanup(r.close)
	return r
}

// put records an instance in state with its operation in progress.
func put(t *testing.T, r *runner, inst Instance, opID string) {
	t.Helper()
	err := r.st.Update(func(tx *store.Tx) error {
		if err := putOperation(tx, Operation{ID: opID, Action: "x", Location: inst.Location, Instance: inst.key(), Status: OpInProgress}); err != nil {
			return err
		}
		return putInstance(tx, inst)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func waitIdle(t *testing.T, r *runner, key string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); r.busy(key); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("worker still busy")
		}
	}
}

func load(t *testing.T, r *runner, key, opID string) (Instance, Operation) {
	t.Helper()
	var inst Instance
	var op Operation
	r.st.View(func(tx *store.Tx) error {
		inst, _, _ = getInstance(tx, key)
		op, _, _ = getOperation(tx, opID)
		return nil
	})
	return inst, op
}

// A failed stop ends where the table says (Running, StopFailed), and a
// worker launched for an operation that is no longer the instance's
// current one touches nothing.
func TestRunnerOutcomesAndStaleLaunches(t *testing.T) {
	drv := fake.New()
	ctx := context.Background()
	if err := drv.Define(ctx, hypervisor.Spec{Name: "d1", SSHPort: 40200}); err != nil {
		t.Fatal(err)
	}
	if err := drv.Start(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	r := newTestRunner(t, drv)
	inst := Instance{Name: "ci-r", Location: "eastus", State: StateStopping, Domain: "d1", Operation: "op-stop",
		LastOperation: &LastOperation{Name: "Stop", Status: "InProgress", Trigger: "User"}}
	put(t, r, inst, "op-stop")

	r.launch(inst.key(), "op-old") // not the current operation: nothing happens
	waitIdle(t, r, inst.key())
	for _, c := range drv.Calls() {
		if c.Op == fake.OpShutdown {
			t.Fatalf("a stale worker shut the domain down: %+v", drv.Calls())
		}
	}

	drv.FailNext(fake.OpShutdown, "d1", errors.New("guest ignores ACPI"))
	r.launch(inst.key(), "op-stop")
	waitIdle(t, r, inst.key())
	got, op := load(t, r, inst.key(), "op-stop")
	if got.State != StateRunning || got.Operation != "" || got.LastOperation.Status != "StopFailed" {
		t.Errorf("after a failed stop: state %s, operation %q, lastOperation %+v; want Running, none, StopFailed", got.State, got.Operation, got.LastOperation)
	}
	if op.Status != OpFailed || op.Error == nil || op.Error.Code != "StopComputeInstanceFailed" {
		t.Errorf("operation = %+v, want Failed with StopComputeInstanceFailed", op)
	}
	if len(got.Errors) != 1 {
		t.Errorf("errors = %+v, want the stop's", got.Errors)
	}
}

// resume never touches a worker a request launched; launch cancels
// the earlier operation's worker and waits for it before its own work.
func TestRunnerReplacesWorkers(t *testing.T) {
	drv := fake.New(fake.WithDelays(fake.Delays{Start: time.Hour}))
	ctx := context.Background()
	if err := drv.Define(ctx, hypervisor.Spec{Name: "d2", SSHPort: 40201}); err != nil {
		t.Fatal(err)
	}
	r := newTestRunner(t, drv)
	inst := Instance{Name: "ci-w", Location: "eastus", State: StateStarting, Domain: "d2", Operation: "op-start"}
	put(t, r, inst, "op-start")
	r.launch(inst.key(), "op-start") // blocks in the hour-long start
	time.Sleep(20 * time.Millisecond)
	r.resume(inst.key(), "op-other")
	r.mu.Lock()
	if w := r.workers[inst.key()]; w == nil || w.op != "op-start" {
		t.Errorf("worker after resume = %+v, want op-start's", w)
	}
	r.mu.Unlock()

	// A delete cuts in: the start is cancelled, the delete runs.
	inst.State, inst.Operation = StateDeleting, "op-delete"
	put(t, r, inst, "op-delete")
	r.launch(inst.key(), "op-delete")
	waitIdle(t, r, inst.key())
	if _, err := drv.Lookup(ctx, "d2"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("domain after the delete: %v, want not found", err)
	}
	if _, op := load(t, r, inst.key(), "op-delete"); op.Status != OpSucceeded {
		t.Errorf("delete operation = %s, want Succeeded", op.Status)
	}
}

// The requests table says who may make a request: an idle shutdown may
// stop an instance but never start one.
func TestTriggersFromTheTable(t *testing.T) {
	drv := fake.New()
	cfg := DefaultConfig()
	cfg.Local.PortRange = [2]int{33022, 33999} // the package's tests run in parallel with others
	svc, err := New(cfg, openStore(t), drv, readyGuest{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	ref := WorkspaceRef{ResourceGroup: "rg-local", Name: "ws-local"}
	if _, _, err := svc.CreateOrUpdate(DefaultOwner, ref, "ci-trig", CreateRequest{Size: "Standard_D1_v2"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if inst, _ := svc.Compute(ref, "ci-trig"); inst.State == StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("create did not finish")
		}
	}
	if _, err := svc.begin(ref, "ci-trig", ActionRestart, TriggerIdleShutdown, "idle"); err == nil {
		t.Error("an idle shutdown restarted an instance")
	}
	op, err := svc.begin(ref, "ci-trig", ActionStop, TriggerIdleShutdown, "idle for 30 minutes")
	if err != nil {
		t.Fatalf("idle shutdown stop: %v", err)
	}
	inst, _ := svc.Compute(ref, "ci-trig")
	if inst.Operation != op.ID || inst.LastOperation.Trigger != string(TriggerIdleShutdown) {
		t.Errorf("lastOperation = %+v, want Stop by IdleShutdown", inst.LastOperation)
	}
}
