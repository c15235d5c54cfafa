package hypervisor

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
)

// The registry lets a driver package make itself available by name from
// its init function, as database/sql drivers and Lima's drivers do: the
// amlsim binary then opens and checks drivers without importing them, and
// a build without cgo simply lacks the libvirt driver instead of failing
// to compile.
//
// The fake driver (hypervisor/fake) does not register. Its users open it
// directly: its guest stand-in (sim/guest.Fake) needs the concrete
// *fake.Driver, its options (delays, stand-in services, failure
// injection) are test seams rather than host configuration, and it has
// nothing on the host for `amlsim doctor` to check.

// BaseImage is the guest image every domain's disk is layered on.
type BaseImage struct {
	// Disk is the base disk image (qcow2 unless Format says otherwise).
	Disk string
	// Format is the format of Disk; empty means qcow2.
	Format string
	// Kernel, Initrd and Cmdline boot the guest directly. With Kernel empty
	// the guest boots from Disk through the BIOS, as a cloud image does.
	Kernel  string
	Initrd  string
	Cmdline string
}

// Options is what a registered driver is opened and checked with: the
// [driver] section of amlsim's configuration and the guest image. Empty
// fields mean the driver's defaults.
type Options struct {
	// URI is the hypervisor connection URI, such as qemu:///system.
	URI string
	// StateDir holds the driver's files for each domain (disks, seed,
	// serial log) and its caches.
	StateDir string
	// DomainType is "kvm", "qemu" (TCG) or "auto" (empty): decide by
	// probing the host.
	DomainType string
	// Image is the base image of every domain. Check does not use it.
	Image BaseImage
	// ProbeKernel is a kernel to probe KVM with when Image has no kernel
	// (BIOS boot).
	ProbeKernel string
	// SnapshotRoot holds the snapshots of template guests (Snapshotter).
	SnapshotRoot string
	// Logger receives the driver's warnings; nil means slog.Default().
	Logger *slog.Logger
}

// Statuses of a Check. Only CheckFail means the driver cannot work here: a
// warning is something that works, slower or later.
const (
	CheckOK   = "ok"
	CheckWarn = "warn"
	CheckFail = "fail"
)

// Check is one verdict on whether this host can run a driver, one line of
// `amlsim doctor`.
type Check struct {
	// Name names what was checked, such as "libvirtd" or "kvm".
	Name string `json:"name"`
	// Status is CheckOK, CheckWarn or CheckFail.
	Status string `json:"status"`
	// Detail says what was found, in one line.
	Detail string `json:"detail"`
	// Fix is a one-line remedy when Status is not CheckOK.
	Fix string `json:"fix,omitempty"`
}

// Registration is a driver as the registry knows it.
type Registration struct {
	// Name is what users choose the driver by (amlsim serve --driver).
	Name string
	// Open returns a driver ready for use. A driver that holds a
	// connection or other resources implements io.Closer, and the caller
	// closes it when done.
	Open func(ctx context.Context, opts Options) (Driver, error)
	// Check judges whether this host can run the driver with opts, within
	// a few seconds and without changing anything; nil means there is
	// nothing to check.
	Check func(ctx context.Context, opts Options) []Check
}

// registry maps driver names to their registrations.
type registry struct {
	mu sync.Mutex
	m  map[string]Registration
}

// drivers is the registry of this binary, filled by the init functions
// of the driver packages it links.
var drivers registry

// Register makes a driver available by r.Name. It is meant to be called
// from the init function of the driver's package, and panics when r has
// no Name or no Open, or when another driver has the name: both are
// mistakes in the build, not in its use.
func Register(r Registration) { drivers.register(r) }

// Lookup returns the registration of the driver called name, and false
// when this binary has none by that name (its package is not linked in).
func Lookup(name string) (Registration, bool) { return drivers.lookup(name) }

// Names returns the names of the registered drivers, sorted.
func Names() []string { return drivers.names() }

func (r *registry) register(reg Registration) {
	if reg.Name == "" || reg.Open == nil {
		panic(fmt.Sprintf("hypervisor: Register of driver %q without a name or an Open function", reg.Name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[reg.Name]; dup {
		panic(fmt.Sprintf("hypervisor: Register called twice for driver %q", reg.Name))
	}
	if r.m == nil {
		r.m = map[string]Registration{}
	}
	r.m[reg.Name] = reg
}

func (r *registry) lookup(name string) (Registration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.m[name]
	return reg, ok
}

func (r *registry) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.m))
}
