package guest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
)

// Jobs in a real guest: each job gets a directory under jobRoot named by
// its ID (Azure's common runtime keeps a job under /tmp/azureml/cr/j/<id>,
// its working directory exe/wd: AZUREML_CR_EXECUTION_WORKING_DIR_PATH),
// and its command runs there as azureuser in a session of its own,
// detached from the SSH connection that started it, so it runs on while
// amlsim restarts. The runner script writes the command's output to
// std_log.txt and, when it ends, its exit status to exit; amlsim reads
// both over SSH. The boot the job started in is kept (boot): a guest that
// rebooted has lost the command.
const jobRoot = "/tmp/azureml/cr/j"

// jobRunner is the script a job runs under: the job's environment, its
// command by bash in the working directory, output and exit status kept.
const jobRunner = `#!/bin/bash
dir=$(dirname "$0")
cd "$dir/exe/wd" || exit 1
set -a
. "$dir/env"
set +a
bash "$dir/command.sh" >>"$dir/std_log.txt" 2>&1 </dev/null
echo $? >"$dir/exit.tmp" && mv "$dir/exit.tmp" "$dir/exit"
`

// jobDir is where the job's files are in the guest.
func jobDir(job sim.Job) string { return path.Join(jobRoot, job.ID) }

// jobEnv is the environment of a job's command, as `export` lines: what
// Azure ML's common runtime sets (the names seen in a real job's
// environment; there is no official list) and the job's own
// environmentVariables, which win.
func jobEnv(inst sim.Instance, job sim.Job, subscription string) string {
	exp, _ := job.Spec["experimentName"].(string)
	wsScope := "/subscriptions/" + subscription + "/resourceGroups/" + job.Workspace.ResourceGroup +
		"/providers/Microsoft.MachineLearningServices/workspaces/" + job.Workspace.Name
	env := map[string]string{
		"AZUREML_RUN_ID":                        job.Name,
		"AZUREML_ROOT_RUN_ID":                   job.Name,
		"AZUREML_CR_CORRELATION_ID":             job.Name,
		"AZUREML_ARM_SUBSCRIPTION":              subscription,
		"AZUREML_ARM_RESOURCEGROUP":             job.Workspace.ResourceGroup,
		"AZUREML_ARM_WORKSPACE_NAME":            job.Workspace.Name,
		"AZUREML_ARM_PROJECT_NAME":              exp,
		"AZUREML_WORKSPACE_SCOPE":               wsScope,
		"AZUREML_EXPERIMENT_SCOPE":              wsScope + "/experiments/" + exp,
		"AZUREML_CR_EXECUTION_WORKING_DIR_PATH": path.Join(jobDir(job), "exe/wd"),
		"CI_NAME":                               inst.Name,
	}
	for k, v := range job.Variables {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if !validEnvName(k) {
			continue
		}
		fmt.Fprintf(&b, "%s=%s\n", k, shellQuote(env[k]))
	}
	return b.String()
}

func validEnvName(k string) bool {
	for i, c := range k {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return k != ""
}

// StartJob makes the job's directory and starts its runner, unless the
// directory is there already (started before).
func (g *SSH) StartJob(ctx context.Context, inst sim.Instance, job sim.Job) error {
	c, err := g.dial(ctx, inst)
	if err != nil {
		return err
	}
	defer c.Close()
	var files bytes.Buffer
	// One shell reads the three files from stdin, a line of base64 each.
	for _, f := range []string{jobRunner, jobEnv(inst, job, g.Subscription), job.ResolvedCommand() + "\n"} {
		files.WriteString(base64.StdEncoding.EncodeToString([]byte(f)) + "\n")
	}
	script := `set -e
dir=` + shellQuote(jobDir(job)) + `
mkdir -p ` + jobRoot + `
if ! mkdir "$dir" 2>/dev/null; then exit 0; fi
mkdir -p "$dir/exe/wd"
for f in run.sh env command.sh; do
	read -r b
	printf '%s' "$b" | base64 -d >"$dir/$f"
done
chmod +x "$dir/run.sh"
: >"$dir/std_log.txt"
cat /proc/sys/kernel/random/boot_id >"$dir/boot"
setsid "$dir/run.sh" </dev/null >/dev/null 2>&1 &
echo $! >"$dir/pid"
`
	res, err := runBoundedIn(ctx, c, "bash -c "+shellQuote(script), &files)
	if err != nil {
		return fmt.Errorf("start job %s: %w", job.Name, err)
	}
	if res.ExitStatus != 0 {
		return fmt.Errorf("start job %s: exit %d: %s", job.Name, res.ExitStatus, bytes.TrimSpace(res.Stderr))
	}
	return nil
}

// jobPollInterval is how often a running job's output and status are read;
// jobReadMax bounds the output read at once.
const (
	jobPollInterval = time.Second
	jobReadMax      = 1 << 20
)

// jobPoll prints the job's state ("exit N", "running" or "lost": its
// directory is gone, the guest rebooted since it started, or its runner
// died without an exit status), then its output from byte OFFSET+1 on,
// at most jobReadMax bytes.
const jobPoll = `d=%s
state() {
	if [ -e "$d/exit" ]; then printf 'exit %%s\n' "$(cat "$d/exit")"
	elif [ ! -e "$d/boot" ] || [ "$(cat "$d/boot")" != "$(cat /proc/sys/kernel/random/boot_id)" ]; then echo lost
	elif kill -0 "$(cat "$d/pid" 2>/dev/null)" 2>/dev/null; then echo running
	elif [ -e "$d/exit" ]; then printf 'exit %%s\n' "$(cat "$d/exit")"
	else echo lost
	fi
}
state
tail -c +%d "$d/std_log.txt" 2>/dev/null | head -c %d
`

// WaitJob copies the job's output to out and waits for its exit status.
func (g *SSH) WaitJob(ctx context.Context, inst sim.Instance, job sim.Job, out io.Writer, offset int64) (int, error) {
	c, err := g.dial(ctx, inst)
	if err != nil {
		return 0, err
	}
	defer func() { c.Close() }()
	for {
		res, err := runBounded(ctx, c, "bash -c "+shellQuote(fmt.Sprintf(jobPoll, shellQuote(jobDir(job)), offset+1, jobReadMax)))
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			// One new connection: a guest that went away fails it.
			nc, derr := g.dial(ctx, inst)
			if derr != nil {
				return 0, fmt.Errorf("job %s: the guest stopped answering: %w", job.Name, err)
			}
			c.Close()
			c = nc
		} else {
			state, output, _ := bytes.Cut(res.Stdout, []byte("\n"))
			if len(output) > 0 {
				if _, err := out.Write(output); err != nil {
					return 0, err
				}
				offset += int64(len(output))
			}
			full := len(output) == jobReadMax // more to read before the end counts
			switch s := string(state); {
			case s == "lost":
				return 0, fmt.Errorf("job %s: the guest no longer runs its command (it restarted, or the command's runner died)", job.Name)
			case strings.HasPrefix(s, "exit ") && !full:
				n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(s, "exit ")))
				if err != nil {
					return 0, fmt.Errorf("job %s: exit status %q", job.Name, s)
				}
				return n, nil
			}
			if full {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(jobPollInterval):
		}
	}
}

