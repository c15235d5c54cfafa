package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
)

// newFaultCommand is `amlsim fault`: the fault rules of a server started
// with `serve --faults`.
func newFaultCommand(g *globals) *cobra.Command {
	cmd := newGroupCommand("fault", "Inject the failures Azure has (serve --faults): capacity, throttling, delays")
	clientFlags(cmd, cmd.PersistentFlags(), g)
	cmd.AddCommand(newFaultAddCommand(g), newFaultListCommand(g), newFaultRemoveCommand(g))
	return cmd
}

const faultAddSummary = `Add (or replace) the fault rule ID on a server started with --faults.

The rule matches requests by --operation (Create, Start, Stop, Restart,
Delete, Get, List; any when absent), --name (a glob over instance names),
--location, --vm-size and --principal, and has one effect:

  --fail CODE [--message TEXT]   the operation fails with the ARM error
                                 (AllocationFailed, ZonalAllocationFailed,
                                 OperationNotAllowed get Azure's text)
  --status 429|500|503 [--retry-after PT5S]
                                 the request itself is answered so
  --delay PT10M                  the operation waits first (on the test
                                 clock, if the server has one)
  --setup-exit-code N            the setup script exits N: the next
                                 create's creation script, or with
                                 --operation Start or Restart the startup
                                 script of the next one
  --vm crash|poweroff|hang       the VM of a Running instance crashes,
                                 powers off or hangs (at once, or after
                                 the --operation Create, Start or Restart)

It applies to the next --times matches, or until removed. --rule takes the
whole rule as JSON instead: {"operation", "match", "effect", "times"}.`

func newFaultAddCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add ID [flags]",
		Short: "Add a fault rule",
		Long:  faultAddSummary,
		Args:  exactArgs("ID"),
	}
	var rule sim.FaultRule
	var fail, message, ruleJSON string
	times, exitCode := 0, 0
	f := cmd.Flags()
	f.StringVar(&rule.Operation, "operation", "", "`OPERATION` to match: Create, Start, Stop, Restart, Delete, Get or List (default any)")
	f.StringVar(&rule.Match.Name, "name", "", "instance name `GLOB`, such as cap-*")
	f.StringVar(&rule.Match.Location, "location", "", "`REGION` to match")
	f.StringVar(&rule.Match.VMSize, "vm-size", "", "VM `SIZE` to match")
	f.StringVar(&rule.Match.Principal, "principal", "", "object `ID` of the requesting principal to match")
	f.StringVar(&fail, "fail", "", "fail the operation with the ARM error `CODE`")
	f.StringVar(&message, "message", "", "the error's `TEXT` (default: Azure's for the code)")
	f.IntVar(&rule.Effect.Status, "status", 0, "answer the request with HTTP `STATUS` 429, 500 or 503")
	f.StringVar(&rule.Effect.RetryAfter, "retry-after", "", "Retry-After of a 429 or 503, an ISO 8601 `DURATION`")
	f.StringVar(&rule.Effect.Delay, "delay", "", "hold the operation for an ISO 8601 `DURATION`, such as PT10M")
	f.StringVar(&rule.Effect.VM, "vm", "", "`EFFECT` on a Running instance's VM: crash, poweroff or hang")
	f.IntVar(&exitCode, "setup-exit-code", 0, "make the next setup script exit with `N` (1 to 255): the creation script, or the startup script with --operation Start or Restart")
	f.IntVar(&times, "times", 0, "apply to the next `N` matches only (default: until removed)")
	f.StringVar(&ruleJSON, "rule", "", "the whole rule as `JSON`, instead of the flags above")
	cmd.RegisterFlagCompletionFunc("operation", cobra.FixedCompletions([]string{"Create", "Start", "Stop", "Restart", "Delete", "Get", "List"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("fail", cobra.FixedCompletions([]string{"AllocationFailed", "ZonalAllocationFailed", "OperationNotAllowed", "InternalServerError"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions([]string{"429", "500", "503"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("vm", cobra.FixedCompletions([]string{sim.FaultVMCrash, sim.FaultVMPowerOff, sim.FaultVMHang}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("principal", completePrincipals(g))
	cmd.RegisterFlagCompletionFunc("location", completeLocations(g))
	cmd.RegisterFlagCompletionFunc("vm-size", completeSizes(g))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if ruleJSON != "" {
			if cmd.Flags().NFlag() > 1+changedGlobals(cmd) {
				return usageErrorf("--rule gives the whole rule; it takes no other rule flags")
			}
			if err := json.Unmarshal([]byte(ruleJSON), &rule); err != nil {
				return usageErrorf("--rule: not a fault rule in JSON: %v", err)
			}
		} else {
			if fail != "" {
				rule.Effect.Fail = &sim.FaultFailure{Code: fail, Message: message}
			} else if message != "" {
				return usageErrorf("--message goes with --fail")
			}
			if exitCode != 0 {
				rule.Effect.SetupScript = &sim.FaultScriptRun{ExitCode: exitCode}
			}
			if times > 0 {
				rule.Times = &times
			}
		}
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		resp, err := cl.do(cmd.Context(), http.MethodPut, api.FaultsPath+"/"+url.PathEscape(args[0]), nil, rule)
		if err != nil {
			return err
		}
		var saved sim.FaultRule
		if err := json.Unmarshal(resp.body, &saved); err != nil {
			return fmt.Errorf("decode the rule: %w", err)
		}
		return printFaults(cmd.OutOrStdout(), g.output, []sim.FaultRule{saved})
	}
	return cmd
}

// changedGlobals counts the client flags set on the command line, which
// --rule goes with.
func changedGlobals(cmd *cobra.Command) int {
	n := 0
	for _, name := range []string{"endpoint", "home", "output", "user", "subscription"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			n++
		}
	}
	return n
}

func newFaultListCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the fault rules, in the order they are tried",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			var list struct {
				Value []sim.FaultRule `json:"value"`
			}
			if err := cl.getJSON(cmd.Context(), api.FaultsPath, nil, &list); err != nil {
				return err
			}
			return printFaults(cmd.OutOrStdout(), g.output, list.Value)
		},
	}
}

func newFaultRemoveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a fault rule",
		Args:  exactArgs("ID"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			ctx, cancel, cl, ok := completionClient(cmd, g)
			if !ok {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			defer cancel()
			var list struct {
				Value []sim.FaultRule `json:"value"`
			}
			var out []cobra.Completion
			if cl.getJSON(ctx, api.FaultsPath, nil, &list) == nil {
				for _, r := range list.Value {
					out = append(out, cobra.CompletionWithDesc(r.ID, r.Effect.String()))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			resp, err := cl.do(cmd.Context(), http.MethodDelete, api.FaultsPath+"/"+url.PathEscape(args[0]), nil, nil)
			if err != nil {
				return err
			}
			if resp.status == http.StatusNoContent {
				return &cliError{Status: exitNotFound, Code: "FaultRuleNotFound", Message: fmt.Sprintf("there is no fault rule %s", args[0])}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "removed fault rule %s\n", args[0])
			return nil
		},
	}
}

// printFaults writes rules as a table or in any --output format.
func printFaults(w io.Writer, output string, rules []sim.FaultRule) error {
	if rules == nil {
		rules = []sim.FaultRule{}
	}
	return render(w, output, rules, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tOPERATION\tMATCH\tEFFECT\tTIMES LEFT\tAPPLIED")
		for _, r := range rules {
			op := r.Operation
			if op == "" {
				op = "any"
			}
			var match []string
			for _, m := range [][2]string{{"name", r.Match.Name}, {"location", r.Match.Location}, {"vmSize", r.Match.VMSize}, {"principal", r.Match.Principal}} {
				if m[1] != "" {
					match = append(match, m[0]+"="+m[1])
				}
			}
			left := "until removed"
			if r.Times != nil {
				left = fmt.Sprint(*r.Times)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", r.ID, op, strings.Join(match, ","), r.Effect.String(), left, r.Applied)
		}
		return tw.Flush()
	})
}
