// Package amlsimtest runs a whole amlsim server inside a Go test, in one
// line:
//
//	srv := amlsimtest.Start(t)
//
// It serves the ARM API over HTTPS on a free loopback port, from a
// temporary home, on the fake driver unless told otherwise (WithDriver),
// and is stopped when the test ends, leaving no VM, domain or file behind.
// Clients get what they need from it: ClientFactory for the Azure SDK's
// armmachinelearning v4, or Endpoint, Credential and ClientOptions for any
// other ARM client; nothing global changes. Clock moves its test clock
// and Faults injects Azure's failures, both through the server's HTTP API,
// as a suite talking to `amlsim serve` does.
package amlsimtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/clock"
	"github.com/amlsim/amlsim/sim/pki"
	"github.com/amlsim/amlsim/sim/server"
)

// TB is what Start needs of a test: *testing.T, *testing.B and
// *testing.F are TBs (so is any testing.TB). Failures to start, stop or
// reach the server fail the test; the server's log goes to Logf.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// startTimeout bounds Start: a libvirt driver may first probe whether
// KVM works (a boot of up to 20 s).
const startTimeout = 2 * time.Minute

// Server is an amlsim server running for one test.
type Server struct {
	t   TB
	srv *server.Server
	cfg sim.Config
	// transport trusts the server's CA; its idle connections are closed
	// with the server.
	transport *http.Transport
	client    *http.Client
	clock     *clock.Test
	faults    bool
	log       *tbWriter
}

// Start starts an amlsim server for the test t, stopped when t ends (by
// t.Cleanup): its API stops, its VMs and their disks are removed, and its
// home is deleted (with the fake driver's domains, which live there). Without
// options it runs on the fake driver with the built-in configuration
// (sim.DefaultConfig), the wall clock and no fault injection, and tells
// clients to poll operations every 100 ms. Unless the configuration sets
// a port range of its own, the instances' ports (SSH, applications) come
// from a range picked at random for the server, so that servers started
// side by side do not race for the same ports. A server that cannot start
// fails t.
func Start(t TB, opts ...Option) *Server {
	t.Helper()
	o := options{driver: server.FakeDriver, cfg: sim.DefaultConfig()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.toml != nil {
		cfg, err := sim.ParseConfig("given to amlsimtest.WithConfigTOML", *o.toml)
		if err != nil {
			t.Fatalf("amlsimtest: %v", err)
		}
		o.cfg = cfg
	}
	if o.cfg.Local.PortRange == sim.DefaultConfig().Local.PortRange {
		o.cfg.Local.PortRange = randomPortRange()
	}
	s := &Server{t: t, cfg: o.cfg, faults: o.faults, log: &tbWriter{t: t}}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(s.log, nil))
	}
	home, err := os.MkdirTemp("", "amlsimtest-")
	if err != nil {
		t.Fatalf("amlsimtest: home: %v", err)
	}
	so := server.Options{
		Home:             home,
		Config:           o.cfg,
		Driver:           o.driver,
		Logger:           logger,
		Faults:           o.faults,
		RemoveVMsOnClose: o.driver != server.FakeDriver, // the fake's domains live in the home
		FakeOptions:      o.fakeOpts,
		APIOptions:       append([]api.Option{api.WithPollInterval(100 * time.Millisecond)}, o.apiOpts...),
	}
	if o.clock {
		s.clock = clock.NewTest()
		if !o.clockStart.IsZero() {
			s.clock = clock.NewTestAt(o.clockStart)
		}
		so.TestClock = s.clock
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if s.srv, err = server.Start(ctx, so); err != nil {
		os.RemoveAll(home)
		t.Fatalf("amlsimtest: start amlsim: %v", err)
	}
	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	s.client = &http.Client{Transport: s.transport}
	t.Cleanup(s.stop)
	pool, err := pki.Pool(home)
	if err != nil {
		t.Fatalf("amlsimtest: %v", err)
	}
	s.transport.TLSClientConfig = &tls.Config{RootCAs: pool}
	for _, r := range o.rules {
		s.Faults().Put(r)
	}
	return s
}

// stop stops the server, removes its VMs and its home, and ends its log.
func (s *Server) stop() {
	s.transport.CloseIdleConnections()
	if err := s.srv.Close(); err != nil {
		s.t.Errorf("amlsimtest: stop amlsim: %v", err)
	}
	s.log.close()
	if err := os.RemoveAll(s.srv.Home()); err != nil {
		s.t.Errorf("amlsimtest: remove home: %v", err)
	}
}

