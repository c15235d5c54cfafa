package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// usageEntry is one line of `amlsim usage --output json`.
type usageEntry struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	Type        string `json:"type"`
	Current     int    `json:"current"`
	Limit       int    `json:"limit"`
	Unit        string `json:"unit"`
}

func newUsageCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "usage [--location L]",
		Short: "Show a region's vCPU usage against its quotas: in total and per VM family",
		Args:  exactArgs(),
	}
	clientFlags(cmd, cmd.Flags(), g)
	location := locationFlag(cmd, g)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		loc, err := location(ctx, cl)
		if err != nil {
			return err
		}
		out := []usageEntry{}
		pager := cl.ml.NewUsagesClient().NewListPager(loc, nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return cl.failure(ctx, err)
			}
			for _, u := range page.Value {
				e := usageEntry{Type: deref(u.Type), Current: int(deref(u.CurrentValue)), Limit: int(deref(u.Limit)), Unit: string(deref(u.Unit))}
				if u.Name != nil {
					e.Name, e.DisplayName = deref(u.Name.Value), deref(u.Name.LocalizedValue)
				}
				out = append(out, e)
			}
		}
		return render(cmd.OutOrStdout(), g.output, out, func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "QUOTA (%s)\tUSED\tLIMIT\n", loc)
			for _, u := range out {
				fmt.Fprintf(tw, "%s\t%d\t%d\n", u.DisplayName, u.Current, u.Limit)
			}
			return tw.Flush()
		})
	}
	return cmd
}
