//go:build linux && cgo

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim/pki"
	"golang.org/x/crypto/ssh"
)

const (
	subscription = "00000000-0000-0000-0000-000000000000"
	rgLocal      = "rg-local"
	wsLocal      = "ws-local"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// amlsimBinary builds cmd/amlsim once per test run, or takes the binary
// AMLSIM_E2E_BIN names.
func amlsimBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("AMLSIM_E2E_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "amlsim-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "amlsim")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/amlsim").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// simServer is a running `amlsim serve` process over libvirt.
type simServer struct {
	t      *testing.T
	home   string
	config string
	listen string
	cmd    *exec.Cmd
	log    *bytes.Buffer
}

// startSim starts `amlsim serve` on home with config and waits for its
// "serving" line.
func startSim(t *testing.T, home, config, listen string) *simServer {
	t.Helper()
	s := &simServer{t: t, home: home, config: config, listen: listen, log: &bytes.Buffer{}}
	s.cmd = exec.Command(amlsimBinary(t), "serve", "--home", home, "--config", config, "--listen", listen, "--driver", "libvirt", "--test-clock", "--faults")
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = &lockedWriter{w: s.log}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "amlsim: serving https://") {
				ready <- sc.Text()
			}
		}
	}()
	select {
	case line := <-ready:
		t.Logf("%s", line)
	case <-time.After(3 * time.Minute):
		s.cmd.Process.Kill()
		t.Fatalf("amlsim serve did not become ready; its log:\n%s", s.log)
	}
	t.Cleanup(func() {
		s.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("server log (%s):\n%s", listen, s.log)
		}
	})
	return s
}

// snapshotWait bounds the wait for a create's domain to be defined: a
// boot of the template guest and its save (about 2.5 min under TCG) when
// the snapshot of its shape must be taken first, plus a boot's margin.
const snapshotWait = 6 * time.Minute

// simHome makes a home for `amlsim serve` over libvirt: a config naming
// this run's libvirt, a fresh state directory QEMU can reach, loopback
// ports from firstPort on (each test has a range of its own), and extra
// TOML. It returns the home, the config's path and the state directory.
func simHome(t *testing.T, firstPort int, extra string) (home, config, stateDir string) {
	t.Helper()
	return simHomeDriver(t, firstPort, "", extra)
}

