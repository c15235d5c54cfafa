package amlsimtest

import (
	"log/slog"
	"time"

	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
)

// Option configures the server Start starts.
type Option func(*options)

type options struct {
	driver     string
	cfg        sim.Config
	toml       *string
	clock      bool
	clockStart time.Time
	faults     bool
	rules      []sim.FaultRule
	fakeOpts   []fake.Option
	apiOpts    []api.Option
	logger     *slog.Logger
}

// WithDriver runs the server on the hypervisor driver called name:
// "fake" (the default: no VMs, instances move through the real states
// with short delays) or "libvirt" (real VMs; in a build with cgo on
// Linux only, with libvirtd running and the guest image built). The
// configuration's [driver] section says how to reach libvirt.
func WithDriver(name string) Option { return func(o *options) { o.driver = name } }

// WithConfig runs the server with cfg instead of sim.DefaultConfig().
func WithConfig(cfg sim.Config) Option {
	return func(o *options) { o.cfg, o.toml = cfg, nil }
}

// WithConfigTOML runs the server with a configuration written as amlsim
// serve's --config file is: TOML over the built-in defaults (see
// fixtures/amlsim.toml). Text that is not a valid configuration fails the
// test.
func WithConfigTOML(text string) Option { return func(o *options) { o.toml = &text } }

// WithTestClock runs the simulated cloud on a test clock that starts at
// start, in the past or the future (at the wall clock's time when start is
// zero), as `amlsim serve --test-clock` does: schedules, idle shutdown and
// every timestamp follow it, and Server.Clock moves it forward.
func WithTestClock(start time.Time) Option {
	return func(o *options) { o.clock, o.clockStart = true, start }
}

// WithFaults serves fault rules and applies them, as `amlsim serve
// --faults` does, starting with rules (each with its ID) put through the
// API; Server.Faults puts and removes more.
func WithFaults(rules ...sim.FaultRule) Option {
	return func(o *options) { o.faults, o.rules = true, append(o.rules, rules...) }
}

// WithFakeOptions adds options to the fake driver: its delays per
// operation, stand-in services, failures. Server.Driver returns the
// *fake.Driver, for FailNext and the like.
func WithFakeOptions(opts ...fake.Option) Option {
	return func(o *options) { o.fakeOpts = append(o.fakeOpts, opts...) }
}

// WithAPIOptions adds options to the ARM API, after amlsimtest's own (a
// 100 ms poll interval): for amlsim's tests of its API layer.
func WithAPIOptions(opts ...api.Option) Option {
	return func(o *options) { o.apiOpts = append(o.apiOpts, opts...) }
}

// WithLogger sends the server's log to l instead of the test's log.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }
