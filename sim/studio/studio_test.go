package studio_test

import (
	"context"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/guest"
	"github.com/amlsim/amlsim/sim/store"
	"github.com/amlsim/amlsim/sim/studio"
)

const reader = "44444444-4444-4444-4444-444444444444"

type env struct {
	srv    *httptest.Server
	svc    *sim.Service
	tokens *auth.Signer
	arm    *api.Server
}

// newEnv serves the API and the studio over HTTPS on the fake driver,
// with a Reader beside the built-in owner.
func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Local.PortRange = [2]int{33022, 33999}
	cfg.Principals = append(cfg.Principals, sim.PrincipalConfig{ObjectID: reader, TenantID: sim.DefaultOwner.TenantID, Name: "read only"})
	cfg.RoleAssignments = append(cfg.RoleAssignments, sim.RoleAssignmentConfig{Principal: reader, Role: "Reader"})
	home := t.TempDir()
	st, err := store.Open(filepath.Join(home, "state.db"), sim.Buckets()...)
	if err != nil {
		t.Fatal(err)
	}
	d := 300 * time.Millisecond
	drv := fake.New(fake.WithDelays(fake.Delays{Define: d, Start: d, Shutdown: d, Reboot: d, Destroy: d, Undefine: d}))
	svc, err := sim.New(cfg, st, drv, guest.Fake{Driver: drv, Active: &guest.FakeActivity{}}, sim.WithShares(filepath.Join(home, "shares")))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.LoadOrCreate(home)
	if err != nil {
		t.Fatal(err)
	}
	arm := api.New(svc, tokens, api.WithPollInterval(50*time.Millisecond))
	mux := http.NewServeMux()
	mux.Handle(studio.PathPrefix, studio.New(svc, tokens, arm, slog.Default()))
	mux.Handle("/", arm)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(func() {
		srv.Close()
		svc.Close()
		st.Close()
	})
	return &env{srv: srv, svc: svc, tokens: tokens, arm: arm}
}

// browser starts headless Chromium trusting the test server's certificate
// (an NSS database in a HOME of its own: the real chain is checked, no
// certificate error is ignored).
func (e *env) browser(t *testing.T) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("AMLSIM_E2E_REQUIRED") != "" {
			t.Fatalf("chromium not installed, and make test needs it: run fixtures/host/setup.sh (%v)", err)
		}
		t.Skipf("chromium not installed: run fixtures/host/setup.sh (%v)", err)
	}
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Skipf("certutil (libnss3-tools) not installed: run fixtures/host/setup.sh (%v)", err)
	}
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	ca := filepath.Join(home, "ca.pem")
	os.MkdirAll(db, 0o700)
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw}), 0o600)
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + db, "--empty-password"},
		{"-A", "-d", "sql:" + db, "-n", "amlsim-test", "-t", "C,,", "-i", ca},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.Env("HOME="+home), chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.WindowSize(1280, 800), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 40*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

