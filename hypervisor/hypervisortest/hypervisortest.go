// Package hypervisortest is the conformance suite every hypervisor.Driver
// passes, so that the simulator can rely on one set of semantics whichever
// backend runs its instances. A driver's test calls Run with a constructor
// and Options saying what the backend can do.
package hypervisortest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
)

// Options say what the driver under test can do.
type Options struct {
	// BootsGuests is true when Start runs a real guest, whose forwarded SSH
	// port must then accept TCP connections (and whose other forwarded
	// host ports must be held). Backends that only pretend (the fake,
	// libvirt's test:///default) leave it false.
	BootsGuests bool
	// Spec builds the spec of a domain to define; nil gives a minimal one.
	// The suite then sets Name, fills SSHPort with a free loopback port when
	// it is 0 and Forwards with one free port forwarded to guest port 8888
	// when it has none, and adds its own labels, so the builder only needs
	// to supply what the backend requires (a real seed, a small memory size).
	Spec func(name string) hypervisor.Spec
	// ShutdownGrace is passed to Shutdown; 0 means 5 seconds.
	ShutdownGrace time.Duration
	// Timeout bounds every driver call; 0 means 30 seconds, or 3 minutes
	// with BootsGuests.
	Timeout time.Duration
	// Foreign names domains that exist on the hypervisor but were not
	// defined by the driver (test:///default always has one called "test").
	// The driver must neither show nor touch them, and Define must refuse
	// their names.
	Foreign []string
}

// labelKey is the label every suite domain carries, so failures name it.
const labelKey = "hypervisortest/case"

// notebookPort is the guest port of the forward the suite adds to every
// domain: a compute instance's Jupyter server.
const notebookPort = 8888

// Run runs the conformance suite. newDriver is called once per subtest and
// may return drivers sharing one hypervisor (test:///default is shared by
// every connection of a process): the suite undefines what it defines.
func Run(t *testing.T, newDriver func(t *testing.T) hypervisor.Driver, opts Options) {
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 5 * time.Second
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
		if opts.BootsGuests {
			opts.Timeout = 3 * time.Minute
		}
	}
	cases := []struct {
		name string
		fn   func(*harness)
	}{
		{"DefineLookupList", testDefineLookupList},
		{"DefineClash", testDefineClash},
		{"DefineCopiesSpec", testDefineCopiesSpec},
		{"NotFound", testNotFound},
		{"StartRunning", testStart},
		{"StartTwice", testStartTwice},
		{"Shutdown", testShutdown},
		{"ShutdownOff", testShutdownOff},
		{"DestroyIdempotent", testDestroy},
		{"Reboot", testReboot},
		{"RebootOff", testRebootOff},
		{"RestartAfterShutdown", testRestart},
		{"ForwardPortInUse", testForwardPortInUse},
		{"Undefine", testUndefine},
		{"UndefineRunning", testUndefineRunning},
		{"RedefineAfterUndefine", testRedefine},
		{"ListOwnOnly", testListOwnOnly},
		{"Foreign", testForeign},
		{"CancelledContext", testCancelled},
		{"ConcurrentDefine", testConcurrentDefine},
		{"Events", testEvents},
		{"SetResources", testSetResources},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &harness{T: t, d: newDriver(t), opts: opts, prefix: fmt.Sprintf("hvt%02d-", i)}
			t.Cleanup(h.cleanup)
			c.fn(h)
		})
	}
}

// harness is one subtest's view: its driver, and the domains it defined so
// that they are undefined whatever happens.
type harness struct {
	*testing.T
	d      hypervisor.Driver
	opts   Options
	prefix string

	mu      sync.Mutex
	defined []string
	// ports are the host ports handed out, so no two domains of a
	// subtest get the same one (the kernel may hand out a port again
	// once its probe listener is closed).
	ports map[int]bool
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.Timeout)
	h.Cleanup(cancel)
	return ctx
}

// name returns a domain name unique to this subtest.
func (h *harness) name(s string) string { return h.prefix + s }

