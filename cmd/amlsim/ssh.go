package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/amlsim/amlsim/sim"
)

// knownHostsFile keeps the host keys of instances, in the amlsim home: the
// ports of deleted instances are reused, so the user's own known_hosts
// would soon hold stale keys for 127.0.0.1.
const knownHostsFile = "known_hosts"

var sshVerb = verb{
	name:        "ssh",
	args:        "NAME [flags] [-- COMMAND…]",
	passthrough: true,
	summary: `Log in to a compute instance over SSH, or run COMMAND there.

Runs the system ssh client as azureuser on the instance's forwarded port,
with the private key matching --ssh-key (or the default key whose public
half the instance holds). Host keys are trusted on first use and pinned in
the amlsim home, per instance. The exit status is the remote command's.`,
	setup: func(c *command) runFunc {
		ws := c.workspaceFlags()
		key := c.fs.String("ssh-key", "", "key `FILE` (the private key, or its .pub) to log in with")
		return func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return usageErrorf("missing NAME (usage: amlsim %s %s)", c.path, c.args)
			}
			name, command := args[0], args[1:]
			bin, err := exec.LookPath("ssh")
			if err != nil {
				return &cliError{Status: exitFailed, Code: "SSHClientMissing", Message: "no ssh client in PATH (Debian: apt-get install -y openssh-client)"}
			}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			in, err := cl.getInstance(ctx, ws, name)
			if err != nil {
				return err
			}
			if in.SSH.Enabled && in.SSH.Port == 0 {
				return &cliError{Status: exitAuth, Code: "NotInstanceOwner",
					Message: fmt.Sprintf("compute instance %q is its owner's: only they get its SSH details (act as them with --user OID)", name)}
			}
			if !in.SSH.Enabled {
				return &cliError{Status: exitConflict, Code: "SSHPublicAccessDisabled",
					Message: fmt.Sprintf("compute instance %q has SSH public access disabled; create it with --ssh-key FILE to log in", name)}
			}
			// A SetupFailed instance keeps its VM up so one can look inside.
			if !sim.State(in.State).VMUp() {
				return &cliError{Status: exitConflict, Code: "ComputeInstanceNotRunning",
					Message: fmt.Sprintf("compute instance %q is %s, not Running (start it: amlsim compute start %s)", name, in.State, name)}
			}
			identity, err := privateKey(*key, in.SSH.PublicKey)
			if err != nil {
				return err
			}
			argv := sshArgs(in, identity, filepath.Join(c.g.home, knownHostsFile), command)
			// Exec, so the terminal, signals and exit status are ssh's own.
			return syscall.Exec(bin, append([]string{"ssh"}, argv...), os.Environ())
		}
	},
}

// sshArgs is the ssh command line (without "ssh") for in.
func sshArgs(in instance, identity, knownHosts string, command []string) []string {
	args := []string{"-p", strconv.Itoa(in.SSH.Port)}
	if identity != "" {
		args = append(args, "-i", identity, "-o", "IdentitiesOnly=yes")
	}
	args = append(args,
		"-o", "StrictHostKeyChecking=accept-new",
		"-o", "UserKnownHostsFile="+knownHosts,
		// The alias names this incarnation of the instance, so a new
		// instance on a reused port (or a re-created name) is a new host.
		"-o", "HostKeyAlias="+hostKeyAlias(in),
		"-o", "LogLevel=ERROR",
		in.SSH.User+"@"+in.SSH.Host)
	if len(command) > 0 {
		args = append(args, "--")
		args = append(args, command...)
	}
	return args
}

func hostKeyAlias(in instance) string {
	return fmt.Sprintf("amlsim-%s-%s-%d", strings.ToLower(in.Location), strings.ToLower(in.Name), in.CreatedOn.Unix())
}

// privateKey picks the identity file: file (or the private half of a .pub),
// else the default key whose public half is the instance's, else the first
// default key present, else none (ssh then tries its own defaults).
func privateKey(file, instanceKey string) (string, error) {
	if file != "" {
		p := strings.TrimSuffix(file, ".pub")
		if _, err := os.Stat(p); err != nil {
			return "", usageErrorf("--ssh-key: private key %s: %v", p, err)
		}
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", nil
	}
	first := ""
	for _, k := range defaultKeys {
		p := filepath.Join(home, ".ssh", k)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if first == "" {
			first = p
		}
		pub, err := os.ReadFile(p + ".pub")
		if err == nil && sameKey(string(pub), instanceKey) {
			return p, nil
		}
	}
	return first, nil
}

// sameKey compares the type and key fields of two authorized_keys lines,
// ignoring comments.
func sameKey(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	return len(fa) >= 2 && len(fb) >= 2 && fa[0] == fb[0] && fa[1] == fb[1]
}
