package main

import (
	"context"

	"github.com/spf13/cobra"
)

// locationFlag adds --location (and the workspace flags that give its
// default) to a verb about a region; the function it returns resolves it.
func locationFlag(cmd *cobra.Command, g *globals) func(ctx context.Context, cl *client) (string, error) {
	ws := workspaceFlags(cmd, g)
	loc := cmd.Flags().String("location", envOr("AMLSIM_LOCATION", ""), "region `NAME`, such as eastus (default: the workspace's region; $AMLSIM_LOCATION)")
	cmd.RegisterFlagCompletionFunc("location", completeLocations(g))
	return func(ctx context.Context, cl *client) (string, error) {
		if *loc != "" {
			return *loc, nil
		}
		return cl.workspaceLocation(ctx, ws)
	}
}

// workspaceLocation is the region of a workspace.
func (c *client) workspaceLocation(ctx context.Context, ws *workspaceRef) (string, error) {
	w, err := c.ml.NewWorkspacesClient().Get(ctx, ws.rg, ws.name, nil)
	if err != nil {
		return "", c.failure(ctx, err)
	}
	return deref(w.Location), nil
}
