package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

func newOpenCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "open NAME [--app Jupyter]",
		Short:             "Print a browser address that signs you in to an instance's application (its owner only)",
		Args:              exactArgs("NAME"),
		ValidArgsFunction: completeInstances(g),
	}
	ws := workspaceFlags(cmd, g)
	app := cmd.Flags().String("app", "Jupyter", "the `APPLICATION` to open")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		cl, err := newClient(g)
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
				tok, err := cl.token(ctx)
				if err != nil {
					return err
				}
				q := u.Query()
				q.Set("access_token", tok)
				u.RawQuery = q.Encode()
				fmt.Fprintln(cmd.OutOrStdout(), u.String())
				return nil
			}
			names = append(names, a.Name)
		}
		return &cliError{Status: exitNotFound, Code: "ApplicationNotFound",
			Message: fmt.Sprintf("compute instance %q has no application %q (it has: %s)", in.Name, *app, strings.Join(names, ", "))}
	}
	return cmd
}