// Endpoint is the server's base URL, https://127.0.0.1:PORT: the ARM
// endpoint, and the authority host of its sign-in endpoints.
func (s *Server) Endpoint() string { return s.srv.Endpoint() }

// Home is the server's home directory (CA, token key, state database,
// audit log), deleted when the test ends.
func (s *Server) Home() string { return s.srv.Home() }

// Service is the simulated cloud, for a test that looks behind the API.
func (s *Server) Service() *sim.Service { return s.srv.Service() }

// Driver is the hypervisor driver the server's VMs run on: a
// *fake.Driver unless started WithDriver.
func (s *Server) Driver() hypervisor.Driver { return s.srv.Driver() }

// Config is the configuration the server runs with.
func (s *Server) Config() sim.Config { return s.cfg }

// Credential is an azcore.TokenCredential for the built-in owner
// (sim.DefaultOwner), an Owner of the subscription.
func (s *Server) Credential() azcore.TokenCredential {
	return s.CredentialFor(sim.DefaultOwner.ObjectID)
}

// CredentialFor is an azcore.TokenCredential for the principal with this
// object ID, in its configured tenant and with its configured name (the
// subscription's tenant for one the configuration does not list).
func (s *Server) CredentialFor(objectID string) azcore.TokenCredential {
	p, ok := s.Service().Principal(objectID)
	if !ok {
		p = sim.Principal{ObjectID: objectID, TenantID: s.cfg.Tenant}
	}
	return s.srv.Tokens().Credential(p.ObjectID, p.TenantID, p.Name)
}

// HTTPClient is an HTTP client that trusts the server's CA, for requests
// outside the SDK (they need a token: see Credential).
func (s *Server) HTTPClient() *http.Client { return s.client }

// ClientOptions are ARM client options for the server: a cloud whose
// ResourceManager endpoint (and sign-in authority) is the server, and a
// transport that trusts its CA. The SDK's retry policy is left as it is,
// so a client retries throttling as against Azure. Each call returns new
// options, for the caller to change.
func (s *Server) ClientOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: s.Endpoint() + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				// Without the trailing slash: the SDK asks for the scope
				// Audience+"/.default", which amlsim's sign-in knows.
				cloud.ResourceManager: {Endpoint: s.Endpoint(), Audience: "https://management.azure.com"},
			},
		},
		Transport: s.client,
	}}
}

// ClientFactory is the Azure SDK's armmachinelearning v4 client factory
// for the server's subscription, acting as the built-in owner.
func (s *Server) ClientFactory() *ml.ClientFactory {
	f, err := ml.NewClientFactory(s.cfg.Subscription, s.Credential(), s.ClientOptions())
	if err != nil {
		s.t.Fatalf("amlsimtest: client factory: %v", err)
	}
	return f
}

// call sends a JSON request to one of amlsim's own endpoints as the
// built-in owner and decodes the JSON answer into out (when not nil). An
// answer other than want fails the test.
func (s *Server) call(method, path string, body, out any, want ...int) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatalf("amlsimtest: %s %s: %v", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.Endpoint()+path, rd)
	if err != nil {
		s.t.Fatalf("amlsimtest: %s %s: %v", method, path, err)
	}
	tok, err := s.Credential().GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{auth.Audience + ".default"}})
	if err != nil {
		s.t.Fatalf("amlsimtest: token: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("amlsimtest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("amlsimtest: %s %s: %v", method, path, err)
	}
	ok := false
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		s.t.Fatalf("amlsimtest: %s %s: %s %s", method, path, resp.Status, bytes.TrimSpace(raw))
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("amlsimtest: %s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// randomPortRange is a range of 1000 loopback ports for a server's
// instances, starting anywhere in 10000-18999: below Linux's ephemeral
// ports and apart from `amlsim serve`'s default range (20022-20999).
// Ports are given lowest first, and probed free only when given, so
// servers of the same range started side by side (parallel tests, test
// binaries of several packages) would race for the same ones.
func randomPortRange() [2]int {
	lo := 10000 + rand.IntN(9000)
	return [2]int{lo, lo + 999}
}

// tbWriter writes the server's log to the test's, one Logf per line,
// until the server has stopped: a test must not log once it has ended.
type tbWriter struct {
	mu   sync.Mutex
	t    TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Logf("amlsim: %s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tbWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
