//go:build linux && cgo

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"golang.org/x/crypto/ssh"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim/pki"
)

const (
	oidAdmin     = "11111111-1111-1111-1111-111111111111"
	oidScientist = "44444444-4444-4444-4444-444444444444"
)

// appsConfig: an admin who owns the subscription and a data scientist with
// only the four instance actions of S10 (and read), in the workspace.
const appsConfig = `
[[principals]]
object_id = "` + oidAdmin + `"
tenant_id = "00000000-0000-0000-0000-0000000000aa"
name = "admin"

[[principals]]
object_id = "` + oidScientist + `"
tenant_id = "00000000-0000-0000-0000-0000000000aa"
name = "data scientist"

[[roles]]
name = "Compute Instance User"
actions = ["Microsoft.MachineLearningServices/workspaces/computes/read",
           "Microsoft.MachineLearningServices/workspaces/computes/start/action",
           "Microsoft.MachineLearningServices/workspaces/computes/stop/action",
           "Microsoft.MachineLearningServices/workspaces/computes/restart/action",
           "Microsoft.MachineLearningServices/workspaces/computes/applicationaccess/action"]

[[role_assignments]]
principal = "` + oidAdmin + `"
role = "Owner"
scope = ""

[[role_assignments]]
principal = "` + oidScientist + `"
role = "Compute Instance User"
scope = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local/providers/Microsoft.MachineLearningServices/workspaces/ws-local"
`

