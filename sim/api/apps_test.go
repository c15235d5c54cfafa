package api_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
)

// seen is what the stand-in notebook server received.
type seen struct {
	Path          string
	Host          string
	Authorization string
	Cookies       []string
}

// notebook stands in for the guest's Jupyter: it reports what reached it,
// and echoes a line back on an upgraded connection, as a WebSocket would.
func notebook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "echo" {
			c, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			defer c.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			rw.Flush()
			line, _ := rw.ReadString('\n')
			rw.WriteString("echo: " + line)
			rw.Flush()
			return
		}
		var cookies []string
		for _, c := range r.Cookies() {
			cookies = append(cookies, c.Name)
		}
		json.NewEncoder(w).Encode(seen{Path: r.URL.RequestURI(), Host: r.Host, Authorization: r.Header.Get("Authorization"), Cookies: cookies})
	})
}

func (e *env) tokenFor(oid string) string {
	e.t.Helper()
	tok, err := e.tokens.Mint(oid, tenant, "", time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// TestApplicationAccess: an admin creates an instance for a data scientist
// (S9); only the data scientist gets through the application proxy (S24),
// even the workspace Owner who created it is refused, and neither the
// caller's token nor its cookie reaches the guest.
func TestApplicationAccess(t *testing.T) {
	t.Parallel()
	e := newEnvDriver(t, []fake.Option{fake.WithService(sim.JupyterGuestPort, notebook())}, rbacConfig)
	key, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	body := instanceBody("Standard_D1_v2")
	props := body.Properties.(*ml.ComputeInstance).Properties
	props.PersonalComputeInstanceSettings = &ml.PersonalComputeInstanceSettings{
		AssignedUser: &ml.AssignedUser{ObjectID: to(oidCustom), TenantID: to(tenant)},
	}
	props.SSHSettings = &ml.ComputeInstanceSSHSettings{SSHPublicAccess: to(ml.SSHPublicAccessEnabled), AdminPublicKey: to(key.AuthorizedKey())}
	if _, err := e.create("ci-for-ds", body); err != nil {
		t.Fatal(err)
	}

	// The applications list, as the SDK reads it.
	ci := e.get("ci-for-ds")
	apps := ci.Properties.Applications
	if len(apps) != 1 || *apps[0].DisplayName != "Jupyter" {
		t.Fatalf("applications = %+v, want one, Jupyter", apps)
	}
	jupyter := *apps[0].EndpointURI
	if want := e.srv.URL + "/amlsim/instances/eastus/ci-for-ds/tree"; jupyter != want {
		t.Errorf("Jupyter endpointUri = %s, want %s", jupyter, want)
	}

	// SSH details are the owner's: the admin who created the instance
	// sees that SSH is on, not the port or the key.
	if ssh := ci.Properties.SSHSettings; ssh.SSHPort != nil || ssh.AdminPublicKey != nil || *ssh.SSHPublicAccess != ml.SSHPublicAccessEnabled {
		t.Errorf("the creator sees sshSettings %+v, want access Enabled without port or key", ssh)
	}
	ds, _ := e.as(oidCustom)
	r, err := ds.NewComputeClient().Get(ctx(t), rg, ws, "ci-for-ds", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ssh := r.Properties.(*ml.ComputeInstance).Properties.SSHSettings; ssh.SSHPort == nil || *ssh.SSHPort == 0 || ssh.AdminPublicKey == nil {
		t.Errorf("the owner sees sshSettings %+v, want port and key", ssh)
	}

	get := func(u, bearer string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		client := *e.srv.Client()
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	code := func(resp *http.Response) string {
		var body struct{ Error struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&body)
		return body.Error.Code
	}

	refused := []struct {
		who, token string
		status     int
		code       string
	}{
		{"no token", "", 401, "AuthenticationFailed"},
		{"a forged token", "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl", 401, "InvalidAuthenticationToken"},
		{"the workspace Owner who created it", e.token, 403, "AuthorizationFailed"},
		{"a workspace Contributor", e.tokenFor(oidContrib), 403, "AuthorizationFailed"},
		{"a Reader", e.tokenFor(oidReader), 403, "AuthorizationFailed"},
		{"an unknown principal", e.tokenFor(oidUnknown), 401, "InvalidAuthenticationToken"},
	}
	for _, c := range refused {
		resp := get(jupyter, c.token)
		if got := code(resp); resp.StatusCode != c.status || got != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.who, resp.StatusCode, got, c.status, c.code)
		}
	}

	// The assigned user, with a bearer token.
	resp := get(jupyter, e.tokenFor(oidCustom))
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("the assigned user: %d %s, want 200", resp.StatusCode, b)
	}
	inst, err := e.svc.ComputeAt("eastus", "ci-for-ds")
	if err != nil {
		t.Fatal(err)
	}
	var got seen
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	srvURL, _ := url.Parse(e.srv.URL)
	if got.Path != "/amlsim/instances/eastus/ci-for-ds/tree" || got.Host != srvURL.Host || got.Authorization != "token "+inst.AppToken {
		t.Errorf("the notebook server saw %+v; want the path unchanged, Host %s and the instance's token", got, srvURL.Host)
	}

	// A browser: the token once in the query, then a cookie.
	resp = get(jupyter+"?access_token="+url.QueryEscape(e.tokenFor(oidCustom))+"&x=1", "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in by query: %d, want 303", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "/amlsim/instances/eastus/ci-for-ds/tree?x=1" {
		t.Errorf("sign-in redirects to %q, want the same page without the token", loc)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "amlsim_access_token" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.Path != "/amlsim/instances/eastus/ci-for-ds/" {
		t.Fatalf("sign-in cookie = %+v, want HttpOnly, Secure, scoped to the instance", cookie)
	}
	resp = get(jupyter, "", cookie, &http.Cookie{Name: "_xsrf", Value: "jupyters-own"})
	got = seen{}
	if err := json.NewDecoder(resp.Body).Decode(&got); resp.StatusCode != 200 || err != nil {
		t.Fatalf("with the cookie: %d %v, want 200", resp.StatusCode, err)
	}
	if strings.Join(got.Cookies, ",") != "_xsrf" {
		t.Errorf("the notebook server got cookies %v, want only its own _xsrf", got.Cookies)
	}
	// Another user's cookie is refused like their bearer token.
	if resp := get(jupyter, "", &http.Cookie{Name: "amlsim_access_token", Value: e.token}); resp.StatusCode != 403 {
		t.Errorf("the creator's cookie: %d, want 403", resp.StatusCode)
	}

	// Kernels talk over WebSockets: an upgraded connection goes through.
	t.Run("upgrade", func(t *testing.T) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/amlsim/instances/eastus/ci-for-ds/api/kernels/k/channels", nil)
		req.Header.Set("Authorization", "Bearer "+e.tokenFor(oidCustom))
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "echo")
		resp, err := e.srv.HTTP1Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %d, want 101", resp.StatusCode)
		}
		rw, ok := resp.Body.(io.ReadWriter)
		if !ok {
			t.Fatalf("upgraded body is %T, not writable", resp.Body)
		}
		io.WriteString(rw, "ping\n")
		line, err := bufio.NewReader(rw).ReadString('\n')
		if err != nil || line != "echo: ping\n" {
			t.Errorf("through the upgraded connection: %q, %v", line, err)
		}
	})

	// Unknown instance; then a stopped one.
	if resp := get(e.srv.URL+"/amlsim/instances/eastus/no-such-ci/tree", e.tokenFor(oidCustom)); resp.StatusCode != 404 {
		t.Errorf("unknown instance: %d, want 404", resp.StatusCode)
	}
	p, err := ds.NewComputeClient().BeginStop(ctx(t), rg, ws, "ci-for-ds", nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Fatal(err)
	}
	if resp := get(jupyter, e.tokenFor(oidCustom)); resp.StatusCode != 409 || code(resp) != "ComputeInstanceNotRunning" {
		t.Errorf("stopped instance: %d, want 409 ComputeInstanceNotRunning", resp.StatusCode)
	}
}

