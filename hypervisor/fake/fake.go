// Package fake is an in-memory hypervisor.Driver. Domains move through the
// same power states as under libvirt, with optional delays, and tests can
// inject failures or make a guest power itself off. It runs no guests and
// opens no ports, except for the HTTP services a caller asks it to stand in
// for (WithService), so it backs `amlsim serve --driver fake` and the fast
// tests of everything above the hypervisor.
package fake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
)

var (
	_ hypervisor.Driver  = (*Driver)(nil)
	_ hypervisor.Watcher = (*Driver)(nil)
)

// ErrInvalidSpec is returned by Define when the spec cannot describe a
// domain, such as one without a name or with a host port forwarded twice.
var ErrInvalidSpec = errors.New("invalid domain spec")

// Op names a driver method, for injecting failures and recording calls.
type Op string

const (
	OpDefine   Op = "define"
	OpStart    Op = "start"
	OpShutdown Op = "shutdown"
	OpReboot   Op = "reboot"
	OpDestroy  Op = "destroy"
	OpUndefine Op = "undefine"
	OpResize   Op = "set-resources"
	OpLookup   Op = "lookup"
	OpList     Op = "list"
)

// Delays are how long each operation takes. Shutdown is how long the guest
// takes to power off after the ACPI request; a Shutdown call waits for the
// smaller of it and its grace period.
type Delays struct {
	Define, Start, Shutdown, Reboot, Destroy, Undefine time.Duration
}

// Call records one driver method call, for tests that assert what the code
// above the driver asked for.
type Call struct {
	Op   Op
	Name string
	// Grace is the grace period passed to Shutdown.
	Grace time.Duration
}

// Option configures a Driver.
type Option func(*Driver)

// WithDelays makes operations take time, honouring context cancellation
// while they wait.
func WithDelays(d Delays) Option {
	return func(f *Driver) { f.delays = d }
}

// WithForeign pretends the host also runs domains with these names that this
// driver did not define: they are hidden from List and Lookup, but Define
// of the same name fails with hypervisor.ErrExists, as under libvirt.
func WithForeign(names ...string) Option {
	return func(f *Driver) {
		for _, n := range names {
			f.foreign[n] = true
		}
	}
}

// WithService makes the fake stand in for an HTTP application the guest
// would run on guestPort: while a domain whose Forwards include guestPort
// runs, the fake serves h on 127.0.0.1:HostPort of that forward, so tests
// and `serve --driver fake` users reach the application through amlsim
// without a VM. The listener opens when the domain starts (Start fails
// with hypervisor.ErrPortInUse when another process holds the port), stays
// open across Reboot, and closes when the domain shuts off, is destroyed
// or undefined, or the driver is closed. Spec.SSHPort is never served.
func WithService(guestPort int, h http.Handler) Option {
	return func(f *Driver) { f.handlers[guestPort] = h }
}

type domain struct {
	spec  hypervisor.Spec
	state hypervisor.State
	// gen changes on every state change so a delayed operation can tell
	// whether someone else moved the domain while it waited.
	gen uint64
	// services are the WithService services listening for the domain;
	// empty while it is off.
	services []service
}

// service is one WithService handler served for one forward.
type service struct {
	l   net.Listener
	srv *http.Server
}

type failure struct {
	op   Op
	name string
	err  error
}

// Driver is an in-memory hypervisor.Driver, safe for concurrent use.
type Driver struct {
	delays Delays
	// handlers are the WithService handlers by guest port.
	handlers map[int]http.Handler

	mu       sync.Mutex
	domains  map[string]*domain
	foreign  map[string]bool
	failures []failure
	calls    []Call
	gen      uint64
	watchers []chan hypervisor.Event
	// stateFile, when set, keeps the domains across processes (Open).
	stateFile string
}

// New returns an empty driver.
func New(opts ...Option) *Driver {
	d := &Driver{domains: map[string]*domain{}, foreign: map[string]bool{}, handlers: map[int]http.Handler{}}
	for _, o := range opts {
		o(d)
	}
	return d
}