// TestApplicationsOnRealVM is S9, S10 and S24 on a real VM: an admin
// creates an instance for a data scientist; the data scientist, with the
// four instance actions alone, reaches the instance's Jupyter through
// amlsim's proxy (the notebook server runs in the guest, as azureuser,
// rooted in the workspace share) and SSHes in with their key; the admin,
// Owner of everything, is refused the notebook.
func TestApplicationsOnRealVM(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	home, config, stateDir := simHome(t, 25022, appsConfig)
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startSim(t, home, config, listen)
	admin := sdkClientsAs(t, home, listen, oidAdmin)
	scientist := sdkClientsAs(t, home, listen, oidScientist)
	ctx := context.Background()

	key, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("ciapp%x", time.Now().UnixNano()%0xffffff)
	domain := domainOf(home, name)
	removeOnCleanup(t, domain)
	body := sshInstance("STANDARD_D3_V2", key, func(p *ml.ComputeInstanceProperties) {
		p.PersonalComputeInstanceSettings = &ml.PersonalComputeInstanceSettings{
			AssignedUser: &ml.AssignedUser{ObjectID: ptr(oidScientist), TenantID: ptr("00000000-0000-0000-0000-0000000000aa")},
		}
	})
	begin := time.Now()
	p, err := admin.NewComputeClient().BeginCreateOrUpdate(ctx, rgLocal, wsLocal, name, body, nil)
	pollDone(t, "create on behalf of the data scientist", p, err)
	t.Logf("created in %s", time.Since(begin).Round(100*time.Millisecond))

	got, err := scientist.NewComputeClient().Get(ctx, rgLocal, wsLocal, name, nil)
	if err != nil {
		t.Fatalf("the data scientist reads the instance: %v", err)
	}
	ci := got.Properties.(*ml.ComputeInstance).Properties
	if *ci.State != ml.ComputeInstanceStateRunning || *ci.CreatedBy.UserID != oidAdmin {
		t.Fatalf("state %s, createdBy %s; want Running, created by the admin", *ci.State, *ci.CreatedBy.UserID)
	}
	if len(ci.Applications) != 1 || *ci.Applications[0].DisplayName != "Jupyter" {
		t.Fatalf("applications = %+v, want Jupyter", ci.Applications)
	}
	jupyter := *ci.Applications[0].EndpointURI
	base := strings.TrimSuffix(jupyter, "tree")

	// SSH with the data scientist's key on the port only they are shown.
	if who := userSSH(t, *ci.SSHSettings.SSHPort, key, &tofu{}, "whoami"); who != "azureuser" {
		t.Errorf("ssh whoami = %q, want azureuser", who)
	}

	pool, err := pki.Pool(home)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(method, u, token string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	dsToken := tokenFor(t, home, oidScientist)

	// The notebook server starts once cloud-init is done: wait for it.
	// A request to a just-restored guest can hang (seen once; likely its
	// network reconfigured by cloud-init's network stage, issue 12), so a
	// request that times out is tried again too.
	begin = time.Now()
	var status int
	var page []byte
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(3 * time.Second) {
		req, err := http.NewRequest("GET", jupyter, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+dsToken)
		if resp, err := hc.Do(req); err != nil {
			t.Logf("GET %s: %v (trying again)", jupyter, err)
			status, page = 0, nil
		} else {
			page, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		if status == 200 || time.Now().After(deadline) {
			break
		}
	}
	if status != 200 || !bytes.Contains(page, []byte("Jupyter")) {
		t.Fatalf("the data scientist opens %s: %d\n%.500s\nserial log: %s", jupyter, status, page, tail(filepath.Join(stateDir, domain, "serial.log"), 30))
	}
	t.Logf("Jupyter answered through the proxy %s after Running", time.Since(begin).Round(100*time.Millisecond))

	// Through Jupyter's REST API: a notebook created there lands in the
	// workspace share, owned by azureuser.
	status, out := call("PUT", base+"api/contents/from-jupyter.ipynb", dsToken, []byte(`{"type":"notebook"}`))
	if status != 201 {
		t.Fatalf("create a notebook through the proxy: %d %s", status, out)
	}
	if ls := userSSH(t, *ci.SSHSettings.SSHPort, key, &tofu{}, "stat -c %U /home/azureuser/cloudfiles/code/from-jupyter.ipynb"); ls != "azureuser" {
		t.Errorf("the notebook in the share is owned by %q, want azureuser", ls)
	}
	status, out = call("GET", base+"api/status", dsToken, nil)
	var st struct{ Started string }
	if status != 200 || json.Unmarshal(out, &st) != nil || st.Started == "" {
		t.Errorf("Jupyter api/status through the proxy: %d %s", status, out)
	}

	// A kernel, driven over its WebSocket through the proxy as the
	// notebook page does: the code runs in the guest, as azureuser.
	status, out = call("POST", base+"api/kernels", dsToken, []byte(`{"name":"python3"}`))
	var kernel struct{ ID string }
	if status != 201 || json.Unmarshal(out, &kernel) != nil || kernel.ID == "" {
		t.Fatalf("start a kernel through the proxy: %d %s", status, out)
	}
	wsURL := base + "api/kernels/" + kernel.ID + "/channels"
	ws, err := dialWebSocket(wsURL, &tls.Config{RootCAs: pool}, http.Header{
		"Authorization": {"Bearer " + dsToken},
		"Origin":        {"https://" + listen},
	})
	if err != nil {
		t.Fatalf("kernel WebSocket %s: %v", wsURL, err)
	}
	printed, err := runInKernel(ws, "import getpass, socket; print(getpass.getuser(), socket.gethostname(), 6 * 7)")
	ws.Close()
	if want := "azureuser " + name + " 42\n"; err != nil || printed != want {
		t.Errorf("code run in the kernel printed %q, %v; want %q", printed, err, want)
	}

	// The forwarded port itself is no way around the proxy: the guest's
	// server wants the token only amlsim holds.
	xml, err := exec.Command("virsh", "-c", libvirtURI(), "dumpxml", domain).Output()
	m := regexp.MustCompile(`host-port="(\d+)" guest-port="8888"`).FindSubmatch(xml)
	if err != nil || m == nil {
		t.Fatalf("no forward to guest port 8888 in the domain's metadata: %v", err)
	}
	direct := fmt.Sprintf("http://127.0.0.1:%s%sapi/contents", m[1], strings.TrimPrefix(base, "https://"+listen))
	if status, out := call("GET", direct, "", nil); status != 403 {
		t.Errorf("GET %s straight to the forwarded port: %d %.200s, want 403 from Jupyter", direct, status, out)
	}

	// Refused: no token, and the admin who owns the subscription.
	if status, out := call("GET", jupyter, "", nil); status != 401 {
		t.Errorf("no token: %d %s, want 401", status, out)
	}
	if status, out := call("GET", jupyter, tokenFor(t, home, oidAdmin), nil); status != 403 || !bytes.Contains(out, []byte("AuthorizationFailed")) {
		t.Errorf("the admin (subscription Owner): %d %s, want 403 AuthorizationFailed", status, out)
	}

	// The data scientist's own actions (S10): stop, then the notebook is
	// unavailable, start; delete is the admin's.
	sp, err := scientist.NewComputeClient().BeginStop(ctx, rgLocal, wsLocal, name, nil)
	pollDone(t, "the data scientist stops it", sp, err)
	if status, out := call("GET", jupyter, dsToken, nil); status != 409 {
		t.Errorf("a stopped instance's Jupyter: %d %s, want 409", status, out)
	}
	// Started again (a new QEMU process), the forward is back and the
	// notebook created before is still in the share.
	stp, err := scientist.NewComputeClient().BeginStart(ctx, rgLocal, wsLocal, name, nil)
	pollDone(t, "the data scientist starts it", stp, err)
	begin = time.Now()
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(3 * time.Second) {
		status, out = call("GET", base+"api/contents/from-jupyter.ipynb?content=0", dsToken, nil)
		if status == 200 || time.Now().After(deadline) {
			break
		}
	}
	if status != 200 {
		t.Errorf("Jupyter after a stop and start: %d %.300s", status, out)
	}
	t.Logf("Jupyter answered %s after the start", time.Since(begin).Round(100*time.Millisecond))

	// Idle shutdown, set by the admin (Compute_UpdateIdleShutdownSetting),
	// on the test clock: twenty minutes pass in an instant. An open SSH
	// session, then a kernel, keep the instance running; with neither it
	// is stopped, by IdleShutdown.
	previewPost(t, home, listen, oidAdmin, name, "updateIdleShutdownSetting", map[string]string{"idleTimeBeforeShutdown": "PT15M"})
	state := func() (ml.ComputeInstanceState, *ml.ComputeInstanceLastOperation) {
		t.Helper()
		got, err := scientist.NewComputeClient().Get(ctx, rgLocal, wsLocal, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := got.Properties.(*ml.ComputeInstance).Properties
		return *p.State, p.LastOperation
	}
	// The idle check runs at each jump of the clock and takes a second or
	// two over SSH; an instance still running ten seconds later was kept.
	const probeWait = 10 * time.Second
	session := holdSSH(t, int(*ci.SSHSettings.SSHPort), key, "sleep 600")
	clockAdvance(t, home, listen, "PT20M")
	time.Sleep(probeWait)
	if st, _ := state(); st != ml.ComputeInstanceStateRunning {
		t.Fatalf("idle 20 min of 15 with an SSH session open: %s, want Running", st)
	}
	session.Close()
	status, out = call("POST", base+"api/kernels", dsToken, []byte(`{"name":"python3"}`))
	if status != 201 || json.Unmarshal(out, &kernel) != nil {
		t.Fatalf("start a kernel: %d %s", status, out)
	}
	clockAdvance(t, home, listen, "PT20M")
	time.Sleep(probeWait)
	if st, _ := state(); st != ml.ComputeInstanceStateRunning {
		t.Fatalf("idle 20 min of 15 with a kernel running: %s, want Running", st)
	}
	if status, out := call("DELETE", base+"api/kernels/"+kernel.ID, dsToken, nil); status != 204 {
		t.Fatalf("shut the kernel down: %d %s", status, out)
	}
	clockAdvance(t, home, listen, "PT20M")
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		st, lo := state()
		if st == ml.ComputeInstanceStateStopped {
			if *lo.OperationTrigger != ml.OperationTriggerIdleShutdown {
				t.Errorf("stopped by %s, want IdleShutdown", *lo.OperationTrigger)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never stopped when idle: %s", st)
		}
	}
	if st := domState(t, domain); st != "shut off" {
		t.Errorf("domain after idle shutdown: %s, want shut off", st)
	}

	dp, err := admin.NewComputeClient().BeginDelete(ctx, rgLocal, wsLocal, name, ml.UnderlyingResourceActionDelete, nil)
	pollDone(t, "the admin deletes it", dp, err)
}

// clockAdvance moves the server's test clock with `amlsim clock advance`.
func clockAdvance(t *testing.T, home, listen, d string) {
	t.Helper()
	cmd := exec.Command(amlsimBinary(t), "clock", "advance", d, "--home", home, "--endpoint", "https://"+listen)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("amlsim clock advance %s: %v\n%s", d, err, out)
	}
}

// holdSSH opens an SSH session as azureuser running cmd and leaves it
// open until the returned client is closed.
func holdSSH(t *testing.T, port int, key guestssh.Key, cmd string) *ssh.Client {
	t.Helper()
	c, err := dialSSH(fmt.Sprintf("127.0.0.1:%d", port), &ssh.ClientConfig{
		User: "azureuser", Auth: []ssh.AuthMethod{ssh.PublicKeys(key.Signer())},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("ssh session: %v", err)
	}
	if err := sess.Start(cmd); err != nil {
		t.Fatalf("ssh %s: %v", cmd, err)
	}
	return c
}

// tokenFor mints a token for a principal with `amlsim token --user`.
func tokenFor(t *testing.T, home, oid string) string {
	t.Helper()
	out, err := exec.Command(amlsimBinary(t), "token", "--home", home, "--user", oid).Output()
	if err != nil {
		t.Fatalf("amlsim token --user %s: %v", oid, err)
	}
	return strings.TrimSpace(string(out))
}