// shots saves full-page screenshots where AMLSIM_SCREENSHOTS says, else
// in the test's temporary directory.
func shots(t *testing.T) func(ctx context.Context, name string) {
	dir := os.Getenv("AMLSIM_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	return func(ctx context.Context, name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) signIn(t *testing.T, ctx context.Context, who sim.Principal) {
	t.Helper()
	tok, err := e.tokens.Mint(who.ObjectID, who.TenantID, who.Name, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(studio.SignInURL(e.srv.URL, tok)), chromedp.WaitVisible("h1")); err != nil {
		t.Fatal(err)
	}
}

func row(name, state string) string {
	return `//tbody[@id="rows"]/tr[th/a[text()="` + name + `"]]//span[text()="` + state + `"]`
}

// In a real Chromium: sign in, watch an instance reach Running in the
// list (htmx refreshes it), open its details, stop it, start it and
// delete it, each after a confirmation page; every action through the API.
func TestStudioInChromium(t *testing.T) {
	e := newEnv(t)
	ctx := e.browser(t)
	shot := shots(t)
	e.signIn(t, ctx, sim.DefaultOwner)
	shot(ctx, "01-empty-list")

	ref := sim.WorkspaceRef{ResourceGroup: "rg-local", Name: "ws-local"}
	// The create form: the name checked live, a size, SSH with a key, and
	// a creation script uploaded from this machine.
	script := filepath.Join(t.TempDir(), "setup.sh")
	os.WriteFile(script, []byte("#!/bin/bash\necho set up by the studio\n"), 0o644)
	if err := chromedp.Do(ctx,
		chromedp.Click(`//h1/a[text()="New"]`),
		chromedp.WaitVisible(chromedp.CSS("form.create")),
		chromedp.SendKeys(chromedp.CSS("#name"), "1bad"),
		chromedp.WaitVisible(`//span[@id="name-check" and @class="bad"]`),
	); err != nil {
		t.Fatal(err)
	}
	shot(ctx, "02-new-bad-name")
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#name"), "ci-"),
		chromedp.SendKeys(chromedp.CSS("#name"), "web"),
		chromedp.WaitVisible(`//span[@id="name-check" and @class="ok"]`),
		chromedp.Click(`//input[@name="ssh"]`),
		chromedp.SendKeys(chromedp.CSS("#sshKey"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJaQ3vS+rGnPOeBFEsr4m0dxe6cNLvDAmo1ib9Vzu1Gb t@t"),
		chromedp.SetUploadFiles(chromedp.CSS("#creationUpload"), []string{script}),
		chromedp.SendKeys(chromedp.CSS("#creationArgs"), "one two"),
		// A schedule: stop at 18:30 on weekdays.
		chromedp.Click(`//input[@name="days0" and @value="Monday"]`),
		chromedp.Click(`//input[@name="days0" and @value="Friday"]`),
	); err != nil {
		t.Fatal(err)
	}
	for _, js := range []string{`document.querySelector('[name=action0]').value = 'Stop'`, `document.querySelector('[name=time0]').value = '18:30'`} {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](js)); err != nil {
			t.Fatal(err)
		}
	}
	shot(ctx, "03-new-filled")
	if err := chromedp.Do(ctx, chromedp.Click(`//button[text()="Create"]`), chromedp.WaitVisible(chromedp.CSS("dl.details"))); err != nil {
		t.Fatal(err)
	}
	inst, err := e.svc.Compute(ref, "ci-web")
	if err != nil {
		t.Fatal(err)
	}
	share, _ := e.svc.WorkspaceShare(ref)
	if b, err := os.ReadFile(filepath.Join(share, "Users", "amlsim-owner", "setup.sh")); err != nil || !strings.Contains(string(b), "set up by the studio") {
		t.Errorf("the uploaded script in the share: %q, %v", b, err)
	}
	if len(inst.Schedules) != 1 || inst.Schedules[0].Action != "Stop" {
		t.Errorf("schedules: %+v", inst.Schedules)
	} else if rec := inst.Schedules[0].Recurrence; rec == nil || rec.Frequency != "Week" || len(rec.Schedule.WeekDays) != 2 || rec.Schedule.Hours[0] != 18 || rec.Schedule.Minutes[0] != 30 {
		t.Errorf("schedule: %+v", inst.Schedules[0].Recurrence)
	}
	if sc := inst.Script(sim.Creation); sc == nil || sc.Path != "Users/amlsim-owner/setup.sh" || sc.Arguments != "one two" {
		t.Errorf("creation script: %+v", sc)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/studio/computes")); err != nil {
		t.Fatal(err)
	}
	// No reload: the list's rows refresh on their own.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(row("ci-web", "Running"))); err != nil {
		t.Fatalf("ci-web never showed Running: %v", err)
	}
	shot(ctx, "04-list-running")

	if err := chromedp.Do(ctx, chromedp.Click(`//a[text()="ci-web"]`), chromedp.WaitVisible(chromedp.CSS("dl.details"))); err != nil {
		t.Fatal(err)
	}
	ssh, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("code.copy")))
	if err != nil {
		t.Fatal(err)
	}
	inst, _ = e.svc.Compute(ref, "ci-web")
	if want := "ssh -p " + itoa(inst.SSHPort) + " azureuser@127.0.0.1"; ssh != want {
		t.Errorf("SSH command %q, want %q", ssh, want)
	}
	shot(ctx, "05-details")
	if err := chromedp.Do(ctx, chromedp.Click(`//a[text()="Creation script"]`), chromedp.WaitVisible(`//h1[contains(., "log of ci-web")]`)); err != nil {
		t.Fatal(err)
	}
	shot(ctx, "06-log")
	// The instance's log folder in the share, and a file of it.
	os.MkdirAll(filepath.Join(share, "Logs", "ci-web"), 0o755)
	os.WriteFile(filepath.Join(share, "Logs", "ci-web", "creation_1.txt"), []byte("hello from the script\n"), 0o644)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/studio/computes/ci-web"),
		chromedp.Click(`//a[text()="Log folder"]`),
		chromedp.Click(`//a[text()="creation_1.txt"]`),
		chromedp.WaitVisible(`//pre[contains(., "hello from the script")]`),
	); err != nil {
		t.Fatalf("log folder: %v", err)
	}
	shot(ctx, "06-log-folder")
	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/studio/quota"), chromedp.WaitVisible(chromedp.CSS("table.quota meter"))); err != nil {
		t.Fatal(err)
	}
	shot(ctx, "07-quota")
	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/studio/computes/ci-web"), chromedp.WaitVisible(chromedp.CSS("dl.details"))); err != nil {
		t.Fatal(err)
	}

	// act confirms an action from the details page and waits for the
	// state it leads to.
	act := func(action, label, state string) {
		t.Helper()
		if err := chromedp.Do(ctx,
			chromedp.Click(`//div[@class="actions"]/a[text()="`+label+`"]`),
			chromedp.WaitVisible(chromedp.CSS("form.confirm")),
		); err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		shot(ctx, "08-confirm-"+action)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("form.confirm button")), chromedp.WaitVisible(chromedp.CSS("p.notice"))); err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, _ := e.svc.Compute(ref, "ci-web")
			if string(got.State) == state {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %s: %s, want %s", action, got.State, state)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	act("stop", "Stop", "Stopped")
	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/studio/computes/ci-web"), chromedp.WaitVisible(`//h1/span[text()="Stopped"]`)); err != nil {
		t.Fatal(err)
	}
	shot(ctx, "09-details-stopped")
	act("start", "Start", "Running")
	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/studio/computes/ci-web"), chromedp.WaitVisible(`//h1/span[text()="Running"]`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(`//div[@class="actions"]/a[text()="Delete"]`),
		chromedp.WaitVisible(chromedp.CSS("form.confirm")),
		chromedp.Click(chromedp.CSS("form.confirm button")),
		chromedp.WaitVisible(chromedp.CSS("p.notice")),
	); err != nil {
		t.Fatal(err)
	}
	// The row goes once the delete is done, again without a reload.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`//td[@class="empty"]`)); err != nil {
		t.Fatalf("ci-web stayed in the list: %v", err)
	}
	shot(ctx, "10-deleted")
}

