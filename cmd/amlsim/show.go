package main

import "context"

var showVerb = verb{
	name:    "show",
	args:    "NAME [flags]",
	summary: "Show a compute instance: state, size, SSH access, last operation and errors.",
	setup: func(c *command) runFunc {
		ws := c.workspaceFlags()
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args, "NAME"); err != nil {
				return err
			}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			in, err := cl.getInstance(ctx, ws, args[0])
			if err != nil {
				return err
			}
			return printInstance(c.stdout, c.g.output, in)
		}
	},
}
