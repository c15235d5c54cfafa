package fake_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
)

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		// Held until the end so the kernel hands out distinct ports.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// get fetches / from 127.0.0.1:port on a fresh connection and returns the
// body, or the error of a port nobody serves.
func get(port int) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// notebook stands in for a Jupyter server.
var notebook = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "jupyter")
})

func TestForwardsReported(t *testing.T) {
	d := fake.New()
	fwd := []hypervisor.Forward{{HostPort: 3888, GuestPort: 8888}, {HostPort: 3080, GuestPort: 80}}
	if err := d.Define(ctx(t), hypervisor.Spec{Name: "vm", SSHPort: 3022, Forwards: fwd}); err != nil {
		t.Fatal(err)
	}
	fwd[0].HostPort = 1
	dom, err := d.Lookup(ctx(t), "vm")
	want := []hypervisor.Forward{{HostPort: 3888, GuestPort: 8888}, {HostPort: 3080, GuestPort: 80}}
	if err != nil || !slices.Equal(dom.Forwards, want) {
		t.Errorf("Lookup = %+v, %v; want forwards %v", dom.Forwards, err, want)
	}
	doms, err := d.List(ctx(t))
	if err != nil || len(doms) != 1 || !slices.Equal(doms[0].Forwards, want) {
		t.Errorf("List = %+v, %v; want one domain with forwards %v", doms, err, want)
	}
}

func TestInvalidForwardsRefused(t *testing.T) {
	d := fake.New()
	for _, fwd := range [][]hypervisor.Forward{
		{{HostPort: 0, GuestPort: 8888}},
		{{HostPort: 3888, GuestPort: 70000}},
		{{HostPort: 3022, GuestPort: 8888}},
		{{HostPort: 3888, GuestPort: 8888}, {HostPort: 3888, GuestPort: 80}},
	} {
		err := d.Define(ctx(t), hypervisor.Spec{Name: "vm", SSHPort: 3022, Forwards: fwd})
		if !errors.Is(err, fake.ErrInvalidSpec) {
			t.Errorf("Define with forwards %v = %v, want ErrInvalidSpec", fwd, err)
		}
	}
	if _, err := d.Lookup(ctx(t), "vm"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup after refused Defines = %v, want ErrNotFound", err)
	}
}

