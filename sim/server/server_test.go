package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/pki"
	"github.com/amlsim/amlsim/sim/server"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func start(t *testing.T, o server.Options) *server.Server {
	t.Helper()
	if o.Home == "" {
		o.Home = t.TempDir()
	}
	if o.Driver == "" {
		o.Driver = server.FakeDriver
	}
	if o.Config.Subscription == "" {
		o.Config = sim.DefaultConfig()
	}
	o.Logger = quiet()
	s, err := server.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// get GETs path from the server, trusting the CA in its home, with the
// built-in owner's token.
func get(t *testing.T, s *server.Server, path string) (int, string) {
	t.Helper()
	pool, err := pki.Pool(s.Home())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Tokens().Mint(sim.DefaultOwner.ObjectID, sim.DefaultOwner.TenantID, sim.DefaultOwner.Name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", s.Endpoint()+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A server answers over HTTPS with a certificate of its home's CA, keeps
// its state in the home, and frees its port on Close.
func TestStartServesTheAPIAndTheStudio(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home") // created by Start
	s := start(t, server.Options{Home: home})
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.Endpoint() != "https://"+s.Addr() {
		t.Errorf("Addr, Endpoint = %s, %s; want a port on 127.0.0.1", s.Addr(), s.Endpoint())
	}
	if status, body := get(t, s, "/subscriptions/"+sim.DefaultConfig().Subscription+"/providers/Microsoft.MachineLearningServices/locations/eastus/usages?api-version=2024-04-01"); status != 200 || !strings.Contains(body, "standardDv2Family") {
		t.Errorf("usages: %d %s", status, body)
	}
	if status, _ := get(t, s, "/studio/signin"); status == 404 {
		t.Errorf("the studio is not served")
	}
	for _, f := range []string{pki.CAFile, auth.KeyFile, server.StateFile, server.AuditFile} {
		if _, err := os.Stat(filepath.Join(home, f)); err != nil {
			t.Errorf("home file %s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(home, server.AuditFile)); !strings.Contains(string(b), `"status":200`) {
		t.Errorf("audit log = %q, want a line per request", b)
	}
	if status, _ := get(t, s, "/amlsim/clock"); status != 404 {
		t.Errorf("GET /amlsim/clock without a test clock = %d, want 404", status)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done is open after Close")
	}
	l, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatalf("the server's port after Close: %v", err)
	}
	l.Close()
	if err := s.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
}

// A driver this build lacks is ErrNoDriver, naming the drivers it has, and
// leaves no home behind.
func TestStartWithoutTheDriver(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	_, err := server.Start(context.Background(), server.Options{Home: home, Driver: "xen", Config: sim.DefaultConfig(), Logger: quiet()})
	if !errors.Is(err, server.ErrNoDriver) {
		t.Fatalf("Start with driver xen = %v, want ErrNoDriver", err)
	}
	for _, name := range append(server.DriverNames(), `"xen"`) {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Start with driver xen = %q, want it to name %s", err, name)
		}
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("home after a refused start: %v, want none", err)
	}
}

// A failed start closes what it opened: the next start on the same home
// opens the state database (which one process at a time may hold).
func TestFailedStartClosesWhatItOpened(t *testing.T) {
	home := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	o := server.Options{Home: home, Driver: server.FakeDriver, Config: sim.DefaultConfig(), Logger: quiet(), Listen: busy.Addr().String()}
	if _, err := server.Start(context.Background(), o); err == nil {
		t.Fatal("Start on a port in use succeeded")
	}
	o.Listen = ""
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := server.Start(ctx, o)
	if err != nil {
		t.Fatalf("Start after a failed start: %v", err)
	}
	s.Close()
}

// Without RemoveVMsOnClose the VMs outlive the server, as libvirt's
// outlive `amlsim serve`; with it, Close removes this server's VMs and
// no other's.
func TestRemoveVMsOnClose(t *testing.T) {
	ctx := context.Background()
	for _, remove := range []bool{false, true} {
		home := t.TempDir()
		s := start(t, server.Options{Home: home, RemoveVMsOnClose: remove})
		ours := sim.HomeDomainPrefix(home) + "eastus-ci1"
		for _, name := range []string{ours, "someone-elses"} {
			if err := s.Driver().Define(ctx, hypervisor.Spec{Name: name, VCPUs: 1, MemoryMiB: 512}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		drv, err := fake.Open(filepath.Join(home, server.FakeDomainsFile))
		if err != nil {
			t.Fatal(err)
		}
		doms, _ := drv.List(ctx)
		var names []string
		for _, d := range doms {
			names = append(names, d.Name)
		}
		want := 2
		if remove {
			want = 1
		}
		if len(names) != want || (remove && names[0] != "someone-elses") {
			t.Errorf("RemoveVMsOnClose %v: domains after Close = %q, want %d (without %s when removed)", remove, names, want, ours)
		}
	}
}
