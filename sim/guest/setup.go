package guest

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/amlsim/amlsim/cloudinit"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
)

// Where things are in the guest.
const (
	// SharePath is where the workspace file share is mounted, as on Azure.
	SharePath = "/home/azureuser/cloudfiles/code"
	// clusterMounts is Azure's other path to the share; inline scripts run
	// in its Users folder.
	clusterMounts = "/mnt/batch/tasks/shared/LS_root/mounts/clusters"
	runnerPath    = "/var/lib/cloud/scripts/per-boot/amlsim-setup"
	mountPath     = "/var/lib/cloud/scripts/per-boot/amlsim-00-mount"
	confDir       = "/etc/amlsim"
	scriptDir     = "/var/lib/amlsim/scripts"
	stateDir      = "/var/lib/amlsim"
)

//go:embed setup.sh
var runner []byte

// shellQuote quotes s for bash, whatever bytes it holds.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// setupFiles returns the seed files and boot commands that make the guest
// run the instance's setup scripts as Azure does.
func setupFiles(inst sim.Instance) (files []cloudinit.File) {
	name := strings.ToLower(inst.Name)
	clusterCode := path.Join(clusterMounts, name, "code")
	if inst.Share != "" {
		// Mounted by a per-boot script, not by bootcmd: bootcmd runs before
		// cloud-init creates azureuser, and a mount point made then would
		// leave /home/azureuser owned by root. Per-boot scripts run in
		// name order, so the share is there before the setup scripts.
		mount := fmt.Sprintf(mountScript, shellQuote(User), shellQuote(SharePath), shellQuote(sim.ShareTag),
			shellQuote(path.Join(clusterMounts, name)), shellQuote(clusterCode))
		files = append(files, cloudinit.File{Path: mountPath, Content: []byte(mount), Permissions: "0755"})
	}
	// The runner is there even without scripts: a fault rule can give a
	// start a startup script (sim.InjectedStartupFault).
	logDir := path.Join(SharePath, "Logs", inst.Name)
	faultFile := path.Join(logDir, sim.InjectedStartupFault(inst.ID))
	if inst.Share == "" {
		logDir, faultFile = "/var/log/amlsim", ""
	}
	env := fmt.Sprintf("CI_RESOURCE_GROUP=%s\nCI_WORKSPACE=%s\nCI_NAME=%s\nCI_LOCAL_UBUNTU_USER=%s\nLOG_DIR=%s\nFAULT_FILE=%s\n",
		shellQuote(inst.Workspace.ResourceGroup), shellQuote(inst.Workspace.Name), shellQuote(inst.Name), shellQuote(User), shellQuote(logDir), shellQuote(faultFile))
	files = append(files,
		cloudinit.File{Path: runnerPath, Content: runner, Permissions: "0755"},
		cloudinit.File{Path: confDir + "/env", Content: []byte(env)})
	for _, sc := range inst.Scripts {
		if sc.Missing != "" {
			continue // cannot be found: the host fails the setup (sim.Script.Missing)
		}
		var script, workdir string
		switch sc.Source {
		case sim.SourceInline:
			script = path.Join(scriptDir, string(sc.Kind)+".sh")
			workdir = path.Join(clusterCode, "Users")
			files = append(files, cloudinit.File{Path: script, Content: sc.Data, Permissions: "0755"})
		default:
			script = path.Join(SharePath, sc.Path)
			workdir = path.Dir(script)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "SCRIPT=%s\nWORKDIR=%s\nTIMEOUT=%s\nARGS=(", shellQuote(script), shellQuote(workdir), shellQuote(sc.Timeout))
		for i, a := range sc.Args {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(shellQuote(a))
		}
		b.WriteString(")\n")
		files = append(files, cloudinit.File{Path: path.Join(confDir, string(sc.Kind)+".conf"), Content: []byte(b.String())})
	}
	return files
}

// mountScript mounts the workspace share at every boot, as Azure mounts the
// Notebooks file share, at SharePath and (a link) under clusterMounts.
// Arguments: user, share path, tag, cluster dir, cluster code link.
const mountScript = `#!/bin/sh
# amlsim: mount the workspace file share (virtio-fs) at every boot.
set -e
user=%s share=%s tag=%s
install -d -o "$user" -g "$user" "$(dirname "$share")"
mkdir -p "$share"
mountpoint -q "$share" || mount -t virtiofs "$tag" "$share"
mkdir -p %s
ln -sfn "$share" %s
`

