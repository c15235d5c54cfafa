package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/spf13/cobra"
)

// newSetupScriptCommand is `amlsim setup-script`.
func newSetupScriptCommand(g *globals) *cobra.Command {
	cmd := newGroupCommand("setup-script", "Reproduce a setup script run on a throwaway instance")
	clientFlags(cmd, cmd.PersistentFlags(), g)
	cmd.AddCommand(newSetupScriptRunCommand(g))
	return cmd
}

const setupScriptRunSummary = `Reproduce a setup script run: create a throwaway instance with FILE as its
creation script, stream the script's output as it runs, and exit with the
script's exit status (124 when it overran --timeout).

The script runs as on Azure ML: as root, through cloud-init, in
/mnt/batch/tasks/shared/LS_root/mounts/clusters/NAME/code/Users, with ARGS
as $1, $2, … and the CI_* variables. When it fails the instance is kept for
inspection and the way in is printed; when it succeeds the instance is
deleted unless --keep is given.`

func newSetupScriptRunCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run FILE [-- ARGS...]",
		Short: "Run a script as a new instance's creation script, streaming its output",
		Long:  setupScriptRunSummary,
		Args:  leadingArg("FILE"),
	}
	ws := workspaceFlags(cmd, g)
	f := cmd.Flags()
	size := f.String("size", "Standard_DS1_v2", "VM `SIZE` of the throwaway instance")
	name := f.String("name", "", "instance `NAME` (default: repro followed by random letters)")
	timeout := f.String("timeout", "", "`DURATION` the script may run, such as 10m")
	keep := f.Bool("keep", false, "keep the instance even when the script succeeds")
	key := f.String("ssh-key", "", "public key `FILE` (.pub) to log in with afterwards")
	cmd.MarkFlagFilename("ssh-key")
	cmd.RegisterFlagCompletionFunc("size", completeSizes(g))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
		file, scriptArgs := args[0], args[1:]
		ref, err := inlineScript(file, shellJoin(scriptArgs), *timeout)
		if err != nil {
			return err
		}
		if *name == "" {
			*name = "repro" + randomLetters(6)
		}
		props := &ml.ComputeInstanceProperties{VMSize: size, SetupScripts: &ml.SetupScripts{Scripts: &ml.ScriptsToExecute{CreationScript: ref}}}
		pub, err := publicKey(*key)
		if err != nil {
			return err
		}
		if pub != "" {
			props.SSHSettings = &ml.ComputeInstanceSSHSettings{SSHPublicAccess: to(ml.SSHPublicAccessEnabled), AdminPublicKey: &pub}
		}
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		path := cl.computePath(ws, *name)
		computes := cl.ml.NewComputeClient()
		poller, err := computes.BeginCreateOrUpdate(ctx, ws.rg, ws.name, *name, ml.ComputeResource{Properties: &ml.ComputeInstance{
			ComputeType: to(ml.ComputeTypeComputeInstance), Properties: props}}, nil)
		if err != nil {
			return cl.failure(ctx, err)
		}
		fmt.Fprintf(stderr, "amlsim: running %s on a new instance %s (%s)\n", file, *name, *size)

		// Stream the script's log while the operation runs.
		streamCtx, stopStream := context.WithCancel(ctx)
		streamed := make(chan int, 1)
		go func() { streamed <- cl.streamLog(streamCtx, stdout, path+"/amlsim/logs/setup") }()
		// Boot progress goes to stderr; the script's output to stdout.
		// Plain lines, not a live one: the script's output interleaves.
		p := &progress{w: stderr, name: *name}
		_, waitErr := waitFor(ctx, cl, p, poller, path)
		stopStream()
		printed := <-streamed
		// What the script wrote after the last poll.
		if r, err := cl.do(ctx, http.MethodGet, path+"/amlsim/logs/setup", nil, nil); err == nil && len(r.body) > printed {
			stdout.Write(r.body[printed:])
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
		fmt.Fprintf(stderr, "amlsim: %s exited with %d after %.1fs; log: %s\n", file, run.ExitCode, run.Seconds, where)
		if status == 0 && !*keep {
			if _, err := computes.BeginDelete(ctx, ws.rg, ws.name, *name, ml.UnderlyingResourceActionDelete, nil); err != nil {
				return cl.failure(ctx, err)
			}
			fmt.Fprintf(stderr, "amlsim: deleting %s (use --keep to keep it)\n", *name)
			return nil
		}
		how := fmt.Sprintf("amlsim compute ssh %s", *name)
		if pub == "" {
			how = "SSH public access is off (no key given or found); look with: amlsim compute logs " + *name + " --setup"
		}
		fmt.Fprintf(stderr, "amlsim: instance %s is kept for inspection: %s\namlsim: delete it with: amlsim compute delete %s --yes\n", *name, how, *name)
		if status == 0 {
			return nil
		}
		return &exitCodeError{code: status}
	}
	return cmd
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
