package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/pki"
	"github.com/spf13/cobra"
)

// The CLI tests build the binary once, serve the API with the fake driver
// from it, and run the verbs as a user or a script would: separate
// processes, with their output and exit status.

var (
	cliBuildOnce sync.Once
	cliBin       string
	cliBuildErr  error
)

// cliBinary builds cmd/amlsim once per test run.
func cliBinary(t *testing.T) string {
	t.Helper()
	cliBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "amlsim-cli-bin")
		if err != nil {
			cliBuildErr = err
			return
		}
		cliBin = filepath.Join(dir, "amlsim")
		out, err := exec.Command("go", "build", "-o", cliBin, ".").CombinedOutput()
		if err != nil {
			cliBuildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cliBuildErr != nil {
		t.Fatal(cliBuildErr)
	}
	return cliBin
}

// cliEnv is a running `amlsim serve --driver fake` and the environment the
// client verbs see: its endpoint and home, and a HOME of their own with a
// default SSH key.
type cliEnv struct {
	t        *testing.T
	bin      string
	home     string
	endpoint string
	userHome string
	pubKey   string
	path     string
	log      *bytes.Buffer
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	e := &cliEnv{t: t, bin: cliBinary(t), log: &bytes.Buffer{}}
	dir := t.TempDir()
	e.home = filepath.Join(dir, "amlsim-home")
	e.userHome = filepath.Join(dir, "user")
	e.path = os.Getenv("PATH")
	config := filepath.Join(dir, "amlsim.toml")
	// Ports of its own: the tests run in parallel, and ports are taken by
	// probing.
	n := int(envCount.Add(1)) % 100
	ports := fmt.Sprintf("\n[local]\nport_range = [%d, %d]\n", 47000+50*n, 47049+50*n)
	if err := os.WriteFile(config, []byte(cliConfig+ports), 0o600); err != nil {
		t.Fatal(err)
	}
	// A default key, as a user's ~/.ssh holds: create must pick it up.
	if err := os.MkdirAll(filepath.Join(e.userHome, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	e.pubKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJaQ3vS+rGnPOeBFEsr4m0dxe6cNLvDAmo1ib9Vzu1Gb test@cli"
	os.WriteFile(filepath.Join(e.userHome, ".ssh", "id_ed25519.pub"), []byte(e.pubKey+"\n"), 0o644)
	os.WriteFile(filepath.Join(e.userHome, ".ssh", "id_ed25519"), []byte("not really a private key\n"), 0o600)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	e.endpoint = "https://" + addr
	cmd := startServe(t, e.log, e.bin, "serve", "--driver", "fake", "--test-clock", "--faults", "--home", e.home, "--listen", addr, "--config", config)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", e.log)
		}
	})
	return e
}

// startServe runs `amlsim serve` with args, its standard error into log,
// and waits for its "serving" line; the caller ends the process.
func startServe(t *testing.T, log *bytes.Buffer, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "amlsim: serving https://") {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatalf("amlsim serve exited; its log:\n%s", log)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("amlsim serve did not become ready; its log:\n%s", log)
	}
	return cmd
}

// envCount numbers the test environments, for their port ranges.
var envCount atomic.Int32

// cliConfig is the server's: fast fake VMs, a second workspace in the
// region (where names of the first are taken), and a second user allowed
// to create instances, for --mine.
const cliConfig = `[fake]
delay = "50ms"

[[workspaces]]
resource_group = "rg-local"
name = "ws-local"
location = "eastus"

[[workspaces]]
resource_group = "rg-local"
name = "ws-other"
location = "eastus"

[[principals]]
object_id = "11111111-1111-1111-1111-111111111111"
tenant_id = "00000000-0000-0000-0000-0000000000aa"
name = "amlsim owner"

[[principals]]
object_id = "22222222-2222-2222-2222-222222222222"
tenant_id = "00000000-0000-0000-0000-0000000000aa"
name = "other user"

[[principals]]
object_id = "44444444-4444-4444-4444-444444444444"
tenant_id = "00000000-0000-0000-0000-0000000000aa"
name = "no role yet"

[[role_assignments]]
principal = "11111111-1111-1111-1111-111111111111"
role = "Owner"
scope = ""

[[role_assignments]]
principal = "22222222-2222-2222-2222-222222222222"
role = "Contributor"
scope = ""
`