// simHomeDriver is simHome with more keys of the [driver] table.
func simHomeDriver(t *testing.T, firstPort int, driver, extra string) (home, config, stateDir string) {
	t.Helper()
	home, stateDir = t.TempDir(), vmStateDir(t)
	config = filepath.Join(home, "amlsim.toml")
	toml := fmt.Sprintf("[driver]\nuri = %q\nstate_dir = %q\n%s\n[local]\nport_range = [%d, %d]\n\n%s",
		libvirtURI(), stateDir, driver, firstPort, firstPort+977, extra)
	if err := os.WriteFile(config, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return home, config, stateDir
}

func (s *simServer) stop(sig syscall.Signal) {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(sig)
	s.cmd.Wait()
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type tokenCred string

func (c tokenCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// sdkClients returns Azure SDK clients for the server at listen, trusting
// the CA in home and carrying a token from `amlsim token`.
func sdkClients(t *testing.T, home, listen string) *ml.ClientFactory {
	t.Helper()
	return sdkClientsAs(t, home, listen, "")
}

// sdkClientsAs is sdkClients acting as principal oid ("" for the default).
func sdkClientsAs(t *testing.T, home, listen, oid string) *ml.ClientFactory {
	t.Helper()
	cred, opts := sdkOptions(t, home, listen, oid)
	f, err := ml.NewClientFactory(subscription, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sdkOptions are the credential and client options of an Azure SDK client
// for the server at listen, acting as principal oid ("" for the default).
func sdkOptions(t *testing.T, home, listen, oid string) (azcore.TokenCredential, *arm.ClientOptions) {
	t.Helper()
	args := []string{"token", "--home", home}
	if oid != "" {
		args = append(args, "--user", oid)
	}
	out, err := exec.Command(amlsimBinary(t), args...).Output()
	if err != nil {
		t.Fatalf("amlsim token: %v", err)
	}
	pool, err := pki.Pool(home)
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return tokenCred(strings.TrimSpace(string(out))), &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: "https://login.invalid/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: "https://" + listen, Audience: "https://management.azure.com"},
			},
		},
		Transport: transport,
	}}
}

// previewPost sends POST …/computes/NAME/OP of the preview api-versions,
// which no Go SDK release has, as principal oid ("" for the default):
// through the SDK's pipeline, and for a 202 polled to the end by its
// long-running operation poller.
func previewPost(t *testing.T, home, listen, oid, name, op string, body any) {
	t.Helper()
	cred, opts := sdkOptions(t, home, listen, oid)
	client, err := arm.NewClient("amlsim-e2e", "v0.0.0", cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req, err := runtime.NewRequest(ctx, http.MethodPost, client.Endpoint()+"/subscriptions/"+subscription+"/resourceGroups/"+rgLocal+
		"/providers/Microsoft.MachineLearningServices/workspaces/"+wsLocal+"/computes/"+name+"/"+op+"?api-version=2026-09-15-preview")
	if err != nil {
		t.Fatal(err)
	}
	if err := runtime.MarshalAsJSON(req, body); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Pipeline().Do(req)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusAccepted:
		p, err := runtime.NewPoller(resp, client.Pipeline(), &runtime.NewPollerOptions[struct{}]{FinalStateVia: runtime.FinalStateViaLocation})
		pollDone(t, op, p, err)
	default:
		t.Fatalf("%s: %v", op, runtime.NewResponseError(resp))
	}
}

// resize resizes an instance (Compute_Resize).
func resize(t *testing.T, home, listen, name, size string) {
	t.Helper()
	previewPost(t, home, listen, "", name, "resize", map[string]string{"targetVMSize": size})
}

// tofu is a host key callback that trusts the first key it sees and then
// insists on it, as a user's known_hosts does.
type tofu struct {
	mu  sync.Mutex
	key ssh.PublicKey
}

func (h *tofu) check(_ string, _ net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.key == nil {
		h.key = key
		return nil
	}
	if !bytes.Equal(h.key.Marshal(), key.Marshal()) {
		return fmt.Errorf("host key changed")
	}
	return nil
}

// userSSH runs cmd on the instance as azureuser with the user's key, as a
// user with `ssh -p PORT azureuser@127.0.0.1` would, retrying while the
// guest comes up.
func userSSH(t *testing.T, port int32, key guestssh.Key, hk *tofu, cmd string) string {
	t.Helper()
	cfg := &ssh.ClientConfig{User: "azureuser", Auth: []ssh.AuthMethod{ssh.PublicKeys(key.Signer())}, HostKeyCallback: hk.check, Timeout: 20 * time.Second}
	var last error
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		c, err := dialSSH(fmt.Sprintf("127.0.0.1:%d", port), cfg)
		if err != nil {
			last = err
			continue
		}
		defer c.Close()
		// x/crypto/ssh waits for the guest's answers without a deadline
		// (a guest going down may never send them): close the connection
		// if the command has not ended in time, which fails the test
		// instead of hanging it.
		watchdog := time.AfterFunc(5*time.Minute, func() { c.Close() })
		defer watchdog.Stop()
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		out, err := sess.CombinedOutput(cmd)
		if err != nil {
			t.Fatalf("ssh %q: %v\n%s", cmd, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Fatalf("ssh to 127.0.0.1:%d as azureuser: %v", port, last)
	return ""
}

// sshInstance is the create request of an instance of size in eastus with
// SSH public access for key; with, if not nil, adds to its properties.
func sshInstance(size string, key guestssh.Key, with func(*ml.ComputeInstanceProperties)) ml.ComputeResource {
	props := &ml.ComputeInstanceProperties{
		VMSize:      ptr(size),
		SSHSettings: &ml.ComputeInstanceSSHSettings{SSHPublicAccess: ptr(ml.SSHPublicAccessEnabled), AdminPublicKey: ptr(key.AuthorizedKey())},
	}
	if with != nil {
		with(props)
	}
	return ml.ComputeResource{Location: ptr("eastus"), Properties: &ml.ComputeInstance{Properties: props}}
}

func pollDone[T any](t *testing.T, what string, p *runtime.Poller[T], err error) T {
	t.Helper()
	var zero T
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: time.Second})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
		return zero
	}
	return res
}

