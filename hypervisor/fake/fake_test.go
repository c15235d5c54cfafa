package fake_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
)

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func defineRunning(t *testing.T, d *fake.Driver, name string, port int) {
	t.Helper()
	if err := d.Define(ctx(t), hypervisor.Spec{Name: name, SSHPort: port}); err != nil {
		t.Fatalf("Define(%q) = %v", name, err)
	}
	if err := d.Start(ctx(t), name); err != nil {
		t.Fatalf("Start(%q) = %v", name, err)
	}
}

func state(t *testing.T, d *fake.Driver, name string) hypervisor.State {
	t.Helper()
	dom, err := d.Lookup(ctx(t), name)
	if err != nil {
		t.Fatalf("Lookup(%q) = %v", name, err)
	}
	return dom.State
}

func TestDelaysTakeTime(t *testing.T) {
	const delay = 50 * time.Millisecond
	d := fake.New(fake.WithDelays(fake.Delays{
		Define: delay, Start: delay, Shutdown: delay, Reboot: delay, Destroy: delay, Undefine: delay,
	}))
	steps := []struct {
		name string
		fn   func() error
	}{
		{"Define", func() error { return d.Define(ctx(t), hypervisor.Spec{Name: "vm"}) }},
		{"Start", func() error { return d.Start(ctx(t), "vm") }},
		{"Reboot", func() error { return d.Reboot(ctx(t), "vm") }},
		{"Shutdown", func() error { return d.Shutdown(ctx(t), "vm", time.Minute) }},
		{"Destroy", func() error { return d.Destroy(ctx(t), "vm") }},
		{"Undefine", func() error { return d.Undefine(ctx(t), "vm") }},
	}
	for _, s := range steps {
		begin := time.Now()
		if err := s.fn(); err != nil {
			t.Fatalf("%s = %v", s.name, err)
		}
		if took := time.Since(begin); took < delay {
			t.Errorf("%s took %v, want at least %v", s.name, took, delay)
		}
	}
}

func TestImpossibleRequestFailsWithoutDelay(t *testing.T) {
	d := fake.New(fake.WithDelays(fake.Delays{Start: time.Hour}))
	begin := time.Now()
	err := d.Start(ctx(t), "missing")
	if !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("Start(missing) = %v, want ErrNotFound", err)
	}
	if took := time.Since(begin); took > time.Second {
		t.Errorf("Start(missing) took %v, want an immediate answer", took)
	}
}

func TestDelayHonoursCancellation(t *testing.T) {
	d := fake.New(fake.WithDelays(fake.Delays{Define: time.Hour, Start: time.Hour}))
	c, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := d.Define(c, hypervisor.Spec{Name: "vm"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Define with a short deadline = %v, want DeadlineExceeded", err)
	}
	if _, err := d.Lookup(ctx(t), "vm"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup after an interrupted Define = %v, want ErrNotFound", err)
	}
}

func TestStartInterruptedLeavesDomainOff(t *testing.T) {
	d := fake.New(fake.WithDelays(fake.Delays{Start: time.Hour}))
	if err := d.Define(ctx(t), hypervisor.Spec{Name: "vm"}); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Start(c, "vm") }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Start cancelled midway = %v, want Canceled", err)
	}
	if got := state(t, d, "vm"); got != hypervisor.StateShutoff {
		t.Errorf("state after an interrupted Start = %q, want %q", got, hypervisor.StateShutoff)
	}
}

