package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/amlsim/amlsim/sim"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Defaults of the client verbs, each overridable by an environment
// variable and a flag.
const (
	defaultEndpoint      = "https://127.0.0.1:9443"
	defaultSubscription  = "00000000-0000-0000-0000-000000000000"
	defaultResourceGroup = "rg-local"
	defaultWorkspace     = "ws-local"
)

// Output formats of --output: az's names (format-output-azure-cli.md).
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
	outputTSV   = "tsv"
	// outputName prints names only, one a line (compute list only).
	outputName = "name"
)

// outputFormats are the formats every client verb prints; a verb with
// more lists them in its annotation annotationOutputs.
var outputFormats = []string{outputTable, outputJSON, outputYAML, outputTSV}

// annotationOutputs is the cobra annotation of a verb's extra --output
// formats, comma-separated.
const annotationOutputs = "amlsim/outputs"

// Command groups of `amlsim --help`.
const (
	groupInstances = "instances"
	groupAccess    = "access"
	groupRegions   = "regions"
	groupSimulator = "simulator"
	groupTesting   = "testing"
)

// globals are the flags every client verb takes.
type globals struct {
	endpoint string
	home     string
	output   string
	user     string
	sub      string
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// newRootCommand builds the whole command tree.
func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "amlsim",
		Short: "Simulate Azure Machine Learning compute instances on this machine",
		Long: `amlsim simulates Azure Machine Learning compute instances on this machine:
'amlsim serve' answers the Azure Resource Manager API for computes, with a
real VM behind every instance, and the other verbs are its tools and its
client.

Client verbs find the server at $AMLSIM_ENDPOINT (--endpoint, default
https://127.0.0.1:9443), trust the CA and mint a token from the home
($AMLSIM_HOME, --home, default ~/.amlsim), call the server through the
Azure SDK for Go, and print --output table, json, yaml or tsv.`,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRun,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return checkOutput(cmd, g.output)
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%v (see '%s --help')", err, cmd.CommandPath())
	})
	root.AddGroup(
		&cobra.Group{ID: groupInstances, Title: "Compute instances:"},
		&cobra.Group{ID: groupRegions, Title: "Regions and quota:"},
		&cobra.Group{ID: groupAccess, Title: "Access:"},
		&cobra.Group{ID: groupSimulator, Title: "The simulator:"},
		&cobra.Group{ID: groupTesting, Title: "For tests (serve --test-clock, --faults):"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add(groupInstances, newComputeCommand(g), newSetupScriptCommand(g))
	add(groupRegions, newUsageCommand(g), newSizesCommand(g))
	add(groupAccess, newRoleCommand(g), newEnvCommand(), newTokenCommand(), newStudioCommand())
	add(groupSimulator, newServeCommand(), newImageCommand(), newDoctorCommand(g))
	add(groupTesting, newClockCommand(g), newFaultCommand(g))
	root.AddCommand(newDocsCommand())
	// cobra's completion verb, made now so that a missing or unknown
	// shell is a usage error like any missing verb.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args, c.RunE = cobra.ArbitraryArgs, groupRun
		}
	}
	noFileFallback(root)
	return root
}

// execute runs the command line args and returns the exit status.
func execute(ctx context.Context, root *cobra.Command, args []string) int {
	root.SetArgs(args)
	return report(root.ExecuteContext(ctx))
}

// newGroupCommand is a verb that only holds sub-verbs: run bare or with
// an unknown sub-verb, it is a usage error (exit status 2), as a verb
// must be named.
func newGroupCommand(use, short string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: groupRun}
}

func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 1 && args[0] == "help" {
		return cmd.Help()
	}
	if len(args) == 0 {
		cmd.SetOut(cmd.ErrOrStderr())
		cmd.Usage()
		return usageErrorf("missing verb after '%s'", cmd.CommandPath())
	}
	msg := fmt.Sprintf("unknown verb %q after '%s'", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageErrorf("%s (see '%s --help')", msg, cmd.CommandPath())
}

