package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/auth"
)

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a bearer token the server accepts",
		Long: `Print a bearer token the server at --home accepts, for the built-in owner
or for --user, a principal the server's config lists.`,
		Args: exactArgs(),
	}
	f := cmd.Flags()
	home := f.String("home", defaultHome(), "simulator state `DIR` ($AMLSIM_HOME)")
	user := f.String("user", sim.DefaultOwner.ObjectID, "object `ID` of the principal")
	tenant := f.String("tenant", sim.DefaultOwner.TenantID, "tenant `ID` of the principal")
	name := f.String("name", "", "display `NAME` of the principal (default: the built-in owner's for the default user)")
	ttl := f.Duration("ttl", 24*time.Hour, "how long the token is valid")
	cmd.MarkFlagDirname("home")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *name == "" && *user == sim.DefaultOwner.ObjectID {
			*name = sim.DefaultOwner.Name
		}
		signer, err := auth.LoadOrCreate(*home)
		if err != nil {
			return err
		}
		tok, err := signer.Mint(*user, *tenant, *name, *ttl)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), tok)
		return nil
	}
	return cmd
}
