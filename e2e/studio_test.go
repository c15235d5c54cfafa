//go:build linux && cgo

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/pki"
)

// TestStudioOnRealVM is a user's session in the studio on a real VM, in
// headless Chromium that trusts the server's CA: sign in with the address
// `amlsim studio` prints, create an instance with an uploaded creation
// script from the New form, watch its row reach Running (htmx refreshes
// it; the page is never reloaded), read the script's output on the
// instance's "Creation script" log page, stop and start it, and delete it
// through its confirmation page until its row and its libvirt domain are
// gone.
func TestStudioOnRealVM(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	chromium, certutil := requireBrowser(t)
	home, config, _ := simHome(t, 22022, "")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startSim(t, home, config, listen)
	endpoint := "https://" + listen

	// The sign-in address, as a user gets it.
	out, err := exec.Command(amlsimBinary(t), "studio", "--home", home, "--endpoint", endpoint).Output()
	if err != nil {
		t.Fatalf("amlsim studio: %v", err)
	}
	signIn := strings.TrimSpace(string(out))
	if !strings.HasPrefix(signIn, endpoint+"/studio/signin?token=") {
		t.Fatalf("amlsim studio printed %q, want an address under %s/studio/signin", signIn, endpoint)
	}

	ctx := studioBrowser(t, chromium, certutil, filepath.Join(home, pki.CAFile))
	shot := studioShots(t)
	// step runs browser actions for at most d, with a screenshot of the
	// page they failed on.
	step := func(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			shot(ctx, "failed-"+strings.ReplaceAll(what, " ", "-"))
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(what string, sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(sel, chromedp.NodeVisible))
		if err != nil {
			shot(ctx, "failed-"+strings.ReplaceAll(what, " ", "-"))
			t.Fatalf("%s: %v", what, err)
		}
		return strings.TrimSpace(s)
	}

	step("sign in", time.Minute, chromedp.Navigate(signIn), chromedp.WaitVisible(`//h1[contains(., "Compute instances")]`))
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != endpoint+"/studio/computes" {
		t.Errorf("address after sign-in = %q (%v), want %s/studio/computes, without the token", loc, err, endpoint)
	}
	shot(ctx, "01-list")

	name := fmt.Sprintf("ci-studio%x", time.Now().UnixNano()%0xfffff)
	domain := domainOf(home, name)
	removeOnCleanup(t, domain)
	script := filepath.Join(t.TempDir(), "studio-setup.sh")
	if err := os.WriteFile(script, []byte("#!/bin/bash\necho \"studio-e2e $CI_NAME $1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	step("fill the New form", time.Minute,
		chromedp.Click(`//h1/a[text()="New"]`),
		chromedp.WaitVisible(chromedp.CSS("form.create")),
		chromedp.SendKeys(chromedp.CSS("#name"), name),
		chromedp.WaitVisible(`//span[@id="name-check" and @class="ok"]`),
		chromedp.SetUploadFiles(chromedp.CSS("#creationUpload"), []string{script}),
		chromedp.SendKeys(chromedp.CSS("#creationArgs"), "arg1"),
	)
	shot(ctx, "02-new-filled")
	created := time.Now()
	step("create", time.Minute, chromedp.Click(`//button[text()="Create"]`), chromedp.WaitVisible(chromedp.CSS("dl.details")))
	if got, want := text("create notice", `//p[@class="notice"]`), "Create of "+name+" requested."; got != want {
		t.Errorf("notice after create = %q, want %q", got, want)
	}
	shot(ctx, "03-details-after-create")

	// The list, left alone: only htmx's refresh of the rows can show the
	// instance's progress.
	step("open the list", time.Minute,
		chromedp.Click(`//nav[@class="main"]/a[text()="Compute instances"]`),
		chromedp.WaitVisible(studioRow(name)))
	state := watchRow(t, ctx, name, snapshotWait+10*time.Minute, "Running", "SetupFailed", "CreateFailed", "Unusable")
	t.Logf("create of %s in the studio, to %s in its row: %s", name, state, time.Since(created).Round(time.Second))
	shot(ctx, "04-list-running")
	if state != "Running" {
		t.Fatalf("%s is %s in the list, want Running", name, state)
	}
	if got := domState(t, domain); got != "running" {
		t.Errorf("domain %s is %q while the studio shows Running, want running", domain, got)
	}

	step("open the instance", time.Minute,
		chromedp.Click(`//tbody[@id="rows"]//a[text()="`+name+`"]`),
		chromedp.WaitVisible(`//h1/span[text()="Running"]`),
		chromedp.WaitVisible(chromedp.CSS("dl.details")))
	shot(ctx, "05-details-running")
	step("open the creation script's log", time.Minute,
		chromedp.Click(`//a[text()="Creation script"]`),
		chromedp.WaitVisible(`//h1[text()="Creation script log of `+name+`"]`))
	shot(ctx, "06-creation-log")
	want := "studio-e2e " + name + " arg1"
	if log := text("creation log", `//pre[@class="log"]`); !strings.Contains(log, want) {
		t.Errorf("creation script log page shows:\n%s\nwant the line %q", log, want)
	}

	// Stop, then start, from the instance's page, each after its
	// confirmation; the list shows where they lead.
	for _, act := range []struct{ label, want string }{{"Stop", "Stopped"}, {"Start", "Running"}} {
		step("ask to "+act.label, time.Minute,
			chromedp.Navigate(endpoint+"/studio/computes/"+name),
			chromedp.Click(`//div[@class="actions"]/a[text()="`+act.label+`"]`),
			chromedp.WaitVisible(chromedp.CSS("form.confirm")),
			chromedp.Click(chromedp.CSS("form.confirm button")),
			chromedp.WaitVisible(chromedp.CSS("p.notice")))
		began := time.Now()
		step("the list", time.Minute, chromedp.Navigate(endpoint+"/studio/computes"), chromedp.WaitVisible(studioRow(name)))
		if got := watchRow(t, ctx, name, 10*time.Minute, act.want, "Unusable", "SetupFailed"); got != act.want {
			t.Fatalf("after %s, %s is %s in the list, want %s", act.label, name, got, act.want)
		}
		t.Logf("%s of %s in the studio, to %s in its row: %s", act.label, name, act.want, time.Since(began).Round(time.Second))
		shot(ctx, "06-list-"+strings.ToLower(act.want))
	}

	step("ask to delete", time.Minute,
		chromedp.Navigate(endpoint+"/studio/computes/"+name),
		chromedp.WaitVisible(chromedp.CSS("dl.details")),
		chromedp.Click(`//div[@class="actions"]/a[text()="Delete"]`),
		chromedp.WaitVisible(chromedp.CSS("form.confirm")))
	shot(ctx, "07-confirm-delete")
	deleted := time.Now()
	step("delete", time.Minute, chromedp.Click(chromedp.CSS("form.confirm button")), chromedp.WaitVisible(chromedp.CSS("p.notice")))
	if got, want := text("delete notice", `//p[@class="notice"]`), "Delete of "+name+" requested."; got != want {
		t.Errorf("notice after delete = %q, want %q", got, want)
	}
	shot(ctx, "08-list-deleting")
	if state := watchRow(t, ctx, name, 10*time.Minute); state != "" {
		t.Fatalf("%s is still in the list, %s", name, state)
	}
	t.Logf("delete of %s in the studio, until its row went: %s", name, time.Since(deleted).Round(time.Second))
	step("the empty list", 30*time.Second, chromedp.WaitVisible(`//td[@class="empty"]`))
	shot(ctx, "09-list-after-delete")
	if left := homeDomains(t, home); len(left) > 0 {
		t.Errorf("libvirt domains of the server left after the delete: %v", left)
	}
}

// watchRow follows the state of the instance's row in the list the
// browser shows, logging each change, until it is one of states (none:
// until the row is gone), for at most d. It returns the last state seen,
// "" once the row is gone. On a timeout it reloads the list, to tell a
// slow operation from a list that stopped refreshing.
func watchRow(t *testing.T, ctx context.Context, name string, d time.Duration, states ...string) string {
	t.Helper()
	start, deadline := time.Now(), time.Now().Add(d)
	last := "(not read)"
	for {
		// One evaluation, not a query retried by chromedp: a missing row
		// is an answer here.
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
			for (const tr of document.querySelectorAll("tbody#rows tr")) {
				const a = tr.querySelector("th a");
				if (a && a.textContent === `+jsString(name)+`) {
					const s = tr.querySelector("span.state");
					return s ? s.textContent : "(no state)";
				}
			}
			return "";
		})()`))
		if err != nil {
			t.Fatalf("read the row of %s: %v", name, err)
		}
		if got != last {
			t.Logf("%s in the list after %s: %q", name, time.Since(start).Round(time.Second), got)
			last = got
		}
		if got == "" && len(states) == 0 {
			return ""
		}
		for _, s := range states {
			if got == s {
				return got
			}
		}
		if time.Now().After(deadline) {
			fresh := "(reload failed)"
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := chromedp.Do(rctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("tbody#rows"))); err == nil {
				fresh, _ = chromedp.Run(rctx, chromedp.Evaluate[string](`document.querySelector("tbody#rows").innerText`))
			}
			cancel()
			t.Fatalf("%s still %q in the list after %s; the list reloaded shows:\n%s", name, got, d, fresh)
		}
		time.Sleep(2 * time.Second)
	}
}

// jsString quotes s for JavaScript (a compute name has no quote or
// backslash, but a test must not depend on it).
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// studioRow is the list row of the instance called name.
func studioRow(name string) string {
	return `//tbody[@id="rows"]/tr[th/a[text()="` + name + `"]]`
}