// StopJob ends the job's command: SIGTERM to its session, SIGKILL ten
// seconds later; the exit status is 128 plus the signal's number, as
// bash reports a command killed so.
func (g *SSH) StopJob(ctx context.Context, inst sim.Instance, job sim.Job) (int, error) {
	c, err := g.dial(ctx, inst)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	script := `d=` + shellQuote(jobDir(job)) + `
[ -e "$d/exit" ] && { cat "$d/exit"; exit 0; }
pid=$(cat "$d/pid" 2>/dev/null) || { echo 143; exit 0; }
kill -TERM -- "-$pid" 2>/dev/null
for i in $(seq 100); do kill -0 -- "-$pid" 2>/dev/null || { echo 143 >"$d/exit"; echo 143; exit 0; }; sleep 0.1; done
kill -KILL -- "-$pid" 2>/dev/null
echo 137 >"$d/exit"; echo 137
`
	res, err := runBounded(ctx, c, "bash -c "+shellQuote(script))
	if err != nil {
		return 0, fmt.Errorf("stop job %s: %w", job.Name, err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
	if err != nil {
		return 0, fmt.Errorf("stop job %s: %q", job.Name, res.Stdout)
	}
	return code, nil
}

func (g *SSH) dial(ctx context.Context, inst sim.Instance) (*guestssh.Client, error) {
	addr, hk, err := sshEndpoint(inst)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return guestssh.WaitForSSH(ctx, addr, User, g.Key.Signer(), hk)
}

// The fake driver runs no command. A job's environmentVariables set what
// its simulated run does: AMLSIM_FAKE_OUTPUT (printed), AMLSIM_FAKE_DURATION
// (how long it runs, a Go duration; default 1s) and AMLSIM_FAKE_EXIT_CODE
// (default 0).
const (
	FakeOutputVar   = "AMLSIM_FAKE_OUTPUT"
	FakeDurationVar = "AMLSIM_FAKE_DURATION"
	FakeExitCodeVar = "AMLSIM_FAKE_EXIT_CODE"
)

// StartJob has nothing to start: the run is simulated by WaitJob.
func (Fake) StartJob(context.Context, sim.Instance, sim.Job) error { return nil }

// WaitJob simulates the job's run: it says what would run, prints
// AMLSIM_FAKE_OUTPUT, and ends after AMLSIM_FAKE_DURATION with
// AMLSIM_FAKE_EXIT_CODE. A domain that stops meanwhile fails it.
func (f Fake) WaitJob(ctx context.Context, inst sim.Instance, job sim.Job, out io.Writer, offset int64) (int, error) {
	d, code := time.Second, 0
	if v, ok := job.Variables[FakeDurationVar]; ok {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("%s=%q: %w", FakeDurationVar, v, err)
		}
	}
	if v, ok := job.Variables[FakeExitCodeVar]; ok {
		var err error
		if code, err = strconv.Atoi(v); err != nil {
			return 0, fmt.Errorf("%s=%q: %w", FakeExitCodeVar, v, err)
		}
	}
	if offset == 0 {
		fmt.Fprintf(out, "amlsim: the fake driver runs no command; in a compute instance this job would run:\n%s\n", job.ResolvedCommand())
		if o := job.Variables[FakeOutputVar]; o != "" {
			fmt.Fprintln(out, o)
		}
	}
	// After a restart of the simulator the run starts over.
	deadline := time.Now().Add(d)
	for {
		dom, err := f.Driver.Lookup(ctx, inst.Domain)
		if err != nil {
			return 0, err
		}
		if dom.State != hypervisor.StateRunning {
			return 0, fmt.Errorf("domain %s is %s", inst.Domain, dom.State)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return code, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(min(left, 50*time.Millisecond)):
		}
	}
}

// StopJob has nothing to stop: the run was simulated.
func (Fake) StopJob(context.Context, sim.Instance, sim.Job) (int, error) { return 143, nil }
