package sim

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
)

// snapDriver is the fake driver with snapshots: TakeSnapshot makes the
// directory once release is closed (or fails with fail), and Define
// records the Snapshot each domain was given.
type snapDriver struct {
	*fake.Driver
	root    string
	release chan struct{}
	fail    error
	takes   atomic.Int32
	mu      sync.Mutex
	defined map[string]string
	spec    hypervisor.Spec
}

func (d *snapDriver) SnapshotDir(vcpus, memoryMiB int, version string) (string, bool) {
	dir := filepath.Join(d.root, version)
	_, err := os.Stat(dir)
	return dir, err == nil
}

func (d *snapDriver) TakeSnapshot(ctx context.Context, dir string, spec hypervisor.Spec, ready func(context.Context) error) error {
	d.takes.Add(1)
	d.mu.Lock()
	d.spec = spec
	d.mu.Unlock()
	<-d.release
	if d.fail != nil {
		return d.fail
	}
	if err := ready(ctx); err != nil {
		return err
	}
	return os.Mkdir(dir, 0o755)
}

func (d *snapDriver) Define(ctx context.Context, spec hypervisor.Spec) error {
	d.mu.Lock()
	d.defined[spec.Name] = spec.Snapshot
	d.mu.Unlock()
	return d.Driver.Define(ctx, spec)
}

// templateGuest is readyGuest that also makes template guests.
type templateGuest struct {
	readyGuest
	readyPorts chan int
}

func (templateGuest) TemplateVersion() string                  { return "v1" }
func (templateGuest) TemplateSeed(name string) ([]byte, error) { return []byte("seed of " + name), nil }
func (g templateGuest) TemplateReady(_ context.Context, port int) error {
	g.readyPorts <- port
	return nil
}

func newSnapshots(t *testing.T, drv *snapDriver, g templateGuest) *snapshots {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &snapshots{drv: drv, guest: g, log: slog.Default(), diskGB: 120, ctx: ctx,
		taking: map[string]*taking{}, failed: map[string]time.Time{}}
}

func newSnapDriver(t *testing.T) *snapDriver {
	return &snapDriver{Driver: fake.New(), root: t.TempDir(), release: make(chan struct{}), defined: map[string]string{}}
}

// Creates that find the snapshot of their shape being taken wait for it
// rather than taking it again; the template is a plain domain of that
// shape, without shares, made ready by the guest on its own SSH port.
func TestSnapshotTakenOnceForConcurrentCreates(t *testing.T) {
	drv := newSnapDriver(t)
	g := templateGuest{readyPorts: make(chan int, 1)}
	s := newSnapshots(t, drv, g)
	res := LocalResource{VCPUs: 2, MemoryMiB: 1536}
	dirs := make(chan string, 3)
	for i := 0; i < 3; i++ {
		go func() { dirs <- s.forShape(context.Background(), res, func(string) {}) }()
	}
	for deadline := time.Now().Add(5 * time.Second); drv.takes.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no snapshot taken")
		}
	}
	close(drv.release)
	want := filepath.Join(drv.root, "v1 disk 120G")
	for i := 0; i < 3; i++ {
		if got := <-dirs; got != want {
			t.Errorf("forShape = %q, want %q", got, want)
		}
	}
	if n := drv.takes.Load(); n != 1 {
		t.Errorf("snapshot taken %d times, want once", n)
	}
	spec := drv.spec
	if spec.VCPUs != 2 || spec.MemoryMiB != 1536 || spec.DiskSizeGB != 120 || len(spec.Shares) != 0 || spec.Labels[templateLabel] != want {
		t.Errorf("template spec = %+v", spec)
	}
	if port := <-g.readyPorts; port != spec.SSHPort || port == 0 {
		t.Errorf("TemplateReady on port %d, template SSH port %d", port, spec.SSHPort)
	}
	// Complete now: no more taking.
	if got := s.forShape(context.Background(), res, func(string) {}); got != want || drv.takes.Load() != 1 {
		t.Errorf("forShape of a complete snapshot = %q after %d takes", got, drv.takes.Load())
	}
}

// A failed snapshot gives "" (the instance boots) and is not tried again
// by every create; a create whose context ends stops waiting.
func TestSnapshotFailureMeansBoot(t *testing.T) {
	drv := newSnapDriver(t)
	drv.fail = errors.New("save: no space left on device")
	close(drv.release)
	s := newSnapshots(t, drv, templateGuest{readyPorts: make(chan int, 1)})
	res := LocalResource{VCPUs: 1, MemoryMiB: 1024}
	if got := s.forShape(context.Background(), res, func(string) {}); got != "" {
		t.Errorf("forShape after a failed snapshot = %q, want \"\"", got)
	}
	if got := s.forShape(context.Background(), res, func(string) {}); got != "" || drv.takes.Load() != 1 {
		t.Errorf("second forShape = %q after %d takes; want \"\" after 1", got, drv.takes.Load())
	}

	slow := newSnapDriver(t)
	s = newSnapshots(t, slow, templateGuest{readyPorts: make(chan int, 1)})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if got := s.forShape(ctx, res, func(string) {}); got != "" {
		t.Errorf("forShape with an ended context = %q, want \"\"", got)
	}
	close(slow.release)
}

// The create of an instance defines its domain on the snapshot of its
// shape, and reports that it waits for one being taken.
func TestCreateDefinesOnSnapshot(t *testing.T) {
	drv := newSnapDriver(t)
	close(drv.release)
	r := newTestRunner(t, drv)
	r.snaps = newSnapshots(t, drv, templateGuest{readyPorts: make(chan int, 1)})
	inst := Instance{Name: "ci1", Domain: "dom-ci1", Location: "eastus", State: StateCreating, Operation: "op1", SSHPort: 40300,
		Local: LocalResource{VCPUs: 1, MemoryMiB: 1024}, Workspace: WorkspaceRef{"rg", "ws"}}
	put(t, r, inst, "op1")
	r.launch(inst.key(), "op1")
	waitIdle(t, r, inst.key())
	got, op := load(t, r, inst.key(), "op1")
	if got.State != StateRunning || op.Status != OpSucceeded {
		t.Fatalf("after create: %s, operation %s", got.State, op.Status)
	}
	if snap := drv.defined["dom-ci1"]; snap != filepath.Join(drv.root, "v1 disk 120G") {
		t.Errorf("domain defined on snapshot %q", snap)
	}
	found := false
	for _, e := range got.Events {
		found = found || e.Message == "waiting for the snapshot of a booted 1-vCPU, 1024 MiB guest (taken once per VM shape)"
	}
	if !found {
		t.Errorf("no event about the snapshot: %+v", got.Events)
	}
}
