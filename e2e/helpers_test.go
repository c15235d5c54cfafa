//go:build linux && cgo

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amlsim/amlsim/cloudinit"
	"github.com/amlsim/amlsim/fixtures"
	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/hypervisor/libvirt"
	"github.com/amlsim/amlsim/sim"
)

// libvirtURI is the connection the e2e tests use; AMLSIM_LIBVIRT_URI
// overrides it (qemu:///session for a non-root run, for instance).
func libvirtURI() string {
	if uri := os.Getenv("AMLSIM_LIBVIRT_URI"); uri != "" {
		return uri
	}
	return "qemu:///system"
}

// skipOrFail skips t for a host that lacks something, or fails it when
// AMLSIM_E2E_REQUIRED is set: `make test` sets it after preparing the
// host, so a missing image or daemon there is a failure, never a silent skip.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("AMLSIM_E2E_REQUIRED") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// requireVMs skips t under -short: booting a guest takes tens of seconds.
func requireVMs(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots real VMs: skipped under -short")
	}
}

// requireImage returns the default guest image, skipping t when it has not
// been built on this machine.
func requireImage(t *testing.T) fixtures.Image {
	t.Helper()
	dir := fixtures.DefaultImageDir(fixtures.DefaultImageCache())
	img, err := fixtures.LoadImage(dir)
	if errors.Is(err, fixtures.ErrImageNotBuilt) {
		skipOrFail(t, "guest image not built in %s (run: make image): %v", dir, err)
	}
	if err != nil {
		t.Fatalf("load guest image: %v", err)
	}
	return img
}

// vmStateDir returns a fresh directory for domain files that QEMU, running
// as libvirt-qemu under qemu:///system, can reach: t.TempDir() is 0700.
func vmStateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatalf("open up state dir for QEMU: %v", err)
		}
	}
	return dir
}

// newVMDriver connects a libvirt driver on the default image, skipping t
// when libvirtd cannot be reached.
func newVMDriver(t *testing.T, img fixtures.Image) (*libvirt.Driver, string) {
	t.Helper()
	state := vmStateDir(t)
	base := hypervisor.BaseImage{Disk: img.Disk, Kernel: img.Kernel, Initrd: img.Initrd, Cmdline: img.Cmdline}
	return openDriver(t, base, state), state
}

// openDriver connects a libvirt driver on base in state, with the domain
// type the first driver of the run probed (this one probes when none has).
func openDriver(t *testing.T, base hypervisor.BaseImage, state string) *libvirt.Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	typeMu.Lock()
	defer typeMu.Unlock()
	d, err := libvirt.New(ctx, libvirt.Config{
		URI:        libvirtURI(),
		StateDir:   state,
		Image:      base,
		DomainType: probedType,
	})
	if errors.Is(err, hypervisor.ErrUnavailable) {
		skipOrFail(t, "libvirtd not reachable at %s (start it: virtlogd -d; libvirtd -d): %v", libvirtURI(), err)
	}
	if err != nil {
		t.Fatalf("libvirt.New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	typ, why := d.DomainType()
	if probedType == "" {
		t.Logf("domain type %s (%s)", typ, why)
		probedType = typ
	}
	return d
}

// The first driver of a run probes KVM (up to 20 s when KVM hangs); later
// ones reuse its verdict instead of probing in each fresh state dir.
var (
	typeMu     sync.Mutex
	probedType string
)

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// guest is one VM under test: its keys, seed and spec.
type guest struct {
	name    string
	user    guestssh.Key
	host    guestssh.Key
	seed    cloudinit.Config
	spec    hypervisor.Spec
	addr    string
	logPath string
}

// newGuest prepares a guest named name: fresh user and host keys, and a
// seed that installs them, plus runcmd entries when given.
func newGuest(t *testing.T, name string, vcpus int, runcmd ...[]string) *guest {
	t.Helper()
	user, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	host, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	g := &guest{name: name, user: user, host: host}
	g.seed = cloudinit.Config{
		InstanceID:     name,
		Hostname:       name,
		User:           "azureuser",
		AuthorizedKeys: []string{user.AuthorizedKey()},
		HostKeys:       []cloudinit.HostKey{{Type: "ed25519", Private: string(host.PrivatePEM()), Public: host.AuthorizedKey()}},
		RunCmd:         runcmd,
		// The driver gives the NIC this MAC; networkd in the Debian guest
		// matches it (the NIC is ens2 there, not eth0).
		MACAddress: hypervisor.MACAddress(name),
	}
	iso, err := g.seed.ISO()
	if err != nil {
		t.Fatalf("seed ISO: %v", err)
	}
	port := freePort(t)
	g.spec = hypervisor.Spec{
		Name: name, VCPUs: vcpus, MemoryMiB: 1024, DiskSizeGB: 120,
		Seed: iso, SSHPort: port, Labels: map[string]string{"e2e": t.Name()},
	}
	g.addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	return g
}

// waitSSH waits for the guest's sshd, with the serial log's tail in the
// error when it never answers.
func (g *guest) waitSSH(ctx context.Context, t *testing.T) *guestssh.Client {
	t.Helper()
	c, err := guestssh.WaitForSSH(ctx, g.addr, "azureuser", g.user.Signer(), g.host.PublicKey(),
		guestssh.WithInterval(500*time.Millisecond),
		guestssh.WithDiagnostics(func() string { return tail(g.logPath, 40) }))
	if err != nil {
		t.Fatalf("wait for SSH on %s: %v", g.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs cmd in the guest and fails t unless it exits 0.
func run(ctx context.Context, t *testing.T, c *guestssh.Client, cmd string) string {
	t.Helper()
	res, err := c.Run(ctx, cmd, nil)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	if res.ExitStatus != 0 {
		t.Fatalf("run %q: exit status %d, want 0; stderr: %s", cmd, res.ExitStatus, res.Stderr)
	}
	return strings.TrimSpace(string(res.Stdout))
}

// tail returns the last n lines of the file at path, for diagnostics.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no serial log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "serial log tail:\n" + strings.Join(lines, "\n")
}

// virshHas reports whether libvirt knows a domain called name, asking
// virsh so the answer does not depend on the driver under test.
func virshHas(t *testing.T, name string) bool {
	t.Helper()
	out, err := exec.Command("virsh", "-c", libvirtURI(), "list", "--all", "--name").Output()
	if err != nil {
		t.Fatalf("virsh list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == name {
			return true
		}
	}
	return false
}

// uniqueName gives each run its own domain names, so a leftover of an
// interrupted run cannot make the next one fail with ErrExists.
func uniqueName(prefix string) string {
	return fmt.Sprintf("e2e-%s-%d", prefix, time.Now().UnixNano()%1_000_000)
}

// domainOf is the libvirt domain of the eastus instance called name of the
// server whose home is home.
func domainOf(home, name string) string { return sim.HomeDomainPrefix(home) + "eastus-" + name }

// removeOnCleanup makes sure the domain is gone when the test ends,
// whatever the server under test did or failed to do.
func removeOnCleanup(t *testing.T, domain string) {
	t.Cleanup(func() {
		exec.Command("virsh", "-c", libvirtURI(), "destroy", domain).Run()
		exec.Command("virsh", "-c", libvirtURI(), "undefine", "--remove-all-storage", domain).Run()
	})
}
