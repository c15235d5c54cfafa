package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/amlsim/amlsim/sim/auth"
)

// TestParseInterspersed: positional arguments may come before, between
// or after flags, and everything after "--" is the verb's, untouched.
func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"compute", "ssh", "ci1", "--ssh-key", "K", "--print"},
		{"compute", "ssh", "--ssh-key", "K", "ci1", "--print"},
		{"compute", "ssh", "--ssh-key=K", "--print", "ci1"},
	} {
		cmd, rest, err := newRootCommand().Find(args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatalf("parse %q: %v", args, err)
		}
		key, _ := cmd.Flags().GetString("ssh-key")
		print, _ := cmd.Flags().GetBool("print")
		if pos := cmd.Flags().Args(); len(pos) != 1 || pos[0] != "ci1" || key != "K" || !print {
			t.Errorf("parse %q = %q key %q print %v, want [ci1] K true", args, pos, key, print)
		}
	}
	cmd, rest, _ := newRootCommand().Find([]string{"compute", "ssh", "ci1", "--", "ls", "-la", "--size"})
	if err := cmd.ParseFlags(rest); err != nil || strings.Join(cmd.Flags().Args(), " ") != "ci1 ls -la --size" || cmd.ArgsLenAtDash() != 1 {
		t.Errorf("parse with -- = %q at %d (%v), want ci1 then everything after -- untouched", cmd.Flags().Args(), cmd.ArgsLenAtDash(), err)
	}
	var stderr bytes.Buffer
	for _, args := range [][]string{
		{"compute", "show", "ci1", "--nope"},
		{"compute", "show", "ci1", "-o", "xml"},
		{"compute", "show", "ci1", "--", "x"},
		{"compute", "nope"},
		{"nope"},
	} {
		root := newRootCommand()
		root.SetErr(&stderr)
		root.SetArgs(args)
		var ce *cliError
		if err := root.Execute(); !errors.As(err, &ce) || ce.Status != exitUsage {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

func TestExitStatusOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		code   string
		want   int
	}{
		{404, "ResourceNotFound", exitNotFound},
		{409, "StartComputeInstanceOnlyAllowedInStoppedState", exitConflict},
		{400, "QuotaExceeded", exitQuota},
		{0, "QuotaExceeded", exitQuota},
		{400, "InvalidResourceName", exitFailed},
		{401, "InvalidAuthenticationToken", exitAuth},
		{500, "InternalServerError", exitFailed},
		{0, "SetupScriptFailed", exitFailed},
	} {
		if got := exitStatusOf(tc.status, tc.code); got != tc.want {
			t.Errorf("exitStatusOf(%d, %s) = %d, want %d", tc.status, tc.code, got, tc.want)
		}
	}
}

func TestSameKey(t *testing.T) {
	t.Parallel()
	a := "ssh-ed25519 AAAAkey one@host"
	if !sameKey(a, "ssh-ed25519 AAAAkey other-comment\n") {
		t.Error("keys differing in comment only should match")
	}
	if sameKey(a, "ssh-ed25519 AAAAother one@host") || sameKey(a, "") {
		t.Error("different keys should not match")
	}
}