// result is what one CLI run gave.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs the CLI with args, stdin not a terminal.
func (e *cliEnv) run(args ...string) result {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(os.Environ(),
		"AMLSIM_ENDPOINT="+e.endpoint, "AMLSIM_HOME="+e.home, "HOME="+e.userHome, "PATH="+e.path,
		"AMLSIM_WORKSPACE=", "AMLSIM_RESOURCE_GROUP=", "AMLSIM_USER=", "AMLSIM_LOCATION=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run amlsim %v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// ok runs the CLI and fails the test unless it exits 0.
func (e *cliEnv) ok(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("amlsim %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// fails runs the CLI and checks its exit status and its one error line.
func (e *cliEnv) fails(code int, errCode string, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != code {
		e.t.Errorf("amlsim %s: exit status %d, want %d\n%s", strings.Join(args, " "), r.code, code, r)
	}
	want := "amlsim: " + errCode + ": "
	if errCode == "" {
		want = "amlsim: "
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, want) {
		e.t.Errorf("amlsim %s: last stderr line = %q, want it to start with %q", strings.Join(args, " "), last, want)
	}
	return r
}

// instanceJSON runs the CLI with --output json and decodes an instance.
func (e *cliEnv) instanceJSON(args ...string) instance {
	e.t.Helper()
	r := e.ok(append(args, "--output", "json")...)
	var in instance
	if err := json.Unmarshal([]byte(r.stdout), &in); err != nil {
		e.t.Fatalf("amlsim %s: output is not an instance: %v\n%s", strings.Join(args, " "), err, r)
	}
	return in
}

// eventLine is the shape of a progress line when stderr is not a terminal.
var eventLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [A-Za-z]+ .+$`)

func checkProgress(t *testing.T, r result, want ...string) {
	t.Helper()
	var events []string
	for _, line := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
		if eventLine.MatchString(line) {
			events = append(events, line)
		}
	}
	all := strings.Join(events, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("progress lines lack %q; stderr:\n%s", w, r.stderr)
		}
	}
}

func TestCLILifecycle(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)

	r := e.ok("compute", "create", "ci-life", "--size", "Standard_D1_v2", "--output", "json")
	var in instance
	if err := json.Unmarshal([]byte(r.stdout), &in); err != nil {
		t.Fatalf("create --output json: %v\n%s", err, r)
	}
	if in.State != "Running" || in.Name != "ci-life" || in.VMSize != "Standard_D1_v2" {
		t.Errorf("created instance: name %q state %q size %q, want ci-life Running Standard_D1_v2", in.Name, in.State, in.VMSize)
	}
	if !in.SSH.Enabled || in.SSH.PublicKey != e.pubKey || in.SSH.Port == 0 || in.SSH.User != "azureuser" || in.SSH.Host != "127.0.0.1" {
		t.Errorf("ssh = %+v, want enabled with the default key %q for azureuser@127.0.0.1 on a port", in.SSH, e.pubKey)
	}
	checkProgress(t, r, "Creating Create requested by amlsim owner", "Running Creating done: Running")
	if !strings.Contains(r.stderr, "ci-life: Running after") {
		t.Errorf("create did not finish with the final state; stderr:\n%s", r.stderr)
	}

	if got := e.instanceJSON("compute", "show", "ci-life"); got.State != "Running" || got.LastOperation == nil || got.LastOperation.Name != "Create" {
		t.Errorf("show: state %q last operation %+v, want Running after Create", got.State, got.LastOperation)
	}
	// The same PUT again changes nothing and answers at once: no wait, no
	// replay of the instance's events.
	if r := e.ok("compute", "create", "ci-life", "--size", "Standard_D1_v2"); strings.Contains(r.stderr, "Create requested") {
		t.Errorf("an unchanged create showed old events:\n%s", r.stderr)
	}
	table := e.ok("compute", "show", "ci-life").stdout
	for _, want := range []string{"State:", "Running", fmt.Sprintf("ssh -p %d azureuser@127.0.0.1", in.SSH.Port)} {
		if !strings.Contains(table, want) {
			t.Errorf("show table lacks %q:\n%s", want, table)
		}
	}

	r = e.ok("compute", "stop", "ci-life")
	checkProgress(t, r, "Stopping Stop requested by amlsim owner", "Stopped Stopping done: Stopped")
	if got := e.instanceJSON("compute", "show", "ci-life"); got.State != "Stopped" {
		t.Errorf("after stop: state %q, want Stopped", got.State)
	}
	if got := e.instanceJSON("compute", "start", "ci-life"); got.State != "Running" {
		t.Errorf("start --output json: state %q, want Running", got.State)
	}
	r = e.ok("compute", "restart", "ci-life")
	checkProgress(t, r, "Restarting Restart requested by amlsim owner", "Running Restarting done: Running")

	var list []instance
	if err := json.Unmarshal([]byte(e.ok("compute", "list", "-o", "json").stdout), &list); err != nil {
		t.Fatalf("list --output json: %v", err)
	}
	if len(list) != 1 || list[0].Name != "ci-life" || list[0].State != "Running" {
		t.Errorf("list = %+v, want ci-life Running alone", list)
	}
	if got := e.ok("compute", "list").stdout; !regexp.MustCompile(`(?m)^ci-life\s+Running\s+Standard_D1_v2\s+127\.0\.0\.1:\d+\s+amlsim owner\s*$`).MatchString(got) {
		t.Errorf("list table:\n%s\nwant a row: ci-life Running Standard_D1_v2 127.0.0.1:PORT amlsim owner", got)
	}

	// stdin is not a terminal here: no --yes, no delete.
	e.fails(exitUsage, "UsageError", "compute", "delete", "ci-life")
	if got := e.instanceJSON("compute", "show", "ci-life"); got.State != "Running" {
		t.Fatalf("after a refused delete: state %q, want Running", got.State)
	}
	r = e.ok("compute", "delete", "ci-life", "--yes", "--output", "json")
	var del struct {
		Name    string `json:"name"`
		Deleted bool   `json:"deleted"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &del); err != nil || !del.Deleted || del.Name != "ci-life" {
		t.Errorf("delete --output json = %q (%v), want {name: ci-life, deleted: true}", r.stdout, err)
	}
	checkProgress(t, r, "Deleting Delete requested by amlsim owner")
	e.fails(exitNotFound, "ResourceNotFound", "compute", "show", "ci-life")
	e.fails(exitNotFound, "ResourceNotFound", "compute", "delete", "ci-life", "--yes")
	if got := e.ok("compute", "list", "--output", "name").stdout; got != "" {
		t.Errorf("list after delete = %q, want nothing", got)
	}
}

func TestCLIErrors(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	e.ok("compute", "create", "ci-err", "--size", "Standard_D1_v2", "--no-ssh")

	e.fails(exitConflict, "StartComputeInstanceOnlyAllowedInStoppedState", "compute", "start", "ci-err")
	e.fails(exitNotFound, "ResourceNotFound", "compute", "stop", "ci-nope")
	e.fails(exitNotFound, "ResourceNotFound", "compute", "show", "ci-nope", "-o", "json")
	e.fails(exitFailed, "InvalidResourceName", "compute", "create", "bad-1", "--size", "Standard_D1_v2")
	e.fails(exitQuota, "QuotaExceeded", "compute", "create", "ci-gpu", "--size", "Standard_NC6")
	e.fails(exitConflict, "ComputeNameAlreadyExists", "compute", "create", "ci-err", "--size", "Standard_D1_v2", "--workspace", "ws-other")
	e.fails(exitFailed, "ComputeInstanceVmSizeUpdateNotSupported", "compute", "create", "ci-err", "--size", "Standard_D2_v2")
	e.fails(exitNotFound, "", "compute", "list", "--workspace", "ws-none")

	// Usage errors: nothing reaches the server.
	e.fails(exitUsage, "UsageError", "compute", "create", "ci-x")
	e.fails(exitUsage, "UsageError", "compute", "create", "--size", "Standard_D1_v2")
	e.fails(exitUsage, "UsageError", "compute", "create", "ci-x", "--size", "Standard_D1_v2", "--bogus")
	e.fails(exitUsage, "UsageError", "compute", "create", "ci-x", "--size", "Standard_D1_v2", "--ssh-key", "/nonexistent.pub")
	e.fails(exitUsage, "UsageError", "compute", "create", "ci-x", "--size", "Standard_D1_v2", "--setup-script", "/nonexistent.sh")
	e.fails(exitUsage, "UsageError", "compute", "show")
	e.fails(exitUsage, "UsageError", "compute", "show", "a", "b")
	e.fails(exitUsage, "UsageError", "compute", "show", "ci-err", "--output", "xml")
	e.fails(exitUsage, "UsageError", "compute", "frobnicate")
	e.fails(exitUsage, "UsageError", "compute")
	if r := e.run("frobnicate"); r.code != exitUsage {
		t.Errorf("unknown verb: exit status %d, want %d", r.code, exitUsage)
	}
	if got := e.instanceJSON("compute", "show", "ci-err"); got.State != "Running" {
		t.Errorf("after the refused calls: state %q, want Running", got.State)
	}

	// The server is elsewhere, or the home is not the server's.
	dead := "https://127.0.0.1:1"
	e.fails(exitUnreachable, "ServerUnreachable", "compute", "list", "--endpoint", dead)
	e.fails(exitUnreachable, "HomeNotInitialized", "compute", "list", "--home", t.TempDir())
	e.fails(exitUsage, "UsageError", "compute", "list", "--endpoint", "not a url")
	// A principal the server does not know: its token is refused.
	e.fails(exitAuth, "InvalidAuthenticationToken", "compute", "list", "--user", "33333333-3333-3333-3333-333333333333")
}

func TestCLIMineAndNoWait(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	other := "22222222-2222-2222-2222-222222222222"
	in := e.instanceJSON("compute", "create", "ci-other", "--size", "Standard_D1_v2", "--user", other)
	if in.CreatedBy.ID != other {
		t.Errorf("createdBy.userId = %q, want %q", in.CreatedBy.ID, other)
	}
	e.ok("compute", "create", "ci-mine", "--size", "Standard_D1_v2")
	if got := e.ok("compute", "list", "--mine", "-o", "name").stdout; got != "ci-mine\n" {
		t.Errorf("list --mine = %q, want only ci-mine", got)
	}
	if got := e.ok("compute", "list", "--mine", "-o", "name", "--user", other).stdout; got != "ci-other\n" {
		t.Errorf("list --mine --user other = %q, want only ci-other", got)
	}
	if got := e.ok("compute", "list", "-o", "name").stdout; got != "ci-other\nci-mine\n" && got != "ci-mine\nci-other\n" {
		t.Errorf("list = %q, want both", got)
	}

	in = e.instanceJSON("compute", "create", "ci-nowait", "--size", "Standard_D1_v2", "--no-wait")
	if in.State != "Creating" {
		t.Errorf("create --no-wait: state %q, want Creating", in.State)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.instanceJSON("compute", "show", "ci-nowait").State != "Running" {
		if time.Now().After(deadline) {
			t.Fatal("ci-nowait never reached Running")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := e.ok("compute", "stop", "ci-nowait", "--no-wait").stdout; got != "ci-nowait: Stopping\n" {
		t.Errorf("stop --no-wait = %q, want %q", got, "ci-nowait: Stopping\n")
	}
}

func TestCLIScriptsReachTheServer(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	dir := t.TempDir()
	setup := "#!/bin/bash\necho setting up \"$@\"\n"
	startup := "#!/bin/bash\necho starting\n"
	os.WriteFile(filepath.Join(dir, "setup.sh"), []byte(setup), 0o644)
	os.WriteFile(filepath.Join(dir, "startup.sh"), []byte(startup), 0o644)
	e.ok("compute", "create", "ci-scripts", "--size", "Standard_D1_v2",
		"--setup-script", filepath.Join(dir, "setup.sh"), "--setup-args", `one "two three"`, "--setup-timeout", "5m",
		"--startup-script", filepath.Join(dir, "startup.sh"))

	// Read back what the server stored, through the ARM API itself.
	cl, err := newClient(&globals{endpoint: e.endpoint, home: e.home, user: "11111111-1111-1111-1111-111111111111", sub: defaultSubscription})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Properties struct {
			Properties struct {
				SetupScripts struct {
					Scripts map[string]struct {
						ScriptSource    string `json:"scriptSource"`
						ScriptData      string `json:"scriptData"`
						ScriptArguments string `json:"scriptArguments"`
						Timeout         string `json:"timeout"`
					} `json:"scripts"`
				} `json:"setupScripts"`
			} `json:"properties"`
		} `json:"properties"`
	}
	if err := cl.getJSON(t.Context(), cl.computePath(&workspaceRef{rg: defaultResourceGroup, name: defaultWorkspace}, "ci-scripts"), nil, &got); err != nil {
		t.Fatal(err)
	}
	scripts := got.Properties.Properties.SetupScripts.Scripts
	c, s := scripts["creationScript"], scripts["startupScript"]
	if c.ScriptSource != "inline" || c.ScriptData != base64.StdEncoding.EncodeToString([]byte(setup)) || c.ScriptArguments != `one "two three"` || c.Timeout != "5m" {
		t.Errorf("creationScript = %+v, want inline, the file in base64, the arguments and 5m", c)
	}
	if s.ScriptSource != "inline" || s.ScriptData != base64.StdEncoding.EncodeToString([]byte(startup)) {
		t.Errorf("startupScript = %+v, want inline with the file in base64", s)
	}
	e.fails(exitUsage, "UsageError", "compute", "create", "ci-x", "--size", "Standard_D1_v2", "--setup-args", "a")
}

func TestCLISSH(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	// A stand-in ssh that shows its arguments and exits 7: the CLI must
	// exec it with the instance's port and key and pass its status on.
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "ssh"), []byte("#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done\nexit 7\n"), 0o755)
	e.path = bin + string(os.PathListSeparator) + os.Getenv("PATH")

	in := e.instanceJSON("compute", "create", "ci-ssh", "--size", "Standard_D1_v2")
	r := e.run("compute", "ssh", "ci-ssh", "--", "uname", "-a")
	if r.code != 7 {
		t.Fatalf("ssh: exit status %d, want the remote 7\n%s", r.code, r)
	}
	args := strings.Split(strings.TrimSpace(r.stdout), "\n")
	joined := strings.Join(args, " ")
	for _, want := range []string{
		fmt.Sprintf("-p %d", in.SSH.Port),
		"-i " + filepath.Join(e.userHome, ".ssh", "id_ed25519"),
		"-o StrictHostKeyChecking=accept-new",
		"-o UserKnownHostsFile=" + filepath.Join(e.home, "known_hosts"),
		"azureuser@127.0.0.1 -- uname -a",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("ssh arguments %q lack %q", joined, want)
		}
	}
	if args[len(args)-1] != "-a" {
		t.Errorf("last ssh argument = %q, want the command's -a", args[len(args)-1])
	}

	// --print: the same command line, printed for a shell.
	printed := strings.TrimSpace(e.ok("compute", "ssh", "ci-ssh", "--print", "--", "uname", "-a").stdout)
	if want := "ssh " + shellJoinPlain(args); printed != want {
		t.Errorf("ssh --print = %q, want %q", printed, want)
	}

	// ssh-config: a Host block OpenSSH itself reads back (ssh -G).
	e.ok("compute", "create", "ci-nossh", "--size", "Standard_D1_v2", "--no-ssh")
	block := e.ok("compute", "ssh-config").stdout
	if strings.Contains(block, "ci-nossh") || !strings.Contains(block, "Host amlsim-ci-ssh\n") {
		t.Errorf("ssh-config = %q, want the block of ci-ssh only", block)
	}
	if realSSH, err := exec.LookPath("ssh"); err == nil && !strings.HasPrefix(realSSH, bin) {
		cfg := filepath.Join(t.TempDir(), "config")
		os.WriteFile(cfg, []byte(block), 0o600)
		out, err := exec.Command(realSSH, "-G", "-F", cfg, "amlsim-ci-ssh").Output()
		if err != nil {
			t.Fatalf("ssh -G: %v", err)
		}
		for _, want := range []string{
			"hostname 127.0.0.1", "user azureuser", fmt.Sprintf("port %d", in.SSH.Port),
			"identityfile " + filepath.Join(e.userHome, ".ssh", "id_ed25519"),
			"userknownhostsfile " + filepath.Join(e.home, "known_hosts"),
			"hostkeyalias amlsim-eastus-ci-ssh-",
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("ssh -G of the block lacks %q:\n%s", want, out)
			}
		}
	} else {
		t.Errorf("no OpenSSH client to read the ssh-config block (Debian: openssh-client, which fixtures/host/setup.sh installs): %v", err)
	}
	e.fails(exitConflict, "SSHPublicAccessDisabled", "compute", "ssh-config", "ci-nossh")
	e.fails(exitConflict, "SSHPublicAccessDisabled", "compute", "ssh", "ci-nossh")
	e.ok("compute", "stop", "ci-ssh")
	e.fails(exitConflict, "ComputeInstanceNotRunning", "compute", "ssh", "ci-ssh")
	e.fails(exitNotFound, "ResourceNotFound", "compute", "ssh", "ci-nope")
}