// spec builds the spec for a domain named h.name(s).
func (h *harness) spec(s string) hypervisor.Spec {
	h.Helper()
	name := h.name(s)
	var spec hypervisor.Spec
	if h.opts.Spec != nil {
		spec = h.opts.Spec(name)
	} else {
		spec = hypervisor.Spec{VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 1}
	}
	spec.Name = name
	if spec.SSHPort == 0 {
		spec.SSHPort = h.freePort()
	}
	spec.Forwards = slices.Clone(spec.Forwards)
	if len(spec.Forwards) == 0 {
		spec.Forwards = []hypervisor.Forward{{HostPort: h.freePort(), GuestPort: notebookPort}}
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[labelKey] = h.Name()
	labels["hypervisortest/domain"] = s
	spec.Labels = labels
	return spec
}

// define defines a domain named h.name(s) and fails the test if it cannot.
func (h *harness) define(s string) hypervisor.Spec {
	h.Helper()
	spec := h.spec(s)
	h.track(spec.Name)
	if err := h.d.Define(h.ctx(), spec); err != nil {
		h.Fatalf("Define(%q) = %v, want nil", spec.Name, err)
	}
	return spec
}

func (h *harness) track(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.defined = append(h.defined, name)
}

func (h *harness) start(name string) {
	h.Helper()
	if err := h.d.Start(h.ctx(), name); err != nil {
		h.Fatalf("Start(%q) = %v, want nil", name, err)
	}
}

func (h *harness) lookup(name string) hypervisor.Domain {
	h.Helper()
	dom, err := h.d.Lookup(h.ctx(), name)
	if err != nil {
		h.Fatalf("Lookup(%q) = %v, want nil", name, err)
	}
	return dom
}

// wantState fails unless Lookup reports want.
func (h *harness) wantState(name string, want hypervisor.State) {
	h.Helper()
	if got := h.lookup(name).State; got != want {
		h.Fatalf("state of %q = %q, want %q", name, got, want)
	}
}

// wantErr fails unless err matches want.
func (h *harness) wantErr(call string, err, want error) {
	h.Helper()
	if !errors.Is(err, want) {
		h.Errorf("%s = %v, want an error matching %q", call, err, want)
	}
}

// listNames returns the sorted names List reports.
func (h *harness) listNames() []string {
	h.Helper()
	doms, err := h.d.List(h.ctx())
	if err != nil {
		h.Fatalf("List() = %v, want nil", err)
	}
	var names []string
	for _, d := range doms {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return names
}

func (h *harness) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.Timeout)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range h.defined {
		if err := h.d.Undefine(ctx, name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			h.Errorf("cleanup: Undefine(%q) = %v", name, err)
		}
	}
}

// requireReachable checks, for drivers that boot guests, that the SSH
// forward of a running domain accepts connections and that its other
// forwards hold their host ports. Nothing need listen behind those in the
// guest, so a connection would prove nothing.
func (h *harness) requireReachable(dom hypervisor.Domain) {
	h.Helper()
	if !h.opts.BootsGuests {
		return
	}
	addr := net.JoinHostPort(dom.SSH.Host, fmt.Sprint(dom.SSH.Port))
	var d net.Dialer
	conn, err := d.DialContext(h.ctx(), "tcp", addr)
	if err != nil {
		h.Fatalf("SSH forward of running domain %q: %v, want a connection to %s", dom.Name, err, addr)
	}
	conn.Close()
	for _, f := range dom.Forwards {
		if portFree(f.HostPort) {
			h.Errorf("forward of running domain %q to guest port %d: host port %d is free, want it held", dom.Name, f.GuestPort, f.HostPort)
		}
	}
}

// wantForwards fails unless got lists the forwards of spec, in order.
func (h *harness) wantForwards(call string, got []hypervisor.Forward, spec hypervisor.Spec) {
	h.Helper()
	if !slices.Equal(got, spec.Forwards) {
		h.Errorf("%s forwards of %q = %v, want %v", call, spec.Name, got, spec.Forwards)
	}
}

