package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/amlsim/amlsim/fixtures"
	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/clock"
	"github.com/amlsim/amlsim/sim/guest"
	"github.com/amlsim/amlsim/sim/pki"
	"github.com/amlsim/amlsim/sim/store"
	"github.com/amlsim/amlsim/sim/studio"
	"github.com/spf13/cobra"
)

// Files in the home directory.
const (
	stateFile         = "state.db"
	managementKeyFile = "id_ed25519"
	// sharesDir holds each workspace's file share: shares/<rg>/<ws>/.
	sharesDir = "shares"
	// auditFile gets one JSON line per API request.
	auditFile = "audit.log"
	// fakeDomainsFile keeps the fake driver's domains, so that they
	// outlive the server as libvirt's do.
	fakeDomainsFile = "fake-domains.json"
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
			if _, ok := hypervisor.Lookup(o.driver); !ok && o.driver != fakeDriver {
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
	if err := os.MkdirAll(o.home, 0o700); err != nil {
		return err
	}
	tlsCfg, err := pki.ServerTLS(o.home)
	if err != nil {
		return err
	}
	signer, err := auth.LoadOrCreate(o.home)
	if err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(o.home, stateFile), sim.Buckets()...)
	if err != nil {
		return err
	}
	defer st.Close()

	if cfg.Driver.CloudImage != "" && cfg.Driver.FastCreate {
		// The template guest runs amlsim's reidentify program, which is
		// made for the default image's cloud-init and systemd.
		log.Info("fast create is off: it works with the default image, not a cloud image")
		cfg.Driver.FastCreate = false
	}
	drv, g, closeDrv, err := openDriver(ctx, o.driver, o.home, cfg, log)
	if err != nil {
		return err
	}
	defer closeDrv()

	svcOpts := []sim.Option{sim.WithLogger(log), sim.WithShares(filepath.Join(o.home, sharesDir)),
		sim.WithDomainPrefix(sim.HomeDomainPrefix(o.home)), sim.WithImageVersion(imageVersion(cfg, o.driver))}
	apiOpts := []api.Option{api.WithLogger(log)}
	if o.testClock {
		c := clock.NewTest()
		svcOpts = append(svcOpts, sim.WithClock(c))
		apiOpts = append(apiOpts, api.WithTestClock(c))
		log.Info("test clock on: GET or POST " + api.ClockPath)
	}
	if o.faults {
		apiOpts = append(apiOpts, api.WithFaults())
		log.Info("fault injection on: PUT, GET or DELETE " + api.FaultsPath)
	}
	svc, err := sim.New(cfg, st, drv, g, svcOpts...)
	if err != nil {
		return err
	}
	if err := svc.Recover(ctx); err != nil {
		return fmt.Errorf("reconcile with the hypervisor: %w", err)
	}
	defer svc.Close()

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	audit, err := os.OpenFile(filepath.Join(o.home, auditFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer audit.Close()
	arm := api.New(svc, signer, append(apiOpts, api.WithAudit(audit))...)
	// Deferred last, so it runs first: running deployments stop before
	// the audit log and the service close.
	defer arm.Close()
	mux := http.NewServeMux()
	mux.Handle(studio.PathPrefix, studio.New(svc, signer, arm, log))
	mux.Handle("/", arm)
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	fmt.Printf("amlsim: serving https://%s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; instance VMs keep running")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openDriver opens the hypervisor driver called name and the matching
// guest setup: the fake directly, any other driver through the hypervisor
// registry, with SSH into its guests. The func closes the driver. A name
// this build has no driver for is an error naming those it has.
func openDriver(ctx context.Context, name, home string, cfg sim.Config, log *slog.Logger) (hypervisor.Driver, sim.Guest, func(), error) {
	switch name {
	case fakeDriver:
		d := cfg.Fake.Delay.Duration
		drv, err := fake.Open(filepath.Join(home, fakeDomainsFile),
			fake.WithDelays(fake.Delays{Define: d, Start: d, Shutdown: d, Reboot: d, Destroy: d, Undefine: d}),
			fake.WithService(sim.JupyterGuestPort, fakeNotebook))
		if err != nil {
			return nil, nil, nil, err
		}
		return drv, guest.Fake{Driver: drv, Active: &guest.FakeActivity{}}, func() { drv.Close() }, nil
	default:
		reg, ok := hypervisor.Lookup(name)
		if !ok {
			return nil, nil, nil, noDriverError(name)
		}
		base, err := baseImage(cfg)
		if err != nil {
			return nil, nil, nil, err
		}
		key, err := guestssh.LoadOrCreateKey(filepath.Join(home, managementKeyFile))
		if err != nil {
			return nil, nil, nil, err
		}
		probe := ""
		if base.Kernel == "" {
			// A cloud image has no kernel to probe KVM with: use the
			// default image's when it is built.
			if img, err := fixtures.LoadImage(fixtures.DefaultImageDir(fixtures.DefaultImageCache())); err == nil {
				probe = img.Kernel
			}
		}
		// Snapshots (fast create) live beside the image they are made of.
		snapshots := filepath.Join(filepath.Dir(base.Disk), "snapshots")
		drv, err := reg.Open(ctx, hypervisor.Options{
			URI:          cfg.Driver.URI,
			StateDir:     cfg.Driver.StateDir,
			Image:        base,
			DomainType:   cfg.Driver.DomainType,
			ProbeKernel:  probe,
			SnapshotRoot: snapshots,
			Logger:       log,
		})
		if err != nil {
			return nil, nil, nil, err
		}
		closeDrv := func() {
			if c, ok := drv.(io.Closer); ok {
				c.Close()
			}
		}
		g := &guest.SSH{Key: key, Restored: func(ctx context.Context, name string) bool {
			d, err := drv.Lookup(ctx, name)
			return err == nil && d.Restored
		}}
		if sl, ok := drv.(hypervisor.SerialLogger); ok {
			g.SerialLog = sl.SerialLog
		}
		if cfg.Driver.FastCreate {
			if err := os.MkdirAll(snapshots, 0o755); err != nil {
				closeDrv()
				return nil, nil, nil, fmt.Errorf("snapshot directory: %w", err)
			}
			if g.Template, err = guest.LoadTemplateKeys(snapshots); err != nil {
				closeDrv()
				return nil, nil, nil, fmt.Errorf("template keys: %w", err)
			}
		}
		return drv, g, closeDrv, nil
	}
}

// imageVersion names the guest image new instances boot, for their
// osImageMetadata: the default image by its recipe hash, another by its
// file or directory name.
func imageVersion(cfg sim.Config, driver string) string {
	switch {
	case driver != libvirtDriver:
		return driver
	case cfg.Driver.CloudImage != "":
		return filepath.Base(cfg.Driver.CloudImage)
	case cfg.Driver.ImageDir != "":
		return filepath.Base(cfg.Driver.ImageDir)
	}
	return "amlsim-" + fixtures.ImageHash()
}

// baseImage is the image instances boot: a configured cloud image through
// the BIOS, or the default image with direct kernel boot.
func baseImage(cfg sim.Config) (hypervisor.BaseImage, error) {
	if cfg.Driver.CloudImage != "" {
		if _, err := os.Stat(cfg.Driver.CloudImage); err != nil {
			return hypervisor.BaseImage{}, fmt.Errorf("cloud image: %w", err)
		}
		return hypervisor.BaseImage{Disk: cfg.Driver.CloudImage}, nil
	}
	dir := cfg.Driver.ImageDir
	if dir == "" {
		dir = fixtures.DefaultImageDir(fixtures.DefaultImageCache())
	}
	img, err := fixtures.LoadImage(dir)
	if err != nil {
		return hypervisor.BaseImage{}, err
	}
	return hypervisor.BaseImage{Disk: img.Disk, Kernel: img.Kernel, Initrd: img.Initrd, Cmdline: img.Cmdline}, nil
}

// fakeNotebook stands in for an instance's Jupyter under the fake driver,
// so the applications' addresses, the sign-in and the owner-only rule can
// be tried without a VM.
var fakeNotebook = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "amlsim fake driver: the Jupyter notebook server of this compute instance would answer %s here.\n"+
		"Run 'amlsim serve --driver libvirt' for instances with a real notebook server.\n", r.URL.Path)
})