func TestCLILogs(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	e.ok("compute", "create", "ci-logs", "--size", "Standard_D1_v2")
	// The fake driver keeps no serial console and no file share.
	e.fails(exitNotFound, "LogNotAvailable", "compute", "logs", "ci-logs")
	e.fails(exitNotFound, "LogNotAvailable", "compute", "logs", "ci-logs", "--setup")
	e.fails(exitUsage, "UsageError", "compute", "logs", "ci-logs", "--setup", "--startup")
	e.fails(exitNotFound, "ResourceNotFound", "compute", "logs", "ci-nope")
}

func TestCLIUsageAndSizes(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	e.ok("compute", "create", "ci-usage", "--size", "Standard_D3_v2")
	var usage []usageEntry
	if err := json.Unmarshal([]byte(e.ok("usage", "-o", "json").stdout), &usage); err != nil {
		t.Fatalf("usage --output json: %v", err)
	}
	byName := map[string]usageEntry{}
	for _, u := range usage {
		byName[u.Name] = u
	}
	if u := byName["standardDv2Family"]; u.Current != 4 || u.Limit != 24 {
		t.Errorf("standardDv2Family usage = %+v, want 4 of 24", u)
	}
	if u := byName["standardNCFamily"]; u.Limit != 0 {
		t.Errorf("standardNCFamily limit = %d, want 0", u.Limit)
	}
	if got := e.ok("usage", "--location", "westeurope", "-o", "json").stdout; !strings.Contains(got, `"current": 0`) || strings.Contains(got, `"current": 4`) {
		t.Errorf("westeurope usage shows eastus's instance:\n%s", got)
	}
	if got := e.ok("usage").stdout; !regexp.MustCompile(`(?m)^Standard Dv2 Family Dedicated vCPUs\s+4\s+24$`).MatchString(got) {
		t.Errorf("usage table lacks the Dv2 row with 4 of 24:\n%s", got)
	}
	e.fails(exitFailed, "LocationNotAvailableForResourceType", "usage", "--location", "marsnorth")

	var sizes []sizeEntry
	if err := json.Unmarshal([]byte(e.ok("sizes", "--output", "json").stdout), &sizes); err != nil {
		t.Fatalf("sizes --output json: %v", err)
	}
	found := false
	for _, s := range sizes {
		if s.Name == "Standard_D3_v2" {
			found = true
			if s.VCPUs != 4 || s.MemoryGB != 14 || s.Family != "standardDv2Family" {
				t.Errorf("Standard_D3_v2 = %+v, want 4 vCPUs, 14 GB, standardDv2Family", s)
			}
		}
	}
	if !found || len(sizes) < 10 {
		t.Errorf("sizes = %d entries without Standard_D3_v2; want the catalogue", len(sizes))
	}
	if got := e.ok("sizes").stdout; !regexp.MustCompile(`(?m)^Standard_NC6\s+standardNCFamily\s+6\s+56\s+1$`).MatchString(got) {
		t.Errorf("sizes table lacks the NC6 row:\n%s", got)
	}
}