// freePort returns a loopback TCP port that was free a moment ago and
// that this subtest has not handed out before.
func (h *harness) freePort() int {
	h.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ports == nil {
		h.ports = map[int]bool{}
	}
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			h.Fatalf("find a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !h.ports[port] {
			h.ports[port] = true
			return port
		}
	}
}

// portFree reports whether a listener can be opened on 127.0.0.1:port.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func testDefineLookupList(h *harness) {
	a := h.define("a")
	b := h.define("b")
	for _, spec := range []hypervisor.Spec{a, b} {
		dom := h.lookup(spec.Name)
		if dom.Name != spec.Name {
			h.Errorf("Lookup(%q).Name = %q", spec.Name, dom.Name)
		}
		if dom.State != hypervisor.StateShutoff {
			h.Errorf("state of defined %q = %q, want %q", spec.Name, dom.State, hypervisor.StateShutoff)
		}
		if !maps.Equal(dom.Labels, spec.Labels) {
			h.Errorf("Lookup(%q).Labels = %v, want %v", spec.Name, dom.Labels, spec.Labels)
		}
		want := hypervisor.Endpoint{Host: "127.0.0.1", Port: spec.SSHPort}
		if dom.SSH != want {
			h.Errorf("Lookup(%q).SSH = %+v, want %+v", spec.Name, dom.SSH, want)
		}
		h.wantForwards("Lookup", dom.Forwards, spec)
	}
	doms, err := h.d.List(h.ctx())
	if err != nil {
		h.Fatalf("List() = %v", err)
	}
	byName := map[string]hypervisor.Domain{}
	for _, d := range doms {
		if _, dup := byName[d.Name]; dup {
			h.Errorf("List() reports %q twice", d.Name)
		}
		byName[d.Name] = d
	}
	if len(byName) != 2 {
		h.Errorf("List() = %d domains %v, want the 2 defined", len(byName), slices.Sorted(maps.Keys(byName)))
	}
	for _, spec := range []hypervisor.Spec{a, b} {
		dom, ok := byName[spec.Name]
		if !ok {
			h.Errorf("List() lacks %q", spec.Name)
			continue
		}
		if !maps.Equal(dom.Labels, spec.Labels) {
			h.Errorf("List() labels of %q = %v, want %v", spec.Name, dom.Labels, spec.Labels)
		}
		if dom.SSH.Port != spec.SSHPort {
			h.Errorf("List() SSH port of %q = %d, want %d", spec.Name, dom.SSH.Port, spec.SSHPort)
		}
		h.wantForwards("List()", dom.Forwards, spec)
		if dom.State != hypervisor.StateShutoff {
			h.Errorf("List() state of %q = %q, want %q", spec.Name, dom.State, hypervisor.StateShutoff)
		}
	}
}

func testDefineClash(h *harness) {
	first := h.define("a")
	again := h.spec("a")
	again.Labels["hypervisortest/second"] = "yes"
	h.wantErr(fmt.Sprintf("second Define(%q)", again.Name), h.d.Define(h.ctx(), again), hypervisor.ErrExists)
	// The failed Define must not have replaced the first definition.
	dom := h.lookup(first.Name)
	if !maps.Equal(dom.Labels, first.Labels) {
		h.Errorf("labels after clashing Define = %v, want the first ones %v", dom.Labels, first.Labels)
	}
	if dom.SSH.Port != first.SSHPort {
		h.Errorf("SSH port after clashing Define = %d, want the first one %d", dom.SSH.Port, first.SSHPort)
	}
	h.wantForwards("after clashing Define, Lookup", dom.Forwards, first)
	// Running domains clash too.
	h.start(first.Name)
	h.wantErr(fmt.Sprintf("Define(%q) of a running domain", again.Name), h.d.Define(h.ctx(), again), hypervisor.ErrExists)
	h.wantState(first.Name, hypervisor.StateRunning)
}

