package main

import (
	"os"
	"strings"

	"github.com/amlsim/amlsim/fixtures"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// newDocsCommand is `amlsim docs DIR`: one markdown page per command.
func newDocsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "docs DIR",
		Short: "Write the CLI's reference, one markdown page per command, into DIR",
		Long: `Write the CLI's reference, one markdown page per command, into DIR
(created if needed). The pages in cmd/amlsim/docs are made this way.`,
		Args: exactArgs("DIR"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			// A tree built without the environment's AMLSIM_* settings,
			// whose defaults under $HOME read ~/…: the reference is the
			// same whoever generates it.
			for _, kv := range os.Environ() {
				if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AMLSIM_") {
					os.Unsetenv(name)
				}
			}
			root := newRootCommand()
			root.DisableAutoGenTag = true
			neutralDefaults(root)
			return doc.GenMarkdownTree(root, args[0])
		},
	}
}

// neutralDefaults writes the defaults under the user's home directory as
// ~/…, so the reference reads the same whoever generates it.
func neutralDefaults(cmd *cobra.Command) {
	home, err := os.UserHomeDir()
	if err != nil || home == "" || home == "/" {
		return
	}
	fix := func(f *pflag.Flag) {
		if f.Name == "cache" {
			f.DefValue = fixtures.DefaultImageCacheDoc
		}
		if strings.HasPrefix(f.DefValue, home+"/") {
			f.DefValue = "~" + strings.TrimPrefix(f.DefValue, home)
		}
	}
	cmd.LocalFlags().VisitAll(fix)
	cmd.PersistentFlags().VisitAll(fix)
	for _, c := range cmd.Commands() {
		neutralDefaults(c)
	}
}
