package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/amlsim/amlsim/sim"
)

// Defaults of the client verbs, each overridable by an environment
// variable and a flag.
const (
	defaultEndpoint      = "https://127.0.0.1:9443"
	defaultSubscription  = "00000000-0000-0000-0000-000000000000"
	defaultResourceGroup = "rg-local"
	defaultWorkspace     = "ws-local"
	// apiVersion is the ARM api-version the CLI speaks (armmachinelearning v4).
	apiVersion = "2024-04-01"
)

// Output formats of --output.
const (
	outputTable = "table"
	outputJSON  = "json"
	// outputName prints names only, one a line (compute list only).
	outputName = "name"
)

// runFunc is what a verb does once its flags are parsed; args are its
// positional arguments.
type runFunc func(ctx context.Context, args []string) error

// verb is one CLI verb: its name, the shape of its arguments, a summary for
// --help, and setup, which declares its flags on c and returns its work.
// Declaring flags apart from running lets the completion script list them.
type verb struct {
	name    string
	args    string
	summary string
	setup   func(c *command) runFunc
	// passthrough: the arguments after "--" are the verb's (a command to
	// run), not a mistake.
	passthrough bool
}

// globals are the flags every client verb takes.
type globals struct {
	endpoint string
	home     string
	output   string
	user     string
	sub      string
}

// command is a verb being run: its flag set and the global flags.
type command struct {
	path    string // "compute create"
	args    string
	summary string
	fs      *flag.FlagSet
	g       globals
	global  map[string]bool
	outputs []string
	stdout  io.Writer
	stderr  io.Writer
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// newCommand prepares the flag set of verb v, with the global flags.
func newCommand(path string, v verb) *command {
	c := &command{
		path: path, args: v.args, summary: v.summary,
		fs:      flag.NewFlagSet(path, flag.ContinueOnError),
		outputs: []string{outputTable, outputJSON},
		stdout:  os.Stdout, stderr: os.Stderr,
	}
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {}
	c.fs.StringVar(&c.g.endpoint, "endpoint", envOr("AMLSIM_ENDPOINT", defaultEndpoint), "`URL` of the amlsim server ($AMLSIM_ENDPOINT)")
	c.fs.StringVar(&c.g.home, "home", defaultHome(), "amlsim home `DIR` holding the server's CA and token key ($AMLSIM_HOME)")
	c.fs.StringVar(&c.g.output, "output", outputTable, "output `FORMAT`: table or json")
	c.fs.StringVar(&c.g.output, "o", outputTable, "short for --output `FORMAT`")
	c.fs.StringVar(&c.g.user, "user", envOr("AMLSIM_USER", sim.DefaultOwner.ObjectID), "object `ID` of the principal to act as ($AMLSIM_USER)")
	c.fs.StringVar(&c.g.sub, "subscription", envOr("AMLSIM_SUBSCRIPTION", defaultSubscription), "subscription `ID` ($AMLSIM_SUBSCRIPTION)")
	c.global = map[string]bool{}
	c.fs.VisitAll(func(f *flag.Flag) { c.global[f.Name] = true })
	return c
}

// workspaceFlags adds --workspace and --resource-group.
func (c *command) workspaceFlags() *workspaceRef {
	w := &workspaceRef{}
	c.fs.StringVar(&w.name, "workspace", envOr("AMLSIM_WORKSPACE", defaultWorkspace), "workspace `NAME` ($AMLSIM_WORKSPACE)")
	c.fs.StringVar(&w.rg, "resource-group", envOr("AMLSIM_RESOURCE_GROUP", defaultResourceGroup), "resource group `NAME` of the workspace ($AMLSIM_RESOURCE_GROUP)")
	return w
}

// workspaceRef names the workspace a compute verb works in.
type workspaceRef struct{ rg, name string }

// errHelp is returned when the user asked for --help: the help went to
// stdout and the exit status is 0.
var errHelp = errors.New("help requested")

// parse parses args, allowing positional arguments between flags (so
// `create NAME --size S` and `create --size S NAME` both work). Everything
// after a "--" is returned in rest, untouched.
func (c *command) parse(args []string) (pos, rest []string, err error) {
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.help(c.stdout)
				return nil, nil, errHelp
			}
			return nil, nil, usageErrorf("%v (see 'amlsim %s --help')", err, c.path)
		}
		args = c.fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	ok := false
	for _, o := range c.outputs {
		ok = ok || c.g.output == o
	}
	if !ok {
		return nil, nil, usageErrorf("--output %q: want one of %s", c.g.output, strings.Join(c.outputs, ", "))
	}
	return pos, rest, nil
}

// help prints the verb's usage, its own flags, then the global ones.
func (c *command) help(w io.Writer) {
	fmt.Fprintf(w, "Usage: amlsim %s %s\n\n%s\n", c.path, c.args, c.summary)
	var own, global []*flag.Flag
	c.fs.VisitAll(func(f *flag.Flag) {
		if c.global[f.Name] {
			global = append(global, f)
		} else {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		printFlags(w, own)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n")
	printFlags(w, global)
}

func printFlags(w io.Writer, flags []*flag.Flag) {
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	for _, f := range flags {
		name, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		left := dash + f.Name
		if name != "" {
			left += " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  %-28s %s%s\n", left, usage, def)
	}
}

// runVerb runs one verb from a table: it parses the flags and calls the
// verb's work under a context cancelled by Ctrl-C.
func runVerb(path string, v verb, args []string) error {
	c := newCommand(path, v)
	run := v.setup(c)
	pos, rest, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 && !v.passthrough {
		return usageErrorf("unexpected arguments after --: %s", strings.Join(rest, " "))
	}
	pos = append(pos, rest...)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, pos)
}

// exactArgs checks the count of positional arguments.
func exactArgs(c *command, args []string, names ...string) error {
	if len(args) < len(names) {
		return usageErrorf("missing %s (usage: amlsim %s %s)", names[len(args)], c.path, c.args)
	}
	if len(args) > len(names) {
		return usageErrorf("unexpected argument %q (usage: amlsim %s %s)", args[len(names)], c.path, c.args)
	}
	return nil
}

// dispatch runs the sub-verb named by args[0] among verbs.
func dispatch(group string, verbs []verb, args []string) error {
	if len(args) == 0 {
		groupHelp(os.Stderr, group, verbs)
		return usageErrorf("missing verb after 'amlsim %s'", group)
	}
	if args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		groupHelp(os.Stdout, group, verbs)
		return errHelp
	}
	for _, v := range verbs {
		if v.name == args[0] {
			return runVerb(group+" "+v.name, v, args[1:])
		}
	}
	return usageErrorf("unknown verb %q after 'amlsim %s' (see 'amlsim %s --help')", args[0], group, group)
}

func groupHelp(w io.Writer, group string, verbs []verb) {
	fmt.Fprintf(w, "Usage: amlsim %s VERB [flags]\n\nVerbs:\n", group)
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-10s %s\n", v.name, firstLine(v.summary))
	}
	fmt.Fprintf(w, "\nRun 'amlsim %s VERB --help' for a verb's flags.\n", group)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// plainHelp gives a verb parsed with a bare flag.FlagSet (serve, token,
// image) the same --help layout as the client verbs.
func plainHelp(fs *flag.FlagSet, usage, summary string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: amlsim %s\n\n%s\n", usage, summary)
		var flags []*flag.Flag
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
		if len(flags) > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			printFlags(w, flags)
		}
	}
}