func testDefineCopiesSpec(h *harness) {
	spec := h.spec("a")
	want := maps.Clone(spec.Labels)
	kept := spec
	kept.Forwards = slices.Clone(spec.Forwards)
	h.track(spec.Name)
	if err := h.d.Define(h.ctx(), spec); err != nil {
		h.Fatalf("Define(%q) = %v", spec.Name, err)
	}
	spec.Labels[labelKey] = "changed by the caller after Define"
	spec.Forwards[0].GuestPort++
	dom := h.lookup(spec.Name)
	if !maps.Equal(dom.Labels, want) {
		h.Errorf("labels after the caller changed its map = %v, want %v", dom.Labels, want)
	}
	h.wantForwards("after the caller changed its slice, Lookup", dom.Forwards, kept)
	dom.Labels[labelKey] = "changed by the caller after Lookup"
	if len(dom.Forwards) > 0 {
		dom.Forwards[0].GuestPort++
	}
	again := h.lookup(spec.Name)
	if !maps.Equal(again.Labels, want) {
		h.Errorf("labels after the caller changed Lookup's map = %v, want %v", again.Labels, want)
	}
	h.wantForwards("after the caller changed Lookup's slice, Lookup", again.Forwards, kept)
}

func testNotFound(h *harness) {
	ctx := h.ctx()
	// A defined domain must not make an unknown one appear to exist.
	h.define("present")
	name := h.name("absent")
	h.wantErr("Start", h.d.Start(ctx, name), hypervisor.ErrNotFound)
	h.wantErr("Shutdown", h.d.Shutdown(ctx, name, h.opts.ShutdownGrace), hypervisor.ErrNotFound)
	h.wantErr("Reboot", h.d.Reboot(ctx, name), hypervisor.ErrNotFound)
	h.wantErr("Destroy", h.d.Destroy(ctx, name), hypervisor.ErrNotFound)
	h.wantErr("Undefine", h.d.Undefine(ctx, name), hypervisor.ErrNotFound)
	h.wantErr("SetResources", h.d.SetResources(ctx, name, 1, 512), hypervisor.ErrNotFound)
	_, err := h.d.Lookup(ctx, name)
	h.wantErr("Lookup", err, hypervisor.ErrNotFound)
	if names := h.listNames(); slices.Contains(names, name) {
		h.Errorf("List() = %v, contains %q which was never defined", names, name)
	}
}

// testSetResources grows and shrinks a shut-off domain (the order of
// libvirt's maximum and current values matters both ways), and refuses to
// touch a running one.
func testSetResources(h *harness) {
	spec := h.define("a")
	wantResources := func(when string, vcpus, mib int) {
		h.Helper()
		dom := h.lookup(spec.Name)
		if dom.VCPUs != vcpus || dom.MemoryMiB != mib {
			h.Errorf("%s: Lookup reports %d vCPUs, %d MiB; want %d, %d", when, dom.VCPUs, dom.MemoryMiB, vcpus, mib)
		}
	}
	wantResources("after Define", spec.VCPUs, spec.MemoryMiB)
	grown := [2]int{spec.VCPUs + 1, spec.MemoryMiB + 256}
	if err := h.d.SetResources(h.ctx(), spec.Name, grown[0], grown[1]); err != nil {
		h.Fatalf("SetResources(%d, %d) = %v, want nil", grown[0], grown[1], err)
	}
	wantResources("after growing", grown[0], grown[1])
	if err := h.d.SetResources(h.ctx(), spec.Name, spec.VCPUs, spec.MemoryMiB); err != nil {
		h.Fatalf("SetResources back to %d, %d = %v, want nil", spec.VCPUs, spec.MemoryMiB, err)
	}
	wantResources("after shrinking", spec.VCPUs, spec.MemoryMiB)
	h.start(spec.Name)
	h.wantErr("SetResources of a running domain", h.d.SetResources(h.ctx(), spec.Name, grown[0], grown[1]), hypervisor.ErrInvalidState)
	wantResources("after a refused change", spec.VCPUs, spec.MemoryMiB)
	h.wantState(spec.Name, hypervisor.StateRunning)
}

