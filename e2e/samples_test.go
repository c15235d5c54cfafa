//go:build linux && cgo

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
)

// TestSampleScriptsOnRealVM runs the sample setup scripts of
// fixtures/scripts as a user would, in two instances at once, and checks
// what each promises. (fail.sh and overrun.sh stand for the failure and the
// timeout TestSetupScriptsOnRealVM and TestCLIOnRealVM cover.)
func TestSampleScriptsOnRealVM(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	home, config, _ := simHome(t, 26022, "")
	sample := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "fixtures", "scripts", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// In the share: clone-repo.sh beside a repository, owned by the host
	// user that maps to azureuser (uid 1000), as a user's own files are.
	user := filepath.Join(home, "shares", "rg-local", "ws-local", "Users", "ada")
	repo := filepath.Join(user, "demo.git")
	work := filepath.Join(t.TempDir(), "demo")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", work},
		{"-C", work, "-c", "user.name=Ada", "-c", "user.email=ada@example.com", "commit", "-q", "--allow-empty", "-m", "first"},
		{"clone", "-q", "--bare", work, repo},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	os.WriteFile(filepath.Join(user, "clone-repo.sh"), sample("clone-repo.sh"), 0o755)
	if out, err := exec.Command("chown", "-R", "1000:1000", user).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}

	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startSim(t, home, config, listen)
	computes := sdkClients(t, home, listen).NewComputeClient()
	key, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf("%x", time.Now().UnixNano()%0xfffff)
	envs, repos := "cienv"+suffix, "cirepo"+suffix
	for _, n := range []string{envs, repos} {
		removeOnCleanup(t, domainOf(home, n))
	}
	inline := func(name, args string) *ml.ScriptReference {
		return scriptRef("inline", base64.StdEncoding.EncodeToString(sample(name)), args, "10m")
	}
	create := func(name string, scripts *ml.ScriptsToExecute) func() ml.ComputeClientCreateOrUpdateResponse {
		body := sshInstance("Standard_DS2_v2", key, func(p *ml.ComputeInstanceProperties) {
			p.SetupScripts = &ml.SetupScripts{Scripts: scripts}
		})
		p, err := computes.BeginCreateOrUpdate(context.Background(), rgLocal, wsLocal, name, body, nil)
		return func() ml.ComputeClientCreateOrUpdateResponse { return pollDone(t, "create "+name, p, err) }
	}
	begin := time.Now()
	waitEnvs := create(envs, &ml.ScriptsToExecute{
		CreationScript: inline("set-environment.sh", `GREETING=hello "DATA_DIR=/data/my files"`),
		StartupScript:  inline("user-environment.sh", ""),
	})
	waitRepos := create(repos, &ml.ScriptsToExecute{
		CreationScript: scriptRef("workspaceStorage", "Users/ada/clone-repo.sh", "demo.git", "10m"),
		StartupScript:  inline("install-package.sh", "jq"),
	})

	port := func(r ml.ComputeClientCreateOrUpdateResponse) int32 {
		ci := r.Properties.(*ml.ComputeInstance).Properties
		if *ci.State != ml.ComputeInstanceStateRunning {
			t.Fatalf("state %s, errors %+v; want Running", *ci.State, ci.Errors)
		}
		return *ci.SSHSettings.SSHPort
	}
	p := port(waitEnvs())
	for cmd, want := range map[string]string{
		`bash -lc 'echo "$GREETING|$DATA_DIR"'`:                        "hello|/data/my files",
		"~/envs/project/bin/python -c 'import sys; print(sys.prefix)'": "/home/azureuser/envs/project",
		"tail -n1 ~/.bashrc":                                           "source ~/envs/project/bin/activate",
	} {
		if got := userSSH(t, p, key, &tofu{}, cmd); got != want {
			t.Errorf("%s: %s = %q, want %q", envs, cmd, got, want)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(home, "shares", "rg-local", "ws-local", "Logs", envs, "creation_*.txt"))
	if len(logs) != 1 {
		t.Errorf("creation logs of %s: %v, want one", envs, logs)
	} else if b, _ := os.ReadFile(logs[0]); !strings.Contains(string(b), "instance "+envs+" in workspace ws-local (rg-local)") {
		t.Errorf("set-environment.sh log: %q", b)
	}

	p = port(waitRepos())
	for cmd, want := range map[string]string{
		"git -C ~/demo log --format=%s": "first",
		"stat -c %U ~/demo":             "azureuser",
		`echo '{"a":[1,2]}' | jq -c .a`: "[1,2]",
	} {
		if got := userSSH(t, p, key, &tofu{}, cmd); got != want {
			t.Errorf("%s: %s = %q, want %q", repos, cmd, got, want)
		}
	}
	t.Logf("both sample instances checked %s after the creates", time.Since(begin).Round(time.Second))
}
