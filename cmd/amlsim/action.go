package main

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/spf13/cobra"
)

// newActionCommand is a verb that POSTs an action (start, stop, restart)
// to an instance through the SDK and waits for its operation.
func newActionCommand(g *globals, action, summary string) *cobra.Command {
	cmd := &cobra.Command{
		Use:               action + " NAME",
		Short:             firstLine(summary),
		Long:              summary,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: completeInstances(g),
	}
	ws := workspaceFlags(cmd, g)
	noWait := cmd.Flags().Bool("no-wait", false, "return once the request is accepted")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		name := args[0]
		if err := cl.act(ctx, ws, name, action, !*noWait, newProgress(cmd, name)); err != nil {
			return err
		}
		in, err := cl.getInstance(ctx, ws, name)
		if err != nil {
			return err
		}
		if g.output != outputTable {
			return printInstance(stdout, g.output, in)
		}
		if *noWait {
			// Without the progress line, say where the instance is.
			fmt.Fprintf(stdout, "%s: %s\n", name, in.State)
		}
		return nil
	}
	return cmd
}

// act starts, stops or restarts an instance, and waits for the operation
// when wait is set.
func (c *client) act(ctx context.Context, ws *workspaceRef, name, action string, wait bool, p *progress) error {
	computes := c.ml.NewComputeClient()
	switch action {
	case "start":
		poller, err := computes.BeginStart(ctx, ws.rg, ws.name, name, nil)
		return finish(ctx, c, poller, err, wait, p, c.computePath(ws, name))
	case "stop":
		poller, err := computes.BeginStop(ctx, ws.rg, ws.name, name, nil)
		return finish(ctx, c, poller, err, wait, p, c.computePath(ws, name))
	case "restart":
		poller, err := computes.BeginRestart(ctx, ws.rg, ws.name, name, nil)
		return finish(ctx, c, poller, err, wait, p, c.computePath(ws, name))
	}
	return fmt.Errorf("unknown action %q", action)
}

// finish reports the failure of a Begin call, or waits for its operation
// when wait is set.
func finish[T any](ctx context.Context, c *client, poller *runtime.Poller[T], err error, wait bool, p *progress, computePath string) error {
	if err != nil {
		return c.failure(ctx, err)
	}
	if wait {
		_, err = waitFor(ctx, c, p, poller, computePath)
	}
	return err
}