// FailNext makes the next call of op on the named domain (any domain when
// name is "") return err, wrapped, without changing anything. Failures are
// consumed in the order they were added.
func (d *Driver) FailNext(op Op, name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failures = append(d.failures, failure{op: op, name: name, err: err})
}

// PowerOff simulates a guest that powered itself off (or whose QEMU process
// died): the domain stays defined and becomes shut off.
func (d *Driver) PowerOff(name string) error {
	return d.SetState(name, hypervisor.StateShutoff)
}

// SetState forces a domain into any power state, such as crashed or paused,
// to exercise code that reacts to states it does not cause itself.
func (d *Driver) SetState(name string, s hypervisor.State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dom, ok := d.domains[name]
	if !ok {
		return fmt.Errorf("set state of domain %q: %w", name, hypervisor.ErrNotFound)
	}
	if live(s) {
		if err := d.serve(dom); err != nil {
			return fmt.Errorf("set state of domain %q: %w", name, err)
		}
	}
	d.setState(dom, s)
	return nil
}

// Close stops every service WithService started. Domains keep their
// state, as libvirt's keep running when its driver closes.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dom := range d.domains {
		d.unserve(dom)
	}
	return nil
}

// Adopt adds a domain in the given state without a Define call, as one left
// running by a previous process that the driver finds again on start-up.
// It is not recorded in Calls.
func (d *Driver) Adopt(spec hypervisor.Spec, s hypervisor.State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if spec.Name == "" {
		return fmt.Errorf("adopt domain: %w: empty name", ErrInvalidSpec)
	}
	if err := checkForwards(spec); err != nil {
		return fmt.Errorf("adopt domain %q: %w", spec.Name, err)
	}
	if _, ok := d.domains[spec.Name]; ok || d.foreign[spec.Name] {
		return fmt.Errorf("adopt domain %q: %w", spec.Name, hypervisor.ErrExists)
	}
	dom := &domain{spec: copySpec(spec)}
	// A domain left running kept its forwards, services included.
	if live(s) {
		if err := d.serve(dom); err != nil {
			return fmt.Errorf("adopt domain %q: %w", spec.Name, err)
		}
	}
	d.domains[spec.Name] = dom
	d.setState(dom, s)
	return nil
}

// Forget removes a domain behind the caller's back, as someone running
// "virsh undefine" by hand would. It is not recorded in Calls.
func (d *Driver) Forget(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.domains[name]; !ok {
		return fmt.Errorf("forget domain %q: %w", name, hypervisor.ErrNotFound)
	}
	d.remove(name)
	return nil
}

// Spec returns a copy of the spec a domain was defined with.
func (d *Driver) Spec(name string) (hypervisor.Spec, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dom, ok := d.domains[name]
	if !ok {
		return hypervisor.Spec{}, false
	}
	return copySpec(dom.spec), true
}

// Calls returns every method call so far, in order, including failed ones.
func (d *Driver) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// Define implements hypervisor.Driver.
func (d *Driver) Define(ctx context.Context, spec hypervisor.Spec) error {
	name := spec.Name
	if err := d.begin(ctx, OpDefine, name, 0); err != nil {
		return fmt.Errorf("define domain %q: %w", name, err)
	}
	if name == "" {
		return fmt.Errorf("define domain: %w: empty name", ErrInvalidSpec)
	}
	if err := checkForwards(spec); err != nil {
		return fmt.Errorf("define domain %q: %w", name, err)
	}
	spec = copySpec(spec)
	check := func() error {
		if _, ok := d.domains[name]; ok || d.foreign[name] {
			return hypervisor.ErrExists
		}
		return nil
	}
	err := d.do(ctx, OpDefine, name, d.delays.Define, check, func() error {
		dom := &domain{spec: spec}
		d.domains[name] = dom
		d.setState(dom, hypervisor.StateShutoff)
		return nil
	})
	if err != nil {
		return fmt.Errorf("define domain %q: %w", name, err)
	}
	return nil
}