func testStart(h *harness) {
	spec := h.define("a")
	h.start(spec.Name)
	dom := h.lookup(spec.Name)
	if dom.State != hypervisor.StateRunning {
		h.Fatalf("state after Start = %q, want %q", dom.State, hypervisor.StateRunning)
	}
	if dom.SSH.Port != spec.SSHPort {
		h.Errorf("SSH port of running domain = %d, want %d", dom.SSH.Port, spec.SSHPort)
	}
	h.wantForwards("running domain's", dom.Forwards, spec)
	h.requireReachable(dom)
}

func testStartTwice(h *harness) {
	spec := h.define("a")
	h.start(spec.Name)
	h.wantErr("second Start", h.d.Start(h.ctx(), spec.Name), hypervisor.ErrInvalidState)
	h.wantState(spec.Name, hypervisor.StateRunning)
}

func testShutdown(h *harness) {
	spec := h.define("a")
	h.start(spec.Name)
	if err := h.d.Shutdown(h.ctx(), spec.Name, h.opts.ShutdownGrace); err != nil {
		h.Fatalf("Shutdown = %v, want nil", err)
	}
	// Shutdown returns once the domain is off, not merely asked to stop.
	h.wantState(spec.Name, hypervisor.StateShutoff)
}

func testShutdownOff(h *harness) {
	spec := h.define("a")
	h.wantErr("Shutdown of a defined, never started domain", h.d.Shutdown(h.ctx(), spec.Name, h.opts.ShutdownGrace), hypervisor.ErrInvalidState)
	h.wantState(spec.Name, hypervisor.StateShutoff)
}

func testDestroy(h *harness) {
	spec := h.define("a")
	h.start(spec.Name)
	for i := range 2 {
		if err := h.d.Destroy(h.ctx(), spec.Name); err != nil {
			h.Fatalf("Destroy #%d = %v, want nil", i+1, err)
		}
		h.wantState(spec.Name, hypervisor.StateShutoff)
	}
	other := h.define("never-started")
	if err := h.d.Destroy(h.ctx(), other.Name); err != nil {
		h.Errorf("Destroy of a never started domain = %v, want nil", err)
	}
	h.wantState(other.Name, hypervisor.StateShutoff)
}

func testReboot(h *harness) {
	spec := h.define("a")
	h.start(spec.Name)
	if err := h.d.Reboot(h.ctx(), spec.Name); err != nil {
		h.Fatalf("Reboot = %v, want nil", err)
	}
	dom := h.lookup(spec.Name)
	if dom.State != hypervisor.StateRunning {
		h.Fatalf("state after Reboot = %q, want %q", dom.State, hypervisor.StateRunning)
	}
	h.requireReachable(dom)
}

func testRebootOff(h *harness) {
	spec := h.define("a")
	h.wantErr("Reboot of a shut off domain", h.d.Reboot(h.ctx(), spec.Name), hypervisor.ErrInvalidState)
	h.wantState(spec.Name, hypervisor.StateShutoff)
}

func testRestart(h *harness) {
	spec := h.define("a")
	h.start(spec.Name)
	if err := h.d.Shutdown(h.ctx(), spec.Name, h.opts.ShutdownGrace); err != nil {
		h.Fatalf("Shutdown = %v", err)
	}
	h.start(spec.Name)
	dom := h.lookup(spec.Name)
	if dom.State != hypervisor.StateRunning {
		h.Fatalf("state after Start, Shutdown, Start = %q, want %q", dom.State, hypervisor.StateRunning)
	}
	if dom.SSH.Port != spec.SSHPort || !maps.Equal(dom.Labels, spec.Labels) {
		h.Errorf("after a restart SSH = %+v, labels = %v; want port %d, labels %v", dom.SSH, dom.Labels, spec.SSHPort, spec.Labels)
	}
	h.wantForwards("after a restart,", dom.Forwards, spec)
	h.requireReachable(dom)
	if err := h.d.Destroy(h.ctx(), spec.Name); err != nil {
		h.Fatalf("Destroy = %v", err)
	}
	h.start(spec.Name)
	h.wantState(spec.Name, hypervisor.StateRunning)
}

