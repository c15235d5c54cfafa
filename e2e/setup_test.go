//go:build linux && cgo

package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
)

// creationScript records what Azure ML promises a creation script:
// root, the folder it was uploaded to, its arguments, the CI_ variables,
// and a `sudo -u azureuser -i` block landing in azureuser's home that does
// not see the arguments. It also prints binary bytes and 10 MB, which must
// not break the capture.
const creationScript = `#!/bin/bash
set -e
out=/var/tmp/creation
mkdir -p $out
whoami > $out/user
pwd > $out/pwd
printf '%s\n' "$@" > $out/args
echo "$#" > $out/argc
env | grep '^CI_' | sort > $out/env
echo written-by-relative-path > ./relative.txt
sudo -u azureuser -i <<'EOF'
pwd > /var/tmp/creation-azhome
echo "args:$#" >> /var/tmp/creation-azhome
EOF
printf 'binary \000\001\377 bytes\n'
head -c 7500000 /dev/zero | base64 -w 100
echo creation-finished
`

// startupScript counts its runs; once /var/tmp/overrun exists it sleeps
// past its timeout.
const startupScript = `#!/bin/bash
pwd > /var/tmp/startup-pwd
echo run >> /var/tmp/startup-runs
if [ -e /var/tmp/overrun ]; then echo overrunning; sleep 600; fi
`

func scriptRef(source, data, args, timeout string) *ml.ScriptReference {
	return &ml.ScriptReference{ScriptSource: ptr(source), ScriptData: ptr(data), ScriptArguments: ptr(args), Timeout: ptr(timeout)}
}

