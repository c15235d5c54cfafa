package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/clock"
	"github.com/amlsim/amlsim/sim/server"
	"github.com/spf13/cobra"
)

// serveOptions are the flags of `amlsim serve`.
type serveOptions struct {
	home, listen, config, driver string
	verbose, testClock, faults   bool
}

func newServeCommand() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the simulator: the ARM API over HTTPS, backed by VMs",
		Long: `Run the simulator in the foreground: the ARM API over HTTPS, backed by
libvirt VMs (or by nothing with --driver fake). It prints one line
"amlsim: serving https://ADDR" once ready; SIGINT or SIGTERM stop it, and
instance VMs keep running, to be taken back at the next start.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Before the home is touched: a driver this build lacks is a
			// usage error that leaves nothing behind.
			if _, ok := hypervisor.Lookup(o.driver); !ok && o.driver != server.FakeDriver {
				return noDriverError(o.driver)
			}
			return serve(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.home, "home", defaultHome(), "state `DIR` (CA, keys, database) ($AMLSIM_HOME)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:9443", "`ADDRESS` to serve HTTPS on")
	f.StringVar(&o.config, "config", "", "TOML config `FILE` (built-in defaults when absent)")
	f.StringVar(&o.driver, "driver", "libvirt", "hypervisor `DRIVER`: libvirt (real VMs; needs a build with cgo, on Linux) or fake (no VMs)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log every request")
	f.BoolVar(&o.testClock, "test-clock", false, "serve a settable clock at /amlsim/clock (for tests of schedules and idle shutdown)")
	f.BoolVar(&o.faults, "faults", false, "serve fault rules at /amlsim/faults and apply them (for tests of how clients cope with Azure's failures)")
	cmd.MarkFlagDirname("home")
	cmd.MarkFlagFilename("config", "toml")
	cmd.RegisterFlagCompletionFunc("driver", cobra.FixedCompletions(driverNames(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// serve runs the simulator in the foreground until ctx ends (SIGINT or
// SIGTERM).
func serve(ctx context.Context, o *serveOptions) error {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := sim.LoadConfig(o.config)
	if err != nil {
		return err
	}
	opts := server.Options{Home: o.home, Listen: o.listen, Config: cfg, Driver: o.driver, Logger: log, Faults: o.faults}
	if o.testClock {
		opts.TestClock = clock.NewTest()
	}
	srv, err := server.Start(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Printf("amlsim: serving https://%s\n", srv.Addr())
	select {
	case <-srv.Done():
		// Serving failed on its own: Close says why.
	case <-ctx.Done():
		log.Info("shutting down; instance VMs keep running")
	}
	return srv.Close()
}