func TestCLIDoctor(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	// Doctor judges this host: whether libvirt, QEMU or the image are here
	// varies, so only the report's shape and the server checks are fixed.
	r := e.run("doctor", "--output", "json")
	var rep doctorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("doctor --output json: %v\n%s", err, r)
	}
	names := map[string]check{}
	failed := false
	for _, ch := range rep.Checks {
		names[ch.Name] = ch
		switch ch.Status {
		case checkOK:
		case checkWarn, checkFail:
			failed = failed || ch.Status == checkFail
			if ch.Fix == "" {
				t.Errorf("check %q is %s without a fix", ch.Name, ch.Status)
			}
		default:
			t.Errorf("check %q has status %q, want ok, warn or fail", ch.Name, ch.Status)
		}
		if ch.Detail == "" {
			t.Errorf("check %q has no detail", ch.Name)
		}
	}
	for _, n := range append(wantDriverChecks(), "guest image", "CA", "server", "port") {
		if _, ok := names[n]; !ok {
			t.Errorf("doctor has no %q check; checks: %+v", n, rep.Checks)
		}
	}
	if rep.OK == failed {
		t.Errorf("ok = %v with a failed check = %v", rep.OK, failed)
	}
	if want := map[bool]int{true: exitOK, false: exitFailed}[rep.OK]; r.code != want {
		t.Errorf("doctor exit status %d with ok = %v, want %d", r.code, rep.OK, want)
	}
	for _, n := range []string{"server", "port", "CA"} {
		if names[n].Status != checkOK {
			t.Errorf("check %s = %+v, want ok with the server running", n, names[n])
		}
	}

	table := e.run("doctor").stdout
	if !regexp.MustCompile(`(?m)^\[ok\]\s+server\s+amlsim answers at `).MatchString(table) {
		t.Errorf("doctor table lacks the server line:\n%s", table)
	}
	// With nothing at the endpoint, the server is a warning with a fix.
	r = e.run("doctor", "-o", "json", "--endpoint", "https://127.0.0.1:1")
	json.Unmarshal([]byte(r.stdout), &rep)
	for _, ch := range rep.Checks {
		if ch.Name == "server" && (ch.Status != checkWarn || !strings.Contains(ch.Fix, "amlsim serve")) {
			t.Errorf("server check without a server = %+v, want warn with 'amlsim serve' in the fix", ch)
		}
	}
}