// clientFlags declares the flags of the client verbs on fs, one of cmd's
// flag sets, and how the shells complete them.
func clientFlags(cmd *cobra.Command, fs *pflag.FlagSet, g *globals) {
	fs.StringVar(&g.endpoint, "endpoint", envOr("AMLSIM_ENDPOINT", defaultEndpoint), "`URL` of the amlsim server ($AMLSIM_ENDPOINT)")
	fs.StringVar(&g.home, "home", defaultHome(), "amlsim home `DIR` holding the server's CA and token key ($AMLSIM_HOME)")
	fs.StringVarP(&g.output, "output", "o", outputTable, "output `FORMAT`: table, json, yaml or tsv")
	fs.StringVar(&g.user, "user", envOr("AMLSIM_USER", sim.DefaultOwner.ObjectID), "object `ID` of the principal to act as ($AMLSIM_USER)")
	fs.StringVar(&g.sub, "subscription", envOr("AMLSIM_SUBSCRIPTION", defaultSubscription), "subscription `ID` ($AMLSIM_SUBSCRIPTION)")
	cobra.MarkFlagDirname(fs, "home")
	cmd.RegisterFlagCompletionFunc("output", func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return outputsOf(cmd), cobra.ShellCompDirectiveNoFileComp
	})
	cmd.RegisterFlagCompletionFunc("user", completePrincipals(g))
}

// checkOutput refuses an --output the running verb does not print.
func checkOutput(cmd *cobra.Command, output string) error {
	if cmd.Flags().Lookup("output") == nil {
		return nil
	}
	formats := outputsOf(cmd)
	if !slices.Contains(formats, output) {
		return usageErrorf("--output %q: want one of %s", output, strings.Join(formats, ", "))
	}
	return nil
}

// outputsOf lists the --output formats of cmd.
func outputsOf(cmd *cobra.Command) []string {
	formats := slices.Clone(outputFormats)
	if extra := cmd.Annotations[annotationOutputs]; extra != "" {
		formats = append(formats, strings.Split(extra, ",")...)
	}
	return formats
}

// workspaceRef names the workspace a compute verb works in.
type workspaceRef struct{ rg, name string }

// workspaceFlags adds --workspace and --resource-group to cmd.
func workspaceFlags(cmd *cobra.Command, g *globals) *workspaceRef {
	w := &workspaceRef{}
	cmd.Flags().StringVar(&w.name, "workspace", envOr("AMLSIM_WORKSPACE", defaultWorkspace), "workspace `NAME` ($AMLSIM_WORKSPACE)")
	cmd.Flags().StringVar(&w.rg, "resource-group", envOr("AMLSIM_RESOURCE_GROUP", defaultResourceGroup), "resource group `NAME` of the workspace ($AMLSIM_RESOURCE_GROUP)")
	cmd.RegisterFlagCompletionFunc("workspace", completeWorkspaces(g))
	return w
}

// exactArgs checks a verb's positional arguments: one for each name, and
// none after a "--".
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if n := cmd.ArgsLenAtDash(); n >= 0 && n < len(args) {
			return usageErrorf("unexpected arguments after --: %s", strings.Join(args[n:], " "))
		}
		if len(args) < len(names) {
			return usageErrorf("missing %s (usage: %s)", names[len(args)], cmd.UseLine())
		}
		if len(args) > len(names) {
			return usageErrorf("unexpected argument %q (usage: %s)", args[len(names)], cmd.UseLine())
		}
		return nil
	}
}

// leadingArg checks a verb whose first argument is named and whose others
// (after "--" or not) are passed on: a command, a script's arguments.
func leadingArg(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageErrorf("missing %s (usage: %s)", name, cmd.UseLine())
		}
		return nil
	}
}

// firstLine is the first line of a verb's description, without its full
// stop: its summary in lists.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSuffix(line, ".")
}