// Start implements hypervisor.Driver. Like the real driver it refuses to
// start a domain one of whose host ports (SSH or another forward) a
// running domain already forwards, or a service of which cannot listen.
func (d *Driver) Start(ctx context.Context, name string) error {
	if err := d.begin(ctx, OpStart, name, 0); err != nil {
		return fmt.Errorf("start domain %q: %w", name, err)
	}
	check := func() error {
		dom, err := d.get(name)
		if err != nil {
			return err
		}
		switch dom.state {
		case hypervisor.StateShutoff, hypervisor.StateCrashed:
		default:
			return fmt.Errorf("%w: domain is %s", hypervisor.ErrInvalidState, dom.state)
		}
		for other, o := range d.domains {
			if other == name || !live(o.state) {
				continue
			}
			for _, p := range hostPorts(dom.spec) {
				if slices.Contains(hostPorts(o.spec), p) {
					return fmt.Errorf("%w: port %d is forwarded to domain %q", hypervisor.ErrPortInUse, p, other)
				}
			}
		}
		return nil
	}
	err := d.do(ctx, OpStart, name, d.delays.Start, check, func() error {
		dom := d.domains[name]
		if err := d.serve(dom); err != nil {
			return err
		}
		d.setState(dom, hypervisor.StateRunning)
		return nil
	})
	if err != nil {
		return fmt.Errorf("start domain %q: %w", name, err)
	}
	return nil
}

// Shutdown implements hypervisor.Driver. The domain reports shutting-down
// while the guest takes Delays.Shutdown to power off; after grace it is
// forced off, so the call returns after the smaller of the two.
func (d *Driver) Shutdown(ctx context.Context, name string, grace time.Duration) error {
	if err := d.begin(ctx, OpShutdown, name, grace); err != nil {
		return fmt.Errorf("shut down domain %q: %w", name, err)
	}
	if err := d.shutdown(ctx, name, grace); err != nil {
		return fmt.Errorf("shut down domain %q: %w", name, err)
	}
	return nil
}

func (d *Driver) shutdown(ctx context.Context, name string, grace time.Duration) error {
	d.mu.Lock()
	dom, err := d.get(name)
	if err == nil && dom.state != hypervisor.StateRunning {
		err = fmt.Errorf("%w: domain is %s", hypervisor.ErrInvalidState, dom.state)
	}
	if err != nil {
		d.mu.Unlock()
		return err
	}
	d.setState(dom, hypervisor.StateShuttingDown)
	gen := dom.gen
	d.mu.Unlock()

	wait := min(d.delays.Shutdown, max(grace, 0))
	werr := sleep(ctx, wait)

	d.mu.Lock()
	defer d.mu.Unlock()
	cur, ok := d.domains[name]
	if !ok || cur != dom {
		return hypervisor.ErrNotFound
	}
	if werr != nil {
		// Cancelled while the guest was still powering off: leave it
		// running, as if it ignored the request, unless something else
		// has moved it since.
		if cur.gen == gen {
			d.setState(cur, hypervisor.StateRunning)
		}
		return werr
	}
	// Off by itself within grace, forced off after it, or already off
	// because someone destroyed it meanwhile: all end shut off.
	if cur.state == hypervisor.StateShuttingDown || cur.state == hypervisor.StateRunning {
		d.setState(cur, hypervisor.StateShutoff)
	}
	return nil
}

