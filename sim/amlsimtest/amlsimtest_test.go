package amlsimtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/amlsimtest"
	"github.com/amlsim/amlsim/sim/server"
)

const (
	rg = "rg-local"
	ws = "ws-local"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

var fastPoll = &azruntime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond}

func instance(with func(*ml.ComputeInstanceProperties)) ml.ComputeResource {
	p := &ml.ComputeInstanceProperties{VMSize: to.Ptr("Standard_DS2_v2")}
	if with != nil {
		with(p)
	}
	return ml.ComputeResource{
		Location:   to.Ptr("eastus"),
		Properties: &ml.ComputeInstance{ComputeType: to.Ptr(ml.ComputeTypeComputeInstance), Properties: p},
	}
}

// create creates an instance with the SDK and returns it as the finished
// operation shows it.
func create(t *testing.T, f *ml.ClientFactory, name string, body ml.ComputeResource) *ml.ComputeInstance {
	t.Helper()
	p, err := f.NewComputeClient().BeginCreateOrUpdate(ctx(t), rg, ws, name, body, nil)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	r, err := p.PollUntilDone(ctx(t), fastPoll)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return r.Properties.(*ml.ComputeInstance)
}

func get(t *testing.T, f *ml.ClientFactory, name string) *ml.ComputeInstance {
	t.Helper()
	r, err := f.NewComputeClient().Get(ctx(t), rg, ws, name, nil)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return r.Properties.(*ml.ComputeInstance)
}

// portFree reports whether nothing listens on addr.
func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// A server started for a test is stopped when the test ends and leaves
// nothing behind: no home, no port held, no fake domain, no goroutine.
func TestStartLeavesNothingBehind(t *testing.T) {
	before := runtime.NumGoroutine()
	var home, addr, app string
	t.Run("server", func(t *testing.T) {
		srv := amlsimtest.Start(t)
		home = srv.Home()
		addr = strings.TrimPrefix(srv.Endpoint(), "https://")
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("Endpoint = %s, want https://127.0.0.1:PORT", srv.Endpoint())
		}
		ci := create(t, srv.ClientFactory(), "ci-gone", instance(nil))
		if *ci.Properties.State != ml.ComputeInstanceStateRunning {
			t.Fatalf("created instance is %s, want Running", *ci.Properties.State)
		}
		inst, err := srv.Service().Compute(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "ci-gone")
		if err != nil {
			t.Fatal(err)
		}
		// The fake driver's stand-in notebook server listens for it.
		app = fmt.Sprintf("127.0.0.1:%d", inst.AppPort)
		if portFree(app) {
			t.Fatalf("nothing listens on the instance's application port %s", app)
		}
		if _, err := os.Stat(filepath.Join(home, server.FakeDomainsFile)); err != nil {
			t.Fatalf("the fake driver's domains: %v", err)
		}
	})
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("home %s after the test: %v, want it gone", home, err)
	}
	if !portFree(addr) {
		t.Errorf("the server's port %s is still held", addr)
	}
	if !portFree(app) {
		t.Errorf("the instance's application port %s is still held", app)
	}
	// The fake driver keeps its domains in the home, as libvirt keeps
	// its own: a server opened there again would find none.
	again, err := fake.Open(filepath.Join(home, server.FakeDomainsFile))
	if err != nil {
		t.Fatal(err)
	}
	if doms, err := again.List(context.Background()); err != nil || len(doms) != 0 {
		t.Errorf("fake domains after the test: %+v (%v), want none", doms, err)
	}
	// Goroutines end a little after what they served.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the test, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// Options for the server's configuration reach it, as a sim.Config or as
// TOML; a configuration amlsim refuses fails the test.
func TestConfigOptions(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Workspaces = append(cfg.Workspaces, sim.WorkspaceConfig{ResourceGroup: rg, Name: "ws-second", Location: "westeurope"})
	srv := amlsimtest.Start(t, amlsimtest.WithConfig(cfg))
	if _, err := srv.ClientFactory().NewWorkspacesClient().Get(ctx(t), rg, "ws-second", nil); err != nil {
		t.Errorf("the configured workspace: %v", err)
	}

	srv = amlsimtest.Start(t, amlsimtest.WithConfigTOML("[[regions]]\nname = \"eastus\"\ntotal_vcpus = 1\ndefault_family_vcpus = 1\n"))
	_, err := srv.ClientFactory().NewComputeClient().BeginCreateOrUpdate(ctx(t), rg, ws, "ci-big", instance(nil), nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != "QuotaExceeded" {
		t.Errorf("a 2-vCPU create in a 1-vCPU region = %v, want QuotaExceeded", err)
	}

	// Ports: a range of the server's own, apart from amlsim serve's
	// default, unless the configuration sets one.
	if r := srv.Config().Local.PortRange; r == sim.DefaultConfig().Local.PortRange || r[1]-r[0] != 999 {
		t.Errorf("port range without one configured = %v, want 1000 ports of the server's own", r)
	}
	cfg.Local.PortRange = [2]int{31022, 31999}
	if r := amlsimtest.Start(t, amlsimtest.WithConfig(cfg)).Config().Local.PortRange; r != cfg.Local.PortRange {
		t.Errorf("configured port range = %v, want %v", r, cfg.Local.PortRange)
	}

	tb := &fakeTB{}
	if !tb.fails(func() { amlsimtest.Start(tb, amlsimtest.WithConfigTOML("pagesize = 3\n")) }) || !strings.Contains(tb.msg, "unknown keys: pagesize") {
		t.Errorf("a TOML typo: Start failed = %v (%q), want the test failed naming the key", tb.failed, tb.msg)
	}
}

// fakeTB is a TB whose Fatalf ends the function fails runs, as
// t.Fatalf ends a test.
type fakeTB struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	msg      string
}

