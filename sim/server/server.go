// Package server wires a whole amlsim server from a home directory and a
// configuration: the CA and the token key, the state database, the
// hypervisor driver and its guest setup, the simulated cloud (recovered
// from what the store and the hypervisor say), the ARM API with its audit
// log, and the studio, served over HTTPS. `amlsim serve` runs it in the
// foreground; sim/amlsimtest runs it inside a Go test.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/clock"
	"github.com/amlsim/amlsim/sim/pki"
	"github.com/amlsim/amlsim/sim/store"
	"github.com/amlsim/amlsim/sim/studio"
)

// Files in the home directory, besides pki.CAFile, pki.CAKeyFile and
// auth.KeyFile.
const (
	// StateFile is the state database.
	StateFile = "state.db"
	// ManagementKeyFile is the SSH key amlsim reaches its guests with.
	ManagementKeyFile = "id_ed25519"
	// SharesDir holds each workspace's file share: shares/<rg>/<ws>/.
	SharesDir = "shares"
	// JobsDir holds each job's logs: jobs/<rg>/<ws>/<job>/.
	JobsDir = "jobs"
	// AuditFile gets one JSON line per API request.
	AuditFile = "audit.log"
	// FakeDomainsFile keeps the fake driver's domains, so that they
	// outlive the server as libvirt's do.
	FakeDomainsFile = "fake-domains.json"
)

// shutdownGrace is how long Close lets requests in flight finish.
const shutdownGrace = 10 * time.Second

// Options say what server to start. Home and Config are needed; the rest
// have defaults.
type Options struct {
	// Home holds the server's state (CA, keys, database, audit log); it
	// is created when missing.
	Home string
	// Listen is the TCP address to serve HTTPS on; empty means a free
	// port on 127.0.0.1.
	Listen string
	// Config is the simulated cloud: sim.DefaultConfig(), or what
	// sim.LoadConfig or sim.ParseConfig read.
	Config sim.Config
	// Driver names the hypervisor driver: LibvirtDriver (empty) or
	// FakeDriver, or another the hypervisor registry holds.
	Driver string
	// Logger gets the server's log; nil means slog.Default().
	Logger *slog.Logger
	// TestClock, when set, is the clock of the simulated cloud, served at
	// api.ClockPath (serve --test-clock).
	TestClock *clock.Test
	// Faults serves fault rules at api.FaultsPath and applies them
	// (serve --faults).
	Faults bool
	// RemoveVMsOnClose makes Close remove every VM of this server (its
	// domains and their disks) once the simulated cloud has stopped: for
	// tests, whose VMs must not outlive them. Without it they keep
	// running, to be taken back at the next start, as libvirt's VMs
	// outlive `amlsim serve`.
	RemoveVMsOnClose bool
	// FakeOptions are added to the fake driver's options (after its
	// delays and its stand-in notebook server), for tests.
	FakeOptions []fake.Option
	// APIOptions are added to the ARM API's options, for tests of the API
	// itself (its poll interval, its body timeout).
	APIOptions []api.Option
}

// Server is a running amlsim server.
type Server struct {
	home   string
	log    *slog.Logger
	ln     net.Listener
	http   *http.Server
	svc    *sim.Service
	drv    hypervisor.Driver
	tokens *auth.Signer

	// undo closes what Start opened, in reverse order.
	undo []func() error
	// served is closed when the HTTP server stops; serveErr says why.
	served   chan struct{}
	serveErr error

	closeOnce sync.Once
	closeErr  error
}