// Reboot implements hypervisor.Driver.
func (d *Driver) Reboot(ctx context.Context, name string) error {
	if err := d.begin(ctx, OpReboot, name, 0); err != nil {
		return fmt.Errorf("reboot domain %q: %w", name, err)
	}
	check := func() error {
		dom, err := d.get(name)
		if err != nil {
			return err
		}
		if dom.state != hypervisor.StateRunning {
			return fmt.Errorf("%w: domain is %s", hypervisor.ErrInvalidState, dom.state)
		}
		return nil
	}
	// The guest restarts in the same (pretend) QEMU process, so its
	// services keep listening.
	err := d.do(ctx, OpReboot, name, d.delays.Reboot, check, func() error {
		d.setState(d.domains[name], hypervisor.StateRunning)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reboot domain %q: %w", name, err)
	}
	return nil
}

// Destroy implements hypervisor.Driver.
func (d *Driver) Destroy(ctx context.Context, name string) error {
	if err := d.begin(ctx, OpDestroy, name, 0); err != nil {
		return fmt.Errorf("destroy domain %q: %w", name, err)
	}
	check := func() error {
		_, err := d.get(name)
		return err
	}
	err := d.do(ctx, OpDestroy, name, d.delays.Destroy, check, func() error {
		d.setState(d.domains[name], hypervisor.StateShutoff)
		return nil
	})
	if err != nil {
		return fmt.Errorf("destroy domain %q: %w", name, err)
	}
	return nil
}

// Undefine implements hypervisor.Driver.
func (d *Driver) Undefine(ctx context.Context, name string) error {
	if err := d.begin(ctx, OpUndefine, name, 0); err != nil {
		return fmt.Errorf("undefine domain %q: %w", name, err)
	}
	check := func() error {
		_, err := d.get(name)
		return err
	}
	err := d.do(ctx, OpUndefine, name, d.delays.Undefine, check, func() error {
		d.remove(name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("undefine domain %q: %w", name, err)
	}
	return nil
}

// SetResources implements hypervisor.Driver.
func (d *Driver) SetResources(ctx context.Context, name string, vcpus, memoryMiB int) error {
	if err := d.begin(ctx, OpResize, name, 0); err != nil {
		return fmt.Errorf("set resources of domain %q: %w", name, err)
	}
	if vcpus < 1 || memoryMiB < 64 {
		return fmt.Errorf("set resources of domain %q: %w: %d vCPUs, %d MiB", name, ErrInvalidSpec, vcpus, memoryMiB)
	}
	check := func() error {
		dom, err := d.get(name)
		if err != nil {
			return err
		}
		if dom.state != hypervisor.StateShutoff {
			return fmt.Errorf("%w: domain is %s", hypervisor.ErrInvalidState, dom.state)
		}
		return nil
	}
	err := d.do(ctx, OpResize, name, 0, check, func() error {
		dom := d.domains[name]
		dom.spec.VCPUs, dom.spec.MemoryMiB = vcpus, memoryMiB
		d.persist()
		return nil
	})
	if err != nil {
		return fmt.Errorf("set resources of domain %q: %w", name, err)
	}
	return nil
}

// Lookup implements hypervisor.Driver.
func (d *Driver) Lookup(ctx context.Context, name string) (hypervisor.Domain, error) {
	if err := d.begin(ctx, OpLookup, name, 0); err != nil {
		return hypervisor.Domain{}, fmt.Errorf("look up domain %q: %w", name, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dom, err := d.get(name)
	if err != nil {
		return hypervisor.Domain{}, fmt.Errorf("look up domain %q: %w", name, err)
	}
	return dom.report(), nil
}

// List implements hypervisor.Driver. Domains come sorted by name.
func (d *Driver) List(ctx context.Context) ([]hypervisor.Domain, error) {
	if err := d.begin(ctx, OpList, "", 0); err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]hypervisor.Domain, 0, len(d.domains))
	for _, name := range slices.Sorted(maps.Keys(d.domains)) {
		out = append(out, d.domains[name].report())
	}
	return out, nil
}

// begin records the call, honours a context that is already done and
// consumes an injected failure.
func (d *Driver) begin(ctx context.Context, op Op, name string, grace time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, Call{Op: op, Name: name, Grace: grace})
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, f := range d.failures {
		if f.op == op && (f.name == "" || f.name == name) {
			d.failures = slices.Delete(d.failures, i, i+1)
			return f.err
		}
	}
	return nil
}

// do checks preconditions, waits delay, then checks again and applies: the
// domain may have changed while the operation "ran", and the first check
// makes an impossible request fail at once, as libvirt does. An apply that
// fails must have changed nothing.
func (d *Driver) do(ctx context.Context, op Op, name string, delay time.Duration, check func() error, apply func() error) error {
	d.mu.Lock()
	err := check()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if err := sleep(ctx, delay); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := check(); err != nil {
		return err
	}
	return apply()
}

// get must be called with d.mu held.
func (d *Driver) get(name string) (*domain, error) {
	dom, ok := d.domains[name]
	if !ok {
		return nil, hypervisor.ErrNotFound
	}
	return dom, nil
}

// setState must be called with d.mu held. A domain that goes off loses
// its services, as a real guest's forwards go with its QEMU process.
func (d *Driver) setState(dom *domain, s hypervisor.State) {
	d.gen++
	dom.state = s
	dom.gen = d.gen
	if !live(s) {
		d.unserve(dom)
	}
	d.changed(hypervisor.Event{Domain: dom.spec.Name, State: s, Reason: reasons[s]})
}

// reasons are the events' reasons, in libvirt's words, by new state.
var reasons = map[hypervisor.State]string{
	hypervisor.StateRunning:      "started",
	hypervisor.StateShutoff:      "stopped",
	hypervisor.StateShuttingDown: "shutdown",
	hypervisor.StateCrashed:      "crashed",
	hypervisor.StatePaused:       "suspended",
}

// remove deletes a domain, as Undefine and Forget do. d.mu must be held.
func (d *Driver) remove(name string) {
	d.unserve(d.domains[name])
	delete(d.domains, name)
	d.changed(hypervisor.Event{Domain: name, State: hypervisor.StateShutoff, Gone: true, Reason: "undefined"})
}

// changed tells the watchers and saves the domains. d.mu must be held.
// A watcher that does not keep up misses events, as the Watcher
// interface allows.
func (d *Driver) changed(ev hypervisor.Event) {
	for _, w := range d.watchers {
		select {
		case w <- ev:
		default:
		}
	}
	d.persist()
}

// persist saves the domains. The fake has no logger; a state file that
// cannot be written is a broken test set-up, loud enough to find on
// standard error. d.mu must be held.
func (d *Driver) persist() {
	if err := d.save(); err != nil {
		fmt.Fprintf(os.Stderr, "fake driver: %v\n", err)
	}
}

// Watch implements hypervisor.Watcher: every state change of a domain,
// whoever made it (a driver call, PowerOff, Kill, SetState, Forget).
func (d *Driver) Watch(ctx context.Context) (<-chan hypervisor.Event, error) {
	ch := make(chan hypervisor.Event, 256)
	d.mu.Lock()
	d.watchers = append(d.watchers, ch)
	d.mu.Unlock()
	go func() {
		<-ctx.Done()
		d.mu.Lock()
		defer d.mu.Unlock()
		d.watchers = slices.DeleteFunc(d.watchers, func(w chan hypervisor.Event) bool { return w == ch })
		close(ch)
	}()
	return ch, nil
}

// Suspend pauses a running domain (hypervisor.Suspender): its services
// stop answering, as a hung guest's do.
func (d *Driver) Suspend(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.SetState(name, hypervisor.StatePaused)
}

// Kill simulates QEMU dying under a running guest (an OOM kill, a crash):
// the domain stays defined and is shut off at once.
func (d *Driver) Kill(name string) error {
	return d.SetState(name, hypervisor.StateShutoff)
}

// savedDomain is one domain in the state file.
type savedDomain struct {
	Spec  hypervisor.Spec  `json:"spec"`
	State hypervisor.State `json:"state"`
}

// Open returns a driver whose domains live in the JSON file path, created
// when absent: a server killed and started again finds its domains as it
// would under libvirt, which outlives it. A domain that was shutting down
// has finished by then and is shut off; running ones serve their
// WithService services again (a service whose port another process took
// meanwhile is reported on standard error and left down).
func Open(path string, opts ...Option) (*Driver, error) {
	d := New(opts...)
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("fake driver state: %w", err)
	}
	var saved map[string]savedDomain
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &saved); err != nil {
			return nil, fmt.Errorf("fake driver state %s: %w", path, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, sd := range saved {
		if sd.State == hypervisor.StateShuttingDown {
			sd.State = hypervisor.StateShutoff
		}
		d.gen++
		dom := &domain{spec: sd.Spec, state: sd.State, gen: d.gen}
		if live(dom.state) {
			if err := d.serve(dom); err != nil {
				// Taken while no process of ours held it: the domain
				// runs on, without the stand-in service.
				fmt.Fprintf(os.Stderr, "fake driver: domain %q: %v\n", name, err)
			}
		}
		d.domains[name] = dom
	}
	d.stateFile = path
	return d, nil
}

// save writes the domains to the state file, if any, atomically. d.mu
// must be held.
func (d *Driver) save() error {
	if d.stateFile == "" {
		return nil
	}
	saved := make(map[string]savedDomain, len(d.domains))
	for name, dom := range d.domains {
		saved[name] = savedDomain{Spec: dom.spec, State: dom.state}
	}
	raw, err := json.Marshal(saved)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(d.stateFile), ".fake-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), d.stateFile)
}

// live reports whether a domain in state s has a (pretend) QEMU process,
// and so holds its forwarded host ports.
func live(s hypervisor.State) bool {
	return s != hypervisor.StateShutoff && s != hypervisor.StateCrashed
}

// serve opens the WithService services of dom's forwards unless they are
// open already. On failure it leaves none open. d.mu must be held.
func (d *Driver) serve(dom *domain) error {
	if len(dom.services) > 0 {
		return nil
	}
	for _, f := range dom.spec.Forwards {
		h, ok := d.handlers[f.GuestPort]
		if !ok {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(f.HostPort)))
		if err != nil {
			d.unserve(dom)
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%w: 127.0.0.1:%d (for guest port %d)", hypervisor.ErrPortInUse, f.HostPort, f.GuestPort)
			}
			return fmt.Errorf("serve guest port %d: %w", f.GuestPort, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(l)
		dom.services = append(dom.services, service{l: l, srv: srv})
	}
	return nil
}

// unserve closes dom's services and their connections, as a guest that
// goes away drops them. d.mu must be held.
func (d *Driver) unserve(dom *domain) {
	for _, s := range dom.services {
		s.srv.Close()
		// Serve may not have taken the listener yet, and then closes it
		// only when it runs: close it now, so the port is free at once.
		s.l.Close()
	}
	dom.services = nil
}

// hostPorts returns the host ports spec forwards: SSH's and the others.
func hostPorts(spec hypervisor.Spec) []int {
	var ports []int
	if spec.SSHPort != 0 {
		ports = append(ports, spec.SSHPort)
	}
	for _, f := range spec.Forwards {
		ports = append(ports, f.HostPort)
	}
	return ports
}

// checkForwards applies the real driver's rules to the extra forwards,
// so code that passes the fake does not fail on libvirt: ports are TCP
// ports, and no host port is used twice or is also the SSH port.
func checkForwards(spec hypervisor.Spec) error {
	seen := map[int]bool{}
	for _, f := range spec.Forwards {
		switch {
		case f.HostPort < 1 || f.HostPort > 65535 || f.GuestPort < 1 || f.GuestPort > 65535:
			return fmt.Errorf("%w: forward %d to %d: ports must be 1 to 65535", ErrInvalidSpec, f.HostPort, f.GuestPort)
		case f.HostPort == spec.SSHPort:
			return fmt.Errorf("%w: forward %d to %d: host port is the SSHPort", ErrInvalidSpec, f.HostPort, f.GuestPort)
		case seen[f.HostPort]:
			return fmt.Errorf("%w: forward %d to %d: host port is forwarded twice", ErrInvalidSpec, f.HostPort, f.GuestPort)
		}
		seen[f.HostPort] = true
	}
	return nil
}

func (dom *domain) report() hypervisor.Domain {
	return hypervisor.Domain{
		Name:      dom.spec.Name,
		State:     dom.state,
		SSH:       hypervisor.Endpoint{Host: "127.0.0.1", Port: dom.spec.SSHPort},
		Forwards:  slices.Clone(dom.spec.Forwards),
		Labels:    maps.Clone(dom.spec.Labels),
		VCPUs:     dom.spec.VCPUs,
		MemoryMiB: dom.spec.MemoryMiB,
	}
}

// copySpec returns a spec sharing no memory with s, so callers can neither
// change a defined domain behind the driver's back nor see it change.
func copySpec(s hypervisor.Spec) hypervisor.Spec {
	s.Seed = slices.Clone(s.Seed)
	s.Shares = slices.Clone(s.Shares)
	s.Forwards = slices.Clone(s.Forwards)
	s.Labels = maps.Clone(s.Labels)
	return s
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
