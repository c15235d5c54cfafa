package main

import (
	"context"
	"fmt"
	"text/tabwriter"
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

var usageVerb = verb{
	name:    "usage",
	args:    "[--location L] [flags]",
	summary: "Show a region's vCPU usage against its quotas: in total and per VM family.",
	setup: func(c *command) runFunc {
		location := c.locationFlag()
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args); err != nil {
				return err
			}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			loc, err := location(ctx, cl)
			if err != nil {
				return err
			}
			var page struct {
				Value []struct {
					Type         string `json:"type"`
					Unit         string `json:"unit"`
					CurrentValue int    `json:"currentValue"`
					Limit        int    `json:"limit"`
					Name         struct {
						Value          string `json:"value"`
						LocalizedValue string `json:"localizedValue"`
					} `json:"name"`
				} `json:"value"`
			}
			if err := cl.getJSON(ctx, cl.locationPath(loc)+"/usages", nil, &page); err != nil {
				return err
			}
			out := []usageEntry{}
			for _, u := range page.Value {
				out = append(out, usageEntry{Name: u.Name.Value, DisplayName: u.Name.LocalizedValue, Type: u.Type, Current: u.CurrentValue, Limit: u.Limit, Unit: u.Unit})
			}
			if c.g.output == outputJSON {
				return printJSON(c.stdout, out)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "QUOTA (%s)\tUSED\tLIMIT\n", loc)
			for _, u := range out {
				fmt.Fprintf(tw, "%s\t%d\t%d\n", u.DisplayName, u.Current, u.Limit)
			}
			return tw.Flush()
		}
	},
}

func usageCmd(args []string) error { return runVerb("usage", usageVerb, args) }
