package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// setupScriptVerbs are the verbs of `amlsim setup-script`.
func setupScriptVerbs() []verb { return []verb{setupScriptRunVerb} }

// setupScript runs `amlsim setup-script VERB …`.
func setupScript(args []string) error { return dispatch("setup-script", setupScriptVerbs(), args) }

var setupScriptRunVerb = verb{
	name:        "run",
	args:        "FILE [flags] [-- ARGS…]",
	passthrough: true,
	summary: `Reproduce a setup script run: create a throwaway instance with FILE as its
creation script, stream the script's output as it runs, and exit with the
script's exit status (124 when it overran --timeout).

The script runs as on Azure ML: as root, through cloud-init, in
/mnt/batch/tasks/shared/LS_root/mounts/clusters/NAME/code/Users, with ARGS
as $1, $2, … and the CI_* variables. When it fails the instance is kept for
inspection and the way in is printed; when it succeeds the instance is
deleted unless --keep is given.`,
	setup: func(c *command) runFunc {
		ws := c.workspaceFlags()
		size := c.fs.String("size", "Standard_DS1_v2", "VM `SIZE` of the throwaway instance")
		name := c.fs.String("name", "", "instance `NAME` (default: repro followed by random letters)")
		timeout := c.fs.String("timeout", "", "`DURATION` the script may run, such as 10m")
		keep := c.fs.Bool("keep", false, "keep the instance even when the script succeeds")
		key := c.fs.String("ssh-key", "", "public key `FILE` (.pub) to log in with afterwards")
		return func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return usageErrorf("missing FILE (usage: amlsim %s %s)", c.path, c.args)
			}
			file, scriptArgs := args[0], args[1:]
			ref, err := inlineScript(file, shellJoin(scriptArgs), *timeout)
			if err != nil {
				return err
			}
			if *name == "" {
				*name = "repro" + randomLetters(6)
			}
			props := map[string]any{"vmSize": *size, "setupScripts": map[string]any{"scripts": map[string]any{"creationScript": ref}}}
			pub, err := publicKey(*key)
			if err != nil {
				return err
			}
			if pub != "" {
				props["sshSettings"] = map[string]string{"sshPublicAccess": "Enabled", "adminPublicKey": pub}
			}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			path := cl.computePath(ws, *name)
			resp, err := cl.do(ctx, http.MethodPut, path, nil, map[string]any{"properties": map[string]any{"computeType": "ComputeInstance", "properties": props}})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stderr, "amlsim: running %s on a new instance %s (%s)\n", file, *name, *size)

			// Stream the script's log while the operation runs.
			streamCtx, stopStream := context.WithCancel(ctx)
			streamed := make(chan int, 1)
			go func() { streamed <- cl.streamLog(streamCtx, c.stdout, path+"/amlsim/logs/setup") }()
			// Boot progress goes to stderr; the script's output to stdout.
			// Plain lines, not a live one: the script's output interleaves.
			p := &progress{w: c.stderr, name: *name}
			waitErr := cl.wait(ctx, p, resp.header.Get("Azure-AsyncOperation"), path)
			stopStream()
			printed := <-streamed
			// What the script wrote after the last poll.
			if r, err := cl.do(ctx, http.MethodGet, path+"/amlsim/logs/setup", nil, nil); err == nil && len(r.body) > printed {
				c.stdout.Write(r.body[printed:])
			}

			var ev eventList
			if err := cl.getJSON(ctx, path+"/amlsim/events", nil, &ev); err != nil {
				return errors.Join(waitErr, err)
			}
			var run *scriptRun
			for i := range ev.ScriptRuns {
				if ev.ScriptRuns[i].Kind == "creation" {
					run = &ev.ScriptRuns[i]
				}
			}
			if run == nil {
				// The instance failed before the script ran (or it never
				// reported): the operation's error says why.
				if waitErr == nil {
					waitErr = &cliError{Status: exitFailed, Code: "ScriptNotRun", Message: "the script did not run"}
				}
				return waitErr
			}
			status := run.ExitCode
			if run.TimedOut {
				status = 124
			}
			where := run.Log + " in the workspace file share"
			if run.HostLog != "" {
				where = run.HostLog
			}
			fmt.Fprintf(c.stderr, "amlsim: %s exited with %d after %.1fs; log: %s\n", file, run.ExitCode, run.Seconds, where)
			if status == 0 && !*keep {
				if _, err := cl.do(ctx, http.MethodDelete, path, url.Values{"underlyingResourceAction": {"Delete"}}, nil); err != nil {
					return err
				}
				fmt.Fprintf(c.stderr, "amlsim: deleting %s (use --keep to keep it)\n", *name)
				return nil
			}
			how := fmt.Sprintf("amlsim compute ssh %s", *name)
			if pub == "" {
				how = "SSH public access is off (no key given or found); look with: amlsim compute logs " + *name + " --setup"
			}
			fmt.Fprintf(c.stderr, "amlsim: instance %s is kept for inspection: %s\namlsim: delete it with: amlsim compute delete %s --yes\n", *name, how, *name)
			if status == 0 {
				return nil
			}
			return &exitCodeError{code: status}
		}
	},
}

// scriptRun is a setup script run as the events endpoint reports it.
type scriptRun struct {
	Kind     string  `json:"kind"`
	ExitCode int     `json:"exitCode"`
	TimedOut bool    `json:"timedOut"`
	Seconds  float64 `json:"durationSeconds"`
	Log      string  `json:"log"`
	HostLog  string  `json:"hostLog"`
}

// exitCodeError makes the CLI exit with a status of its own (the script's)
// and print nothing more.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// streamLog polls the log at path and writes what is appended, until ctx
// ends; it returns how many bytes it wrote.
func (c *client) streamLog(ctx context.Context, w io.Writer, path string) int {
	printed := 0
	for {
		select {
		case <-ctx.Done():
			return printed
		case <-time.After(time.Second):
		}
		r, err := c.do(ctx, http.MethodGet, path, nil, nil)
		if err != nil || len(r.body) <= printed {
			continue // not written yet, or nothing new
		}
		w.Write(r.body[printed:])
		printed = len(r.body)
	}
}

// shellJoin quotes args so that the server, splitting the string as a
// shell would, gets them back exactly.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// randomLetters returns n random lowercase letters and digits, starting
// with a letter so that the name never ends in -<digits>.
func randomLetters(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return "x" + hex.EncodeToString(b)[:n-1]
}
