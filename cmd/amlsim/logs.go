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

	"github.com/spf13/cobra"

	"github.com/amlsim/amlsim/sim"
)

// followInterval is how often `logs -f` polls for new output.
const followInterval = time.Second

const logsSummary = `Print a compute instance's log.

--serial (the default) is the VM's serial console: kernel, systemd and
cloud-init. --setup and --startup are the creation and startup scripts'
output, where the server keeps them. -f keeps printing what is appended.`

func newLogsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "logs NAME [--serial|--setup|--startup] [-f]",
		Short:             "Print a compute instance's log",
		Long:              logsSummary,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: completeInstances(g),
	}
	ws := workspaceFlags(cmd, g)
	f := cmd.Flags()
	serial := f.Bool("serial", false, "the VM's serial console log (default)")
	setup := f.Bool("setup", false, "the creation script's output")
	startup := f.Bool("startup", false, "the startup script's output")
	follow := f.BoolP("follow", "f", false, "keep printing what is appended, until interrupted")
	tail := f.Int("tail", -1, "print only the last `N` lines first (-1: all)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
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
		if g.output != outputTable {
			return usageErrorf("logs are text; --output %s does not apply", g.output)
		}
		cl, err := newClient(g)
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
			fmt.Fprintf(stderr, "%s (waiting for it)\n", ce.Message)
			resp, err = &response{}, nil
		}
		if err != nil {
			return err
		}
		first := resp.body
		if *follow && *tail >= 0 {
			first = sim.LastLines(first, *tail)
		}
		stdout.Write(first)
		if !*follow {
			return nil
		}
		return cl.follow(ctx, stdout, stderr, path, len(resp.body), followInterval)
	}
	return cmd
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