func TestShutdownReportsShuttingDownThenOff(t *testing.T) {
	d := fake.New(fake.WithDelays(fake.Delays{Shutdown: 200 * time.Millisecond}))
	defineRunning(t, d, "vm", 2222)
	done := make(chan error)
	go func() { done <- d.Shutdown(ctx(t), "vm", time.Minute) }()
	deadline := time.Now().Add(time.Second)
	for state(t, d, "vm") != hypervisor.StateShuttingDown {
		if time.Now().After(deadline) {
			t.Fatalf("state never became %q during Shutdown", hypervisor.StateShuttingDown)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if got := state(t, d, "vm"); got != hypervisor.StateShutoff {
		t.Errorf("state after Shutdown = %q, want %q", got, hypervisor.StateShutoff)
	}
}

func TestShutdownForcesOffAfterGrace(t *testing.T) {
	// A guest that ignores ACPI for an hour is forced off after the grace.
	d := fake.New(fake.WithDelays(fake.Delays{Shutdown: time.Hour}))
	defineRunning(t, d, "vm", 2222)
	const grace = 30 * time.Millisecond
	begin := time.Now()
	if err := d.Shutdown(ctx(t), "vm", grace); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if took := time.Since(begin); took < grace || took > 5*time.Second {
		t.Errorf("Shutdown took %v, want about the grace %v", took, grace)
	}
	if got := state(t, d, "vm"); got != hypervisor.StateShutoff {
		t.Errorf("state = %q, want %q", got, hypervisor.StateShutoff)
	}
}

func TestShutdownCancelledKeepsRunning(t *testing.T) {
	d := fake.New(fake.WithDelays(fake.Delays{Shutdown: time.Hour}))
	defineRunning(t, d, "vm", 2222)
	c, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := d.Shutdown(c, "vm", time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if got := state(t, d, "vm"); got != hypervisor.StateRunning {
		t.Errorf("state after an interrupted Shutdown = %q, want %q", got, hypervisor.StateRunning)
	}
}

func TestDestroyDuringShutdown(t *testing.T) {
	d := fake.New(fake.WithDelays(fake.Delays{Shutdown: 100 * time.Millisecond}))
	defineRunning(t, d, "vm", 2222)
	done := make(chan error)
	go func() { done <- d.Shutdown(ctx(t), "vm", time.Minute) }()
	time.Sleep(10 * time.Millisecond)
	if err := d.Destroy(ctx(t), "vm"); err != nil {
		t.Fatalf("Destroy = %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown of a domain destroyed meanwhile = %v, want nil (it is off)", err)
	}
	if got := state(t, d, "vm"); got != hypervisor.StateShutoff {
		t.Errorf("state = %q, want %q", got, hypervisor.StateShutoff)
	}
}

func TestUndefineDuringShutdown(t *testing.T) {
	d := fake.New(fake.WithDelays(fake.Delays{Shutdown: 100 * time.Millisecond}))
	defineRunning(t, d, "vm", 2222)
	done := make(chan error)
	go func() { done <- d.Shutdown(ctx(t), "vm", time.Minute) }()
	time.Sleep(10 * time.Millisecond)
	if err := d.Undefine(ctx(t), "vm"); err != nil {
		t.Fatalf("Undefine = %v", err)
	}
	if err := <-done; !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Shutdown of a domain undefined meanwhile = %v, want ErrNotFound", err)
	}
}

func TestFailNext(t *testing.T) {
	boom := errors.New("qemu exploded")
	d := fake.New()
	for _, name := range []string{"a", "b"} {
		if err := d.Define(ctx(t), hypervisor.Spec{Name: name, SSHPort: 2200 + int(name[0])}); err != nil {
			t.Fatal(err)
		}
	}
	d.FailNext(fake.OpStart, "b", boom)

	// The failure is for b only: a starts.
	if err := d.Start(ctx(t), "a"); err != nil {
		t.Fatalf("Start(a) = %v, want nil", err)
	}
	err := d.Start(ctx(t), "b")
	if !errors.Is(err, boom) {
		t.Fatalf("Start(b) = %v, want the injected error", err)
	}
	if got := state(t, d, "b"); got != hypervisor.StateShutoff {
		t.Errorf("state after a failed Start = %q, want %q", got, hypervisor.StateShutoff)
	}
	// Only the next call fails.
	if err := d.Start(ctx(t), "b"); err != nil {
		t.Errorf("second Start(b) = %v, want nil", err)
	}
}

func TestFailNextAnyName(t *testing.T) {
	d := fake.New()
	d.FailNext(fake.OpDefine, "", hypervisor.ErrImageMissing)
	d.FailNext(fake.OpList, "", hypervisor.ErrUnavailable)
	if err := d.Define(ctx(t), hypervisor.Spec{Name: "x"}); !errors.Is(err, hypervisor.ErrImageMissing) {
		t.Errorf("Define = %v, want ErrImageMissing", err)
	}
	if _, err := d.List(ctx(t)); !errors.Is(err, hypervisor.ErrUnavailable) {
		t.Errorf("List = %v, want ErrUnavailable", err)
	}
	if doms, err := d.List(ctx(t)); err != nil || len(doms) != 0 {
		t.Errorf("List = %v, %v; want no domains (the failed Define left nothing)", doms, err)
	}
}

func TestPowerOff(t *testing.T) {
	d := fake.New()
	defineRunning(t, d, "vm", 2222)
	if err := d.PowerOff("vm"); err != nil {
		t.Fatalf("PowerOff = %v", err)
	}
	if got := state(t, d, "vm"); got != hypervisor.StateShutoff {
		t.Errorf("state after PowerOff = %q, want %q", got, hypervisor.StateShutoff)
	}
	// A guest that powered off can be started again, as after a crash.
	if err := d.Start(ctx(t), "vm"); err != nil {
		t.Errorf("Start after PowerOff = %v", err)
	}
	if err := d.PowerOff("missing"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("PowerOff(missing) = %v, want ErrNotFound", err)
	}
}

func TestSetStateCrashedCanStart(t *testing.T) {
	d := fake.New()
	defineRunning(t, d, "vm", 2222)
	if err := d.SetState("vm", hypervisor.StateCrashed); err != nil {
		t.Fatal(err)
	}
	if got := state(t, d, "vm"); got != hypervisor.StateCrashed {
		t.Fatalf("state = %q, want %q", got, hypervisor.StateCrashed)
	}
	if err := d.Start(ctx(t), "vm"); err != nil {
		t.Errorf("Start of a crashed domain = %v, want nil", err)
	}
	if err := d.SetState("vm", hypervisor.StatePaused); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx(t), "vm"); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Errorf("Start of a paused domain = %v, want ErrInvalidState", err)
	}
}