func TestForwardPortInUse(t *testing.T) {
	d := fake.New()
	if err := d.Define(ctx(t), hypervisor.Spec{Name: "a", SSHPort: 3022, Forwards: []hypervisor.Forward{{HostPort: 3888, GuestPort: 8888}}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	// A host port clashes whichever forward of either domain holds it.
	clashes := map[string]hypervisor.Spec{
		"forward on forward": {Name: "b", SSHPort: 3023, Forwards: []hypervisor.Forward{{HostPort: 3888, GuestPort: 8888}}},
		"SSH on forward":     {Name: "c", SSHPort: 3888},
		"forward on SSH":     {Name: "e", SSHPort: 3024, Forwards: []hypervisor.Forward{{HostPort: 3022, GuestPort: 80}}},
	}
	for what, spec := range clashes {
		if err := d.Define(ctx(t), spec); err != nil {
			t.Fatal(err)
		}
		if err := d.Start(ctx(t), spec.Name); !errors.Is(err, hypervisor.ErrPortInUse) {
			t.Errorf("Start, %s = %v, want ErrPortInUse", what, err)
		}
		if got := state(t, d, spec.Name); got != hypervisor.StateShutoff {
			t.Errorf("state after a refused Start, %s = %q, want %q", what, got, hypervisor.StateShutoff)
		}
	}
	if err := d.Destroy(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx(t), "b"); err != nil {
		t.Errorf("Start(b) once a is off = %v, want nil", err)
	}
}

func TestWithService(t *testing.T) {
	ports := freePorts(t, 2)
	ssh, nb := ports[0], ports[1]
	d := fake.New(fake.WithService(8888, notebook))
	t.Cleanup(func() { d.Close() })
	spec := hypervisor.Spec{Name: "vm", SSHPort: ssh, Forwards: []hypervisor.Forward{{HostPort: nb, GuestPort: 8888}}}
	if err := d.Define(ctx(t), spec); err != nil {
		t.Fatal(err)
	}
	serving := func(when string, want bool) {
		t.Helper()
		body, err := get(nb)
		switch {
		case want && (err != nil || body != "jupyter"):
			t.Errorf("%s: GET = %q, %v; want %q", when, body, err, "jupyter")
		case !want && err == nil:
			t.Errorf("%s: GET = %q, want no server on port %d", when, body, nb)
		}
	}
	serving("defined, never started", false)
	steps := []struct {
		name string
		fn   func() error
		want bool
	}{
		{"Start", func() error { return d.Start(ctx(t), "vm") }, true},
		{"Reboot", func() error { return d.Reboot(ctx(t), "vm") }, true},
		{"Shutdown", func() error { return d.Shutdown(ctx(t), "vm", time.Minute) }, false},
		{"Start again", func() error { return d.Start(ctx(t), "vm") }, true},
		{"Destroy", func() error { return d.Destroy(ctx(t), "vm") }, false},
		{"Start once more", func() error { return d.Start(ctx(t), "vm") }, true},
		{"PowerOff", func() error { return d.PowerOff("vm") }, false},
		{"SetState running", func() error { return d.SetState("vm", hypervisor.StateRunning) }, true},
		{"Undefine", func() error { return d.Undefine(ctx(t), "vm") }, false},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			t.Fatalf("%s = %v", s.name, err)
		}
		serving("after "+s.name, s.want)
	}
	// The SSH port is never served, whatever its guest port.
	if _, err := get(ssh); err == nil {
		t.Errorf("the SSH port %d answered HTTP", ssh)
	}
}

func TestWithServicePortTaken(t *testing.T) {
	ports := freePorts(t, 3)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[2]))
	if err != nil {
		t.Skipf("cannot listen on loopback: %v", err)
	}
	defer l.Close()
	d := fake.New(fake.WithService(8888, notebook), fake.WithService(8080, notebook))
	t.Cleanup(func() { d.Close() })
	spec := hypervisor.Spec{Name: "vm", SSHPort: ports[0], Forwards: []hypervisor.Forward{
		{HostPort: ports[1], GuestPort: 8080},
		{HostPort: ports[2], GuestPort: 8888},
	}}
	if err := d.Define(ctx(t), spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx(t), "vm"); !errors.Is(err, hypervisor.ErrPortInUse) {
		t.Fatalf("Start with a service port taken = %v, want ErrPortInUse", err)
	}
	if got := state(t, d, "vm"); got != hypervisor.StateShutoff {
		t.Errorf("state after a refused Start = %q, want %q", got, hypervisor.StateShutoff)
	}
	// The service opened before the failure must be closed again.
	if body, err := get(ports[1]); err == nil {
		t.Errorf("after a refused Start, port %d still serves %q", ports[1], body)
	}
	l.Close()
	if err := d.Start(ctx(t), "vm"); err != nil {
		t.Fatalf("Start once the port is free = %v", err)
	}
	for _, p := range ports[1:] {
		if body, err := get(p); err != nil || body != "jupyter" {
			t.Errorf("GET port %d = %q, %v; want %q", p, body, err, "jupyter")
		}
	}
}

func TestWithServiceAdoptAndClose(t *testing.T) {
	ports := freePorts(t, 2)
	d := fake.New(fake.WithService(8888, notebook))
	spec := hypervisor.Spec{Name: "vm", SSHPort: ports[0], Forwards: []hypervisor.Forward{{HostPort: ports[1], GuestPort: 8888}}}
	// A domain found running kept its forwards.
	if err := d.Adopt(spec, hypervisor.StateRunning); err != nil {
		t.Fatal(err)
	}
	if body, err := get(ports[1]); err != nil || body != "jupyter" {
		t.Errorf("GET of an adopted running domain = %q, %v; want %q", body, err, "jupyter")
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if body, err := get(ports[1]); err == nil {
		t.Errorf("after Close, GET = %q, want no server", body)
	}
	if got := state(t, d, "vm"); got != hypervisor.StateRunning {
		t.Errorf("state after Close = %q, want %q", got, hypervisor.StateRunning)
	}
	if err := d.Forget("vm"); err != nil {
		t.Fatal(err)
	}
}
