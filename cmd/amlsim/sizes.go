package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
)

// sizeEntry is one line of `amlsim sizes --output json`.
type sizeEntry struct {
	Name     string  `json:"name"`
	Family   string  `json:"family"`
	VCPUs    int     `json:"vCPUs"`
	MemoryGB float64 `json:"memoryGB"`
	GPUs     int     `json:"gpus"`
}

var sizesVerb = verb{
	name:    "sizes",
	args:    "[--location L] [flags]",
	summary: "List the VM sizes a region offers for compute instances.",
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
					sizeEntry
					SupportedComputeTypes []string `json:"supportedComputeTypes"`
				} `json:"value"`
			}
			if err := cl.getJSON(ctx, cl.locationPath(loc)+"/vmSizes", nil, &page); err != nil {
				return err
			}
			out := []sizeEntry{}
			for _, s := range page.Value {
				ok := len(s.SupportedComputeTypes) == 0
				for _, t := range s.SupportedComputeTypes {
					ok = ok || t == "ComputeInstance"
				}
				if ok {
					out = append(out, s.sizeEntry)
				}
			}
			if c.g.output == outputJSON {
				return printJSON(c.stdout, out)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFAMILY\tVCPUS\tMEMORY GB\tGPUS")
			for _, s := range out {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", s.Name, s.Family, s.VCPUs, strconv.FormatFloat(s.MemoryGB, 'f', -1, 64), s.GPUs)
			}
			return tw.Flush()
		}
	},
}

func sizesCmd(args []string) error { return runVerb("sizes", sizesVerb, args) }
