package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/amlsim/amlsim/sim/api"
)

// clockVerbs are the verbs of `amlsim clock`: the test clock of a server
// started with `serve --test-clock`.
func clockVerbs() []verb { return []verb{clockShowVerb, clockSetVerb, clockAdvanceVerb} }

// clockCmd runs `amlsim clock VERB …`.
func clockCmd(args []string) error { return dispatch("clock", clockVerbs(), args) }

var clockShowVerb = verb{
	name:    "show",
	args:    "[flags]",
	summary: "Show the server's test clock (serve --test-clock).",
	setup: func(c *command) runFunc {
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args); err != nil {
				return err
			}
			return clockRequest(ctx, c, http.MethodGet, nil)
		}
	},
}

var clockSetVerb = verb{
	name: "set",
	args: "TIME [flags]",
	summary: `Move the server's test clock forward to TIME (RFC 3339, such as
2026-12-01T17:59:00Z). Schedules and idle shutdown act on the new time.`,
	setup: func(c *command) runFunc {
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args, "TIME"); err != nil {
				return err
			}
			t, err := time.Parse(time.RFC3339, args[0])
			if err != nil {
				return usageErrorf("TIME %q is not an RFC 3339 time such as 2026-12-01T17:59:00Z", args[0])
			}
			return clockRequest(ctx, c, http.MethodPost, map[string]any{"now": t})
		}
	},
}

var clockAdvanceVerb = verb{
	name:    "advance",
	args:    "DURATION [flags]",
	summary: "Move the server's test clock forward by DURATION (ISO 8601, such as PT2H or P1D).",
	setup: func(c *command) runFunc {
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args, "DURATION"); err != nil {
				return err
			}
			return clockRequest(ctx, c, http.MethodPost, map[string]any{"advance": args[0]})
		}
	},
}

// clockRequest sends one request to the test clock and prints its time.
func clockRequest(ctx context.Context, c *command, method string, body any) error {
	cl, err := newClient(c.g)
	if err != nil {
		return err
	}
	resp, err := cl.do(ctx, method, api.ClockPath, nil, body)
	if err != nil {
		return err
	}
	var v struct {
		Now time.Time `json:"now"`
	}
	if err := json.Unmarshal(resp.body, &v); err != nil {
		return fmt.Errorf("decode the clock: %w", err)
	}
	if c.g.output == outputJSON {
		return printJSON(c.stdout, v)
	}
	_, err = fmt.Fprintln(c.stdout, v.Now.UTC().Format(time.RFC3339))
	return err
}
