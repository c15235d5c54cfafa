package main

import (
	"strings"

	"github.com/spf13/cobra"
)

func newListCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the compute instances of a workspace",
		Long: `List the compute instances of a workspace.

--output name prints the names only, one a line, for scripts.`,
		Args:        exactArgs(),
		Annotations: map[string]string{annotationOutputs: outputName},
	}
	ws := workspaceFlags(cmd, g)
	mine := cmd.Flags().Bool("mine", false, "only instances of the principal the CLI acts as (--user): created by or for it")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		list, err := cl.listInstances(cmd.Context(), ws)
		if err != nil {
			return err
		}
		if *mine {
			kept := list[:0]
			for _, in := range list {
				// Mine: created by me, or for me (S20: "my" instances).
				owner := in.CreatedBy.ID
				if in.AssignedUser != "" {
					owner = in.AssignedUser
				}
				if strings.EqualFold(owner, cl.user) {
					kept = append(kept, in)
				}
			}
			list = kept
		}
		return printInstances(cmd.OutOrStdout(), g.output, list)
	}
	return cmd
}