type fatal struct{}

func (*fakeTB) Helper() {}
func (tb *fakeTB) Cleanup(f func()) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.cleanups = append(tb.cleanups, f)
}
func (tb *fakeTB) Errorf(format string, args ...any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.failed, tb.msg = true, fmt.Sprintf(format, args...)
}
func (tb *fakeTB) Fatalf(format string, args ...any) { tb.Errorf(format, args...); panic(fatal{}) }
func (*fakeTB) Logf(string, ...any)                  {}

// fails runs f as a test body, then the cleanups, and reports whether
// the test failed.
func (tb *fakeTB) fails(f func()) bool {
	func() {
		defer func() {
			if r := recover(); r != nil && r != (fatal{}) {
				panic(r)
			}
		}()
		f()
	}()
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	return tb.failed
}

// The test clock moves the instances' timestamps and schedules: an
// instance created at 17:55 says so, and its 18:00 stop schedule stops it
// once the clock is advanced past 18:00.
func TestClockMovesTimestampsAndSchedules(t *testing.T) {
	start := time.Date(2026, 12, 1, 17, 55, 0, 0, time.UTC)
	srv := amlsimtest.Start(t, amlsimtest.WithTestClock(start))
	clk := srv.Clock()
	if now := clk.Now(); now.Before(start) || now.After(start.Add(time.Minute)) {
		t.Errorf("clock at start = %s, want about %s", now, start)
	}
	f := srv.ClientFactory()
	ci := create(t, f, "ci-clock", instance(func(p *ml.ComputeInstanceProperties) {
		p.Schedules = &ml.ComputeSchedules{ComputeStartStop: []*ml.ComputeStartStopSchedule{{
			Action: to.Ptr(ml.ComputePowerActionStop), TriggerType: to.Ptr(ml.ComputeTriggerTypeCron), Status: to.Ptr(ml.ScheduleStatusEnabled),
			Cron: &ml.Cron{Expression: to.Ptr("0 18 * * *"), TimeZone: to.Ptr("UTC")},
		}}}
	}))
	if *ci.Properties.State != ml.ComputeInstanceStateRunning {
		t.Fatalf("created: %s, want Running", *ci.Properties.State)
	}
	if c := *get(t, f, "ci-clock").CreatedOn; c.Before(start) || c.After(start.Add(time.Minute)) {
		t.Errorf("createdOn = %s, want the test clock's time, about %s", c, start)
	}
	// The scheduler looks at the clock every second (and at each jump):
	// let it see the new schedule before the clock jumps past its firing.
	time.Sleep(1100 * time.Millisecond)
	if now := clk.Advance(6 * time.Minute); now.Before(start.Add(6 * time.Minute)) {
		t.Errorf("Advance(6m) = %s, want at least %s", now, start.Add(6*time.Minute))
	}
	var got *ml.ComputeInstance
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = get(t, f, "ci-clock"); *got.Properties.State == ml.ComputeInstanceStateStopped {
			break
		}
	}
	if *got.Properties.State != ml.ComputeInstanceStateStopped {
		t.Fatalf("after 18:00 on the test clock: %s, want Stopped by its schedule", *got.Properties.State)
	}
	lo := got.Properties.LastOperation
	if *lo.OperationName != ml.OperationNameStop || *lo.OperationTrigger != ml.OperationTriggerSchedule || lo.OperationTime.Before(start.Add(5*time.Minute)) {
		t.Errorf("lastOperation = %s by %s at %s, want Stop by Schedule at 18:00 on the test clock", *lo.OperationName, *lo.OperationTrigger, lo.OperationTime)
	}
	// The clock runs on from where it is put, at the wall clock's pace.
	next := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	if now := clk.Set(next); now.Before(next) || now.After(next.Add(time.Second)) {
		t.Errorf("Set = %s, want %s", now, next)
	}

	// A clock may start in the past.
	past := time.Date(2020, 2, 29, 12, 0, 0, 0, time.UTC)
	if now := amlsimtest.Start(t, amlsimtest.WithTestClock(past)).Clock().Now(); now.Before(past) || now.After(past.Add(time.Minute)) {
		t.Errorf("a clock started at %s is at %s", past, now)
	}

	tb := &fakeTB{}
	if !tb.fails(func() { amlsimtest.Start(tb).Clock() }) || !strings.Contains(tb.msg, "WithTestClock") {
		t.Errorf("Clock of a server on the wall clock: failed = %v (%q), want the test failed saying why", tb.failed, tb.msg)
	}
}

