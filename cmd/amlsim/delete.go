package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/spf13/cobra"
)

const deleteSummary = `Delete a compute instance: its VM and disk are destroyed.

On a terminal it asks for confirmation unless --yes is given; when stdin is
not a terminal it refuses to go on without --yes.`

func newDeleteCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "delete NAME",
		Short:             firstLine(deleteSummary),
		Long:              deleteSummary,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: completeInstances(g),
	}
	ws := workspaceFlags(cmd, g)
	yes := cmd.Flags().BoolP("yes", "y", false, "do not ask for confirmation")
	noWait := cmd.Flags().Bool("no-wait", false, "return once the request is accepted")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
		name := args[0]
		if !*yes && !isTerminal(os.Stdin) {
			return usageErrorf("refusing to delete %q without --yes: stdin is not a terminal to ask on", name)
		}
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		// Look first: an unknown name is an error (ARM's DELETE would
		// answer 204), and the prompt can say what goes.
		in, err := cl.getInstance(ctx, ws, name)
		if err != nil {
			return err
		}
		if !*yes {
			fmt.Fprintf(stderr, "Delete compute instance %q (%s, %s)? Its VM and disk are destroyed. [y/N] ", name, in.State, in.VMSize)
			answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
				return &cliError{Status: exitFailed, Code: "Cancelled", Message: "nothing deleted"}
			}
		}
		var first *http.Response
		poller, err := cl.ml.NewComputeClient().BeginDelete(runtime.WithCaptureResponse(ctx, &first), ws.rg, ws.name, name, ml.UnderlyingResourceActionDelete, nil)
		if err != nil {
			return cl.failure(ctx, err)
		}
		result := map[string]any{"name": name, "deleted": true}
		switch {
		case first.StatusCode == http.StatusNoContent:
			// Gone between the look and the delete.
		case *noWait:
			result["deleted"] = false
			result["state"] = "Deleting"
		default:
			if _, err := waitFor(ctx, cl, newProgress(cmd, name), poller, cl.computePath(ws, name)); err != nil {
				return err
			}
		}
		if g.output != outputTable {
			return render(stdout, g.output, result, nil)
		}
		if *noWait {
			fmt.Fprintf(stdout, "%s: Deleting\n", name)
		}
		return nil
	}
	return cmd
}
