//go:build linux && cgo

package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	golibvirt "libvirt.org/go/libvirt"

	"github.com/amlsim/amlsim/hypervisor"
)

// defaultURI is the libvirt connection of a Config without URI.
const defaultURI = "qemu:///system"

// Config configures a Driver. One Driver talks to one libvirt connection.
type Config struct {
	// URI is the libvirt connection URI; empty means qemu:///system.
	URI string
	// StateDir holds one directory per domain (overlay, seed, serial log).
	// QEMU must be able to read it, so the default for root is
	// /var/lib/amlsim/vms, never something under /root.
	StateDir string
	// Image is the base image of every domain.
	Image hypervisor.BaseImage
	// DomainType is "kvm", "qemu" (TCG) or "auto" (empty): decide by
	// booting the image's kernel under KVM once.
	DomainType string
	// ProbeKernel is a kernel to probe KVM with when Image has no kernel
	// (BIOS boot); empty means trusting libvirt's report of KVM.
	ProbeKernel string
	// QemuImg is the qemu-img binary; empty means "qemu-img" from PATH.
	QemuImg string
	// QemuSystem is the emulator the KVM probe runs; empty means
	// "qemu-system-x86_64" from PATH.
	QemuSystem string
	// SnapshotRoot holds the snapshots of template guests
	// (hypervisor.Snapshotter); empty means StateDir/snapshots. QEMU must
	// be able to read it, as it reads StateDir.
	SnapshotRoot string
	// Logger receives warnings such as the fall-back to TCG; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Driver implements hypervisor.Driver on a libvirt connection.
type Driver struct {
	cfg        Config
	log        *slog.Logger
	domType    string
	typeReason string
	// testDriver is set for libvirt's test:/// driver, which has no QEMU
	// behind it and so no monitor to add port forwards through.
	testDriver bool

	mu   sync.Mutex
	conn *golibvirt.Connect
	// defining holds the names a Define of this driver is working on, so
	// two concurrent Defines of one name cannot both pass the clash check.
	defining map[string]bool
}

var (
	_ hypervisor.Driver       = (*Driver)(nil)
	_ hypervisor.SerialLogger = (*Driver)(nil)
)

// DefaultStateDir returns where domain files live by default: a directory
// QEMU can read when it runs as libvirt-qemu (root with qemu:///system), or
// the user's data directory otherwise.
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/amlsim/vms"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "amlsim", "vms")
	}
	return filepath.Join(os.TempDir(), "amlsim", "vms")
}

// New connects to libvirt and decides the domain type. An unreachable
// libvirt is reported as hypervisor.ErrUnavailable.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.URI == "" {
		cfg.URI = defaultURI
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir()
	}
	if cfg.QemuImg == "" {
		cfg.QemuImg = "qemu-img"
	}
	if cfg.QemuSystem == "" {
		cfg.QemuSystem = "qemu-system-x86_64"
	}
	if cfg.DomainType == "" {
		cfg.DomainType = "auto"
	}
	if cfg.SnapshotRoot == "" {
		cfg.SnapshotRoot = filepath.Join(cfg.StateDir, "snapshots")
	}
	d := &Driver{cfg: cfg, log: cfg.Logger, defining: map[string]bool{}}
	if d.log == nil {
		d.log = slog.Default()
	}
	switch cfg.DomainType {
	case "auto", "kvm", "qemu":
	default:
		return nil, fmt.Errorf("libvirt driver: domain type %q is not auto, kvm or qemu", cfg.DomainType)
	}
	// 0711: QEMU (as libvirt-qemu) must traverse to the disks, but other
	// users have no business listing the instances.
	if err := os.MkdirAll(cfg.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("libvirt driver: state dir: %w", err)
	}
	if err := startEventLoop(); err != nil {
		d.log.Warn("libvirt event loop unavailable: domain changes are seen at the next check only", "err", err)
	}
	conn, err := connect(cfg.URI)
	if err != nil {
		return nil, err
	}
	d.conn = conn
	if typ, err := conn.GetType(); err == nil && strings.EqualFold(typ, "test") {
		d.testDriver = true
	}
	if err := d.decideType(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return d, nil
}

