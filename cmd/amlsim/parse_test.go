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
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseInterspersed(t *testing.T) {
	v := verb{name: "x", args: "NAME", setup: func(c *command) runFunc { return nil }}
	for _, args := range [][]string{
		{"ci1", "--size", "S", "--no-wait"},
		{"--size", "S", "ci1", "--no-wait"},
		{"--size=S", "--no-wait", "ci1"},
	} {
		c := newCommand("x", v)
		size := c.fs.String("size", "", "")
		noWait := c.fs.Bool("no-wait", false, "")
		pos, rest, err := c.parse(args)
		if err != nil {
			t.Fatalf("parse %q: %v", args, err)
		}
		if len(pos) != 1 || pos[0] != "ci1" || *size != "S" || !*noWait || len(rest) != 0 {
			t.Errorf("parse %q = pos %q size %q no-wait %v rest %q, want [ci1] S true []", args, pos, *size, *noWait, rest)
		}
	}
	c := newCommand("x", v)
	pos, rest, err := c.parse([]string{"ci1", "--", "ls", "-la", "--size"})
	if err != nil || len(pos) != 1 || strings.Join(rest, " ") != "ls -la --size" {
		t.Errorf("parse with -- = %q %q %v, want [ci1] and everything after -- untouched", pos, rest, err)
	}
	var ce *cliError
	if _, _, err := newCommand("x", v).parse([]string{"--nope"}); !errors.As(err, &ce) || ce.Status != exitUsage {
		t.Errorf("unknown flag: %v, want a usage error", err)
	}
	if _, _, err := newCommand("x", v).parse([]string{"-o", "yaml"}); !errors.As(err, &ce) || ce.Status != exitUsage {
		t.Errorf("--output yaml: %v, want a usage error", err)
	}
}

func TestExitStatusOf(t *testing.T) {
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
	a := "ssh-ed25519 AAAAkey one@host"
	if !sameKey(a, "ssh-ed25519 AAAAkey other-comment\n") {
		t.Error("keys differing in comment only should match")
	}
	if sameKey(a, "ssh-ed25519 AAAAother one@host") || sameKey(a, "") {
		t.Error("different keys should not match")
	}
}

func TestFollow(t *testing.T) {
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
		if r.URL.Query().Get("api-version") != apiVersion {
			t.Errorf("api-version = %q, want %q", r.URL.Query().Get("api-version"), apiVersion)
		}
		a := answers[0]
		if len(answers) > 1 {
			answers = answers[1:]
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	defer srv.Close()
	cl := &client{base: srv.URL, http: srv.Client()}
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
	start := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	polls := 0
	var mu sync.Mutex
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
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
	cl := &client{base: srv.URL, http: srv.Client()}
	for _, tty := range []bool{false, true} {
		mu.Lock()
		polls = 0
		mu.Unlock()
		var out bytes.Buffer
		p := &progress{w: &out, tty: tty, name: "ci1"}
		err := cl.wait(context.Background(), p, srv.URL+"/op", "/c")
		var ce *cliError
		if !errors.As(err, &ce) || ce.Code != "SetupScriptFailed" || ce.Status != exitFailed {
			t.Fatalf("tty=%v: wait = %v, want the operation's SetupScriptFailed with exit status 1", tty, err)
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