func TestFollow(t *testing.T) {
	t.Parallel()
	// The log grows twice, is missing once (not written yet), then the
	// instance is deleted: follow prints each new part once and stops.
	answers := []struct {
		status int
		body   string
	}{
		{200, "line 1\n"},
		{200, "line 1\nline 2\n"},
		{404, `{"error":{"code":"LogNotAvailable","message":"no log yet"}}`},
		{200, "line 1\nline 2\nline 3\n"},
		{200, "line 1\nline 2\nline 3\n"},
		{404, `{"error":{"code":"ResourceNotFound","message":"instance gone"}}`},
	}
	var mu sync.Mutex
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Query().Get("api-version") != extensionAPIVersion {
			t.Errorf("api-version = %q, want %q", r.URL.Query().Get("api-version"), extensionAPIVersion)
		}
		a := answers[0]
		if len(answers) > 1 {
			answers = answers[1:]
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	defer srv.Close()
	cl := testClient(t, srv)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.follow(ctx, &stdout, &stderr, "/log", 0, time.Millisecond); err != nil {
		t.Fatalf("follow: %v", err)
	}
	if got, want := stdout.String(), "line 1\nline 2\nline 3\n"; got != want {
		t.Errorf("followed output = %q, want %q", got, want)
	}
	if got := stderr.String(); got != "instance gone\n" {
		t.Errorf("stderr = %q, want the reason following stopped", got)
	}
}

func TestWaitFailedOperation(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	polls := 0
	var mu sync.Mutex
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/c":
			// The PUT that started the operation, as ARM answers it.
			w.Header().Set("Azure-AsyncOperation", srv.URL+"/op")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"name":"ci1","properties":{"computeType":"ComputeInstance"}}`)
		case "/op":
			polls++
			if polls < 3 {
				fmt.Fprintf(w, `{"status":"InProgress","startTime":%q}`, start.Format(time.RFC3339Nano))
				return
			}
			fmt.Fprintf(w, `{"status":"Failed","startTime":%q,"error":{"code":"SetupScriptFailed","message":"creation script exited with 3"}}`, start.Format(time.RFC3339Nano))
		case "/c/amlsim/events":
			// An event of an earlier operation, then this one's.
			io.WriteString(w, `{"state":"SetupFailed","value":[
				{"time":"2026-11-27T07:00:00Z","state":"Running","message":"Creating done: Running"},
				{"time":"2026-11-27T08:00:00Z","state":"Creating","message":"Create requested by amlsim owner"},
				{"time":"2026-11-27T08:00:40Z","state":"SetupFailed","message":"Creating failed: creation script exited with 3"}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	cl := testClient(t, srv)
	for _, tty := range []bool{false, true} {
		mu.Lock()
		polls = 0
		mu.Unlock()
		req, err := runtime.NewRequest(context.Background(), http.MethodPut, srv.URL+"/c")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cl.arm.Pipeline().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		poller, err := runtime.NewPoller[struct{}](resp, cl.arm.Pipeline(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		p := &progress{w: &out, tty: tty, name: "ci1"}
		_, err = waitFor(context.Background(), cl, p, poller, "/c")
		var ce *cliError
		if !errors.As(err, &ce) || ce.Code != "SetupScriptFailed" || ce.Status != exitFailed || ce.Message != "creation script exited with 3" {
			t.Fatalf("tty=%v: wait = %#v, want the operation's SetupScriptFailed and message with exit status 1", tty, err)
		}
		got := out.String()
		if strings.Contains(got, "07:00:00Z") {
			t.Errorf("tty=%v: an earlier operation's event was shown:\n%s", tty, got)
		}
		if !regexp.MustCompile(`ci1: SetupFailed after [0-9.]+m?s\n$`).MatchString(got) {
			t.Errorf("tty=%v: output does not end with the final state:\n%q", tty, got)
		}
		if tty {
			if !strings.Contains(got, "\r\033[Kci1: SetupFailed - Creating failed: creation script exited with 3 (0s)") {
				t.Errorf("tty: no live line:\n%q", got)
			}
			if strings.Contains(got, "2026-11-27T08:00:00Z") {
				t.Errorf("tty: plain event lines on a terminal:\n%q", got)
			}
		} else {
			want := "2026-11-27T08:00:00Z Creating Create requested by amlsim owner\n2026-11-27T08:00:40Z SetupFailed Creating failed: creation script exited with 3\n"
			if !strings.HasPrefix(got, want) {
				t.Errorf("plain progress = %q, want it to start with %q", got, want)
			}
		}
	}
}

// testClient is a client of srv (a stand-in server) through the SDK's
// pipeline, with a token no one checks.
func testClient(t *testing.T, srv *httptest.Server) *client {
	t.Helper()
	opts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: srv.URL, Audience: "https://management.azure.com"}}},
		Transport: srv.Client(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
	signer, err := auth.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cred := signer.Credential("11111111-1111-1111-1111-111111111111", "", "")
	a, err := arm.NewClient("amlsim-cli-test", "v1.0.0", cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &client{base: srv.URL, arm: a, cred: cred}
}

func TestFitLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line  string
		width int
		want  string
	}{
		{"ci1: Creating - VM started (3s)", 0, "ci1: Creating - VM started (3s)"},
		{"ci1: Creating - VM started (3s)", 80, "ci1: Creating - VM started (3s)"},
		{"ci1: Creating - VM started (3s)", 12, "ci1: Creat…"},
		{"ci1: é é é", 6, "ci1:…"},
	} {
		if got := fitLine(tc.line, tc.width); got != tc.want {
			t.Errorf("fitLine(%q, %d) = %q, want %q", tc.line, tc.width, got, tc.want)
		}
	}
}

// TSV as az prints it: one line per element, scalar fields only, in
// order, empty ones kept so the columns line up.
func TestPrintTSV(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	list := []instance{
		{Name: "a", State: "Running", Description: "two words", CreatedOn: created, SSH: sshAccess{Enabled: true}},
		{Name: "b", State: "Stopped", CreatedOn: created},
	}
	var out bytes.Buffer
	if err := printTSV(&out, list); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("tsv = %q, want two lines", out.String())
	}
	a, b := strings.Split(lines[0], "\t"), strings.Split(lines[1], "\t")
	if len(a) != len(b) || a[0] != "a" || a[1] != "Running" || b[0] != "b" || !slices.Contains(a, "two words") || !slices.Contains(b, "2026-11-27T08:00:00Z") {
		t.Errorf("tsv rows %q and %q: want the same columns, names first, the description and createdOn", a, b)
	}
	out.Reset()
	printTSV(&out, map[string]any{"name": "a", "deleted": true})
	if out.String() != "true\ta\n" {
		t.Errorf("tsv of a map = %q, want its values in key order", out.String())
	}
}
