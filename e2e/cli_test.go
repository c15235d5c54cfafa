//go:build linux && cgo

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor/guestssh"
)

// cliRun is one run of the amlsim CLI: output and exit status.
type cliRun struct {
	stdout, stderr string
	code           int
}

// TestCLIOnRealVM runs a user's whole session through the amlsim CLI on a
// real VM: create with an SSH key and a creation script, wait, the script's
// log, ssh with a command (and its exit status), stop, start, restart,
// delete.
func TestCLIOnRealVM(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		skipOrFail(t, "no ssh client for 'amlsim compute ssh' (apt-get install -y openssh-client): %v", err)
	}
	t.Logf("ssh client: %s", sshBin)

	// This test's instance boots: every other e2e test starts instances
	// from the snapshot (fast create, the default).
	home, config, _ := simHomeDriver(t, 24022, "fast_create = false\n", "")
	userHome := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startSim(t, home, config, listen)

	key, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(userHome, "id_test")
	os.WriteFile(keyFile, key.PrivatePEM(), 0o600)
	os.WriteFile(keyFile+".pub", []byte(key.AuthorizedKey()+"\n"), 0o644)
	script := filepath.Join(userHome, "setup.sh")
	os.WriteFile(script, []byte("#!/bin/bash\necho \"cli-setup $1\" > /var/tmp/cli-setup\necho setup-ran-for-the-cli\n"), 0o644)

	name := fmt.Sprintf("cli%x", time.Now().UnixNano()%0xfffff)
	removeOnCleanup(t, domainOf(home, name))
	cli := func(timeout time.Duration, args ...string) cliRun {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, amlsimBinary(t), args...)
		cmd.Env = append(os.Environ(), "AMLSIM_ENDPOINT=https://"+listen, "AMLSIM_HOME="+home, "HOME="+userHome)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			r.code = ee.ExitCode()
		case err != nil:
			t.Fatalf("amlsim %s: %v", strings.Join(args, " "), err)
		}
		t.Logf("amlsim %s: exit %d in %s", strings.Join(args, " "), r.code, time.Since(start).Round(100*time.Millisecond))
		return r
	}
	ok := func(timeout time.Duration, args ...string) cliRun {
		t.Helper()
		r := cli(timeout, args...)
		if r.code != 0 {
			t.Fatalf("amlsim %s: exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r
	}
	state := func() string {
		t.Helper()
		var in struct {
			State string `json:"state"`
		}
		r := ok(time.Minute, "compute", "show", name, "-o", "json")
		if err := json.Unmarshal([]byte(r.stdout), &in); err != nil {
			t.Fatalf("show --output json: %v\n%s", err, r.stdout)
		}
		return in.State
	}
	sshRun := func(want string, cmd ...string) {
		t.Helper()
		r := ok(2*time.Minute, append([]string{"compute", "ssh", name, "--ssh-key", keyFile, "--"}, cmd...)...)
		if got := strings.TrimSpace(r.stdout); got != want {
			t.Errorf("ssh %v: output %q, want %q (stderr: %s)", cmd, got, want, r.stderr)
		}
	}

	r := ok(10*time.Minute, "compute", "create", name, "--size", "Standard_DS2_v2", "--ssh-key", keyFile+".pub",
		"--setup-script", script, "--setup-args", "from-the-cli", "-o", "json")
	var created struct {
		State string `json:"state"`
		SSH   struct {
			Enabled bool `json:"enabled"`
			Port    int  `json:"port"`
		} `json:"ssh"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil {
		t.Fatalf("create --output json: %v\n%s", err, r.stdout)
	}
	if created.State != "Running" || !created.SSH.Enabled || created.SSH.Port == 0 {
		t.Fatalf("created: %+v, want Running with SSH on a port\nstderr:\n%s", created, r.stderr)
	}
	for _, want := range []string{"Create requested by", "VM started", "SSH up", "Creating done: Running"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("create progress lacks %q:\n%s", want, r.stderr)
		}
	}
	t.Logf("create progress:\n%s", r.stderr)

	sshRun("cli-setup from-the-cli", "cat", "/var/tmp/cli-setup")
	// This guest booted (fast_create is off here): cloud-init's first stages
	// ran in the image's one warm Python, not each in a Python of its own
	// (fixtures/image/cloud-init-server, which logs each stage it runs).
	sshRun("amlsim-cloud-init: cloud-init init --local exited 0\namlsim-cloud-init: cloud-init init exited 0",
		"sudo journalctl -b -o cat -u amlsim-cloud-init.service | grep -E 'cloud-init init( --local)? exited'")
	sshRun("azureuser", "whoami")
	// Without the wrapper: the printed command line, and plain ssh with
	// the Host block of ssh-config (an OpenSSH config file of its own).
	printed := strings.TrimSpace(ok(time.Minute, "compute", "ssh", name, "--ssh-key", keyFile, "--print", "--", "whoami").stdout)
	if out, err := exec.Command("sh", "-c", printed).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "azureuser" {
		t.Errorf("the printed command %q: %v, output %q, want azureuser", printed, err, out)
	}
	sshConfig := filepath.Join(userHome, "ssh_config")
	os.WriteFile(sshConfig, []byte(ok(time.Minute, "compute", "ssh-config", name, "--ssh-key", keyFile).stdout), 0o600)
	if out, err := exec.Command(sshBin, "-F", sshConfig, "amlsim-"+name, "cat", "/var/tmp/cli-setup").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "cli-setup from-the-cli" {
		t.Errorf("ssh -F ssh-config's block amlsim-%s: %v, output %q", name, err, out)
	}
	if r := cli(2*time.Minute, "compute", "ssh", name, "--ssh-key", keyFile, "--", "exit 3"); r.code != 3 {
		t.Errorf("ssh 'exit 3': exit status %d, want 3 (stderr: %s)", r.code, r.stderr)
	}
	if r := ok(time.Minute, "compute", "logs", name, "--setup"); !strings.Contains(r.stdout, "setup-ran-for-the-cli") {
		t.Errorf("logs --setup lacks the script's output:\n%s", r.stdout)
	}
	if r := ok(time.Minute, "compute", "logs", name, "--tail", "20"); strings.Count(r.stdout, "\n") == 0 || strings.Count(r.stdout, "\n") > 20 {
		t.Errorf("logs --tail 20 gave %d lines, want 1 to 20", strings.Count(r.stdout, "\n"))
	}

	ok(5*time.Minute, "compute", "stop", name)
	if got := state(); got != "Stopped" {
		t.Fatalf("after stop: state %q, want Stopped", got)
	}
	if r := cli(time.Minute, "compute", "ssh", name, "--ssh-key", keyFile, "--", "true"); r.code != 4 {
		t.Errorf("ssh to a stopped instance: exit status %d, want 4 (stderr: %s)", r.code, r.stderr)
	}
	ok(10*time.Minute, "compute", "start", name)
	if got := state(); got != "Running" {
		t.Fatalf("after start: state %q, want Running", got)
	}
	// The host key pinned at the first login still matches: same instance.
	sshRun("cli-setup from-the-cli", "cat", "/var/tmp/cli-setup")
	ok(10*time.Minute, "compute", "restart", name)
	sshRun("azureuser", "whoami")

	ok(5*time.Minute, "compute", "delete", name, "--yes")
	if r := cli(time.Minute, "compute", "show", name); r.code != 3 {
		t.Errorf("show after delete: exit status %d, want 3", r.code)
	}
	if virshHas(t, domainOf(home, name)) {
		t.Errorf("domain %s still defined after delete", domainOf(home, name))
	}

	// Reproducing a failed setup script: output streamed, the script's exit
	// status, the instance kept and reachable.
	failing := filepath.Join(userHome, "broken.sh")
	os.WriteFile(failing, []byte("#!/bin/bash\necho \"args: [$1] [$2]\"\necho \"in $(pwd) as $(whoami)\"\necho boom >&2\nexit 7\n"), 0o644)
	repro := "repro" + name
	removeOnCleanup(t, domainOf(home, repro))
	r = cli(10*time.Minute, "setup-script", "run", failing, "--name", repro, "--ssh-key", keyFile+".pub", "--", "one", "two words")
	if r.code != 7 {
		t.Errorf("setup-script run of a script exiting 7: exit status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"args: [one] [two words]", "in /mnt/batch/tasks/shared/LS_root/mounts/clusters/" + repro + "/code/Users as root", "boom"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("setup-script run output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "amlsim compute ssh "+repro) {
		t.Errorf("setup-script run does not say how to get in:\n%s", r.stderr)
	}
	name = repro
	if got := state(); got != "SetupFailed" {
		t.Errorf("the reproduction instance is %q, want SetupFailed", got)
	}
	sshRun("azureuser", "whoami")
	ok(5*time.Minute, "compute", "delete", repro, "--yes")
}
