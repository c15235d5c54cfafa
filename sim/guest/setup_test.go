package guest

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/cloudinit"
	"github.com/amlsim/amlsim/sim"
)

// The conf files the seed carries are sourced by bash in the guest: any
// argument must come out of bash exactly as it went in.
func TestConfRoundTripsThroughBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash on this host")
	}
	args := []string{"plain", "with space", "it's", `"double"`, "$HOME", "`id`", "new\nline", "tab\tx", "ünï", ""}
	inst := sim.Instance{
		Name:      "ci-one",
		Workspace: sim.WorkspaceRef{ResourceGroup: "rg", Name: "ws"},
		Share:     "/srv/share",
		Scripts:   []sim.Script{{Kind: sim.Creation, Source: sim.SourceInline, Data: []byte("echo hi\n"), Args: args, Timeout: "5m"}},
	}
	files := setupFiles(inst)
	var conf, env string
	for _, f := range files {
		switch f.Path {
		case "/etc/amlsim/creation.conf":
			conf = string(f.Content)
		case "/etc/amlsim/env":
			env = string(f.Content)
		}
	}
	out, err := exec.Command("bash", "-c", conf+env+`printf '%s\0' "$SCRIPT" "$WORKDIR" "$TIMEOUT" "$CI_NAME" "$CI_LOCAL_UBUNTU_USER" "${ARGS[@]}"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	want := append([]string{"/var/lib/amlsim/scripts/creation.sh", "/mnt/batch/tasks/shared/LS_root/mounts/clusters/ci-one/code/Users", "5m", "ci-one", "azureuser"}, args...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bash read\n%q\nwant\n%q", got, want)
	}
}

func TestWorkspaceScriptRunsInItsFolder(t *testing.T) {
	inst := sim.Instance{Name: "ci-two", Share: "/srv/share", Scripts: []sim.Script{{Kind: sim.Startup, Source: sim.SourceWorkspaceStorage, Path: "Users/ada/setup.sh"}}}
	files := setupFiles(inst)
	for _, f := range files {
		if f.Path == "/etc/amlsim/startup.conf" {
			c := string(f.Content)
			if !strings.Contains(c, "SCRIPT='/home/azureuser/cloudfiles/code/Users/ada/setup.sh'") || !strings.Contains(c, "WORKDIR='/home/azureuser/cloudfiles/code/Users/ada'") {
				t.Errorf("startup.conf = %s", c)
			}
			return
		}
	}
	t.Error("no startup.conf in the seed")
}

func TestParseStatus(t *testing.T) {
	st := parseStatus("start creation /home/azureuser/cloudfiles/code/Logs/ci/creation_1.txt\n" +
		"exit creation 3 1500 /home/azureuser/cloudfiles/code/Logs/ci/creation_1.txt\n")
	if st.done || len(st.started) != 1 || len(st.runs) != 1 {
		t.Fatalf("status = %+v, want one run, not done", st)
	}
	r := st.runs[0]
	if r.Kind != sim.Creation || r.ExitCode != 3 || r.Duration != 1500*time.Millisecond || !strings.HasSuffix(r.Log, "creation_1.txt") {
		t.Errorf("run = %+v", r)
	}
	if !parseStatus("exit startup 0 10 /x y.txt\ndone\n").done {
		t.Error("done not seen")
	}
}

// The share is mounted by a per-boot script that sorts before the setup
// runner, never from bootcmd (which runs before azureuser exists).
func TestShareMountScript(t *testing.T) {
	inst := sim.Instance{Name: "ci-three", Share: "/srv/share"}
	files := setupFiles(inst)
	if len(files) != 3 || files[0].Path != mountPath || files[1].Path != runnerPath || !(mountPath < runnerPath) {
		t.Fatalf("files = %v, want the mount script, ordered before %s, the runner and its env", paths(files), runnerPath)
	}
	out, err := exec.Command("sh", "-n", "-c", string(files[0].Content)).CombinedOutput()
	if err != nil {
		t.Errorf("mount script does not parse: %v\n%s\n%s", err, out, files[0].Content)
	}
	for _, want := range []string{"install -d -o \"$user\"", "mount -t virtiofs \"$tag\" \"$share\"", "'/mnt/batch/tasks/shared/LS_root/mounts/clusters/ci-three/code'"} {
		if !strings.Contains(string(files[0].Content), want) {
			t.Errorf("mount script lacks %q:\n%s", want, files[0].Content)
		}
	}
	// The runner is there without scripts: a fault can give a start one.
	if files := setupFiles(sim.Instance{Name: "ci-four"}); len(files) != 2 || files[0].Path != runnerPath {
		t.Errorf("an instance without share or scripts gets %v, want the runner and its env", paths(files))
	}
}

func paths(files []cloudinit.File) []string {
	var p []string
	for _, f := range files {
		p = append(p, f.Path)
	}
	return p
}

// The guest's setup runner (setup.sh) run by bash on the host, in a
// directory standing for the guest's: the exit code a fault rule left in
// the share makes this boot's startup script one that exits so, once.
func TestRunnerRunsInjectedStartupScriptOnce(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash on this host")
	}
	if _, err := os.Stat("/proc/sys/kernel/random/boot_id"); err != nil {
		t.Skip("no boot_id on this host (the runner names its status by it):", err)
	}
	root := t.TempDir()
	conf, state, logs := filepath.Join(root, "conf"), filepath.Join(root, "state"), filepath.Join(root, "share", "Logs", "ci-five")
	inst := sim.Instance{ID: "i-5", Name: "ci-five", Share: "/srv/share",
		Scripts: []sim.Script{{Kind: sim.Startup, Source: sim.SourceInline, Data: []byte("echo own startup\n")}}}
	for _, d := range []string{conf, state, logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The seed's files, moved from the guest's paths into root.
	fault := filepath.Join(logs, sim.InjectedStartupFault(inst.ID))
	move := strings.NewReplacer(SharePath+"/Logs/ci-five", logs, confDir, conf, scriptDir, filepath.Join(root, "scripts"))
	for _, f := range setupFiles(inst) {
		if f.Path == runnerPath || f.Path == mountPath {
			continue
		}
		p := move.Replace(f.Path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(move.Replace(string(f.Content))), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(state, "creation.done"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	boot := func() setupStatus {
		t.Helper()
		cmd := exec.Command("bash", "-c", string(runner))
		cmd.Env = append(os.Environ(), "AMLSIM_CONF_DIR="+conf, "AMLSIM_STATE_DIR="+state)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("runner: %v\n%s", err, out)
		}
		b, err := os.ReadFile(filepath.Join(state, "setup-"+bootID(t)+".status"))
		if err != nil {
			t.Fatal(err)
		}
		return parseStatus(string(b))
	}
	// Only a code and a rule's name are read from the share: anything
	// else in the file is not run.
	pwned := filepath.Join(root, "pwned")
	if err := os.WriteFile(fault, []byte("3 rule-x $(touch "+pwned+") `touch "+pwned+"`\ntouch "+pwned+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := boot()
	if len(st.runs) != 1 || st.runs[0].Kind != sim.Startup || st.runs[0].ExitCode != 3 || !st.done {
		t.Fatalf("boot with the fault's script: %+v, want the startup run exiting 3", st)
	}
	if log, _ := os.ReadFile(st.runs[0].Log); !strings.Contains(string(log), "fault rule rule-x: this startup script exits 3") {
		t.Errorf("the run's log says %q", log)
	}
	if _, err := os.Stat(fault); !os.IsNotExist(err) {
		t.Errorf("the fault's file is still in the share: %v", err)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("the runner ran what the fault's file held")
	}
	st = boot()
	if len(st.runs) != 1 || st.runs[0].ExitCode != 0 {
		t.Fatalf("next boot: %+v, want the instance's own startup script, exiting 0", st)
	}
	if log, _ := os.ReadFile(st.runs[0].Log); string(log) != "own startup\n" {
		t.Errorf("the next run's log says %q", log)
	}
}

func bootID(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// The notebook server's environment file: the base URL amlsim proxies,
// the instance's own token, and the share as its root when there is one.
func TestJupyterFile(t *testing.T) {
	inst := sim.Instance{Name: "CI-Three", Location: "eastus", AppPort: 20100, AppToken: "0123abcd", Share: "/srv/share"}
	f := jupyterFile(inst)
	want := "JUPYTER_BASE_URL=/amlsim/instances/eastus/ci-three/\nJUPYTER_TOKEN=0123abcd\nJUPYTER_ROOT=/home/azureuser/cloudfiles/code\n"
	if f.Path != JupyterEnvPath || string(f.Content) != want || f.Permissions != "0600" {
		t.Errorf("jupyter file = %s %s %q, want %s 0600 %q", f.Path, f.Permissions, f.Content, JupyterEnvPath, want)
	}
	inst.Share = ""
	if got := string(jupyterFile(inst).Content); !strings.HasSuffix(got, "JUPYTER_ROOT=/home/azureuser\n") {
		t.Errorf("without a share the root is %q, want the home", got)
	}
}
