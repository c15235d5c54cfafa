package sim_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/guest"
	"github.com/amlsim/amlsim/sim/store"
)

var ref = sim.WorkspaceRef{ResourceGroup: "rg-local", Name: "ws-local"}

// server is one run of the simulator over a state file and a driver that
// outlives it, as libvirt outlives a killed server.
type server struct {
	st  *store.Store
	svc *sim.Service
}

// testConfig is the default config with loopback ports of the package's
// own: port allocation probes by listening, and the packages' tests run
// in parallel.
func testConfig() sim.Config {
	cfg := sim.DefaultConfig()
	cfg.Local.PortRange = [2]int{32022, 32999}
	return cfg
}

func open(t *testing.T, path string, drv hypervisor.Driver) *server {
	t.Helper()
	st, err := store.Open(path, sim.Buckets()...)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := sim.New(testConfig(), st, drv, guest.Fake{Driver: drv}, sim.WithJobsDir(filepath.Join(filepath.Dir(path), "jobs")))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &server{st, svc}
}

func (s *server) close() {
	s.svc.Close()
	s.st.Close()
}

func waitState(t *testing.T, svc *sim.Service, name string, want sim.State) sim.Instance {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		inst, err := svc.Compute(ref, name)
		if err != nil {
			t.Fatal(err)
		}
		if inst.State == want {
			return inst
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: state = %s, want %s", name, inst.State, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRestartMidCreateFinishesTheCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	drv := fake.New(fake.WithDelays(fake.Delays{Start: 300 * time.Millisecond}))
	s := open(t, path, drv)
	_, op, err := s.svc.CreateOrUpdate(sim.DefaultOwner, ref, "ci-mid", sim.CreateRequest{Size: "Standard_D1_v2"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // inside the slow start
	s.close()

	s = open(t, path, drv)
	defer s.close()
	waitState(t, s.svc, "ci-mid", sim.StateRunning)
	got, err := s.svc.Operation("eastus", op.ID)
	if err != nil || got.Status != sim.OpSucceeded {
		t.Errorf("operation = %+v, %v; want Succeeded", got, err)
	}
	doms, _ := drv.List(context.Background())
	if len(doms) != 1 || doms[0].State != hypervisor.StateRunning {
		t.Errorf("domains = %+v, want one running", doms)
	}
}

func TestRecoverShowsRealPowerState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	drv := fake.New()
	s := open(t, path, drv)
	for _, n := range []string{"ci-off", "ci-gone"} {
		if _, _, err := s.svc.CreateOrUpdate(sim.DefaultOwner, ref, n, sim.CreateRequest{Size: "Standard_D1_v2"}); err != nil {
			t.Fatal(err)
		}
		waitState(t, s.svc, n, sim.StateRunning)
	}
	s.close()

	// While the server is down, one VM powers off and one vanishes, and a
	// domain of ours that no record claims appears.
	if err := drv.PowerOff(sim.DomainName("eastus", "ci-off")); err != nil {
		t.Fatal(err)
	}
	if err := drv.Undefine(context.Background(), sim.DomainName("eastus", "ci-gone")); err != nil {
		t.Fatal(err)
	}
	if err := drv.Define(context.Background(), hypervisor.Spec{Name: "amlsim-eastus-stray", SSHPort: 20500}); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, drv)
	defer s.close()
	waitState(t, s.svc, "ci-off", sim.StateStopped)
	gone := waitState(t, s.svc, "ci-gone", sim.StateUnusable)
	if len(gone.Errors) == 0 {
		t.Error("a vanished VM left no error on its instance")
	}
	if _, err := drv.Lookup(context.Background(), "amlsim-eastus-stray"); err != nil {
		t.Errorf("the stray domain was touched: %v", err)
	}
	// Quota stays exact: both instances still hold theirs until deleted.
	usages, err := s.svc.Usages("eastus")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range usages {
		if u.Name == "standardDv2Family" && u.Current != 2 {
			t.Errorf("Dv2 usage = %d, want 2", u.Current)
		}
	}
}

func TestDeleteDuringCreate(t *testing.T) {
	drv := fake.New(fake.WithDelays(fake.Delays{Start: 500 * time.Millisecond}))
	s := open(t, filepath.Join(t.TempDir(), "state.db"), drv)
	defer s.close()
	_, createOp, err := s.svc.CreateOrUpdate(sim.DefaultOwner, ref, "ci-cut", sim.CreateRequest{Size: "Standard_D1_v2"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	delOp, err := s.svc.Begin(sim.DefaultOwner, ref, "ci-cut", sim.ActionDelete)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		op, _ := s.svc.Operation("eastus", delOp.ID)
		if op.Status == sim.OpSucceeded {
			break
		}
		if op.Status == sim.OpFailed || time.Now().After(deadline) {
			t.Fatalf("delete operation = %+v", op)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if op, _ := s.svc.Operation("eastus", createOp.ID); op.Status != sim.OpCanceled {
		t.Errorf("create operation after delete = %s, want Canceled", op.Status)
	}
	if doms, _ := drv.List(context.Background()); len(doms) != 0 {
		t.Errorf("domains = %v, want none", doms)
	}
	if _, err := s.svc.Compute(ref, "ci-cut"); err == nil {
		t.Error("instance still there after delete")
	}
}

// Two servers with different homes share one hypervisor: the same
// instance name in both gets two domains, and deleting one leaves the
// other's VM running.
func TestHomesNeverShareDomains(t *testing.T) {
	drv := fake.New()
	var svcs []*sim.Service
	for i, home := range []string{t.TempDir(), t.TempDir()} {
		st, err := store.Open(filepath.Join(home, "state.db"), sim.Buckets()...)
		if err != nil {
			t.Fatal(err)
		}
		// Separate port ranges, as parallel servers are configured: the
		// fake's forwards listen on nothing, so only the range keeps them
		// apart here.
		cfg := testConfig()
		cfg.Local.PortRange = [2]int{30000 + 100*i, 30099 + 100*i}
		svc, err := sim.New(cfg, st, drv, guest.Fake{Driver: drv}, sim.WithDomainPrefix(sim.HomeDomainPrefix(home)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close(); st.Close() })
		if _, _, err := svc.CreateOrUpdate(sim.DefaultOwner, ref, "ci-same", sim.CreateRequest{Size: "Standard_D1_v2"}); err != nil {
			t.Fatal(err)
		}
		waitState(t, svc, "ci-same", sim.StateRunning)
		svcs = append(svcs, svc)
	}
	a, _ := svcs[0].Compute(ref, "ci-same")
	b, _ := svcs[1].Compute(ref, "ci-same")
	if a.Domain == b.Domain {
		t.Fatalf("both servers named their VM %q", a.Domain)
	}
	if _, err := svcs[0].Begin(sim.DefaultOwner, ref, "ci-same", sim.ActionDelete); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := drv.Lookup(context.Background(), a.Domain); errors.Is(err, hypervisor.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted instance's domain %s is still there", a.Domain)
		}
	}
	if d, err := drv.Lookup(context.Background(), b.Domain); err != nil || d.State != hypervisor.StateRunning {
		t.Errorf("the other server's VM %s: %+v, %v; want running", b.Domain, d, err)
	}
}

// The instance's state follows its VM while the server runs, on the
// driver's events alone (the resync period is far longer than the test).
func TestLiveDriftFollowsDomainEvents(t *testing.T) {
	drv := fake.New()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), sim.Buckets()...)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := sim.New(testConfig(), st, drv, guest.Fake{Driver: drv}, sim.WithResync(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	if err := svc.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ci-off", "ci-killed", "ci-gone"} {
		if _, _, err := svc.CreateOrUpdate(sim.DefaultOwner, ref, n, sim.CreateRequest{Size: "Standard_D1_v2"}); err != nil {
			t.Fatal(err)
		}
		waitState(t, svc, n, sim.StateRunning)
	}
	if err := drv.PowerOff(sim.DomainName("eastus", "ci-off")); err != nil {
		t.Fatal(err)
	}
	if err := drv.Kill(sim.DomainName("eastus", "ci-killed")); err != nil {
		t.Fatal(err)
	}
	if err := drv.Forget(sim.DomainName("eastus", "ci-gone")); err != nil {
		t.Fatal(err)
	}
	off := waitState(t, svc, "ci-off", sim.StateStopped)
	if last := off.Events[len(off.Events)-1]; !strings.Contains(last.Message, "the VM is shutoff") {
		t.Errorf("last event = %q, want one saying the VM is off", last.Message)
	}
	waitState(t, svc, "ci-killed", sim.StateStopped)
	gone := waitState(t, svc, "ci-gone", sim.StateUnusable)
	if len(gone.Errors) == 0 || gone.Errors[0].Code != "VirtualMachineNotFound" {
		t.Errorf("errors = %+v, want VirtualMachineNotFound", gone.Errors)
	}
	// A stopped instance can start again; the vanished one can only be deleted.
	if _, err := svc.Begin(sim.DefaultOwner, ref, "ci-off", sim.ActionStart); err != nil {
		t.Fatal(err)
	}
	waitState(t, svc, "ci-off", sim.StateRunning)
	if _, err := svc.Begin(sim.DefaultOwner, ref, "ci-gone", sim.ActionStop); err == nil {
		t.Error("stop of an instance whose VM vanished was accepted")
	}
}

// A VM that vanishes under an operation ends it where the table says for
// a vanished VM, never in a state that promises a VM.
func TestVanishedDuringStopIsUnusable(t *testing.T) {
	drv := fake.New(fake.WithDelays(fake.Delays{Shutdown: 300 * time.Millisecond}))
	s := open(t, filepath.Join(t.TempDir(), "state.db"), drv)
	defer s.close()
	if _, _, err := s.svc.CreateOrUpdate(sim.DefaultOwner, ref, "ci-v", sim.CreateRequest{Size: "Standard_D1_v2"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, s.svc, "ci-v", sim.StateRunning)
	op, err := s.svc.Begin(sim.DefaultOwner, ref, "ci-v", sim.ActionStop)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := drv.Forget(sim.DomainName("eastus", "ci-v")); err != nil {
		t.Fatal(err)
	}
	inst := waitState(t, s.svc, "ci-v", sim.StateUnusable)
	if inst.LastOperation == nil || inst.LastOperation.Status != "StopFailed" {
		t.Errorf("lastOperation = %+v, want StopFailed", inst.LastOperation)
	}
	if got, _ := s.svc.Operation("eastus", op.ID); got.Status != sim.OpFailed {
		t.Errorf("operation = %s, want Failed", got.Status)
	}
}

// A resource group's delete cut short by a restart finishes after it: the
// instances' deletes resume, and the group goes with the last of them.
func TestRestartMidGroupDeleteFinishesIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	drv := fake.New(fake.WithDelays(fake.Delays{Destroy: 300 * time.Millisecond}))
	s := open(t, path, drv)
	for _, name := range []string{"ci-g1", "ci-g2"} {
		if _, _, err := s.svc.CreateOrUpdate(sim.DefaultOwner, ref, name, sim.CreateRequest{Size: "Standard_D1_v2"}); err != nil {
			t.Fatal(err)
		}
		waitState(t, s.svc, name, sim.StateRunning)
	}
	op, err := s.svc.DeleteResourceGroup(sim.DefaultOwner, ref.ResourceGroup)
	if err != nil || op == nil {
		t.Fatalf("delete: %v, %v", op, err)
	}
	time.Sleep(50 * time.Millisecond) // inside the slow destroys
	s.close()

	// The config's workspace comes back at each start (README), so the
	// group's end is checked by its operation and its instances.
	s = open(t, path, drv)
	defer s.close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.svc.Operation("", op.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == sim.OpSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group's delete is %s after the restart", got.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, name := range []string{"ci-g1", "ci-g2"} {
		if _, err := s.svc.Compute(ref, name); err == nil {
			t.Errorf("%s survived its group's delete", name)
		}
	}
	if doms, _ := drv.List(context.Background()); len(doms) != 0 {
		t.Errorf("domains left: %+v", doms)
	}
}

// A deployment that was running when the server stopped ends Failed at
// the next start, and says why: nothing carries it on.
func TestRestartFailsARunningDeployment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	drv := fake.New()
	s := open(t, path, drv)
	d := sim.Deployment{ResourceGroup: ref.ResourceGroup, Name: "cut", State: "Running", Mode: "Incremental", Start: time.Now(),
		Operations: []sim.DeploymentOperation{{ID: "OP1", Operation: "Create", State: "Running", Start: time.Now()}}}
	if _, err := s.svc.StartDeployment(d); err != nil {
		t.Fatal(err)
	}
	s.close()
	s = open(t, path, drv)
	defer s.close()
	got, err := s.svc.Deployment(ref.ResourceGroup, "cut")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "Failed" || got.Error == nil || !strings.Contains(got.Error.Message, "interrupted") || got.Operations[0].State != "Failed" {
		t.Errorf("after a restart: %s, %+v, operation %s", got.State, got.Error, got.Operations[0].State)
	}
}

// An operation keeps the fault it was started under across a restart: a
// create failed by a rule (used up at the request) still fails when the
// restarted server resumes it, and the rules themselves are kept.
func TestRestartKeepsInjectedFaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	drv := fake.New()
	s := open(t, path, drv)
	once := 1
	for _, r := range []sim.FaultRule{
		{ID: "hold", Operation: "Create", Match: sim.FaultMatch{Name: "ci-held"}, Effect: sim.FaultEffect{Delay: "PT1H"}, Times: &once},
		{ID: "later", Operation: "Start", Effect: sim.FaultEffect{Status: 503}},
	} {
		if _, err := s.svc.PutFault(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.svc.CreateOrUpdate(sim.DefaultOwner, ref, "ci-held", sim.CreateRequest{Size: "Standard_D1_v2"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // inside the hour-long delay
	if inst := waitState(t, s.svc, "ci-held", sim.StateCreating); len(inst.Events) < 2 || inst.Events[1].Message != "Fault hold injected: delay PT1H" {
		t.Errorf("events = %+v, want the injected delay", inst.Events)
	}
	s.close()

	s = open(t, path, drv)
	defer s.close()
	time.Sleep(50 * time.Millisecond)
	if inst := waitState(t, s.svc, "ci-held", sim.StateCreating); inst.State != sim.StateCreating {
		t.Errorf("after a restart the delayed create is %s, want still Creating", inst.State)
	}
	if doms, _ := drv.List(context.Background()); len(doms) != 0 {
		t.Errorf("domains = %+v: the delayed create defined its VM", doms)
	}
	rules, err := s.svc.Faults()
	if err != nil || len(rules) != 1 || rules[0].ID != "later" {
		t.Errorf("rules after the restart = %+v, %v; want the unused one", rules, err)
	}
}

// Jobs outlive a restart of the server: a running one is attached to
// again (the fake driver's run starts over; a guest's command runs on),
// a queued one stays queued and runs after it.
func TestRestartResumesJobs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	drv := fake.New()
	s := open(t, path, drv)
	if _, _, err := s.svc.CreateOrUpdate(sim.DefaultOwner, ref, "ci-jobs", sim.CreateRequest{Size: "Standard_D1_v2"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, s.svc, "ci-jobs", sim.StateRunning)
	submit := func(name, d string) {
		t.Helper()
		spec := map[string]any{"jobType": "Command", "command": "echo " + name, "environmentId": "azureml:AzureML-minimal@latest",
			"computeId": "ci-jobs", "environmentVariables": map[string]any{"AMLSIM_FAKE_DURATION": d}}
		if _, _, err := s.svc.SubmitJob(sim.DefaultOwner, ref, name, spec); err != nil {
			t.Fatal(err)
		}
	}
	submit("long", "500ms")
	submit("next", "10ms")
	waitJob(t, s.svc, "long", sim.JobRunning)
	waitJob(t, s.svc, "next", sim.JobQueued)
	s.close()

	s = open(t, path, drv)
	defer s.close()
	if j, _ := s.svc.Job(ref, "long"); j.Status != sim.JobRunning {
		t.Errorf("after the restart long is %s, want Running", j.Status)
	}
	long := waitJob(t, s.svc, "long", sim.JobCompleted)
	next := waitJob(t, s.svc, "next", sim.JobCompleted)
	if next.StartTime.Before(long.EndTime) {
		t.Errorf("next started at %v, before long ended at %v", next.StartTime, long.EndTime)
	}
	b, err := os.ReadFile(filepath.Join(s.svc.LogDir(long), "user_logs", "std_log.txt"))
	if err != nil || strings.Count(string(b), "this job would run") != 1 {
		t.Errorf("long's log = %q (%v), want the fake driver's lines once", b, err)
	}
}

func waitJob(t *testing.T, svc *sim.Service, name string, want sim.JobStatus) sim.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := svc.Job(ref, name)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: status = %s, want %s", name, j.Status, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A cancel asked before a restart is carried out after it: the job ends
// Canceled and does not run to its end.
func TestRestartFinishesCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	drv := fake.New()
	s := open(t, path, drv)
	if _, _, err := s.svc.CreateOrUpdate(sim.DefaultOwner, ref, "ci-cancel", sim.CreateRequest{Size: "Standard_D1_v2"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, s.svc, "ci-cancel", sim.StateRunning)
	spec := map[string]any{"jobType": "Command", "command": "sleep 600", "environmentId": "azureml:AzureML-minimal@latest",
		"computeId": "ci-cancel", "environmentVariables": map[string]any{"AMLSIM_FAKE_DURATION": "10m"}}
	if _, _, err := s.svc.SubmitJob(sim.DefaultOwner, ref, "stop-me", spec); err != nil {
		t.Fatal(err)
	}
	for j := waitJob(t, s.svc, "stop-me", sim.JobRunning); !j.Launched; time.Sleep(10 * time.Millisecond) {
		j, _ = s.svc.Job(ref, "stop-me") // its command started in the guest
	}
	s.close()
	// The cancel was stored, its stop did not happen: as if the server
	// died right after it answered the cancel.
	st, err := store.Open(path, sim.Buckets()...)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(tx *store.Tx) error {
		var j sim.Job
		key := "rg-local/ws-local/stop-me"
		if ok, err := tx.Get("jobs", key, &j); err != nil || !ok {
			return fmt.Errorf("job record: %v %v", ok, err)
		}
		j.Status = sim.JobCancelRequested
		return tx.Put("jobs", key, j)
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = open(t, path, drv)
	defer s.close()
	j := waitJob(t, s.svc, "stop-me", sim.JobCanceled)
	if j.ExitCode == nil || *j.ExitCode != 143 {
		t.Errorf("exit code %v, want 143 (stopped)", j.ExitCode)
	}
}
