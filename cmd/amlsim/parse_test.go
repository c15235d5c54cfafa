package main

import (
	"errors"
	"strings"
	"testing"
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

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 5, "a\nb\nc\n"},
		{"a\nb\nc\n", 0, ""},
		{"", 3, ""},
	} {
		if got := string(lastLines([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
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
		{400, "InvalidComputeName", exitFailed},
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
