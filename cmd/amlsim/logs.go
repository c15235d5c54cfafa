package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/amlsim/amlsim/sim"
)

// followInterval is how often `logs -f` polls for new output.
const followInterval = time.Second

var logsVerb = verb{
	name: "logs",
	args: "NAME [--serial|--setup|--startup] [-f] [flags]",
	summary: `Print a compute instance's log.

--serial (the default) is the VM's serial console: kernel, systemd and
cloud-init. --setup and --startup are the creation and startup scripts'
output, where the server keeps them. -f keeps printing what is appended.`,
	setup: func(c *command) runFunc {
		ws := c.workspaceFlags()
		serial := c.fs.Bool("serial", false, "the VM's serial console log (default)")
		setup := c.fs.Bool("setup", false, "the creation script's output")
		startup := c.fs.Bool("startup", false, "the startup script's output")
		follow := c.fs.Bool("follow", false, "keep printing what is appended, until interrupted")
		c.fs.BoolVar(follow, "f", false, "short for --follow")
		tail := c.fs.Int("tail", -1, "print only the last `N` lines first (-1: all)")
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args, "NAME"); err != nil {
				return err
			}
			kind := "serial"
			n := 0
			for k, on := range map[string]bool{"serial": *serial, "setup": *setup, "startup": *startup} {
				if on {
					kind, n = k, n+1
				}
			}
			if n > 1 {
				return usageErrorf("--serial, --setup and --startup exclude each other")
			}
			if c.g.output == outputJSON {
				return usageErrorf("logs are text; --output json does not apply")
			}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			path := cl.computePath(ws, args[0]) + "/amlsim/logs/" + kind
			var q url.Values
			if *tail >= 0 && !*follow {
				q = url.Values{"tail": {strconv.Itoa(*tail)}}
			}
			resp, err := cl.do(ctx, http.MethodGet, path, q, nil)
			var ce *cliError
			if *follow && errors.As(err, &ce) && ce.Code == "LogNotAvailable" {
				// Following a log not written yet: wait for it.
				fmt.Fprintf(c.stderr, "%s (waiting for it)\n", ce.Message)
				resp, err = &response{}, nil
			}
			if err != nil {
				return err
			}
			first := resp.body
			if *follow && *tail >= 0 {
				first = sim.LastLines(first, *tail)
			}
			c.stdout.Write(first)
			if !*follow {
				return nil
			}
			return cl.follow(ctx, c.stdout, c.stderr, path, len(resp.body), followInterval)
		}
	},
}

// follow polls the log at path every interval and writes what was appended
// since the first printed bytes, until ctx ends or the instance is gone.
func (c *client) follow(ctx context.Context, stdout, stderr io.Writer, path string, printed int, interval time.Duration) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		resp, err := c.do(ctx, http.MethodGet, path, nil, nil)
		var ce *cliError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ce) && ce.Status == exitNotFound && ce.Code != "LogNotAvailable":
			fmt.Fprintln(stderr, ce.Message)
			return nil
		case errors.As(err, &ce) && ce.Code == "LogNotAvailable":
			// Not written yet (a new boot, a script not started): wait.
			continue
		case err != nil:
			return err
		}
		b := resp.body
		if len(b) < printed {
			// The log was started afresh (a new boot): print it all.
			printed = 0
		}
		stdout.Write(b[printed:])
		printed = len(b)
	}
}
