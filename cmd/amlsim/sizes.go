package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// sizeEntry is one line of `amlsim sizes --output json`.
type sizeEntry struct {
	Name     string  `json:"name"`
	Family   string  `json:"family"`
	VCPUs    int     `json:"vCPUs"`
	MemoryGB float64 `json:"memoryGB"`
	GPUs     int     `json:"gpus"`
}

func newSizesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sizes [--location L]",
		Short: "List the VM sizes a region offers for compute instances",
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
		out, err := cl.sizes(ctx, loc)
		if err != nil {
			return err
		}
		return render(cmd.OutOrStdout(), g.output, out, func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFAMILY\tVCPUS\tMEMORY GB\tGPUS")
			for _, s := range out {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", s.Name, s.Family, s.VCPUs, strconv.FormatFloat(s.MemoryGB, 'f', -1, 64), s.GPUs)
			}
			return tw.Flush()
		})
	}
	return cmd
}

// sizes lists the VM sizes of a region that compute instances may have.
func (c *client) sizes(ctx context.Context, location string) ([]sizeEntry, error) {
	r, err := c.ml.NewVirtualMachineSizesClient().List(ctx, location, nil)
	if err != nil {
		return nil, c.failure(ctx, err)
	}
	out := []sizeEntry{}
	for _, s := range r.Value {
		ok := len(s.SupportedComputeTypes) == 0
		for _, t := range s.SupportedComputeTypes {
			ok = ok || deref(t) == "ComputeInstance"
		}
		if ok {
			out = append(out, sizeEntry{Name: deref(s.Name), Family: deref(s.Family), VCPUs: int(deref(s.VCPUs)),
				MemoryGB: deref(s.MemoryGB), GPUs: int(deref(s.Gpus))})
		}
	}
	return out, nil
}