func connect(uri string) (*golibvirt.Connect, error) {
	conn, err := golibvirt.NewConnect(uri)
	if err != nil {
		return nil, fmt.Errorf("connect to libvirt %q: %w: %w", uri, hypervisor.ErrUnavailable, translate(err))
	}
	return conn, nil
}

// decideType settles the libvirt domain type once per driver.
func (d *Driver) decideType(ctx context.Context) error {
	switch {
	case d.testDriver:
		d.domType, d.typeReason = "test", "libvirt test driver"
		return nil
	case d.cfg.DomainType != "auto":
		d.domType, d.typeReason = d.cfg.DomainType, "set in the configuration"
		return nil
	case d.probeKernel() == "":
		// Nothing to boot a probe with: trust libvirt's view of KVM.
		if _, err := d.conn.GetDomainCapabilities("", "x86_64", "", "kvm", 0); err == nil {
			d.domType, d.typeReason = "kvm", "libvirt reports KVM (no kernel to probe with)"
		} else {
			d.domType, d.typeReason = "qemu", "libvirt reports no KVM"
		}
	case !isLocalURI(d.cfg.URI):
		// The probe runs QEMU here; a remote host must be trusted instead.
		if _, err := d.conn.GetDomainCapabilities("", "x86_64", "", "kvm", 0); err == nil {
			d.domType, d.typeReason = "kvm", "remote libvirt reports KVM"
		} else {
			d.domType, d.typeReason = "qemu", "remote libvirt reports no KVM"
		}
	default:
		typ, reason, err := probeDomainType(ctx, d.cfg.StateDir, d.cfg.QemuSystem, d.probeKernel(), kvmProbeTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			typ, reason = "qemu", err.Error()
		}
		d.domType, d.typeReason = typ, reason
	}
	if d.domType == "qemu" {
		d.log.Warn("KVM unusable, guests run under TCG emulation (slow)", "reason", d.typeReason)
	}
	return nil
}

// probeKernel is the kernel the KVM probe boots: the image's, else
// Config.ProbeKernel (a cloud image booted through the BIOS has none, and
// libvirt's own view of KVM is wrong on hosts where it hangs guests).
func (d *Driver) probeKernel() string {
	if d.cfg.Image.Kernel != "" {
		return d.cfg.Image.Kernel
	}
	return d.cfg.ProbeKernel
}

func isLocalURI(uri string) bool {
	// qemu:///system has an empty host; qemu+ssh://host/system does not.
	rest, ok := strings.CutPrefix(uri[strings.Index(uri, ":")+1:], "//")
	return ok && strings.HasPrefix(rest, "/")
}

// DomainType returns the libvirt domain type this driver defines ("kvm",
// "qemu" or "test") and why it was chosen.
func (d *Driver) DomainType() (typ, reason string) {
	return d.domType, d.typeReason
}

// SerialLog returns the file the guest's serial console is written to.
func (d *Driver) SerialLog(name string) string {
	return filepath.Join(d.domainDir(name), SerialLog)
}

// Close closes the libvirt connection. Domains keep running.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		return nil
	}
	_, err := d.conn.Close()
	d.conn = nil
	return err
}

// connection returns a live connection, reconnecting once if libvirtd went
// away since (it restarts on upgrades; the domains survive it).
func (d *Driver) connection() (*golibvirt.Connect, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		if alive, err := d.conn.IsAlive(); err == nil && alive {
			return d.conn, nil
		}
		d.conn.Close()
		d.conn = nil
	}
	conn, err := connect(d.cfg.URI)
	if err != nil {
		return nil, err
	}
	d.conn = conn
	return conn, nil
}

// validName keeps names usable as both a libvirt name and a directory.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= 200 &&
		!strings.ContainsAny(name, "/\\\x00") && !strings.HasPrefix(name, "-")
}

