package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/amlsim/amlsim/sim/api"
	"github.com/spf13/cobra"
)

// newClockCommand is `amlsim clock`: the test clock of a server started
// with `serve --test-clock`.
func newClockCommand(g *globals) *cobra.Command {
	cmd := newGroupCommand("clock", "Read and move the test clock of 'serve --test-clock'")
	clientFlags(cmd, cmd.PersistentFlags(), g)
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the server's test clock (serve --test-clock)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clockRequest(cmd, g, http.MethodGet, nil)
		},
	}
	set := &cobra.Command{
		Use:   "set TIME",
		Short: "Move the server's test clock forward to TIME",
		Long: `Move the server's test clock forward to TIME (RFC 3339, such as
2026-12-01T17:59:00Z). Schedules and idle shutdown act on the new time.`,
		Args: exactArgs("TIME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := time.Parse(time.RFC3339, args[0])
			if err != nil {
				return usageErrorf("TIME %q is not an RFC 3339 time such as 2026-12-01T17:59:00Z", args[0])
			}
			return clockRequest(cmd, g, http.MethodPost, map[string]any{"now": t})
		},
	}
	advance := &cobra.Command{
		Use:   "advance DURATION",
		Short: "Move the server's test clock forward by DURATION (ISO 8601, such as PT2H or P1D)",
		Args:  exactArgs("DURATION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clockRequest(cmd, g, http.MethodPost, map[string]any{"advance": args[0]})
		},
	}
	for _, c := range []*cobra.Command{show, set, advance} {
		c.ValidArgsFunction = cobra.NoFileCompletions
	}
	cmd.AddCommand(show, set, advance)
	return cmd
}

// clockRequest sends one request to the test clock and prints its time.
func clockRequest(cmd *cobra.Command, g *globals, method string, body any) error {
	cl, err := newClient(g)
	if err != nil {
		return err
	}
	resp, err := cl.do(cmd.Context(), method, api.ClockPath, nil, body)
	if err != nil {
		return err
	}
	var v struct {
		Now time.Time `json:"now"`
	}
	if err := json.Unmarshal(resp.body, &v); err != nil {
		return fmt.Errorf("decode the clock: %w", err)
	}
	return render(cmd.OutOrStdout(), g.output, v, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, v.Now.UTC().Format(time.RFC3339))
		return err
	})
}
