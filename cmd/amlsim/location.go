package main

import "context"

// locationFlag adds --location (and the workspace flags that give its
// default) to a verb about a region.
func (c *command) locationFlag() func(ctx context.Context, cl *client) (string, error) {
	ws := c.workspaceFlags()
	loc := c.fs.String("location", envOr("AMLSIM_LOCATION", ""), "region `NAME`, such as eastus (default: the workspace's region; $AMLSIM_LOCATION)")
	return func(ctx context.Context, cl *client) (string, error) {
		if *loc != "" {
			return *loc, nil
		}
		var w struct {
			Location string `json:"location"`
		}
		if err := cl.getJSON(ctx, cl.workspacePath(ws), nil, &w); err != nil {
			return "", err
		}
		return w.Location, nil
	}
}