func testUndefine(h *harness) {
	spec := h.define("a")
	keep := h.define("b")
	if err := h.d.Undefine(h.ctx(), spec.Name); err != nil {
		h.Fatalf("Undefine = %v, want nil", err)
	}
	_, err := h.d.Lookup(h.ctx(), spec.Name)
	h.wantErr("Lookup after Undefine", err, hypervisor.ErrNotFound)
	if got, want := h.listNames(), []string{keep.Name}; !slices.Equal(got, want) {
		h.Errorf("List() after Undefine = %v, want %v", got, want)
	}
	h.wantErr("second Undefine", h.d.Undefine(h.ctx(), spec.Name), hypervisor.ErrNotFound)
	h.wantErr("Start after Undefine", h.d.Start(h.ctx(), spec.Name), hypervisor.ErrNotFound)
}

func testUndefineRunning(h *harness) {
	spec := h.define("a")
	h.start(spec.Name)
	if err := h.d.Undefine(h.ctx(), spec.Name); err != nil {
		h.Fatalf("Undefine of a running domain = %v, want nil", err)
	}
	_, err := h.d.Lookup(h.ctx(), spec.Name)
	h.wantErr("Lookup after Undefine", err, hypervisor.ErrNotFound)
	if names := h.listNames(); slices.Contains(names, spec.Name) {
		h.Errorf("List() after Undefine = %v, still has %q", names, spec.Name)
	}
	if h.opts.BootsGuests {
		// The guest is gone, so its forward must be too.
		addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(spec.SSHPort))
		if conn, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			conn.Close()
			h.Errorf("SSH port %s still accepts connections after Undefine", addr)
		}
		for _, f := range spec.Forwards {
			if !portFree(f.HostPort) {
				h.Errorf("host port %d forwarded to guest port %d is still held after Undefine", f.HostPort, f.GuestPort)
			}
		}
	}
}

func testRedefine(h *harness) {
	spec := h.define("a")
	h.start(spec.Name)
	if err := h.d.Undefine(h.ctx(), spec.Name); err != nil {
		h.Fatalf("Undefine = %v", err)
	}
	again := h.spec("a")
	again.Labels["hypervisortest/generation"] = "2"
	if err := h.d.Define(h.ctx(), again); err != nil {
		h.Fatalf("Define after Undefine = %v, want nil", err)
	}
	dom := h.lookup(again.Name)
	if dom.State != hypervisor.StateShutoff {
		h.Errorf("state of redefined domain = %q, want %q", dom.State, hypervisor.StateShutoff)
	}
	if !maps.Equal(dom.Labels, again.Labels) || dom.SSH.Port != again.SSHPort {
		h.Errorf("redefined domain has labels %v and port %d, want %v and %d", dom.Labels, dom.SSH.Port, again.Labels, again.SSHPort)
	}
	// The new definition's forwards, not the old one's.
	h.wantForwards("redefined domain's", dom.Forwards, again)
	h.start(again.Name)
	dom = h.lookup(again.Name)
	if dom.State != hypervisor.StateRunning {
		h.Fatalf("state of started redefined domain = %q, want %q", dom.State, hypervisor.StateRunning)
	}
	h.wantForwards("started redefined domain's", dom.Forwards, again)
}

func testForwardPortInUse(h *harness) {
	holder := h.define("holder")
	h.start(holder.Name)
	port := holder.Forwards[0].HostPort
	// Only the extra forward clashes: late's SSH port is its own.
	late := h.spec("late")
	late.Forwards = []hypervisor.Forward{{HostPort: port, GuestPort: notebookPort}}
	h.track(late.Name)
	if err := h.d.Define(h.ctx(), late); err != nil {
		h.Fatalf("Define(%q) = %v, want nil", late.Name, err)
	}
	// A driver that really forwards holds the port through holder now; one
	// that only pretends (libvirt's test driver) does not, so the suite
	// takes it, as another process could. Every driver must see one or
	// the other.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)))
	if err == nil {
		defer l.Close()
	}
	h.wantErr("Start with its extra host port taken", h.d.Start(h.ctx(), late.Name), hypervisor.ErrPortInUse)
	dom, err := h.d.Lookup(h.ctx(), late.Name)
	if err != nil {
		h.Fatalf("Lookup(%q) after a refused Start = %v, want it still defined", late.Name, err)
	}
	if dom.State != hypervisor.StateShutoff {
		h.Errorf("state after a refused Start = %q, want %q", dom.State, hypervisor.StateShutoff)
	}
	h.wantForwards("after a refused Start,", dom.Forwards, late)

	// Once the port is free again, the same domain starts.
	if l != nil {
		l.Close()
	}
	if err := h.d.Destroy(h.ctx(), holder.Name); err != nil {
		h.Fatalf("Destroy(%q) = %v", holder.Name, err)
	}
	h.start(late.Name)
	h.wantState(late.Name, hypervisor.StateRunning)
}