func checkSpec(spec hypervisor.Spec) error {
	var problems []string
	if !validName(spec.Name) {
		problems = append(problems, fmt.Sprintf("name %q is not a valid domain name", spec.Name))
	}
	if spec.VCPUs < 1 {
		problems = append(problems, "VCPUs must be at least 1")
	}
	if spec.MemoryMiB < 64 {
		problems = append(problems, "MemoryMiB must be at least 64")
	}
	if spec.DiskSizeGB < 1 {
		problems = append(problems, "DiskSizeGB must be at least 1")
	}
	if !validPort(spec.SSHPort) {
		problems = append(problems, fmt.Sprintf("SSHPort %d is not a TCP port", spec.SSHPort))
	}
	problems = append(problems, forwardProblems(spec)...)
	for _, s := range spec.Shares {
		if s.Tag == "" || !filepath.IsAbs(s.HostPath) {
			problems = append(problems, fmt.Sprintf("share %q needs a tag and an absolute host path", s.Tag))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, strings.Join(problems, "; "))
	}
	return nil
}

// forwardProblems checks the extra forwards. QEMU listens on each host
// port once, so a host port may appear only once, and never as SSHPort.
// Two host ports may lead to one guest port.
func forwardProblems(spec hypervisor.Spec) []string {
	var problems []string
	seen := map[int]bool{}
	for _, f := range spec.Forwards {
		rule := fmt.Sprintf("forward 127.0.0.1:%d to guest port %d", f.HostPort, f.GuestPort)
		switch {
		case !validPort(f.HostPort) || !validPort(f.GuestPort):
			problems = append(problems, rule+": ports must be 1 to 65535")
		case f.HostPort == spec.SSHPort:
			problems = append(problems, rule+": host port is the SSHPort")
		case seen[f.HostPort]:
			problems = append(problems, rule+": host port is forwarded twice")
		}
		seen[f.HostPort] = true
	}
	return problems
}

func validPort(p int) bool { return p >= 1 && p <= 65535 }

// checkImage reports a missing base disk, kernel or initrd.
func (d *Driver) checkImage() error {
	img := d.cfg.Image
	paths := []string{img.Disk}
	if img.Kernel != "" {
		paths = append(paths, img.Kernel)
		if img.Initrd != "" {
			paths = append(paths, img.Initrd)
		}
	}
	for _, p := range paths {
		if p == "" {
			return fmt.Errorf("%w: no base disk configured", hypervisor.ErrImageMissing)
		}
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w: %s", hypervisor.ErrImageMissing, p)
			}
			return fmt.Errorf("base image: %w", err)
		}
	}
	return nil
}