// Start starts a server: it opens the home, the state database and the
// driver, recovers the simulated cloud (resuming the operations a stop cut
// short and adopting the VMs that kept running), and serves the API and
// the studio over HTTPS until Close. On failure nothing it opened stays
// open. ctx bounds the start only.
func Start(ctx context.Context, o Options) (_ *Server, err error) {
	if o.Home == "" {
		return nil, errors.New("server: no home directory")
	}
	if o.Driver == "" {
		o.Driver = LibvirtDriver
	}
	// Before the home is touched: a driver this build lacks leaves
	// nothing behind.
	if _, ok := hypervisor.Lookup(o.Driver); !ok && o.Driver != FakeDriver {
		return nil, noDriver(o.Driver)
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{home: o.Home, log: log, served: make(chan struct{})}
	defer func() {
		if err != nil {
			s.teardown()
		}
	}()

	if err := os.MkdirAll(o.Home, 0o700); err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	tlsCfg, err := pki.ServerTLS(o.Home)
	if err != nil {
		return nil, err
	}
	if s.tokens, err = auth.LoadOrCreate(o.Home); err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(o.Home, StateFile), sim.Buckets()...)
	if err != nil {
		return nil, err
	}
	s.onClose(st.Close)

	if cfg.Driver.CloudImage != "" && cfg.Driver.FastCreate {
		// The template guest runs amlsim's reidentify program, which is
		// made for the default image's cloud-init and systemd.
		log.Info("fast create is off: it works with the default image, not a cloud image")
		cfg.Driver.FastCreate = false
	}
	drv, g, closeDrv, err := openDriver(ctx, o.Driver, o.Home, cfg, log, o.FakeOptions)
	if err != nil {
		return nil, err
	}
	s.drv = drv
	s.onClose(func() error { closeDrv(); return nil })

	prefix := sim.HomeDomainPrefix(o.Home)
	if o.RemoveVMsOnClose {
		// After the service stops (it is closed first), before the
		// driver closes.
		s.onClose(func() error { return s.removeVMs(prefix) })
	}
	svcOpts := []sim.Option{sim.WithLogger(log), sim.WithShares(filepath.Join(o.Home, SharesDir)), sim.WithJobsDir(filepath.Join(o.Home, JobsDir)),
		sim.WithDomainPrefix(prefix), sim.WithImageVersion(imageVersion(cfg, o.Driver))}
	apiOpts := []api.Option{api.WithLogger(log)}
	if o.TestClock != nil {
		svcOpts = append(svcOpts, sim.WithClock(o.TestClock))
		apiOpts = append(apiOpts, api.WithTestClock(o.TestClock))
		log.Info("test clock on: GET or POST " + api.ClockPath)
	}
	if o.Faults {
		apiOpts = append(apiOpts, api.WithFaults())
		log.Info("fault injection on: PUT, GET or DELETE " + api.FaultsPath)
	}
	audit, err := os.OpenFile(filepath.Join(o.Home, AuditFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	s.onClose(audit.Close)
	auditLog := api.NewAuditLog(audit)
	svcOpts = append(svcOpts, sim.WithFaultLog(auditLog.Fault))
	apiOpts = append(apiOpts, api.WithAudit(auditLog))
	if s.svc, err = sim.New(cfg, st, drv, g, svcOpts...); err != nil {
		return nil, err
	}
	// Closed even when Recover fails: it may have started the reconciler.
	s.onClose(func() error { s.svc.Close(); return nil })
	if err := s.svc.Recover(ctx); err != nil {
		return nil, fmt.Errorf("reconcile with the hypervisor: %w", err)
	}

	arm := api.New(s.svc, s.tokens, append(apiOpts, o.APIOptions...)...)
	// Closed first: running deployments stop before the audit log and
	// the service close.
	s.onClose(func() error { arm.Close(); return nil })

	if s.ln, err = net.Listen("tcp", o.Listen); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(studio.PathPrefix, studio.New(s.svc, s.tokens, arm, log))
	mux.Handle("/", arm)
	s.http = &http.Server{
		Handler:           mux,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		s.serveErr = s.http.ServeTLS(s.ln, "", "")
		close(s.served)
	}()
	return s, nil
}

// onClose adds f to what Close (or a failed Start) undoes, before what is
// there already.
func (s *Server) onClose(f func() error) { s.undo = append(s.undo, f) }

// teardown undoes Start's steps in reverse order, joining their errors.
func (s *Server) teardown() error {
	var errs []error
	for i := len(s.undo) - 1; i >= 0; i-- {
		errs = append(errs, s.undo[i]())
	}
	s.undo = nil
	return errors.Join(errs...)
}

// Addr is the address the server listens on, as HOST:PORT.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Endpoint is the server's base URL: https://HOST:PORT.
func (s *Server) Endpoint() string { return "https://" + s.Addr() }

// Home is the server's home directory.
func (s *Server) Home() string { return s.home }

// Service is the simulated cloud the server serves.
func (s *Server) Service() *sim.Service { return s.svc }

// Driver is the hypervisor driver the server's VMs run on.
func (s *Server) Driver() hypervisor.Driver { return s.drv }

// Tokens is the signer of the tokens the server accepts: the home's
// token key.
func (s *Server) Tokens() *auth.Signer { return s.tokens }

// Done is closed when the server stops serving: after Close, or on its
// own when serving fails (Close then says why).
func (s *Server) Done() <-chan struct{} { return s.served }

// Close stops serving, letting requests in flight finish for a while,
// then stops the simulated cloud and closes the driver and the store. The
// VMs keep running unless Options.RemoveVMsOnClose. It returns why
// serving stopped, if not because of Close, and what failed on the way;
// calling it again returns the same.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		var errs []error
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop serving: %w", err))
			s.http.Close()
		}
		<-s.served
		if !errors.Is(s.serveErr, http.ErrServerClosed) {
			errs = append(errs, s.serveErr)
		}
		errs = append(errs, s.teardown())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// removeVMs undefines the domains whose names start with prefix (this
// server's): each is forced off, and its disks and files removed.
func (s *Server) removeVMs(prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	doms, err := s.drv.List(ctx)
	if err != nil {
		return fmt.Errorf("remove VMs: %w", err)
	}
	var errs []error
	for _, d := range doms {
		if !strings.HasPrefix(d.Name, prefix) {
			continue
		}
		if err := s.drv.Undefine(ctx, d.Name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			errs = append(errs, fmt.Errorf("remove VM %q: %w", d.Name, err))
			continue
		}
		s.log.Debug("VM removed", "domain", d.Name)
	}
	return errors.Join(errs...)
}
