package main

import (
	"fmt"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/studio"
	"github.com/spf13/cobra"
)

// signInTTL is how long a studio sign-in address is valid: long enough to
// open it, short enough not to matter once it is in a shell's history.
const signInTTL = 10 * time.Minute

func newStudioCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "studio",
		Short: "Print the address that signs a browser in to the studio page",
		Long: `Print the address that signs a browser in to the studio page, as the
built-in owner or --user (a principal of the server's config). The address
is valid for 10 minutes; the session it opens for 12 hours. Trust amlsim's
CA (HOME/ca.pem) in the browser, or accept its certificate once.`,
		Args: exactArgs(),
	}
	p := principalFlags(cmd, "to sign in as")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		signer, err := auth.LoadOrCreate(p.home)
		if err != nil {
			return err
		}
		name := ""
		if p.user == sim.DefaultOwner.ObjectID {
			name = sim.DefaultOwner.Name
		}
		tok, err := signer.Mint(p.user, p.tenant, name, signInTTL)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), studio.SignInURL(p.endpoint, tok))
		return nil
	}
	return cmd
}
