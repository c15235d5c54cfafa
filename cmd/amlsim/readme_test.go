package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeCommands returns the lines of the README's shell blocks that run
// bin/amlsim, continuation lines joined, in the README's order.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	inShell, pending := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fence, ok := strings.CutPrefix(line, "```"); ok {
			inShell = !inShell && (fence == "sh" || fence == "bash")
			continue
		}
		if !inShell {
			continue
		}
		if pending != "" {
			line = pending + " " + strings.TrimSpace(line)
			pending = ""
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		if amlsimCall.MatchString(line) {
			cmds = append(cmds, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}

// amlsimCall finds bin/amlsim run as a command (not bin/amlsim-other).
var amlsimCall = regexp.MustCompile(`(^|[\s(;&|])bin/amlsim\s`)

// TestREADMECommands runs every bin/amlsim command of the README's shell
// blocks, in order, against a server on the fake driver, as a user would
// paste them: the README cannot show a verb or flag the CLI does not
// have. `serve` lines are parsed only (the test's server is that command,
// with the same flags).
func TestREADMECommands(t *testing.T) {
	t.Parallel()
	cmds := readmeCommands(t)
	if len(cmds) < 10 {
		t.Fatalf("found %d bin/amlsim commands in the README, want the dozen it shows: %q", len(cmds), cmds)
	}
	e := newCLIEnv(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e.bin, filepath.Join(dir, "bin", "amlsim")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"setup.sh"} {
		os.WriteFile(filepath.Join(dir, f), []byte("#!/bin/bash\necho set up \"$@\"\n"), 0o755)
	}
	// The README's ssh lines run OpenSSH itself, asked only to resolve
	// its configuration (-G), with $HOME/.ssh/config (OpenSSH reads the
	// passwd entry's home, not $HOME): the options amlsim gives it, and
	// the Host blocks of ssh-config, must be valid and reach the instance.
	realSSH, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatalf("no OpenSSH client (Debian: openssh-client, which fixtures/host/setup.sh installs): %v", err)
	}
	stub := t.TempDir()
	os.WriteFile(filepath.Join(stub, "ssh"), []byte("#!/bin/sh\nexec "+realSSH+" -G -F \"$HOME/.ssh/config\" \"$@\"\n"), 0o755)
	os.WriteFile(filepath.Join(e.userHome, ".ssh", "config"), nil, 0o600)
	env := append(os.Environ(),
		"AMLSIM_ENDPOINT="+e.endpoint, "AMLSIM_HOME="+e.home, "HOME="+e.userHome,
		"PATH="+stub+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AMLSIM_WORKSPACE=", "AMLSIM_RESOURCE_GROUP=", "AMLSIM_USER=", "AMLSIM_LOCATION=")
	t.Logf("%d README commands", len(cmds))
	for _, line := range cmds {
		if strings.Contains(line, "bin/amlsim serve") {
			args := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), "&"))[1:]
			cmd, rest, err := newRootCommand().Find(args)
			if err == nil {
				err = cmd.ParseFlags(rest)
			}
			if err != nil || cmd.Name() != "serve" {
				t.Errorf("README: %s: does not parse as serve: %v", line, err)
			}
			continue
		}
		sh := exec.Command("bash", "-e", "-o", "pipefail", "-c", line)
		sh.Dir, sh.Env = dir, env
		out, err := sh.CombinedOutput()
		// The fake driver runs no scripts: the reproduction says so.
		wantFail := strings.Contains(line, "setup-script run")
		switch {
		case wantFail && !strings.Contains(string(out), "ScriptNotRun"):
			t.Errorf("README: %s: %v, want ScriptNotRun on the fake driver\n%s", line, err, out)
		case !wantFail && err != nil:
			t.Errorf("README: %s: %v\n%s", line, err, out)
		case strings.Contains(line, "ssh amlsim-") || strings.Contains(line, "compute ssh my-ci -- "):
			for _, want := range []string{"\nhostname 127.0.0.1\n", "\nuser azureuser\n", "\nport "} {
				if !strings.Contains("\n"+string(out), want) {
					t.Errorf("README: %s: OpenSSH resolves no %q:\n%s", line, strings.TrimSpace(want), out)
				}
			}
		}
	}
}

// TestDocsAreCurrent: the reference in cmd/amlsim/docs is what `amlsim
// docs` writes now, for any user and environment.
func TestDocsAreCurrent(t *testing.T) {
	t.Parallel()
	bin := cliBinary(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "docs", dir)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "AMLSIM_ENDPOINT=https://elsewhere:1", "AMLSIM_WORKSPACE=other")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("amlsim docs: %v\n%s", err, out)
	}
	fresh, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	kept, _ := filepath.Glob("docs/*.md")
	if len(fresh) != len(kept) || len(fresh) < 30 {
		t.Errorf("amlsim docs wrote %d pages, cmd/amlsim/docs has %d: regenerate with 'go run ./cmd/amlsim docs cmd/amlsim/docs'", len(fresh), len(kept))
	}
	for _, f := range fresh {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join("docs", filepath.Base(f)))
		if err != nil || string(got) != string(want) {
			t.Errorf("docs/%s is not current (%v): regenerate with 'go run ./cmd/amlsim docs cmd/amlsim/docs'", filepath.Base(f), err)
		}
	}
}
