package main

import "github.com/spf13/cobra"

// newComputeCommand is `amlsim compute`: the compute instance verbs, one
// file each.
func newComputeCommand(g *globals) *cobra.Command {
	cmd := newGroupCommand("compute", "Create, inspect, start, stop and delete compute instances")
	clientFlags(cmd, cmd.PersistentFlags(), g)
	cmd.AddCommand(
		newCreateCommand(g), newShowCommand(g), newListCommand(g),
		newActionCommand(g, "start", startSummary), newActionCommand(g, "stop", stopSummary),
		newActionCommand(g, "restart", restartSummary),
		newDeleteCommand(g), newSSHCommand(g), newSSHConfigCommand(g), newOpenCommand(g), newLogsCommand(g),
	)
	return cmd
}