// Define creates the domain's directory, overlay disk and seed, then defines
// the domain. On failure everything already done is undone.
func (d *Driver) Define(ctx context.Context, spec hypervisor.Spec) (err error) {
	if err := checkSpec(spec); err != nil {
		return fmt.Errorf("define domain %q: %w", spec.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("define domain %q: %w", spec.Name, err)
	}
	conn, err := d.connection()
	if err != nil {
		return fmt.Errorf("define domain %q: %w", spec.Name, err)
	}
	if !d.reserveName(spec.Name) {
		return fmt.Errorf("define domain %q: %w (being defined)", spec.Name, hypervisor.ErrExists)
	}
	defer d.releaseName(spec.Name)
	if dom, err := conn.LookupDomainByName(spec.Name); err == nil {
		dom.Free()
		return fmt.Errorf("define domain %q: %w", spec.Name, hypervisor.ErrExists)
	} else if !isCode(err, golibvirt.ERR_NO_DOMAIN) {
		return fmt.Errorf("define domain %q: %w", spec.Name, translate(err))
	}
	if err := d.checkImage(); err != nil {
		return fmt.Errorf("define domain %q: %w", spec.Name, err)
	}

	// Undo steps run in reverse on failure; their errors join the cause.
	var undo []func() error
	defer func() {
		if err == nil {
			return
		}
		errs := []error{err}
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](); uerr != nil {
				errs = append(errs, uerr)
			}
		}
		err = errors.Join(errs...)
	}()

	dir := d.domainDir(spec.Name)
	// No domain has this name, so a directory left here is debris of a
	// crash in an earlier Define or Undefine: it belongs to nobody.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("define domain %q: clear stale files: %w", spec.Name, err)
	}
	if err := os.Mkdir(dir, 0o711); err != nil {
		return fmt.Errorf("define domain %q: %w", spec.Name, err)
	}
	undo = append(undo, func() error {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("undo define domain %q: remove files: %w", spec.Name, err)
		}
		return nil
	})
	if spec.Snapshot != "" && !dirComplete(spec.Snapshot) {
		d.log.Warn("snapshot incomplete or gone, the domain will boot", "domain", spec.Name, "snapshot", spec.Snapshot)
		spec.Snapshot = ""
	}
	if spec.Snapshot != "" {
		// The snapshot's disk is itself an overlay on the base image, of
		// this size: a copy of it (some 25 MB) is the domain's disk, so
		// the domain depends on the image only, as a booted one does,
		// and old snapshots can go.
		if err := copyFile(filepath.Join(spec.Snapshot, snapshotDisk), filepath.Join(dir, OverlayDisk)); err != nil {
			return fmt.Errorf("define domain %q: copy the snapshot's disk: %w", spec.Name, err)
		}
	} else if err := d.createOverlay(ctx, filepath.Join(dir, OverlayDisk), spec.DiskSizeGB); err != nil {
		return fmt.Errorf("define domain %q: %w", spec.Name, err)
	}
	// The seed may carry SSH host private keys: readable by root only;
	// libvirt hands it to QEMU's user while the domain runs.
	seed := filepath.Join(dir, SeedISO)
	if err := os.WriteFile(seed, spec.Seed, 0o600); err != nil {
		return fmt.Errorf("define domain %q: write seed: %w", spec.Name, err)
	}
	if err := padSeed(seed); err != nil {
		return fmt.Errorf("define domain %q: pad seed: %w", spec.Name, err)
	}
	xmlDom, err := buildDomain(spec, domainParams{Type: d.domType, Image: d.cfg.Image, Dir: dir})
	if err != nil {
		return fmt.Errorf("define domain %q: %w", spec.Name, err)
	}
	doc, err := xmlDom.Marshal()
	if err != nil {
		return fmt.Errorf("define domain %q: marshal XML: %w", spec.Name, err)
	}
	dom, err := conn.DomainDefineXMLFlags(doc, golibvirt.DOMAIN_DEFINE_VALIDATE)
	if err != nil {
		if isCode(err, golibvirt.ERR_OPERATION_FAILED) && strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("define domain %q: %w: %w", spec.Name, hypervisor.ErrExists, translate(err))
		}
		return fmt.Errorf("define domain %q: %w", spec.Name, translate(err))
	}
	dom.Free()
	return nil
}

func (d *Driver) reserveName(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.defining[name] {
		return false
	}
	d.defining[name] = true
	return true
}

func (d *Driver) releaseName(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.defining, name)
}

