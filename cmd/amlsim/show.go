package main

import "github.com/spf13/cobra"

func newShowCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "show NAME",
		Short:             "Show a compute instance: state, size, SSH access, last operation and errors",
		Args:              exactArgs("NAME"),
		ValidArgsFunction: completeInstances(g),
	}
	ws := workspaceFlags(cmd, g)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		in, err := cl.getInstance(cmd.Context(), ws, args[0])
		if err != nil {
			return err
		}
		return printInstance(cmd.OutOrStdout(), g.output, in)
	}
	return cmd
}