// TestSharedApplications: with applicationSharingPolicy Shared, any user
// whose role grants applicationaccess/action gets through; the others are
// still refused. An unknown policy is refused at create.
func TestSharedApplications(t *testing.T) {
	t.Parallel()
	e := newEnvDriver(t, []fake.Option{fake.WithService(sim.JupyterGuestPort, notebook())}, rbacConfig)
	body := instanceBody("Standard_D1_v2")
	body.Properties.(*ml.ComputeInstance).Properties.ApplicationSharingPolicy = to(ml.ApplicationSharingPolicyShared)
	if _, err := e.create("ci-shared", body); err != nil {
		t.Fatal(err)
	}
	if p := e.get("ci-shared").Properties.ApplicationSharingPolicy; p == nil || *p != ml.ApplicationSharingPolicyShared {
		t.Errorf("applicationSharingPolicy = %v, want Shared", p)
	}
	jupyter := sim.AppBasePath("eastus", "ci-shared") + "tree"
	for oid, want := range map[string]int{
		sim.DefaultOwner.ObjectID: 200, // the creator
		oidContrib:                200, // Contributor: applicationaccess through *
		oidCustom:                 200, // the custom role lists applicationaccess
		oidReader:                 403, // read only
	} {
		if resp := e.raw("GET", jupyter, e.tokenFor(oid), ""); resp.StatusCode != want {
			t.Errorf("%s on a Shared instance: %d, want %d", oid, resp.StatusCode, want)
		}
	}

	bad := instanceBody("Standard_D1_v2")
	bad.Properties.(*ml.ComputeInstance).Properties.ApplicationSharingPolicy = to(ml.ApplicationSharingPolicy("Everyone"))
	if _, err := e.create("ci-bad-policy", bad); statusOf(err) != 400 {
		t.Errorf("create with applicationSharingPolicy Everyone: %v, want 400", err)
	}
	if _, err := e.computes().Get(ctx(t), rg, ws, "ci-bad-policy", nil); statusOf(err) != 404 {
		t.Errorf("a refused create left an instance: %v", err)
	}
}