func TestPortInUse(t *testing.T) {
	d := fake.New()
	defineRunning(t, d, "a", 2222)
	if err := d.Define(ctx(t), hypervisor.Spec{Name: "b", SSHPort: 2222}); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx(t), "b"); !errors.Is(err, hypervisor.ErrPortInUse) {
		t.Fatalf("Start(b) on a:s port = %v, want ErrPortInUse", err)
	}
	if err := d.Destroy(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx(t), "b"); err != nil {
		t.Errorf("Start(b) once a is off = %v, want nil", err)
	}
}

func TestSpecAndCalls(t *testing.T) {
	d := fake.New()
	seed := []byte("seed")
	if err := d.Define(ctx(t), hypervisor.Spec{Name: "vm", Seed: seed, SSHPort: 2222}); err != nil {
		t.Fatal(err)
	}
	seed[0] = 'X'
	spec, ok := d.Spec("vm")
	if !ok || string(spec.Seed) != "seed" {
		t.Errorf("Spec(vm) = %q, %v; want the seed as defined, %q", spec.Seed, ok, "seed")
	}
	if err := d.Start(ctx(t), "vm"); err != nil {
		t.Fatal(err)
	}
	if err := d.Shutdown(ctx(t), "vm", 7*time.Second); err != nil {
		t.Fatal(err)
	}
	want := []fake.Call{
		{Op: fake.OpDefine, Name: "vm"},
		{Op: fake.OpStart, Name: "vm"},
		{Op: fake.OpShutdown, Name: "vm", Grace: 7 * time.Second},
	}
	if got := d.Calls(); !slices.Equal(got, want) {
		t.Errorf("Calls() = %v, want %v", got, want)
	}
	if _, ok := d.Spec("missing"); ok {
		t.Error("Spec(missing) reported a spec")
	}
}