// TestCLICompletion loads cobra's completion scripts in real shells
// (bash with bash-completion, zsh with compinit, fish) and completes
// against a running server: verbs, flags, instance names and sizes.
func TestCLICompletion(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	e.ok("compute", "create", "ci-comp", "--size", "Standard_D1_v2")
	env := append(os.Environ(), "PATH="+filepath.Dir(e.bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AMLSIM_ENDPOINT="+e.endpoint, "AMLSIM_HOME="+e.home, "HOME="+e.userHome)

	// What every shell's script asks: `amlsim __complete WORDS…`.
	complete := func(words ...string) []string {
		t.Helper()
		r := e.ok(append([]string{"__complete"}, words...)...)
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if !strings.HasPrefix(line, ":") {
				name, _, _ := strings.Cut(line, "\t")
				out = append(out, name)
			}
		}
		return out
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"compute", "show", ""}, "ci-comp"},
		{[]string{"compute", "ssh-config", ""}, "ci-comp"},
		{[]string{"compute", "create", "x", "--size", "Standard_NC"}, "Standard_NC6"},
		{[]string{"sizes", "--location", ""}, "westeurope"},
		{[]string{"role", "assign", "--principal", ""}, "22222222-2222-2222-2222-222222222222"},
		{[]string{"role", "assign", "--role", ""}, "Contributor"},
		{[]string{"serve", "--driver", ""}, "fake"},
		{[]string{"compute", "list", "-o", ""}, "yaml"},
	} {
		if got := complete(tc.words...); !slices.Contains(got, tc.want) {
			t.Errorf("complete %q = %q, want %q among them", tc.words, got, tc.want)
		}
	}
	if got := complete("compute", "show", "ci-comp", ""); slices.Contains(got, "ci-comp") {
		t.Errorf("complete after the NAME = %q, want no second name", got)
	}

	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if r := e.ok("completion", shell); !strings.Contains(r.stdout, "__complete") {
			t.Errorf("completion %s: no call of __complete in the script", shell)
		}
	}

	// bash, as on <TAB>: bash-completion's helpers, then the script.
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	requireProgram(t, bashCompletion, "bash-completion")
	requireProgram(t, "zsh", "zsh")
	requireProgram(t, "fish", "fish")
	bashTab := func(line string) []string {
		t.Helper()
		script := fmt.Sprintf(`source %s
source <(amlsim completion bash)
COMP_LINE=%s; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
__start_amlsim
printf '%%s\n' "${COMPREPLY[@]}"`, bashCompletion, shellWords([]string{line}))
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", line, err, out)
		}
		return strings.Fields(string(out))
	}
	for _, tc := range []struct{ line, want string }{
		{"amlsim comp", "compute"},
		{"amlsim compute cr", "create"},
		{"amlsim compute create x --si", "--size"},
		{"amlsim compute show ci-", "ci-comp"},
		{"amlsim compute create x --size Standard_NC", "Standard_NC6"},
	} {
		if got := bashTab(tc.line); !slices.Contains(got, tc.want) {
			t.Errorf("bash: complete %q = %q, want %q", tc.line, got, tc.want)
		}
	}

	// zsh: the script loads after compinit and defines the completer.
	zsh := exec.Command("zsh", "-f", "-c", `autoload -U compinit && compinit -u && source <(amlsim completion zsh) && print -r -- ${_comps[amlsim]}`)
	zsh.Env = env
	if out, err := zsh.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "_amlsim" {
		t.Errorf("zsh: loading the script: %v, completer %q, want _amlsim", err, out)
	}

	// fish completes a command line itself (complete -C).
	fishTab := func(line string) []string {
		t.Helper()
		cmd := exec.Command("fish", "--no-config", "-c", "amlsim completion fish | source; complete -C"+shellWords([]string{line}))
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fish completion of %q: %v\n%s", line, err, out)
		}
		var names []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			name, _, _ := strings.Cut(l, "\t")
			names = append(names, name)
		}
		return names
	}
	if got := fishTab("amlsim compute start "); !slices.Contains(got, "ci-comp") {
		t.Errorf("fish: complete 'amlsim compute start ' = %q, want ci-comp", got)
	}
}

