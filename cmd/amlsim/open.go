package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

var openVerb = verb{
	name:    "open",
	args:    "NAME [--app Jupyter] [flags]",
	summary: "Print a browser address that signs you in to an instance's application (its owner only).",
	setup: func(c *command) runFunc {
		ws := c.workspaceFlags()
		app := c.fs.String("app", "Jupyter", "the `APPLICATION` to open")
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
			var names []string
			for _, a := range in.Applications {
				if strings.EqualFold(a.Name, *app) {
					// The proxy trades the token in the address for a
					// cookie and drops it from the address bar.
					u, err := url.Parse(a.URL)
					if err != nil {
						return err
					}
					q := u.Query()
					q.Set("access_token", cl.token)
					u.RawQuery = q.Encode()
					fmt.Fprintln(c.stdout, u.String())
					return nil
				}
				names = append(names, a.Name)
			}
			return &cliError{Status: exitNotFound, Code: "ApplicationNotFound",
				Message: fmt.Sprintf("compute instance %q has no application %q (it has: %s)", in.Name, *app, strings.Join(names, ", "))}
		}
	},
}