// createOverlay makes a qcow2 of sizeGB layered on the base image.
func (d *Driver) createOverlay(ctx context.Context, path string, sizeGB int) error {
	format := d.cfg.Image.Format
	if format == "" {
		format = "qcow2"
	}
	cmd := exec.CommandContext(ctx, d.cfg.QemuImg, "create", "-q", "-f", "qcow2",
		"-F", format, "-b", d.cfg.Image.Disk, path, strconv.Itoa(sizeGB)+"G")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("create overlay %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return os.Chmod(path, 0o600)
}

// owned looks name up and returns it only when amlsim defined it.
func (d *Driver) owned(name string) (*golibvirt.Domain, domainMeta, error) {
	conn, err := d.connection()
	if err != nil {
		return nil, domainMeta{}, err
	}
	dom, err := conn.LookupDomainByName(name)
	if err != nil {
		return nil, domainMeta{}, translate(err)
	}
	meta, err := readMeta(dom)
	if err != nil {
		dom.Free()
		return nil, domainMeta{}, err
	}
	return dom, meta, nil
}

// readMeta returns amlsim's metadata of dom; a domain without it is not
// ours and reads as not found.
func readMeta(dom *golibvirt.Domain) (domainMeta, error) {
	s, err := dom.GetMetadata(golibvirt.DOMAIN_METADATA_ELEMENT, metadataNS, golibvirt.DOMAIN_AFFECT_CURRENT)
	if err != nil {
		if isCode(err, golibvirt.ERR_NO_DOMAIN_METADATA) {
			return domainMeta{}, fmt.Errorf("%w (not an amlsim domain)", hypervisor.ErrNotFound)
		}
		return domainMeta{}, translate(err)
	}
	return parseDomainMeta(s)
}

func domainState(dom *golibvirt.Domain) (hypervisor.State, error) {
	st, _, err := dom.GetState()
	if err != nil {
		return hypervisor.StateUnknown, translate(err)
	}
	switch st {
	case golibvirt.DOMAIN_RUNNING, golibvirt.DOMAIN_BLOCKED:
		return hypervisor.StateRunning, nil
	case golibvirt.DOMAIN_PAUSED, golibvirt.DOMAIN_PMSUSPENDED:
		return hypervisor.StatePaused, nil
	case golibvirt.DOMAIN_SHUTDOWN:
		return hypervisor.StateShuttingDown, nil
	case golibvirt.DOMAIN_SHUTOFF:
		return hypervisor.StateShutoff, nil
	case golibvirt.DOMAIN_CRASHED:
		return hypervisor.StateCrashed, nil
	default:
		return hypervisor.StateUnknown, nil
	}
}

// Start boots the domain and adds its forwards, SSH first. The host ports
// are checked first so a taken one leaves the domain defined and off.
func (d *Driver) Start(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start domain %q: %w", name, err)
	}
	dom, meta, err := d.owned(name)
	if err != nil {
		return fmt.Errorf("start domain %q: %w", name, err)
	}
	defer dom.Free()
	st, err := domainState(dom)
	if err != nil {
		return fmt.Errorf("start domain %q: %w", name, err)
	}
	if st == hypervisor.StatePaused && meta.Snapshot != "" && !d.testDriver {
		// A restore that a stopped server left paused.
		if err := d.finishRestore(dom, meta); err != nil {
			return fmt.Errorf("start domain %q: finish its restore: %w", name, err)
		}
		return nil
	}
	if st != hypervisor.StateShutoff && st != hypervisor.StateCrashed {
		return fmt.Errorf("start domain %q: %w: it is %s", name, hypervisor.ErrInvalidState, st)
	}
	rules := meta.rules()
	for _, f := range rules {
		if !portFree(f.HostPort) {
			return fmt.Errorf("start domain %q: %w: 127.0.0.1:%d (for guest port %d)", name, hypervisor.ErrPortInUse, f.HostPort, f.GuestPort)
		}
	}
	if meta.Snapshot != "" && !d.testDriver {
		conn, err := d.connection()
		if err == nil {
			err = snapshotUsable(meta.Snapshot, filepath.Join(d.domainDir(name), SeedISO))
		}
		if err == nil {
			err = d.restore(conn, dom, name, meta, meta.Snapshot)
		}
		if err == nil {
			return nil
		}
		// Tried once: later starts boot.
		if ferr := forgetSnapshot(dom, meta); ferr != nil {
			d.log.Warn("could not clear the snapshot mark of a domain", "domain", name, "err", ferr)
		}
		d.log.Warn("restoring the snapshot failed, booting the domain instead", "domain", name, "snapshot", meta.Snapshot, "err", err)
	}
	if err := dom.Create(); err != nil {
		return fmt.Errorf("start domain %q: %w", name, translate(err))
	}
	if d.testDriver {
		return nil
	}
	for _, f := range rules {
		if err := addForward(dom, f.HostPort, f.GuestPort); err != nil {
			// A guest missing one of its forwards cannot be reached
			// as promised: leave it off, as a port found taken
			// before booting does. Its other rules die with QEMU.
			err = fmt.Errorf("start domain %q: %w", name, err)
			if derr := dom.Destroy(); derr != nil {
				err = errors.Join(err, fmt.Errorf("force off domain %q: %w", name, translate(derr)))
			}
			return err
		}
	}
	return nil
}