// requireProgram skips t with the reason when the program (or file) is
// missing, unless AMLSIM_E2E_REQUIRED says the set-up has installed it
// (make clients): then it fails.
func requireProgram(t *testing.T, name, debianPackage string) {
	t.Helper()
	var err error
	if filepath.IsAbs(name) {
		_, err = os.Stat(name)
	} else {
		_, err = exec.LookPath(name)
	}
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s is missing (Debian package %s, which fixtures/host/setup.sh installs): %v", name, debianPackage, err)
	if os.Getenv("AMLSIM_E2E_REQUIRED") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func shellWords(words []string) string {
	var q []string
	for _, w := range words {
		q = append(q, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
	}
	return strings.Join(q, " ")
}

func TestCLIHelp(t *testing.T) {
	t.Parallel()
	bin := cliBinary(t)
	root := newRootCommand()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			walk(sub)
		}
		path := strings.Fields(c.CommandPath())[1:]
		out, err := exec.Command(bin, append(path, "--help")...).Output()
		if err != nil {
			t.Errorf("%s --help: %v", c.CommandPath(), err)
			return
		}
		if want := "Usage:\n  " + c.CommandPath(); !strings.Contains(string(out), want) {
			t.Errorf("%s --help lacks %q:\n%s", c.CommandPath(), want, out)
		}
		if (c.Flags().Lookup("output") != nil || c.InheritedFlags().Lookup("output") != nil) && !strings.Contains(string(out), "-o, --output FORMAT") {
			t.Errorf("%s --help lacks '-o, --output FORMAT' as one flag:\n%s", c.CommandPath(), out)
		}
	}
	walk(root)
	out, _ := exec.Command(bin, "--help").Output()
	for _, want := range []string{"Compute instances:", "compute", "Regions and quota:", "The simulator:", "serve", "completion"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("amlsim --help lacks %q:\n%s", want, out)
		}
	}
	for _, group := range []string{"compute", "role", "clock", "image", "setup-script"} {
		out, err := exec.Command(bin, group, "help").Output()
		if err != nil || !strings.Contains(string(out), "Usage:") {
			t.Errorf("amlsim %s help: %v, want its help on stdout and exit 0:\n%s", group, err, out)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"compute"}, {}} {
		var ee *exec.ExitError
		if _, err := exec.Command(bin, args...).Output(); !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
			t.Errorf("amlsim %s: %v, want exit status %d", strings.Join(args, " "), err, exitUsage)
		}
	}
	out, _ = exec.Command(bin, "compute", "--help").Output()
	for _, v := range []string{"create", "open", "ssh-config", "logs"} {
		if !regexp.MustCompile(`(?m)^  ` + v + ` `).Match(out) {
			t.Errorf("amlsim compute --help does not list %s:\n%s", v, out)
		}
	}
}

