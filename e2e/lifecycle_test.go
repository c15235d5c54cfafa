//go:build linux && cgo

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
)

// TestDriftAndCrashesOnRealVM checks, with real VMs, the two promises of
// the lifecycle engine:
//   - drift: `virsh destroy` behind amlsim's back, the guest powering
//     itself off, and QEMU killed move the instance to Stopped, `virsh
//     start` to Running and `virsh undefine` to Unusable, on libvirt's
//     domain events (the periodic re-check is set to 10 minutes here, so
//     only an event can do it in time);
//   - crashes: the server killed with SIGKILL in the middle of a stop, a
//     start and a delete finishes each after it is started again, with the
//     VM as the instance says.
//
// It boots the guest twice (the create, the start); the rest follows the
// VM's power without waiting for a boot.
func TestDriftAndCrashesOnRealVM(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	home, config, stateDir := simHome(t, 27022, "[timeouts]\nresync = \"10m\"\n")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := startSim(t, home, config, listen)
	computes := sdkClients(t, home, listen).NewComputeClient()
	ctx := context.Background()
	name := fmt.Sprintf("cidrift%x", time.Now().UnixNano()%0xffffff)
	domain := domainOf(home, name)
	removeOnCleanup(t, domain)

	p, err := computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, name, ml.ComputeResource{
		Properties: &ml.ComputeInstance{Properties: &ml.ComputeInstanceProperties{VMSize: ptr("Standard_D1_v2")}},
	}, nil)
	pollDone(t, "create", p, err)

	state := func() ml.ComputeInstanceState {
		t.Helper()
		res, err := computes.Get(ctx, rgLocal, wsLocal, name, nil)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		return *res.Properties.(*ml.ComputeInstance).Properties.State
	}
	// follow returns how long the instance took to reach want since begin.
	follow := func(what string, want ml.ComputeInstanceState, begin time.Time) time.Duration {
		t.Helper()
		for deadline := begin.Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			got := state()
			if got == want {
				return time.Since(begin)
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %s the instance is %s, want %s", what, got, want)
			}
		}
	}
	virsh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("virsh", append([]string{"-c", libvirtURI()}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("virsh %v: %v\n%s", args, err, out)
		}
	}

	// Kill the server in the middle of a stop, then of a start: each
	// finishes after the restart.
	for _, c := range []struct {
		what  string
		begin func() error
		want  ml.ComputeInstanceState
		vm    string
		after time.Duration
	}{
		{"stop", func() error { _, err := computes.BeginStop(ctx, rgLocal, wsLocal, name, nil); return err }, ml.ComputeInstanceStateStopped, "shut off", 500 * time.Millisecond},
		{"start", func() error { _, err := computes.BeginStart(ctx, rgLocal, wsLocal, name, nil); return err }, ml.ComputeInstanceStateRunning, "running", 3 * time.Second},
	} {
		if err := c.begin(); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		time.Sleep(c.after)
		srv.stop(syscall.SIGKILL)
		srv = startSim(t, home, config, listen)
		took := follow(c.what+" cut by a kill", c.want, time.Now())
		t.Logf("%s cut short by SIGKILL %s in: %s %.1fs after the restart", c.what, c.after, c.want, took.Seconds())
		if st := domState(t, domain); st != c.vm {
			t.Errorf("after the %s the instance is %s but its VM is %q, want %q", c.what, c.want, st, c.vm)
		}
	}

	// Behind amlsim's back: the guest powers itself off (ACPI from the
	// host; pressed again in case a guest still busy missed it), the VM is
	// started, its QEMU dies, it is started and destroyed. No full boot
	// is waited for: the state follows the VM's power.
	begin := time.Now()
	for {
		virsh("shutdown", domain)
		if waitFor(func() bool { return state() == ml.ComputeInstanceStateStopped }, 20*time.Second) {
			break
		}
		if time.Since(begin) > 2*time.Minute {
			t.Fatalf("the guest did not power off within 2 minutes of virsh shutdown")
		}
	}
	t.Logf("state followed the guest's power-off in %.2fs (the guest's shutdown included)", time.Since(begin).Seconds())
	begin = time.Now()
	virsh("start", domain)
	t.Logf("state followed virsh start in %.2fs (virsh included)", follow("virsh start", ml.ComputeInstanceStateRunning, begin).Seconds())
	pid, err := os.ReadFile("/run/libvirt/qemu/" + domain + ".pid")
	if err != nil {
		t.Fatalf("QEMU's pid: %v", err)
	}
	begin = time.Now()
	if out, err := exec.Command("kill", "-9", strings.TrimSpace(string(pid))).CombinedOutput(); err != nil {
		t.Fatalf("kill -9 QEMU: %v\n%s", err, out)
	}
	t.Logf("state followed QEMU's death in %.2fs", follow("kill -9 of QEMU", ml.ComputeInstanceStateStopped, begin).Seconds())
	virsh("start", domain)
	follow("virsh start", ml.ComputeInstanceStateRunning, time.Now())
	begin = time.Now()
	virsh("destroy", domain)
	t.Logf("state followed virsh destroy in %.2fs (virsh included)", follow("virsh destroy", ml.ComputeInstanceStateStopped, begin).Seconds())

	// The instance is Stopped: its domain is off, and undefining it is
	// all it takes to make the VM vanish.
	begin = time.Now()
	virsh("undefine", "--remove-all-storage", domain)
	t.Logf("state followed virsh undefine in %.2fs (virsh included)", follow("virsh undefine", ml.ComputeInstanceStateUnusable, begin).Seconds())

	// A delete cut short by a kill finishes after the restart: nothing is
	// left, and the name is free.
	if _, err := computes.BeginDelete(ctx, rgLocal, wsLocal, name, ml.UnderlyingResourceActionDelete, nil); err != nil {
		t.Fatal(err)
	}
	srv.stop(syscall.SIGKILL)
	startSim(t, home, config, listen)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := computes.Get(ctx, rgLocal, wsLocal, name, nil); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there a minute after a delete cut short by a kill", name)
		}
	}
	if virshHas(t, domain) {
		t.Errorf("domain %s left after the delete", domain)
	}
	if _, err := os.Stat(filepath.Join(stateDir, domain)); !os.IsNotExist(err) {
		t.Errorf("files of %s left after the delete: %v", domain, err)
	}
}

// waitFor polls cond every 100 ms until it holds or d has passed.
func waitFor(cond func() bool, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}