// pollInterval is how often Shutdown looks at the domain's state.
const pollInterval = 200 * time.Millisecond

// acpiRepeat is how often Shutdown presses the power button again.
const acpiRepeat = 10 * time.Second

// Shutdown presses the ACPI power button, waits up to grace for the guest
// to power off, then forces it off.
func (d *Driver) Shutdown(ctx context.Context, name string, grace time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("shut down domain %q: %w", name, err)
	}
	dom, _, err := d.owned(name)
	if err != nil {
		return fmt.Errorf("shut down domain %q: %w", name, err)
	}
	defer dom.Free()
	st, err := domainState(dom)
	if err != nil {
		return fmt.Errorf("shut down domain %q: %w", name, err)
	}
	if st == hypervisor.StateShutoff {
		return fmt.Errorf("shut down domain %q: %w: it is already off", name, hypervisor.ErrInvalidState)
	}
	if err := dom.ShutdownFlags(golibvirt.DOMAIN_SHUTDOWN_ACPI_POWER_BTN); err != nil {
		// The test driver knows no flags; a paused guest cannot hear ACPI.
		// Either way the deadline below ends in a forced stop.
		if !isCode(err, golibvirt.ERR_INVALID_ARG) && !isCode(err, golibvirt.ERR_NO_SUPPORT) && !isCode(err, golibvirt.ERR_OPERATION_INVALID) {
			return fmt.Errorf("shut down domain %q: %w", name, translate(err))
		}
		if err := dom.Shutdown(); err != nil && !isCode(err, golibvirt.ERR_OPERATION_INVALID) {
			return fmt.Errorf("shut down domain %q: %w", name, translate(err))
		}
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	// A guest still booting loses the button press (systemd-logind is not
	// up yet to act on it): press it again now and then.
	again := time.NewTicker(acpiRepeat)
	defer again.Stop()
	for {
		st, err := domainState(dom)
		if err != nil {
			return fmt.Errorf("shut down domain %q: %w", name, err)
		}
		if st == hypervisor.StateShutoff {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shut down domain %q: %w", name, ctx.Err())
		case <-again.C:
			dom.ShutdownFlags(golibvirt.DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
		case <-deadline.C:
			d.log.Warn("guest ignored the ACPI power button, forcing it off", "domain", name, "grace", grace)
			if err := destroy(dom); err != nil {
				return fmt.Errorf("shut down domain %q: force off: %w", name, err)
			}
			return nil
		case <-tick.C:
		}
	}
}

// destroy forces dom off; a domain already off is fine.
func destroy(dom *golibvirt.Domain) error {
	if err := dom.Destroy(); err != nil {
		if isCode(err, golibvirt.ERR_OPERATION_INVALID) {
			if active, aerr := dom.IsActive(); aerr == nil && !active {
				return nil
			}
		}
		return translate(err)
	}
	return nil
}

// Reboot presses the ACPI power button and lets libvirt restart the guest
// in the same QEMU process, so the port forwards survive. Like any ACPI
// button press it can go unheard (seen here right after a boot, once in a
// few); the simulator restarts instances with Shutdown and Start instead.
func (d *Driver) Reboot(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reboot domain %q: %w", name, err)
	}
	dom, _, err := d.owned(name)
	if err != nil {
		return fmt.Errorf("reboot domain %q: %w", name, err)
	}
	defer dom.Free()
	st, err := domainState(dom)
	if err != nil {
		return fmt.Errorf("reboot domain %q: %w", name, err)
	}
	if st != hypervisor.StateRunning {
		return fmt.Errorf("reboot domain %q: %w: it is %s", name, hypervisor.ErrInvalidState, st)
	}
	flags := golibvirt.DOMAIN_REBOOT_ACPI_POWER_BTN
	if d.testDriver {
		flags = golibvirt.DOMAIN_REBOOT_DEFAULT
	}
	if err := dom.Reboot(flags); err != nil {
		return fmt.Errorf("reboot domain %q: %w", name, translate(err))
	}
	return nil
}