// TestCLISetupScriptRunOnTheFakeDriver: the fake driver runs no scripts,
// which the reproduction verb says plainly; its arguments reach the server
// quoted so they split back exactly.
func TestCLISetupScriptRunOnTheFakeDriver(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	script := filepath.Join(t.TempDir(), "s.sh")
	os.WriteFile(script, []byte("exit 0\n"), 0o644)
	e.fails(exitFailed, "ScriptNotRun", "setup-script", "run", script, "--name", "reprofake", "--", "a b", "it's")
	in := e.instanceJSON("compute", "show", "reprofake")
	if in.State != "Running" {
		t.Errorf("reprofake is %s, want Running (kept after a run that did not happen)", in.State)
	}
	e.fails(exitUsage, "UsageError", "setup-script", "run")
	e.fails(exitUsage, "UsageError", "setup-script", "run", filepath.Join(t.TempDir(), "missing.sh"))
}

func TestShellJoinSplitsBack(t *testing.T) {
	t.Parallel()
	args := []string{"plain", "two words", "it's", `"quoted"`, "$HOME", ""}
	got, err := sim.SplitArgs(shellJoin(args))
	if err != nil || strings.Join(got, "|") != strings.Join(args, "|") {
		t.Errorf("SplitArgs(shellJoin(%q)) = %q, %v", args, got, err)
	}
}