// statusCmd prints the setup status of the current boot.
const statusCmd = `cat ` + stateDir + `/setup-"$(cat /proc/sys/kernel/random/boot_id)".status 2>/dev/null; true`

// commandTimeout bounds one short command, so that a guest which stops
// answering (it rebooted under the connection, say) fails the poll instead
// of holding it for as long as ctx lasts.
const commandTimeout = time.Minute

func runBounded(ctx context.Context, c *guestssh.Client, cmd string) (guestssh.Result, error) {
	return runBoundedIn(ctx, c, cmd, nil)
}

// runBoundedIn is runBounded with the command's stdin.
func runBoundedIn(ctx context.Context, c *guestssh.Client, cmd string, stdin io.Reader) (guestssh.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	return c.Run(ctx, cmd, stdin)
}

// RunSetup polls the guest over SSH until the setup runner of its current
// boot is done, then judges each script by its own exit status.
func (g *SSH) RunSetup(ctx context.Context, inst sim.Instance, report func(string)) ([]sim.ScriptRun, error) {
	addr, hk, err := sshEndpoint(inst)
	if err != nil {
		return nil, err
	}
	c, err := guestssh.WaitForSSH(ctx, addr, User, g.Key.Signer(), hk)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	started := map[string]bool{}
	for {
		res, err := runBounded(ctx, c, statusCmd)
		if err != nil {
			return nil, fmt.Errorf("read setup status: %w", err)
		}
		st := parseStatus(string(res.Stdout))
		for _, k := range st.started {
			if !started[k] {
				started[k] = true
				report(k + " script running")
			}
		}
		if st.done {
			var failed *sim.SetupError
			for i := range st.runs {
				run := &st.runs[i]
				if rel, ok := strings.CutPrefix(run.Log, SharePath+"/"); ok {
					run.Log = rel
					if inst.Share != "" {
						run.HostLog = filepath.Join(inst.Share, filepath.FromSlash(rel))
					}
				}
				if run.ExitCode == 0 {
					report(fmt.Sprintf("%s script succeeded in %s", run.Kind, run.Duration.Round(100*time.Millisecond)))
					continue
				}
				if sc := inst.Script(run.Kind); sc != nil {
					limit := sim.TimeoutDuration(sc.Timeout)
					run.TimedOut = limit > 0 && (run.ExitCode == 124 || (run.ExitCode == 137 && run.Duration >= limit))
				}
				guestLog := run.Log
				if !strings.HasPrefix(guestLog, "/") {
					guestLog = SharePath + "/" + guestLog
				}
				if tail, err := runBounded(ctx, c, "tail -n 20 "+shellQuote(guestLog)); err == nil {
					run.Tail = strings.ToValidUTF8(string(tail.Stdout), "\uFFFD")
				}
				if failed == nil {
					failed = &sim.SetupError{Run: *run}
				}
			}
			if failed != nil {
				return st.runs, failed
			}
			return st.runs, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("setup scripts of %s did not finish: %w", inst.Name, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

type setupStatus struct {
	started []string
	runs    []sim.ScriptRun
	done    bool
}

// parseStatus reads the runner's status file: "start KIND LOG", "exit KIND
// CODE MILLIS LOG", then "done".
func parseStatus(s string) setupStatus {
	var st setupStatus
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 5)
		switch {
		case len(f) >= 2 && f[0] == "start":
			st.started = append(st.started, f[1])
		case len(f) == 5 && f[0] == "exit":
			code, _ := strconv.Atoi(f[2])
			ms, _ := strconv.Atoi(f[3])
			st.runs = append(st.runs, sim.ScriptRun{Kind: sim.ScriptKind(f[1]), ExitCode: code, Duration: time.Duration(ms) * time.Millisecond, Log: f[4]})
		case f[0] == "done":
			st.done = true
		}
	}
	return st
}

// RunSetup reports that the fake driver runs no scripts.
func (Fake) RunSetup(_ context.Context, _ sim.Instance, report func(string)) ([]sim.ScriptRun, error) {
	report("setup scripts are not run by the fake driver")
	return nil, nil
}
