package guest

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

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
	if len(files) != 1 || files[0].Path != mountPath || !(mountPath < runnerPath) {
		t.Fatalf("files = %+v, want only the mount script, ordered before %s", files, runnerPath)
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
	if files := setupFiles(sim.Instance{Name: "ci-four"}); len(files) != 0 {
		t.Errorf("an instance without share or scripts gets files: %+v", files)
	}
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