func dv2Usage(t *testing.T, f *ml.ClientFactory) int64 {
	t.Helper()
	pager := f.NewUsagesClient().NewListPager("eastus", nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Value {
			if *u.Name.Value == "standardDv2Family" {
				return *u.CurrentValue
			}
		}
	}
	t.Fatal("no standardDv2Family usage")
	return 0
}

// TestAPIOnRealVM drives the simulator's API with the Azure SDK for Go
// over a real VM: create (with a kill -9 of the server in the middle and a
// restart, the SDK poller resuming from its token), SSH with the user's
// key on the reported port, stop, resize, start (the guest sees the new
// size's vCPUs and memory), restart, delete.
func TestAPIOnRealVM(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	// D3_v2 gets the default local VM (1 vCPU, 1 GiB), D4_v2 a bigger one.
	home, config, stateDir := simHome(t, 21022, "[local.sizes.Standard_D4_v2]\nvcpus = 1\nmemory_mib = 1536\n")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	srv := startSim(t, home, config, listen)
	f := sdkClients(t, home, listen)
	computes := f.NewComputeClient()
	ctx := context.Background()
	userKey, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("cie2e%x", time.Now().UnixNano()%0xffffff)
	domain := domainOf(home, name)
	removeOnCleanup(t, domain)
	body := sshInstance("STANDARD_D3_V2", userKey, nil)
	begin := time.Now()
	p, err := computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, name, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	token, err := p.ResumeToken()
	if err != nil {
		t.Fatal(err)
	}

	// Kill the server once the domain exists, then start it again. The
	// domain is defined once the snapshot of its shape is there: the first
	// create after a change to the guest waits for it to be taken.
	for deadline := time.Now().Add(snapshotWait); !virshHas(t, domain); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("domain %s never appeared", domain)
		}
	}
	srv.stop(syscall.SIGKILL)
	t.Logf("server killed %.1fs into the create", time.Since(begin).Seconds())
	startSim(t, home, config, listen)
	f = sdkClients(t, home, listen)
	computes = f.NewComputeClient()
	p, err = computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, name, body, &ml.ComputeClientBeginCreateOrUpdateOptions{ResumeToken: token})
	res := pollDone(t, "create", p, err)
	t.Logf("create to Running: %.1fs", time.Since(begin).Seconds())
	ci := res.Properties.(*ml.ComputeInstance)
	if *ci.Properties.State != ml.ComputeInstanceStateRunning {
		t.Fatalf("state after create = %s; errors %v", *ci.Properties.State, ci.Properties.Errors)
	}
	port := *ci.Properties.SSHSettings.SSHPort
	hk := &tofu{}
	if got := userSSH(t, port, userKey, hk, "hostname && sudo -n true && echo kept > ~/marker && echo ok"); !strings.HasSuffix(got, "ok") || !strings.HasPrefix(got, name) {
		t.Errorf("ssh: %q, want the hostname %s then ok", got, name)
	}
	if u := dv2Usage(t, f); u != 4 {
		t.Errorf("Dv2 usage while running = %d, want 4", u)
	}
	// A start of a running instance is accepted and its operation fails
	// (StartComputeInstanceOnlyAllowedInStoppedState); the VM runs on.
	lp, err := computes.BeginStart(ctx, rgLocal, wsLocal, name, nil)
	if err != nil {
		t.Fatalf("start of a running instance: %v, want accepted", err)
	}
	if _, err := lp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: time.Second}); err == nil || !strings.Contains(err.Error(), "StartComputeInstanceOnlyAllowedInStoppedState") {
		t.Errorf("start of a running instance ended with %v, want StartComputeInstanceOnlyAllowedInStoppedState", err)
	}
	if got := userSSH(t, port, userKey, hk, "echo still"); got != "still" {
		t.Errorf("ssh after a refused start: %q", got)
	}

	sp, err := computes.BeginStop(ctx, rgLocal, wsLocal, name, nil)
	pollDone(t, "stop", sp, err)
	if st := domState(t, domain); st != "shut off" {
		t.Errorf("domain state after stop = %q, want shut off", st)
	}
	if u := dv2Usage(t, f); u != 4 {
		t.Errorf("Dv2 usage while stopped = %d, want 4 (S6: stopping keeps quota)", u)
	}

	resize(t, home, listen, name, "Standard_D4_v2")
	if u := dv2Usage(t, f); u != 8 {
		t.Errorf("Dv2 usage after resizing to D4_v2 = %d, want 8", u)
	}

	stp, err := computes.BeginStart(ctx, rgLocal, wsLocal, name, nil)
	pollDone(t, "start", stp, err)
	if got := userSSH(t, port, userKey, hk, "cat ~/marker"); got != "kept" {
		t.Errorf("marker after stop/start = %q, want kept", got)
	}
	// MemTotal is what the guest kernel keeps of 1536 MiB: a little less.
	got := userSSH(t, port, userKey, hk, "nproc; awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo")
	var cpus, mib int
	if _, err := fmt.Sscan(got, &cpus, &mib); err != nil || cpus != 1 || mib < 1200 || mib > 1536 {
		t.Errorf("guest after resize to D4_v2: %q; want 1 CPU (2 before) and about 1536 MiB", got)
	}
	if res, err := computes.Get(ctx, rgLocal, wsLocal, name, nil); err != nil || *res.Properties.(*ml.ComputeInstance).Properties.VMSize != "Standard_D4_v2" {
		t.Errorf("vmSize after resize: %v", err)
	}

	rp, err := computes.BeginRestart(ctx, rgLocal, wsLocal, name, nil)
	pollDone(t, "restart", rp, err)
	if got := userSSH(t, port, userKey, hk, "cat ~/marker"); got != "kept" {
		t.Errorf("marker after restart = %q, want kept", got)
	}

	dp, err := computes.BeginDelete(ctx, rgLocal, wsLocal, name, ml.UnderlyingResourceActionDelete, nil)
	pollDone(t, "delete", dp, err)
	if virshHas(t, domain) {
		t.Errorf("domain %s still defined after delete", domain)
	}
	if _, err := os.Stat(filepath.Join(stateDir, domain)); !os.IsNotExist(err) {
		t.Errorf("files of %s left after delete: %v", domain, err)
	}
	if u := dv2Usage(t, f); u != 0 {
		t.Errorf("Dv2 usage after delete = %d, want 0", u)
	}

	// The name is free again; a delete during the create leaves nothing.
	p, err = computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, name, body, nil)
	if err != nil {
		t.Fatalf("create again with the freed name: %v", err)
	}
	for deadline := time.Now().Add(snapshotWait); !virshHas(t, domain); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("domain %s never appeared on the second create", domain)
		}
	}
	dp, err = computes.BeginDelete(ctx, rgLocal, wsLocal, name, ml.UnderlyingResourceActionDelete, nil)
	pollDone(t, "delete during create", dp, err)
	if virshHas(t, domain) {
		t.Errorf("domain %s still defined after a delete during create", domain)
	}
	if _, err := os.Stat(filepath.Join(stateDir, domain)); !os.IsNotExist(err) {
		t.Errorf("files of %s left after a delete during create: %v", domain, err)
	}
}

func domState(t *testing.T, domain string) string {
	t.Helper()
	out, err := exec.Command("virsh", "-c", libvirtURI(), "domstate", domain).Output()
	if err != nil {
		t.Fatalf("virsh domstate %s: %v", domain, err)
	}
	return strings.TrimSpace(string(out))
}

func ptr[T any](v T) *T { return &v }

// dialSSH is ssh.Dial with the handshake bounded too: cfg.Timeout bounds
// only the TCP connect, and QEMU's user-mode network accepts a forwarded
// connection on the host side even when the guest never answers, so a
// guest whose network is gone would hang the handshake for ever.
func dialSSH(addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(cfg.Timeout))
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}