// TestSetupScriptsOnRealVM runs creation and startup scripts in real guests
// through the API: one instance whose scripts succeed (and whose startup
// script later overruns its timeout), one whose creation script fails.
func TestSetupScriptsOnRealVM(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	home, config, _ := simHome(t, 23022, "")
	share := filepath.Join(home, "shares", "rg-local", "ws-local")
	if err := os.MkdirAll(filepath.Join(share, "Users", "admin"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(share, "Users", "admin", "setup.sh"), []byte(creationScript), 0o644)
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startSim(t, home, config, listen)
	computes := sdkClients(t, home, listen).NewComputeClient()
	ctx := context.Background()
	key, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf("%x", time.Now().UnixNano()%0xfffff)
	good, bad, missing := "cigood"+suffix, "cibad"+suffix, "cimiss"+suffix
	for _, n := range []string{good, bad, missing} {
		removeOnCleanup(t, domainOf(home, n))
	}
	body := func(scripts *ml.SetupScripts) ml.ComputeResource {
		return sshInstance("Standard_DS2_v2", key, func(p *ml.ComputeInstanceProperties) { p.SetupScripts = scripts })
	}
	goodPoller, err := computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, good, body(&ml.SetupScripts{Scripts: &ml.ScriptsToExecute{
		CreationScript: scriptRef("workspaceStorage", "Users/admin/setup.sh", `first "arg 2" 'it''s'`, "10m"),
		StartupScript:  scriptRef("inline", base64.StdEncoding.EncodeToString([]byte(startupScript)), "", "20s"),
	}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	badPoller, err := computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, bad, body(&ml.SetupScripts{Scripts: &ml.ScriptsToExecute{
		CreationScript: scriptRef("inline", base64.StdEncoding.EncodeToString([]byte("echo about to fail\nexit 3\n")), "", ""),
	}}), nil)
	if err != nil {
		t.Fatal(err)
	}

	// A script that is not in the share is accepted, and the create fails
	// in the booted VM with Azure's SetupScriptsError (Azure/azure-cli#31838),
	// leaving a SetupFailed instance whose VM runs, to inspect or delete.
	missPoller, err := computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, missing, body(&ml.SetupScripts{Scripts: &ml.ScriptsToExecute{
		CreationScript: scriptRef("workspaceStorage", "Users/admin/not-there.sh", "", ""),
	}}), nil)
	if err != nil {
		t.Fatalf("create with a script not in the share: %v, want it accepted", err)
	}
	_, err = missPoller.PollUntilDone(ctx, nil)
	var missErr *azcore.ResponseError
	if !errors.As(err, &missErr) || missErr.ErrorCode != "SetupScriptsError" || !strings.Contains(err.Error(), "User specified setup script file not found") {
		t.Errorf("create with a script not in the share: %v, want SetupScriptsError", err)
	}
	if gm, err := computes.Get(ctx, rgLocal, wsLocal, missing, nil); err != nil {
		t.Error(err)
	} else if st := *gm.Properties.(*ml.ComputeInstance).Properties.State; st != ml.ComputeInstanceStateSetupFailed || domState(t, domainOf(home, missing)) != "running" {
		t.Errorf("after the missing script: state %s, VM %s; want SetupFailed with its VM running", st, domState(t, domainOf(home, missing)))
	}
	dp, err := computes.BeginDelete(ctx, rgLocal, wsLocal, missing, ml.UnderlyingResourceActionDelete, nil)
	pollDone(t, "delete "+missing, dp, err)

	res := pollDone(t, "create "+good, goodPoller, nil)
	ci := res.Properties.(*ml.ComputeInstance)
	port := *ci.Properties.SSHSettings.SSHPort
	hk := &tofu{}
	checks := []struct{ cmd, want string }{
		{"cat /var/tmp/creation/user", "root"},
		{"cat /var/tmp/creation/pwd", "/home/azureuser/cloudfiles/code/Users/admin"},
		{"cat /var/tmp/creation/args", "first\narg 2\nits"},
		{"cat /var/tmp/creation/argc", "3"},
		{"cat /var/tmp/creation/env", "CI_LOCAL_UBUNTU_USER=azureuser\nCI_NAME=" + good + "\nCI_RESOURCE_GROUP=rg-local\nCI_WORKSPACE=ws-local"},
		{"cat /var/tmp/creation-azhome", "/home/azureuser\nargs:0"},
		{"cat /var/tmp/startup-pwd", "/mnt/batch/tasks/shared/LS_root/mounts/clusters/" + good + "/code/Users"},
		{"cat /var/tmp/startup-runs", "run"},
		{"cat ~/cloudfiles/code/Users/admin/relative.txt", "written-by-relative-path"},
	}
	for _, c := range checks {
		if got := userSSH(t, port, key, hk, c.cmd); got != c.want {
			t.Errorf("%s = %q, want %q", c.cmd, got, c.want)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(share, "Logs", good, "creation_*.txt"))
	if len(logs) != 1 {
		t.Fatalf("creation logs in the share: %v, want one", logs)
	}
	if b, err := os.ReadFile(logs[0]); err != nil || len(b) < 10_000_000 || !strings.Contains(string(b), "binary \x00\x01\xff bytes") || !strings.HasSuffix(string(b), "creation-finished\n") {
		t.Errorf("creation log: %d bytes, err %v; want >10 MB with the binary line and the last line", len(b), err)
	}

	// Stop and start: the startup script runs again.
	sp, err := computes.BeginStop(ctx, rgLocal, wsLocal, good, nil)
	pollDone(t, "stop", sp, err)
	stp, err := computes.BeginStart(ctx, rgLocal, wsLocal, good, nil)
	pollDone(t, "start", stp, err)
	if got := userSSH(t, port, key, hk, "cat /var/tmp/startup-runs"); got != "run\nrun" {
		t.Errorf("startup runs after stop/start = %q, want two", got)
	}

	// A startup script overrunning its timeout: SetupFailed, SSH still up.
	userSSH(t, port, key, hk, "sudo touch /var/tmp/overrun")
	sp, err = computes.BeginStop(ctx, rgLocal, wsLocal, good, nil)
	pollDone(t, "stop", sp, err)
	stp, err = computes.BeginStart(ctx, rgLocal, wsLocal, good, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = stp.PollUntilDone(ctx, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != "SetupScriptTimedOut" {
		t.Errorf("start with an overrunning startup script: %v, want SetupScriptTimedOut", err)
	}
	got, err := computes.Get(ctx, rgLocal, wsLocal, good, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Properties.(*ml.ComputeInstance).Properties
	if *p.State != ml.ComputeInstanceStateSetupFailed || *p.LastOperation.OperationName != ml.OperationNameStart || *p.LastOperation.OperationStatus != ml.OperationStatusStartFailed {
		t.Errorf("after the timeout: state %s, last operation %s %s; want SetupFailed, Start StartFailed", *p.State, *p.LastOperation.OperationName, *p.LastOperation.OperationStatus)
	}
	if out := userSSH(t, port, key, hk, "echo still-here"); out != "still-here" {
		t.Errorf("ssh after a timed-out startup script: %q", out)
	}

	// The instance whose creation script fails.
	_, err = badPoller.PollUntilDone(ctx, nil)
	if !errors.As(err, &re) || re.ErrorCode != "SetupScriptFailed" {
		t.Errorf("create with a failing creation script: %v, want SetupScriptFailed", err)
	}
	gb, err := computes.Get(ctx, rgLocal, wsLocal, bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	bp := gb.Properties.(*ml.ComputeInstance).Properties
	if *bp.State != ml.ComputeInstanceStateSetupFailed || *bp.LastOperation.OperationStatus != ml.OperationStatusCreateFailed {
		t.Errorf("failed creation script: state %s, last operation %s; want SetupFailed, CreateFailed", *bp.State, *bp.LastOperation.OperationStatus)
	}
	if len(bp.Errors) == 0 {
		t.Fatal("no errors on the instance whose creation script failed")
	}
	msg := *bp.Errors[len(bp.Errors)-1].Error.Message
	for _, want := range []string{"exited with code 3", "Logs/" + bad + "/creation_", "about to fail"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message %q lacks %q", msg, want)
		}
	}
	if out := userSSH(t, *bp.SSHSettings.SSHPort, key, &tofu{}, "echo inspect-me"); out != "inspect-me" {
		t.Errorf("ssh into the failed instance: %q", out)
	}
	for _, n := range []string{good, bad} {
		dp, err := computes.BeginDelete(ctx, rgLocal, wsLocal, n, ml.UnderlyingResourceActionDelete, nil)
		pollDone(t, "delete "+n, dp, err)
	}
}