func testListOwnOnly(h *harness) {
	if got := h.listNames(); len(got) != 0 {
		h.Fatalf("List() before defining anything = %v, want none (foreign domains must be hidden, and earlier subtests must have cleaned up)", got)
	}
	a := h.define("a")
	b := h.define("b")
	h.start(b.Name)
	if got, want := h.listNames(), []string{a.Name, b.Name}; !slices.Equal(got, want) {
		h.Errorf("List() = %v, want %v", got, want)
	}
}

func testForeign(h *harness) {
	if len(h.opts.Foreign) == 0 {
		h.Skip("Options.Foreign names no domain the driver does not own")
	}
	ctx := h.ctx()
	names := h.listNames()
	for _, name := range h.opts.Foreign {
		if slices.Contains(names, name) {
			h.Errorf("List() = %v, shows foreign domain %q", names, name)
		}
		_, err := h.d.Lookup(ctx, name)
		h.wantErr(fmt.Sprintf("Lookup(%q)", name), err, hypervisor.ErrNotFound)
		h.wantErr(fmt.Sprintf("Start(%q)", name), h.d.Start(ctx, name), hypervisor.ErrNotFound)
		h.wantErr(fmt.Sprintf("Shutdown(%q)", name), h.d.Shutdown(ctx, name, h.opts.ShutdownGrace), hypervisor.ErrNotFound)
		h.wantErr(fmt.Sprintf("Reboot(%q)", name), h.d.Reboot(ctx, name), hypervisor.ErrNotFound)
		h.wantErr(fmt.Sprintf("Destroy(%q)", name), h.d.Destroy(ctx, name), hypervisor.ErrNotFound)
		h.wantErr(fmt.Sprintf("Undefine(%q)", name), h.d.Undefine(ctx, name), hypervisor.ErrNotFound)
		spec := h.spec("x")
		spec.Name = name
		h.wantErr(fmt.Sprintf("Define(%q) of a foreign name", name), h.d.Define(ctx, spec), hypervisor.ErrExists)
	}
}

func testCancelled(h *harness) {
	off := h.define("off")
	on := h.define("on")
	h.start(on.Name)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wantCancelled := func(call string, err error) {
		h.Helper()
		if !errors.Is(err, context.Canceled) {
			h.Errorf("%s with a cancelled context = %v, want an error matching context.Canceled", call, err)
		}
	}
	fresh := h.spec("fresh")
	h.track(fresh.Name)
	wantCancelled("Define", h.d.Define(ctx, fresh))
	wantCancelled("Start", h.d.Start(ctx, off.Name))
	wantCancelled("Shutdown", h.d.Shutdown(ctx, on.Name, h.opts.ShutdownGrace))
	wantCancelled("Reboot", h.d.Reboot(ctx, on.Name))
	wantCancelled("Destroy", h.d.Destroy(ctx, on.Name))
	wantCancelled("Undefine", h.d.Undefine(ctx, off.Name))
	_, err := h.d.Lookup(ctx, on.Name)
	wantCancelled("Lookup", err)
	_, err = h.d.List(ctx)
	wantCancelled("List", err)

	// Nothing may have happened.
	_, err = h.d.Lookup(h.ctx(), fresh.Name)
	h.wantErr("Lookup of the domain whose Define was cancelled", err, hypervisor.ErrNotFound)
	h.wantState(off.Name, hypervisor.StateShutoff)
	h.wantState(on.Name, hypervisor.StateRunning)
}

