package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/studio"
)

// signInTTL is how long a studio sign-in address is valid: long enough to
// open it, short enough not to matter once it is in a shell's history.
const signInTTL = 10 * time.Minute

// studioCmd prints the address that signs a browser in to the studio.
func studioCmd(args []string) error {
	fs := flag.NewFlagSet("studio", flag.ContinueOnError)
	home := fs.String("home", defaultHome(), "simulator state directory ($AMLSIM_HOME)")
	endpoint := fs.String("endpoint", envOr("AMLSIM_ENDPOINT", defaultEndpoint), "`URL` of the amlsim server ($AMLSIM_ENDPOINT)")
	user := fs.String("user", sim.DefaultOwner.ObjectID, "object ID of the principal to sign in as")
	tenant := fs.String("tenant", sim.DefaultOwner.TenantID, "tenant ID of the principal")
	plainHelp(fs, "studio [--home DIR] [--endpoint URL] [--user OBJECT_ID]", `Print the address that signs a browser in to the studio page, as the
built-in owner or --user (a principal of the server's config). The address
is valid for 10 minutes; the session it opens for 12 hours. Trust amlsim's
CA (HOME/ca.pem) in the browser, or accept its certificate once.`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("studio takes no arguments")
	}
	signer, err := auth.LoadOrCreate(*home)
	if err != nil {
		return err
	}
	name := ""
	if *user == sim.DefaultOwner.ObjectID {
		name = sim.DefaultOwner.Name
	}
	tok, err := signer.Mint(*user, *tenant, name, signInTTL)
	if err != nil {
		return err
	}
	fmt.Println(studio.SignInURL(*endpoint, tok))
	return nil
}