// A Reader sees the instances and no action.
func TestStudioReader(t *testing.T) {
	e := newEnv(t)
	ref := sim.WorkspaceRef{ResourceGroup: "rg-local", Name: "ws-local"}
	if _, _, err := e.svc.CreateOrUpdate(sim.DefaultOwner, ref, "ci-ro", sim.CreateRequest{Size: "Standard_DS3_v2"}); err != nil {
		t.Fatal(err)
	}
	ctx := e.browser(t)
	shot := shots(t)
	e.signIn(t, ctx, sim.DefaultOwner)
	// Switch to the Reader with the principal switcher.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#principal"), reader),
		chromedp.Click(chromedp.CSS("form.who button")),
		chromedp.WaitVisible(row("ci-ro", "Running")),
	); err != nil {
		t.Fatal(err)
	}
	shot(ctx, "11-reader-list")
	buttons, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("a.button, form.confirm button").length`))
	if err != nil {
		t.Fatal(err)
	}
	if buttons != 0 {
		t.Errorf("a Reader sees %d action buttons", buttons)
	}

}

// Sessions: a form posted from another site is refused (403) and does
// nothing; a Reader cannot make themselves the owner with the switcher;
// the session cookie is no ARM credential.
func TestStudioSessions(t *testing.T) {
	e := newEnv(t)
	ref := sim.WorkspaceRef{ResourceGroup: "rg-local", Name: "ws-local"}
	if _, _, err := e.svc.CreateOrUpdate(sim.DefaultOwner, ref, "ci-ro", sim.CreateRequest{Size: "Standard_DS3_v2"}); err != nil {
		t.Fatal(err)
	}
	signIn := func(who sim.Principal) *http.Client {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: e.srv.Client().Transport}
		tok, _ := e.tokens.Mint(who.ObjectID, who.TenantID, who.Name, time.Minute)
		resp, err := c.Get(studio.SignInURL(e.srv.URL, tok))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("sign-in as %s: %d", who.Name, resp.StatusCode)
		}
		return c
	}
	post := func(c *http.Client, path, site string, form url.Values) int {
		t.Helper()
		req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", site)
		if site == "cross-site" {
			req.Header.Set("Origin", "https://evil.example")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	owner := signIn(sim.DefaultOwner)
	if code := post(owner, "/studio/computes/ci-ro/delete", "cross-site", nil); code != http.StatusForbidden {
		t.Errorf("forged post: %d, want 403", code)
	}
	if inst, err := e.svc.Compute(ref, "ci-ro"); err != nil || inst.State == sim.StateDeleting {
		t.Errorf("the forged post acted: %v %v", inst.State, err)
	}
	ro := signIn(sim.Principal{ObjectID: reader, TenantID: sim.DefaultOwner.TenantID, Name: "read only"})
	if code := post(ro, "/studio/signin/as", "same-origin", url.Values{"principal": {sim.DefaultOwner.ObjectID}}); code != http.StatusForbidden {
		t.Errorf("a Reader switching to the owner: %d, want 403", code)
	}
	// A file of the log folder is named, not a path.
	resp, err := owner.Get(e.srv.URL + "/studio/computes/ci-ro/files?file=" + url.QueryEscape("../../Users/x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a path in ?file=: %d, want 400", resp.StatusCode)
	}
	u, _ := url.Parse(e.srv.URL + "/studio/")
	for _, c := range owner.Jar.Cookies(u) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/subscriptions/"+e.svc.Config().Subscription+"/resourceGroups?api-version=2022-09-01", nil)
		req.Header.Set("Authorization", "Bearer "+c.Value)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the %s cookie as an ARM token: %d, want 401", c.Name, resp.StatusCode)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
