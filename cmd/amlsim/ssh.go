package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/amlsim/amlsim/sim"
)

// knownHostsFile keeps the host keys of instances, in the amlsim home: the
// ports of deleted instances are reused, so the user's own known_hosts
// would soon hold stale keys for 127.0.0.1.
const knownHostsFile = "known_hosts"

const sshSummary = `Log in to a compute instance over SSH, or run COMMAND there.

Runs the system ssh client as azureuser on the instance's forwarded port,
with the private key matching --ssh-key (or the default key whose public
half the instance holds). Host keys are trusted on first use and pinned in
the amlsim home, per instance. The exit status is the remote command's.

--print prints the ssh command line instead of running it, for plain ssh,
scripts and tools; 'amlsim compute ssh-config' writes ~/.ssh/config blocks.`

func newSSHCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "ssh NAME [-- COMMAND...]",
		Short:             firstLine(sshSummary),
		Long:              sshSummary,
		Args:              leadingArg("NAME"),
		ValidArgsFunction: completeInstances(g),
	}
	ws := workspaceFlags(cmd, g)
	key := cmd.Flags().String("ssh-key", "", "key `FILE` (the private key, or its .pub) to log in with")
	print := cmd.Flags().Bool("print", false, "print the ssh command line instead of running it")
	cmd.MarkFlagFilename("ssh-key")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name, command := args[0], args[1:]
		var bin string
		if !*print {
			var err error
			if bin, err = exec.LookPath("ssh"); err != nil {
				return &cliError{Status: exitFailed, Code: "SSHClientMissing", Message: "no ssh client in PATH (Debian: apt-get install -y openssh-client)"}
			}
		}
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		in, err := cl.getInstance(cmd.Context(), ws, name)
		if err != nil {
			return err
		}
		if err := sshReachable(in); err != nil {
			return err
		}
		identity, err := privateKey(*key, in.SSH.PublicKey)
		if err != nil {
			return err
		}
		knownHosts, err := filepath.Abs(filepath.Join(g.home, knownHostsFile))
		if err != nil {
			return err
		}
		argv := sshArgs(in, identity, knownHosts, command)
		if *print {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), shellJoinPlain(append([]string{"ssh"}, argv...)))
			return err
		}
		// Exec, so the terminal, signals and exit status are ssh's own.
		return syscall.Exec(bin, append([]string{"ssh"}, argv...), os.Environ())
	}
	return cmd
}

// sshReachable says why in cannot be reached over SSH, or nil.
func sshReachable(in instance) error {
	if in.SSH.Enabled && in.SSH.Port == 0 {
		return &cliError{Status: exitAuth, Code: "NotInstanceOwner",
			Message: fmt.Sprintf("compute instance %q is its owner's: only they get its SSH details (act as them with --user OID)", in.Name)}
	}
	if !in.SSH.Enabled {
		return &cliError{Status: exitConflict, Code: "SSHPublicAccessDisabled",
			Message: fmt.Sprintf("compute instance %q has SSH public access disabled; create it with --ssh-key FILE to log in", in.Name)}
	}
	// A SetupFailed instance keeps its VM up so one can look inside.
	if !sim.State(in.State).VMUp() {
		return &cliError{Status: exitConflict, Code: "ComputeInstanceNotRunning",
			Message: fmt.Sprintf("compute instance %q is %s, not Running (start it: amlsim compute start %s)", in.Name, in.State, in.Name)}
	}
	return nil
}

// sshOption is one ssh_config(5) keyword and its value.
type sshOption struct{ keyword, value string }

// sshOptions are the client options that reach in: the same for the
// command line (sshArgs) and for ~/.ssh/config (ssh-config).
func sshOptions(in instance, identity, knownHosts string) []sshOption {
	opts := []sshOption{{"HostName", in.SSH.Host}, {"Port", strconv.Itoa(in.SSH.Port)}, {"User", in.SSH.User}}
	if identity != "" {
		opts = append(opts, sshOption{"IdentityFile", identity}, sshOption{"IdentitiesOnly", "yes"})
	}
	return append(opts,
		sshOption{"StrictHostKeyChecking", "accept-new"},
		sshOption{"UserKnownHostsFile", knownHosts},
		// The alias names this incarnation of the instance, so a new
		// instance on a reused port (or a re-created name) is a new host.
		sshOption{"HostKeyAlias", hostKeyAlias(in)},
		sshOption{"LogLevel", "ERROR"},
	)
}

// sshArgs is the ssh command line (without "ssh") for in.
func sshArgs(in instance, identity, knownHosts string, command []string) []string {
	var args []string
	for _, o := range sshOptions(in, identity, knownHosts) {
		switch o.keyword {
		case "HostName", "User":
			// In the destination.
		case "Port":
			args = append(args, "-p", o.value)
		case "IdentityFile":
			args = append(args, "-i", o.value)
		default:
			args = append(args, "-o", o.keyword+"="+o.value)
		}
	}
	args = append(args, in.SSH.User+"@"+in.SSH.Host)
	if len(command) > 0 {
		args = append(args, "--")
		args = append(args, command...)
	}
	return args
}

// shellJoinPlain quotes for a POSIX shell only the words that need it, so
// a printed command reads as one would type it.
func shellJoinPlain(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
			q[i] = w
		} else {
			q[i] = shellQuote(w)
		}
	}
	return strings.Join(q, " ")
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
