package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
)

// actionVerb is a verb that POSTs an action (start, stop, restart) to an
// instance and waits for its operation.
func actionVerb(action, summary string) verb {
	return verb{
		name:    action,
		args:    "NAME [flags]",
		summary: summary,
		setup: func(c *command) runFunc {
			ws := c.workspaceFlags()
			noWait := c.fs.Bool("no-wait", false, "return once the request is accepted")
			return func(ctx context.Context, args []string) error {
				if err := exactArgs(c, args, "NAME"); err != nil {
					return err
				}
				cl, err := newClient(c.g)
				if err != nil {
					return err
				}
				name := args[0]
				path := cl.computePath(ws, name)
				resp, err := cl.do(ctx, http.MethodPost, path+"/"+action, nil, nil)
				if err != nil {
					return err
				}
				if !*noWait {
					p := &progress{w: c.stderr, tty: isTerminal(os.Stderr), name: name}
					if err := cl.wait(ctx, p, resp.header.Get("Azure-AsyncOperation"), path); err != nil {
						return err
					}
				}
				in, err := cl.getInstance(ctx, ws, name)
				if err != nil {
					return err
				}
				switch {
				case c.g.output == outputJSON:
					return printJSON(c.stdout, in)
				case *noWait:
					// Without the progress line, say where the instance is.
					fmt.Fprintf(c.stdout, "%s: %s\n", name, in.State)
				}
				return nil
			}
		},
	}
}