// statusLog records the status of every response the SDK receives,
// retries included.
type statusLog struct {
	mu       sync.Mutex
	statuses []int
}

func (l *statusLog) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if resp != nil {
		l.mu.Lock()
		l.statuses = append(l.statuses, resp.StatusCode)
		l.mu.Unlock()
	}
	return resp, err
}

// A fault rule put through the API throttles the SDK's next read once:
// the SDK sees a 429, waits for its Retry-After, and succeeds.
func TestFaultThrottlesOnce(t *testing.T) {
	var rule sim.FaultRule
	if err := json.Unmarshal([]byte(`{"operation": "Get", "effect": {"status": 429, "retryAfter": "PT1S"}, "times": 1}`), &rule); err != nil {
		t.Fatal(err)
	}
	srv := amlsimtest.Start(t, amlsimtest.WithFaults())
	create(t, srv.ClientFactory(), "ci-busy", instance(nil))

	rule.ID = "busy"
	if saved := srv.Faults().Put(rule); saved.ID != "busy" || saved.Effect.Status != 429 || *saved.Times != 1 {
		t.Fatalf("Put = %+v, want the rule busy", saved)
	}
	log := &statusLog{}
	opts := srv.ClientOptions()
	opts.PerRetryPolicies = append(opts.PerRetryPolicies, log)
	f, err := ml.NewClientFactory(srv.Config().Subscription, srv.Credential(), opts)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, err := f.NewComputeClient().Get(ctx(t), rg, ws, "ci-busy", nil); err != nil {
		t.Fatalf("Get through one 429: %v", err)
	}
	if took := time.Since(began); len(log.statuses) != 2 || log.statuses[0] != 429 || log.statuses[1] != 200 || took < time.Second {
		t.Errorf("responses %v in %s, want 429 then 200, a second apart (Retry-After)", log.statuses, took)
	}
	if rules := srv.Faults().List(); len(rules) != 0 {
		t.Errorf("rules after their one use: %+v, want none", rules)
	}

	srv.Faults().Put(sim.FaultRule{ID: "slow", Operation: "Start", Effect: sim.FaultEffect{Delay: "PT10M"}})
	if rules := srv.Faults().List(); len(rules) != 1 || rules[0].ID != "slow" {
		t.Errorf("List = %+v, want the rule slow", rules)
	}
	if !srv.Faults().Remove("slow") || srv.Faults().Remove("slow") {
		t.Error("Remove slow twice: want true, then false")
	}

	tb := &fakeTB{}
	if !tb.fails(func() { amlsimtest.Start(tb).Faults() }) || !strings.Contains(tb.msg, "WithFaults") {
		t.Errorf("Faults of a server without them: failed = %v (%q), want the test failed saying why", tb.failed, tb.msg)
	}
}

// Rules given to WithFaults are in force from the start; the fake
// driver's options reach it.
func TestStartWithRulesAndFakeOptions(t *testing.T) {
	srv := amlsimtest.Start(t,
		amlsimtest.WithFaults(sim.FaultRule{ID: "cap", Operation: "Create", Match: sim.FaultMatch{Name: "cap-*"}, Effect: sim.FaultEffect{Fail: &sim.FaultFailure{Code: "AllocationFailed"}}}),
		amlsimtest.WithFakeOptions(fake.WithDelays(fake.Delays{})))
	p, err := srv.ClientFactory().NewComputeClient().BeginCreateOrUpdate(ctx(t), rg, ws, "cap-one", instance(nil), nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx(t), fastPoll)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != "AllocationFailed" {
		t.Errorf("create under the rule cap = %v, want AllocationFailed", err)
	}
	if _, ok := srv.Driver().(*fake.Driver); !ok {
		t.Errorf("Driver = %T, want *fake.Driver", srv.Driver())
	}
}

// CredentialFor speaks for another principal: one with no role is refused.
func TestCredentialFor(t *testing.T) {
	const nobody = "77777777-7777-7777-7777-777777777777"
	cfg := sim.DefaultConfig()
	cfg.Principals = append(cfg.Principals, sim.PrincipalConfig{ObjectID: nobody, Name: "nobody"})
	srv := amlsimtest.Start(t, amlsimtest.WithConfig(cfg))
	f, err := ml.NewClientFactory(srv.Config().Subscription, srv.CredentialFor(nobody), srv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.NewComputeClient().Get(ctx(t), rg, ws, "ci-none", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Errorf("a principal without a role reads a compute: %v, want 403", err)
	}
}
