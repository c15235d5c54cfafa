// Package hypervisor defines the small interface amlsim uses to run the
// virtual machine behind each compute instance, and the errors its
// implementations return. Backends live in sub-packages: hypervisor/libvirt
// (real QEMU/KVM guests through libvirt) and hypervisor/fake (in memory).
// Backends that amlsim opens by name register themselves (Register).
package hypervisor

import (
	"context"
	"errors"
	"time"
)

// State is the power state of a domain as the hypervisor sees it.
type State string

const (
	StateRunning      State = "running"
	StateShuttingDown State = "shutting-down"
	StateShutoff      State = "shutoff"
	StatePaused       State = "paused"
	StateCrashed      State = "crashed"
	StateUnknown      State = "unknown"
)

// Spec describes a domain to define.
type Spec struct {
	// Name is the domain name; it must be unique on the host.
	Name string
	// VCPUs and MemoryMiB are the resources the local VM gets (scaled down
	// from the Azure size the instance pretends to be).
	VCPUs     int
	MemoryMiB int
	// DiskSizeGB is the virtual size of the root disk (120 on Azure).
	DiskSizeGB int
	// Seed is the cloud-init NoCloud ISO image attached read-only.
	Seed []byte
	// SSHPort is the TCP port on 127.0.0.1 forwarded to the guest's port 22.
	// It is chosen by the caller and kept across restarts.
	SSHPort int
	// Forwards are further TCP ports on 127.0.0.1 forwarded into the guest,
	// such as a notebook server's. Like SSHPort they are chosen by the
	// caller and kept across restarts; SSH itself stays in SSHPort.
	Forwards []Forward
	// Shares are host directories exported into the guest (virtio-fs).
	Shares []Share
	// Labels are stored with the domain and returned by List and Lookup, so
	// a caller can find its records again after a restart.
	Labels map[string]string
	// Snapshot, when set, is the directory of a snapshot a Snapshotter
	// took (see Snapshotter.TakeSnapshot): the domain's disk starts as a
	// copy of the snapshot's disk, and its first Start restores the saved
	// memory instead of booting. A driver that cannot restore it, at that
	// Start, boots the domain from that disk instead and logs why.
	Snapshot string
}

// Share is a host directory exported into the guest under a mount tag.
type Share struct {
	Tag      string
	HostPath string
}

// Forward sends TCP connections to 127.0.0.1:HostPort on the host to
// GuestPort in the guest.
type Forward struct {
	HostPort  int
	GuestPort int
}

// Endpoint is a TCP address on the host.
type Endpoint struct {
	Host string
	Port int
}

// Domain is what a driver reports about one of its domains.
type Domain struct {
	Name  string
	State State
	SSH   Endpoint
	// Forwards are the domain's extra forwards, in the order of its Spec.
	Forwards []Forward
	Labels   map[string]string
	// VCPUs and MemoryMiB are the resources of the domain's definition.
	VCPUs     int
	MemoryMiB int
	// Restored is true while the domain runs a guest restored from a
	// snapshot (Spec.Snapshot) instead of one it booted, guest reboots
	// included; false once it is off, and after a restore that failed
	// and booted instead.
	Restored bool
}

// Driver runs domains. Every method takes a context bounding the work, and
// drivers only ever see and touch domains they defined themselves.
type Driver interface {
	// Define creates the domain and its disks without starting it.
	// It returns ErrExists when the name is taken and leaves nothing behind
	// on failure.
	Define(ctx context.Context, spec Spec) error
	// Start boots a defined domain and (re)applies its port forwards.
	Start(ctx context.Context, name string) error
	// Shutdown asks the guest to power off (ACPI), waits up to grace, then
	// forces it off. It returns nil once the domain is off.
	Shutdown(ctx context.Context, name string, grace time.Duration) error
	// Reboot restarts the guest; the domain keeps running.
	Reboot(ctx context.Context, name string) error
	// Destroy forces the domain off at once. It is not an error when the
	// domain is already off.
	Destroy(ctx context.Context, name string) error
	// Undefine forces the domain off if needed, then removes it and every
	// file it owns (disk overlay, seed, logs).
	Undefine(ctx context.Context, name string) error
	// SetResources changes the vCPUs and memory of a domain that is shut
	// off; they hold from its next start. It returns ErrInvalidState when
	// the domain is running and ErrNotFound when there is no such domain.
	SetResources(ctx context.Context, name string, vcpus, memoryMiB int) error
	// Lookup reports one domain.
	Lookup(ctx context.Context, name string) (Domain, error)
	// List reports every domain this driver owns.
	List(ctx context.Context) ([]Domain, error)
}