// homeDomains lists the libvirt domains of the server whose home is home.
func homeDomains(t *testing.T, home string) []string {
	t.Helper()
	out, err := exec.Command("virsh", "-c", libvirtURI(), "list", "--all", "--name").Output()
	if err != nil {
		t.Fatalf("virsh list: %v", err)
	}
	var mine []string
	for _, line := range strings.Split(string(out), "\n") {
		if name := strings.TrimSpace(line); strings.HasPrefix(name, sim.HomeDomainPrefix(home)) {
			mine = append(mine, name)
		}
	}
	return mine
}

// requireBrowser returns the paths of chromium and certutil, skipping t
// (or failing it, under AMLSIM_E2E_REQUIRED) when either is missing.
func requireBrowser(t *testing.T) (chromium, certutil string) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		skipOrFail(t, "chromium not installed: run fixtures/host/setup.sh (%v)", err)
	}
	certutil, err = exec.LookPath("certutil")
	if err != nil {
		skipOrFail(t, "certutil (libnss3-tools) not installed: run fixtures/host/setup.sh (%v)", err)
	}
	return chromium, certutil
}

// studioBrowser starts headless Chromium trusting the CA in caFile: an
// NSS database in a HOME of its own, so the server's real chain is
// checked and no certificate error is ignored. The browser is running
// when it returns, so callers may bound each action with a timeout of its
// own without stopping the browser.
func studioBrowser(t *testing.T, chromium, certutil, caFile string) context.Context {
	t.Helper()
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + db, "--empty-password"},
		{"-A", "-d", "sql:" + db, "-n", "amlsim-e2e", "-t", "C,,", "-i", caFile},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Env("HOME="+home), chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.WindowSize(1280, 800), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// studioShots saves full-page screenshots where AMLSIM_SCREENSHOTS says,
// else in the test's temporary directory, and logs where.
func studioShots(t *testing.T) func(ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("AMLSIM_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return func(ctx context.Context, name string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
}