// Destroy forces the domain off at once.
func (d *Driver) Destroy(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("destroy domain %q: %w", name, err)
	}
	dom, _, err := d.owned(name)
	if err != nil {
		return fmt.Errorf("destroy domain %q: %w", name, err)
	}
	defer dom.Free()
	active, err := dom.IsActive()
	if err != nil {
		return fmt.Errorf("destroy domain %q: %w", name, translate(err))
	}
	if !active {
		return nil
	}
	if err := destroy(dom); err != nil {
		return fmt.Errorf("destroy domain %q: %w", name, err)
	}
	return nil
}

// Suspend pauses a running domain's vCPUs (virDomainSuspend): the guest
// stops answering, the domain stays active (hypervisor.Suspender).
func (d *Driver) Suspend(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("suspend domain %q: %w", name, err)
	}
	dom, _, err := d.owned(name)
	if err != nil {
		return fmt.Errorf("suspend domain %q: %w", name, err)
	}
	defer dom.Free()
	if err := dom.Suspend(); err != nil {
		return fmt.Errorf("suspend domain %q: %w", name, translate(err))
	}
	return nil
}

// undefineFlags also drops state libvirt keeps beside the definition, so
// nothing of the domain is left.
const undefineFlags = golibvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | golibvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
	golibvirt.DOMAIN_UNDEFINE_NVRAM | golibvirt.DOMAIN_UNDEFINE_CHECKPOINTS_METADATA

// Undefine forces the domain off, removes its definition and then every
// file under its directory.
func (d *Driver) Undefine(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("undefine domain %q: %w", name, err)
	}
	dom, _, err := d.owned(name)
	if err != nil {
		if errors.Is(err, hypervisor.ErrNotFound) && validName(name) {
			// Undefined behind our back (`virsh undefine` leaves the
			// files libvirt does not manage): the files in our state
			// directory are still ours to remove.
			if rerr := os.RemoveAll(d.domainDir(name)); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove files: %w", rerr))
			}
		}
		return fmt.Errorf("undefine domain %q: %w", name, err)
	}
	defer dom.Free()
	if active, err := dom.IsActive(); err != nil {
		return fmt.Errorf("undefine domain %q: %w", name, translate(err))
	} else if active {
		if err := destroy(dom); err != nil {
			return fmt.Errorf("undefine domain %q: force off: %w", name, err)
		}
	}
	if err := dom.UndefineFlags(undefineFlags); err != nil {
		// Drivers that know fewer flags (the test driver) reject the set.
		if !isCode(err, golibvirt.ERR_INVALID_ARG) && !isCode(err, golibvirt.ERR_NO_SUPPORT) {
			return fmt.Errorf("undefine domain %q: %w", name, translate(err))
		}
		if err := dom.Undefine(); err != nil {
			return fmt.Errorf("undefine domain %q: %w", name, translate(err))
		}
	}
	if err := os.RemoveAll(d.domainDir(name)); err != nil {
		return fmt.Errorf("undefine domain %q: remove files: %w", name, err)
	}
	return nil
}

// Lookup reports one of our domains.
func (d *Driver) Lookup(ctx context.Context, name string) (hypervisor.Domain, error) {
	if err := ctx.Err(); err != nil {
		return hypervisor.Domain{}, fmt.Errorf("look up domain %q: %w", name, err)
	}
	dom, meta, err := d.owned(name)
	if err != nil {
		return hypervisor.Domain{}, fmt.Errorf("look up domain %q: %w", name, err)
	}
	defer dom.Free()
	out, err := describe(dom, name, meta)
	if err != nil {
		return hypervisor.Domain{}, fmt.Errorf("look up domain %q: %w", name, err)
	}
	return out, nil
}