func testConcurrentDefine(h *harness) {
	n := 6
	if h.opts.BootsGuests {
		// Six real guests at once would swamp a small CI machine.
		n = 2
	}
	specs := make([]hypervisor.Spec, n)
	for i := range specs {
		specs[i] = h.spec(fmt.Sprintf("c%d", i))
		h.track(specs[i].Name)
	}
	// Distinct names all succeed; one name defined n times at once is
	// defined exactly once.
	same := h.spec("same")
	h.track(same.Name)
	errs := make([]error, n)
	sameErrs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = h.d.Define(h.ctx(), specs[i])
			if errs[i] == nil {
				errs[i] = h.d.Start(h.ctx(), specs[i].Name)
			}
		})
		wg.Go(func() {
			s := same
			s.Labels = maps.Clone(same.Labels)
			s.Labels["hypervisortest/writer"] = fmt.Sprint(i)
			sameErrs[i] = h.d.Define(h.ctx(), s)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			h.Errorf("concurrent Define+Start(%q) = %v, want nil", specs[i].Name, err)
		}
	}
	var ok []string
	for i, err := range sameErrs {
		switch {
		case err == nil:
			ok = append(ok, fmt.Sprint(i))
		case !errors.Is(err, hypervisor.ErrExists):
			h.Errorf("concurrent Define(%q) #%d = %v, want nil or an error matching %q", same.Name, i, err, hypervisor.ErrExists)
		}
	}
	if len(ok) != 1 {
		h.Errorf("%d concurrent Define(%q) calls succeeded (%s), want exactly 1", n, same.Name, strings.Join(ok, ", "))
	}
	if len(ok) == 1 {
		if got := h.lookup(same.Name).Labels["hypervisortest/writer"]; got != ok[0] {
			h.Errorf("labels of %q come from writer %q, want the one whose Define succeeded, %q", same.Name, got, ok[0])
		}
	}
	want := []string{same.Name}
	for _, s := range specs {
		want = append(want, s.Name)
	}
	slices.Sort(want)
	if got := h.listNames(); !slices.Equal(got, want) {
		h.Errorf("List() after concurrent Defines = %v, want %v", got, want)
	}
	for _, s := range specs {
		h.wantState(s.Name, hypervisor.StateRunning)
	}
}

// testEvents checks a hypervisor.Watcher: starting, destroying and
// undefining a domain are each reported, with the domain's new state.
// Drivers without events skip it.
func testEvents(h *harness) {
	w, ok := h.d.(hypervisor.Watcher)
	if !ok {
		h.Skipf("%T reports no domain events (not a hypervisor.Watcher)", h.d)
	}
	ctx, cancel := context.WithCancel(h.ctx())
	events, err := w.Watch(ctx)
	if err != nil {
		h.Fatalf("Watch = %v, want nil", err)
	}
	spec := h.define("watched")
	next := func(what string, match func(hypervisor.Event) bool) {
		h.Helper()
		timeout := time.After(h.opts.Timeout)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					h.Fatalf("the event channel closed while waiting for %s", what)
				}
				if ev.Domain == spec.Name && match(ev) {
					return
				}
			case <-timeout:
				h.Fatalf("no event for %s within %s", what, h.opts.Timeout)
			}
		}
	}
	h.start(spec.Name)
	next("the start", func(ev hypervisor.Event) bool { return !ev.Gone && ev.State == hypervisor.StateRunning })
	if err := h.d.Destroy(h.ctx(), spec.Name); err != nil {
		h.Fatalf("Destroy = %v, want nil", err)
	}
	next("the destroy", func(ev hypervisor.Event) bool {
		return !ev.Gone && (ev.State == hypervisor.StateShutoff || ev.State == hypervisor.StateCrashed)
	})
	if err := h.d.Undefine(h.ctx(), spec.Name); err != nil {
		h.Fatalf("Undefine = %v, want nil", err)
	}
	next("the undefine", func(ev hypervisor.Event) bool { return ev.Gone })
	cancel()
	for range events {
		// Watch closes the channel once its context ends.
	}
}
