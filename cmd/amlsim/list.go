package main

import (
	"context"
	"strings"
)

var listVerb = verb{
	name: "list",
	args: "[flags]",
	summary: `List the compute instances of a workspace.

--output name prints the names only, one a line, for scripts and shell
completion.`,
	setup: func(c *command) runFunc {
		ws := c.workspaceFlags()
		c.outputs = append(c.outputs, outputName)
		c.fs.Lookup("output").Usage = "output `FORMAT`: table, json or name"
		mine := c.fs.Bool("mine", false, "only instances of the principal the CLI acts as (--user): created by or for it")
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args); err != nil {
				return err
			}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			list, err := cl.listInstances(ctx, ws)
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
			return printInstances(c.stdout, c.g.output, list)
		}
	},
}

// listInstances lists every instance of the workspace, following nextLinks.
func (c *client) listInstances(ctx context.Context, ws *workspaceRef) ([]instance, error) {
	list := []instance{}
	next := c.computePath(ws, "")
	for next != "" {
		var page struct {
			Value    []armCompute `json:"value"`
			NextLink string       `json:"nextLink"`
		}
		if err := c.getJSON(ctx, next, nil, &page); err != nil {
			return nil, err
		}
		for _, a := range page.Value {
			list = append(list, instanceOf(a))
		}
		next = page.NextLink
	}
	return list, nil
}
