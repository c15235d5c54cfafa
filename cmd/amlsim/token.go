package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/auth"
)

// token prints a bearer token the server at --home accepts.
func token(args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	home := fs.String("home", defaultHome(), "simulator state directory")
	user := fs.String("user", sim.DefaultOwner.ObjectID, "object ID of the principal")
	tenant := fs.String("tenant", sim.DefaultOwner.TenantID, "tenant ID of the principal")
	name := fs.String("name", "", "display name of the principal (default: the built-in owner's for the default user)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	plainHelp(fs, "token [flags]", `Print a bearer token the server at --home accepts, for the built-in owner
or for --user, a principal the server's config lists.`)
	if err := fs.Parse(args); err != nil {
		return err
	}
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
	fmt.Println(tok)
	return nil
}