func TestEmptyNameRefused(t *testing.T) {
	d := fake.New()
	if err := d.Define(ctx(t), hypervisor.Spec{}); !errors.Is(err, fake.ErrInvalidSpec) {
		t.Errorf("Define without a name = %v, want ErrInvalidSpec", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	// Meant for -race: many goroutines drive the same domains.
	d := fake.New(fake.WithDelays(fake.Delays{Start: time.Millisecond, Shutdown: time.Millisecond}))
	names := []string{"a", "b", "c"}
	for i, n := range names {
		if err := d.Define(ctx(t), hypervisor.Spec{Name: n, SSHPort: 3000 + i}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			n := names[i%len(names)]
			c := ctx(t)
			for range 20 {
				_ = d.Start(c, n)
				_, _ = d.List(c)
				_ = d.Reboot(c, n)
				_ = d.Shutdown(c, n, time.Second)
				_ = d.Destroy(c, n)
				_ = d.PowerOff(n)
			}
		})
	}
	wg.Wait()
	doms, err := d.List(ctx(t))
	if err != nil || len(doms) != len(names) {
		t.Fatalf("List = %d domains, %v; want %d", len(doms), err, len(names))
	}
	for _, dom := range doms {
		if dom.State != hypervisor.StateShutoff {
			t.Errorf("state of %q after every goroutine ended with PowerOff = %q, want %q", dom.Name, dom.State, hypervisor.StateShutoff)
		}
	}
}

func TestAdoptAndForget(t *testing.T) {
	d := fake.New(fake.WithForeign("test"))
	spec := hypervisor.Spec{Name: "left-over", SSHPort: 2222, Labels: map[string]string{"instance": "ci-1"}}
	if err := d.Adopt(spec, hypervisor.StateRunning); err != nil {
		t.Fatalf("Adopt = %v", err)
	}
	dom, err := d.Lookup(ctx(t), "left-over")
	if err != nil || dom.State != hypervisor.StateRunning || dom.Labels["instance"] != "ci-1" {
		t.Fatalf("Lookup of an adopted domain = %+v, %v; want it running with its labels", dom, err)
	}
	if err := d.Adopt(spec, hypervisor.StateShutoff); !errors.Is(err, hypervisor.ErrExists) {
		t.Errorf("second Adopt = %v, want ErrExists", err)
	}
	if err := d.Adopt(hypervisor.Spec{Name: "test"}, hypervisor.StateShutoff); !errors.Is(err, hypervisor.ErrExists) {
		t.Errorf("Adopt of a foreign name = %v, want ErrExists", err)
	}
	if err := d.Forget("left-over"); err != nil {
		t.Fatalf("Forget = %v", err)
	}
	if _, err := d.Lookup(ctx(t), "left-over"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup after Forget = %v, want ErrNotFound", err)
	}
	if err := d.Forget("left-over"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("second Forget = %v, want ErrNotFound", err)
	}
	if got := d.Calls(); len(got) != 2 || got[0].Op != fake.OpLookup || got[1].Op != fake.OpLookup {
		t.Errorf("Calls() = %v, want only the two Lookups", got)
	}
}

// A driver opened on a state file finds the domains a killed process
// left, as libvirt outlives amlsim: defined ones, running ones, and
// shutting-down ones powered off meanwhile.
func TestOpenKeepsDomainsAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "domains.json")
	d, err := fake.Open(path, fake.WithDelays(fake.Delays{Shutdown: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, n := range []string{"off", "on", "going"} {
		if err := d.Define(ctx, hypervisor.Spec{Name: n, SSHPort: 41000 + i}); err != nil {
			t.Fatal(err)
		}
	}
	d.Start(ctx, "on")
	d.Start(ctx, "going")
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Shutdown(sctx, "going", time.Hour); close(done) }()
	time.Sleep(10 * time.Millisecond) // "going" is shutting down when the process "dies"
	again, err := fake.Open(path)
	cancel()
	<-done // the first driver writes no more
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]hypervisor.State{"off": hypervisor.StateShutoff, "on": hypervisor.StateRunning, "going": hypervisor.StateShutoff} {
		dom, err := again.Lookup(ctx, n)
		if err != nil || dom.State != want {
			t.Errorf("%s after reopening: %+v, %v; want %s", n, dom, err, want)
		}
	}
	if _, err := fake.Open(filepath.Join(t.TempDir(), "none.json")); err != nil {
		t.Errorf("Open of a new state file: %v", err)
	}
	corrupt := filepath.Join(t.TempDir(), "corrupt.json")
	os.WriteFile(corrupt, []byte("{not json"), 0o600)
	if _, err := fake.Open(corrupt); err == nil {
		t.Error("Open of a corrupt state file succeeded")
	}
}