func describe(dom *golibvirt.Domain, name string, meta domainMeta) (hypervisor.Domain, error) {
	st, err := domainState(dom)
	if err != nil {
		return hypervisor.Domain{}, err
	}
	info, err := dom.GetInfo()
	if err != nil {
		return hypervisor.Domain{}, translate(err)
	}
	return hypervisor.Domain{
		Name:      name,
		State:     st,
		SSH:       hypervisor.Endpoint{Host: "127.0.0.1", Port: meta.SSHPort},
		Forwards:  meta.forwards(),
		Labels:    meta.labels(),
		VCPUs:     int(info.NrVirtCpu),
		MemoryMiB: int(info.MaxMem / 1024),
		// A running domain's metadata is its live definition's, which
		// keeps the snapshot mark a restore clears from the persistent
		// one (see restore).
		Restored: meta.Snapshot != "" && st != hypervisor.StateShutoff && st != hypervisor.StateCrashed,
	}, nil
}

// SetResources changes a shut-off domain's persistent definition, as
// virsh setvcpus --config --maximum and setmaxmem/setmem --config do. The
// vCPU maximum and count move in the order that keeps the count within
// the maximum.
func (d *Driver) SetResources(ctx context.Context, name string, vcpus, memoryMiB int) error {
	fail := func(err error) error { return fmt.Errorf("set resources of domain %q: %w", name, err) }
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if vcpus < 1 || memoryMiB < 64 {
		return fail(fmt.Errorf("invalid resources: %d vCPUs, %d MiB", vcpus, memoryMiB))
	}
	dom, _, err := d.owned(name)
	if err != nil {
		return fail(err)
	}
	defer dom.Free()
	st, err := domainState(dom)
	if err != nil {
		return fail(err)
	}
	if st != hypervisor.StateShutoff {
		return fail(fmt.Errorf("%w: domain is %s", hypervisor.ErrInvalidState, st))
	}
	info, err := dom.GetInfo()
	if err != nil {
		return fail(translate(err))
	}
	setMax := func() error {
		return dom.SetVcpusFlags(uint(vcpus), golibvirt.DOMAIN_VCPU_CONFIG|golibvirt.DOMAIN_VCPU_MAXIMUM)
	}
	setCount := func() error { return dom.SetVcpusFlags(uint(vcpus), golibvirt.DOMAIN_VCPU_CONFIG) }
	order := []func() error{setMax, setCount}
	if uint(vcpus) < info.NrVirtCpu {
		order = []func() error{setCount, setMax}
	}
	kib := uint64(memoryMiB) * 1024
	order = append(order,
		// Lowering the maximum lowers the current memory with it.
		func() error { return dom.SetMemoryFlags(kib, golibvirt.DOMAIN_MEM_CONFIG|golibvirt.DOMAIN_MEM_MAXIMUM) },
		func() error { return dom.SetMemoryFlags(kib, golibvirt.DOMAIN_MEM_CONFIG) })
	for _, set := range order {
		if err := set(); err != nil {
			return fail(translate(err))
		}
	}
	return nil
}

// List reports every domain on the connection that carries our marker.
func (d *Driver) List(ctx context.Context) ([]hypervisor.Domain, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	conn, err := d.connection()
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	doms, err := conn.ListAllDomains(0)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", translate(err))
	}
	var out []hypervisor.Domain
	var errs []error
	for i := range doms {
		dom := &doms[i]
		name, err := dom.GetName()
		if err == nil {
			var meta domainMeta
			meta, err = readMeta(dom)
			if err == nil {
				var info hypervisor.Domain
				if info, err = describe(dom, name, meta); err == nil {
					out = append(out, info)
				}
			}
		}
		// A domain that vanished or is not ours since ListAllDomains is
		// simply not in the list.
		if err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			errs = append(errs, fmt.Errorf("list domains: %q: %w", name, err))
		}
		dom.Free()
	}
	return out, errors.Join(errs...)
}
