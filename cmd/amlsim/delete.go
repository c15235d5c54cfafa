package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

var deleteVerb = verb{
	name: "delete",
	args: "NAME [--yes] [flags]",
	summary: `Delete a compute instance: its VM and disk are destroyed.

On a terminal it asks for confirmation unless --yes is given; when stdin is
not a terminal it refuses to go on without --yes.`,
	setup: func(c *command) runFunc {
		ws := c.workspaceFlags()
		yes := c.fs.Bool("yes", false, "do not ask for confirmation")
		c.fs.BoolVar(yes, "y", false, "short for --yes")
		noWait := c.fs.Bool("no-wait", false, "return once the request is accepted")
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args, "NAME"); err != nil {
				return err
			}
			name := args[0]
			if !*yes && !isTerminal(os.Stdin) {
				return usageErrorf("refusing to delete %q without --yes: stdin is not a terminal to ask on", name)
			}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			// Look first: an unknown name is an error (ARM's DELETE would
			// answer 204), and the prompt can say what goes.
			in, err := cl.getInstance(ctx, ws, name)
			if err != nil {
				return err
			}
			if !*yes {
				fmt.Fprintf(c.stderr, "Delete compute instance %q (%s, %s)? Its VM and disk are destroyed. [y/N] ", name, in.State, in.VMSize)
				answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return &cliError{Status: exitFailed, Code: "Cancelled", Message: "nothing deleted"}
				}
			}
			path := cl.computePath(ws, name)
			resp, err := cl.do(ctx, http.MethodDelete, path, url.Values{"underlyingResourceAction": {"Delete"}}, nil)
			if err != nil {
				return err
			}
			result := map[string]any{"name": name, "deleted": true}
			switch {
			case resp.status == http.StatusNoContent:
				// Gone between the look and the delete.
			case *noWait:
				result["deleted"] = false
				result["state"] = "Deleting"
			default:
				p := &progress{w: c.stderr, tty: isTerminal(os.Stderr), name: name}
				if err := cl.wait(ctx, p, resp.header.Get("Azure-AsyncOperation"), path); err != nil {
					return err
				}
			}
			if c.g.output == outputJSON {
				return printJSON(c.stdout, result)
			}
			if *noWait {
				fmt.Fprintf(c.stdout, "%s: Deleting\n", name)
			}
			return nil
		}
	},
}
