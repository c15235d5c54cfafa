package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

const sshConfigSummary = `Print ~/.ssh/config blocks for compute instances.

One "Host amlsim-NAME" block per instance of the workspace whose SSH
details you get (SSH public access enabled, and yours), or for NAME only:
its port, user, key, and the known_hosts file in the amlsim home where its
host key is pinned. Append them to your SSH config, and plain ssh, scp,
rsync and editors' remote-SSH extensions reach the instance:

    amlsim compute ssh-config >> ~/.ssh/config
    ssh amlsim-NAME

A port stays the instance's across stops and starts; run it again after
creating or re-creating instances.`

// sshHostPrefix starts the Host alias of every instance in ssh-config.
const sshHostPrefix = "amlsim-"

func newSSHConfigCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "ssh-config [NAME]",
		Short:             firstLine(sshConfigSummary),
		Long:              sshConfigSummary,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeInstances(g),
	}
	ws := workspaceFlags(cmd, g)
	key := cmd.Flags().String("ssh-key", "", "key `FILE` (the private key, or its .pub) to log in with")
	cmd.MarkFlagFilename("ssh-key")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if g.output != outputTable {
			return usageErrorf("ssh-config prints ssh_config text; --output %s does not apply", g.output)
		}
		ctx := cmd.Context()
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		var list []instance
		if len(args) == 1 {
			in, err := cl.getInstance(ctx, ws, args[0])
			if err != nil {
				return err
			}
			// A stopped instance keeps its port, so its block is good
			// for its next start; one without SSH details has none.
			if in.SSH.Port == 0 {
				return sshReachable(in)
			}
			list = []instance{in}
		} else if list, err = cl.listInstances(ctx, ws); err != nil {
			return err
		}
		knownHosts, err := filepath.Abs(filepath.Join(g.home, knownHostsFile))
		if err != nil {
			return err
		}
		for _, in := range list {
			// Stopped instances are included: their port is kept.
			if !in.SSH.Enabled || in.SSH.Port == 0 {
				continue
			}
			identity, err := privateKey(*key, in.SSH.PublicKey)
			if err != nil {
				return err
			}
			writeSSHConfig(cmd.OutOrStdout(), in, identity, knownHosts)
		}
		return nil
	}
	return cmd
}

// writeSSHConfig writes the Host block of in.
func writeSSHConfig(w io.Writer, in instance, identity, knownHosts string) {
	fmt.Fprintf(w, "# amlsim compute instance %s (%s/%s, %s)\nHost %s%s\n", in.Name, in.ResourceGroup, in.Workspace, in.Location, sshHostPrefix, in.Name)
	for _, o := range sshOptions(in, identity, knownHosts) {
		v := o.value
		if strings.ContainsAny(v, " \t") {
			v = `"` + v + `"`
		}
		fmt.Fprintf(w, "  %s %s\n", o.keyword, v)
	}
	fmt.Fprintln(w)
}