func TestCLIRoles(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	const newcomer = "44444444-4444-4444-4444-444444444444"
	const wsScope = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local/providers/Microsoft.MachineLearningServices/workspaces/ws-local"
	var list []roleAssignment
	if err := json.Unmarshal([]byte(e.ok("role", "list", "-o", "json").stdout), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range list {
		found = found || (a.Principal == "11111111-1111-1111-1111-111111111111" && a.Role == "Owner")
	}
	if !found {
		t.Errorf("role list lacks the built-in owner's Owner assignment: %+v", list)
	}
	e.fails(exitAuth, "AuthorizationFailed", "compute", "list", "--user", newcomer)

	var made []roleAssignment
	if err := json.Unmarshal([]byte(e.ok("role", "assign", "--principal", newcomer, "--role", "reader", "--scope", wsScope, "-o", "json").stdout), &made); err != nil || len(made) != 1 || made[0].Role != "Reader" {
		t.Fatalf("role assign: %+v, %v", made, err)
	}
	e.ok("compute", "list", "--user", newcomer)
	e.fails(exitAuth, "AuthorizationFailed", "role", "assign", "--principal", newcomer, "--role", "Owner", "--user", "22222222-2222-2222-2222-222222222222")
	e.fails(exitNotFound, "RoleDefinitionDoesNotExist", "role", "assign", "--principal", newcomer, "--role", "Nope")
	e.ok("role", "remove", made[0].Name, "--scope", wsScope)
	e.fails(exitAuth, "AuthorizationFailed", "compute", "list", "--user", newcomer)
	e.fails(exitNotFound, "RoleAssignmentNotFound", "role", "remove", made[0].Name, "--scope", wsScope)

	// Created on someone's behalf: it is theirs in list --mine.
	in := e.instanceJSON("compute", "create", "ci-for", "--size", "Standard_D1_v2", "--assigned-user", "22222222-2222-2222-2222-222222222222")
	if in.AssignedUser != "22222222-2222-2222-2222-222222222222" || in.CreatedBy.ID != "11111111-1111-1111-1111-111111111111" {
		t.Errorf("created on behalf: %+v", in)
	}
	if got := e.ok("compute", "list", "--mine", "-o", "name", "--user", "22222222-2222-2222-2222-222222222222").stdout; got != "ci-for\n" {
		t.Errorf("list --mine for the assigned user = %q, want ci-for", got)
	}
	if got := e.ok("compute", "list", "--mine", "-o", "name").stdout; got != "" {
		t.Errorf("list --mine for the creator = %q, want nothing", got)
	}
}

// TestCLIOpen: `compute open` prints an address that signs the owner in to
// the instance's Jupyter (here the fake driver's stand-in); another user
// gets the address but is refused, and is not shown the SSH details.
func TestCLIOpen(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	const other = "22222222-2222-2222-2222-222222222222"
	in := e.instanceJSON("compute", "create", "ci-apps", "--size", "Standard_D1_v2")
	if len(in.Applications) != 1 || in.Applications[0].Name != "Jupyter" || !strings.HasPrefix(in.Applications[0].URL, e.endpoint+"/amlsim/instances/eastus/ci-apps/") {
		t.Fatalf("applications = %+v, want Jupyter under %s", in.Applications, e.endpoint)
	}
	if !strings.Contains(e.ok("compute", "show", "ci-apps").stdout, in.Applications[0].URL) {
		t.Errorf("compute show does not print the Jupyter address")
	}

	pool, err := pki.Pool(e.home)
	if err != nil {
		t.Fatal(err)
	}
	browse := func(u string) (int, string) {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	u := strings.TrimSpace(e.ok("compute", "open", "ci-apps").stdout)
	if status, body := browse(u); status != 200 || !strings.Contains(body, "fake driver") {
		t.Errorf("the owner opens %s: %d %s", u, status, body)
	}
	u = strings.TrimSpace(e.ok("compute", "open", "ci-apps", "--user", other).stdout)
	if status, body := browse(u); status != 403 || !strings.Contains(body, "AuthorizationFailed") {
		t.Errorf("a Contributor opens the owner's Jupyter: %d %s, want 403", status, body)
	}
	e.fails(exitNotFound, "ApplicationNotFound", "compute", "open", "ci-apps", "--app", "RStudio")

	theirs := e.instanceJSON("compute", "show", "ci-apps", "--user", other)
	if !theirs.SSH.Enabled || theirs.SSH.Port != 0 || theirs.SSH.PublicKey != "" {
		t.Errorf("another user sees ssh %+v, want enabled without port or key", theirs.SSH)
	}
	e.fails(exitAuth, "NotInstanceOwner", "compute", "ssh", "ci-apps", "--user", other)
}

// `amlsim clock` reads and moves the test clock of `serve --test-clock`.
func TestCLIClock(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	shown, err := time.Parse(time.RFC3339, strings.TrimSpace(e.ok("clock", "show").stdout))
	if err != nil || time.Since(shown).Abs() > time.Minute {
		t.Fatalf("clock show = %v (%v), want about now", shown, err)
	}
	advanced, err := time.Parse(time.RFC3339, strings.TrimSpace(e.ok("clock", "advance", "PT2H").stdout))
	if err != nil || advanced.Sub(shown) < 2*time.Hour || advanced.Sub(shown) > 2*time.Hour+time.Minute {
		t.Errorf("clock advance PT2H = %v after %v", advanced, shown)
	}
	if out := strings.TrimSpace(e.ok("clock", "set", "2031-06-01T08:00:00Z").stdout); out != "2031-06-01T08:00:00Z" {
		t.Errorf("clock set = %q", out)
	}
	e.fails(exitFailed, "InvalidRequestContent", "clock", "set", "2030-01-01T00:00:00Z")
	e.fails(exitUsage, "UsageError", "clock", "set", "tomorrow")
}

// `amlsim fault` adds, lists and removes the rules of `serve --faults`;
// an injected AllocationFailed reaches the CLI as Azure's error.
func TestCLIFaults(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	r := e.ok("fault", "add", "cap", "--operation", "create", "--name", "cap-*", "--fail", "AllocationFailed", "--times", "1")
	if !regexp.MustCompile(`(?m)^cap\s+Create\s+name=cap-\*\s+fail with AllocationFailed\s+1\s+0$`).MatchString(r.stdout) {
		t.Errorf("fault add table:\n%s", r.stdout)
	}
	e.ok("fault", "add", "slow", "--rule", `{"operation": "Start", "effect": {"delay": "PT10M"}}`)
	var rules []sim.FaultRule
	if err := json.Unmarshal([]byte(e.ok("fault", "list", "-o", "json").stdout), &rules); err != nil || len(rules) != 2 || rules[0].ID != "cap" || rules[1].Effect.Delay != "PT10M" {
		t.Errorf("fault list -o json = %+v (%v), want cap then slow", rules, err)
	}
	r = e.fails(exitFailed, "AllocationFailed", "compute", "create", "cap-a", "--size", "Standard_D1_v2")
	checkProgress(t, r, "Fault cap injected: fail with AllocationFailed")
	if !strings.Contains(r.stderr, "We do not have sufficient capacity") {
		t.Errorf("create under the rule: stderr lacks Azure's message:\n%s", r.stderr)
	}
	if in := e.instanceJSON("compute", "show", "cap-a"); in.State != "CreateFailed" || len(in.Errors) == 0 || in.Errors[0].Code != "AllocationFailed" {
		t.Errorf("cap-a = %s %+v, want CreateFailed with AllocationFailed", in.State, in.Errors)
	}
	e.ok("compute", "create", "cap-b", "--size", "Standard_D1_v2")
	e.ok("fault", "remove", "slow")
	e.fails(exitNotFound, "FaultRuleNotFound", "fault", "remove", "slow")
	e.fails(exitFailed, "InvalidFaultRule", "fault", "add", "x", "--status", "404")
	e.fails(exitUsage, "UsageError", "fault", "add", "x", "--message", "no code")
	if got := strings.TrimSpace(e.ok("fault", "list", "-o", "tsv").stdout); got != "" {
		t.Errorf("fault list after the rules are gone = %q, want nothing", got)
	}
}
