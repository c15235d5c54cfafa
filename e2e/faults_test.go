//go:build linux && cgo

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
)

// TestFaultsOnRealVM injects, with `amlsim fault`, the two failures that
// reach into a real guest: a creation script made to exit 3 (run by
// cloud-init in the VM, its line in the script's log, the instance
// SetupFailed with its VM up), and a crash of a Running instance's VM,
// which the instance follows within 5 s, a VM paused by a hang rule after
// its next start while the instance says Running, and a startup script
// made to exit 5 at a restart (taken by the guest from the share).
func TestFaultsOnRealVM(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	home, config, _ := simHome(t, 25022, "")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startSim(t, home, config, listen)
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(amlsimBinary(t), args...)
		cmd.Env = append(os.Environ(), "AMLSIM_ENDPOINT=https://"+listen, "AMLSIM_HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("amlsim %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	computes := sdkClients(t, home, listen).NewComputeClient()
	ctx := context.Background()
	suffix := fmt.Sprintf("%x", time.Now().UnixNano()%0xfffff)
	failing, crashing := "fs"+suffix, "fc"+suffix
	for _, n := range []string{failing, crashing} {
		removeOnCleanup(t, domainOf(home, n))
	}
	cli("fault", "add", "script", "--operation", "Create", "--name", failing, "--setup-exit-code", "3", "--times", "1")

	// Both at once: the failing one's VM boots while the other's does.
	body := ml.ComputeResource{Location: ptr("eastus"), Properties: &ml.ComputeInstance{Properties: &ml.ComputeInstanceProperties{VMSize: ptr("Standard_DS2_v2")}}}
	pf, err := computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, failing, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, crashing, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	pollDone(t, "create "+crashing, pc, nil)
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	_, err = pf.PollUntilDone(waitCtx, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != "SetupScriptFailed" || !strings.Contains(err.Error(), "exited with code 3") {
		t.Fatalf("create %s under the rule = %v, want SetupScriptFailed, exit code 3", failing, err)
	}
	if log := cli("compute", "logs", failing, "--setup"); !strings.Contains(log, "amlsim: fault rule script: this creation script exits 3") {
		t.Errorf("the creation script's log lacks the injected script's line:\n%s", log)
	}
	if got := domState(t, domainOf(home, failing)); got != "running" {
		t.Errorf("%s's VM is %q after the injected failure, want running (kept for inspection)", failing, got)
	}

	cli("fault", "add", "crash", "--name", crashing, "--vm", "crash", "--times", "1")
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := computes.Get(ctx, rgLocal, wsLocal, crashing, nil)
		if err != nil {
			t.Fatal(err)
		}
		state := *r.Properties.(*ml.ComputeInstance).Properties.State
		if state == ml.ComputeInstanceStateStopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s 5 s after its VM crashed, want Stopped", crashing, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := domState(t, domainOf(home, crashing)); got != "shut off" {
		t.Errorf("%s's VM is %q after the crash, want shut off", crashing, got)
	}

	// The failing instance (it has no startup script of its own) is
	// restarted under a rule failing the startup script: the guest takes
	// the script from the share at boot and runs it. At the same time, a
	// VM that hangs after its next start: libvirt pauses it, and the
	// instance still says Running.
	cli("fault", "add", "startup", "--operation", "Restart", "--name", failing, "--setup-exit-code", "5", "--times", "1")
	rp, err := computes.BeginRestart(ctx, rgLocal, wsLocal, failing, nil)
	if err != nil {
		t.Fatal(err)
	}
	cli("fault", "add", "hang", "--operation", "Start", "--name", crashing, "--vm", "hang", "--times", "1")
	sp, err := computes.BeginStart(ctx, rgLocal, wsLocal, crashing, nil)
	pollDone(t, "start "+crashing, sp, err)
	waitCtx, cancel = context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if _, err = rp.PollUntilDone(waitCtx, nil); !errors.As(err, &re) || re.ErrorCode != "SetupScriptFailed" || !strings.Contains(err.Error(), "exited with code 5") {
		t.Errorf("restart %s under the startup rule = %v, want SetupScriptFailed, exit code 5", failing, err)
	}
	if log := cli("compute", "logs", failing, "--startup"); !strings.Contains(log, "amlsim: fault rule startup: this startup script exits 5") {
		t.Errorf("the startup script's log lacks the injected script's line:\n%s", log)
	}
	if left, _ := filepath.Glob(filepath.Join(home, "shares", "*", "*", "Logs", failing, ".amlsim-fault-*")); len(left) != 0 {
		t.Errorf("the injected script is still in the share: %v", left)
	}
	deadline = time.Now().Add(5 * time.Second)
	for domState(t, domainOf(home, crashing)) != "paused" {
		if time.Now().After(deadline) {
			t.Fatalf("%s's VM is %q 5 s after its start under the hang rule, want paused", crashing, domState(t, domainOf(home, crashing)))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r, err := computes.Get(ctx, rgLocal, wsLocal, crashing, nil); err != nil || *r.Properties.(*ml.ComputeInstance).Properties.State != ml.ComputeInstanceStateRunning {
		t.Errorf("%s with its VM hung: %v, want Running", crashing, err)
	}
	for _, n := range []string{failing, crashing} {
		p, err := computes.BeginDelete(ctx, rgLocal, wsLocal, n, ml.UnderlyingResourceActionDelete, nil)
		pollDone(t, "delete "+n, p, err)
	}
}