// Snapshotter is implemented by drivers that can save the memory and disk
// of a booted guest once, and start any number of new domains from it
// (Spec.Snapshot). The guest in a restored domain is a copy of the template
// guest, identity included; giving it its own is the caller's business.
type Snapshotter interface {
	// SnapshotDir returns the directory of the snapshot of a template guest
	// with these resources, and whether a complete snapshot is there. The
	// directory's name stands for everything a saved state depends on in
	// this driver (base image, emulator version, machine and domain type,
	// vCPUs, memory) and for version, the caller's version of the template
	// guest: a change to any of them names another directory.
	SnapshotDir(vcpus, memoryMiB int, version string) (dir string, complete bool)
	// TakeSnapshot defines and starts a template domain from spec (which
	// must have no Shares and no Snapshot), calls ready while it runs, and
	// then saves its memory and disk into dir and removes the domain.
	// Nothing is left behind on failure; an existing complete dir is kept.
	TakeSnapshot(ctx context.Context, dir string, spec Spec, ready func(context.Context) error) error
}

// Forwarder is implemented by drivers whose port forwards live in the
// running hypervisor process. EnsureForwards (re)applies a running
// domain's forwards, idempotently: a caller that cannot know whether a
// Start cut short by a crash got as far as the forwards calls it.
type Forwarder interface {
	EnsureForwards(ctx context.Context, name string) error
}

// Event is a change in a domain's life that the hypervisor reports as it
// happens: the guest powered itself off, QEMU died, someone destroyed or
// undefined the domain behind amlsim's back, or amlsim itself moved it.
// Events say that something changed; Lookup says what is true now.
type Event struct {
	// Domain is the domain's name.
	Domain string
	// State is the domain's power state after the event.
	State State
	// Gone is set when the domain was undefined.
	Gone bool
	// Reason says what happened in the hypervisor's words, such as
	// "stopped: shutdown", "stopped: destroyed", "crashed" or "undefined".
	Reason string
}

// Watcher is implemented by drivers that report domain events (libvirt's
// domain lifecycle callbacks). Watch delivers the events of the driver's
// own domains until ctx ends, then closes the channel. A slow reader may
// miss events: callers that must not miss a change also re-check with
// List from time to time.
type Watcher interface {
	Watch(ctx context.Context) (<-chan Event, error)
}

// Suspender is implemented by drivers that can pause a running domain's
// vCPUs (libvirt's virDomainSuspend): its guest stops answering while
// the domain stays active, as a hung VM does. Fault injection uses it.
type Suspender interface {
	Suspend(ctx context.Context, name string) error
}

// SerialLogger is implemented by drivers that capture the guest's serial
// console; SerialLog returns the path of the log file.
type SerialLogger interface {
	SerialLog(name string) string
}

var (
	// ErrNotFound is returned when no domain of ours has the name.
	ErrNotFound = errors.New("domain not found")
	// ErrExists is returned by Define when a domain (ours or not) has the name.
	ErrExists = errors.New("domain already exists")
	// ErrInvalidState is returned when the domain's power state forbids the
	// request, such as starting a running domain.
	ErrInvalidState = errors.New("domain is not in a state that allows this")
	// ErrPortInUse is returned when a forwarded host port is already taken.
	ErrPortInUse = errors.New("host port already in use")
	// ErrUnavailable is returned when the hypervisor cannot be reached.
	ErrUnavailable = errors.New("hypervisor unavailable")
	// ErrImageMissing is returned when the base image or kernel is absent.
	ErrImageMissing = errors.New("base image missing")
)
