//go:build linux && cgo

package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/hypervisor/libvirt"
)

// TestVMLifecycle boots the default image through the libvirt driver and
// checks, over SSH, what a compute instance's user relies on: the seed's
// user, key and command; sudo; hostname; a 120 GB root disk; data that
// survives a shutdown; SSH after a restart and a reboot; and nothing left
// after Undefine.
func TestVMLifecycle(t *testing.T) {
	requireVMs(t)
	img := requireImage(t)
	d, state := newVMDriver(t, img)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	name := uniqueName("life")
	g := newGuest(t, name, 2, []string{"sh", "-c", "echo seeded-by-runcmd > /var/tmp/amlsim-runcmd"})
	g.logPath = d.SerialLog(name)
	t.Cleanup(func() {
		if err := d.Undefine(context.Background(), name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("cleanup: Undefine: %v", err)
		}
	})

	begin := time.Now()
	if err := d.Define(ctx, g.spec); err != nil {
		t.Fatalf("Define: %v", err)
	}
	if err := d.Start(ctx, name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c := g.waitSSH(ctx, t)
	t.Logf("Define to SSH ready: %s", time.Since(begin).Round(100*time.Millisecond))

	// runcmd runs at the very end of the first boot, after sshd is up.
	out := run(ctx, t, c, "for i in $(seq 300); do test -f /var/tmp/amlsim-runcmd && break; sleep 0.5; done; cat /var/tmp/amlsim-runcmd")
	if out != "seeded-by-runcmd" {
		t.Errorf("runcmd marker = %q, want %q", out, "seeded-by-runcmd")
	}
	t.Logf("Define to runcmd done: %s", time.Since(begin).Round(100*time.Millisecond))
	if got := run(ctx, t, c, "whoami"); got != "azureuser" {
		t.Errorf("whoami = %q, want azureuser", got)
	}
	run(ctx, t, c, "sudo -n true")
	if got := run(ctx, t, c, "hostname"); got != name {
		t.Errorf("hostname = %q, want %q", got, name)
	}
	// 120 GB virtual disk: ext4 grown by cloud-init shows ~118G.
	size := run(ctx, t, c, "df -BG --output=size / | tail -1")
	gb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(size), "G"))
	if err != nil || gb < 110 || gb > 120 {
		t.Errorf("root filesystem size = %q, want about 118G (120 GB disk grown at first boot)", size)
	}
	run(ctx, t, c, "echo kept-across-restart > ~/persist && sync")
	c.Close()

	// Graceful shutdown, then a fresh QEMU process: the forward must be
	// re-applied and the disk kept.
	if err := d.Shutdown(ctx, name, 2*time.Minute); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if dom, err := d.Lookup(ctx, name); err != nil || dom.State != hypervisor.StateShutoff {
		t.Fatalf("after Shutdown Lookup = %+v, %v; want shutoff", dom, err)
	}
	begin = time.Now()
	if err := d.Start(ctx, name); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	c = g.waitSSH(ctx, t)
	t.Logf("restart to SSH ready: %s", time.Since(begin).Round(100*time.Millisecond))
	if got := run(ctx, t, c, "cat ~/persist"); got != "kept-across-restart" {
		t.Errorf("file after restart = %q, want %q", got, "kept-across-restart")
	}

	// Reboot keeps the QEMU process; the guest is a new boot.
	bootID := run(ctx, t, c, "cat /proc/sys/kernel/random/boot_id")
	c.Close()
	begin = time.Now()
	if err := d.Reboot(ctx, name); err != nil {
		t.Fatalf("Reboot: %v", err)
	}
	pressed := time.Now()
	for {
		// Each look is bounded on its own: a connection made just before
		// the guest goes down may never be answered again.
		if newBootID(ctx, g, bootID) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("guest did not come back with a new boot id after Reboot; %s", tail(g.logPath, 30))
		}
		// Seen here: a guest sometimes ignores the ACPI button right after
		// a boot; press it again, as Shutdown does.
		if time.Since(pressed) > 45*time.Second {
			t.Logf("no reboot %s after the ACPI request; pressing again", time.Since(pressed).Round(time.Second))
			if err := d.Reboot(ctx, name); err != nil {
				t.Fatalf("Reboot again: %v", err)
			}
			pressed = time.Now()
		}
		time.Sleep(time.Second)
	}
	t.Logf("reboot to SSH ready: %s", time.Since(begin).Round(100*time.Millisecond))
	if dom, err := d.Lookup(ctx, name); err != nil || dom.State != hypervisor.StateRunning {
		t.Errorf("after Reboot Lookup = %+v, %v; want running", dom, err)
	}

	if err := d.Undefine(ctx, name); err != nil {
		t.Fatalf("Undefine: %v", err)
	}
	if virshHas(t, name) {
		t.Errorf("virsh still lists %q after Undefine", name)
	}
	if _, err := os.Stat(filepath.Join(state, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after Undefine = %v, want not exist", filepath.Join(state, name), err)
	}
	if conn, err := net.DialTimeout("tcp", g.addr, 2*time.Second); err == nil {
		conn.Close()
		t.Errorf("SSH port %s still open after Undefine", g.addr)
	}
}

// newBootID reports whether the guest answers SSH within 30 s with a boot
// id other than old.
func newBootID(ctx context.Context, g *guest, old string) bool {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := guestssh.WaitForSSH(ctx, g.addr, "azureuser", g.user.Signer(), g.host.PublicKey(),
		guestssh.WithInterval(500*time.Millisecond))
	if err != nil {
		return false
	}
	defer c.Close()
	res, err := c.Run(ctx, "cat /proc/sys/kernel/random/boot_id", nil)
	return err == nil && res.ExitStatus == 0 && strings.TrimSpace(string(res.Stdout)) != old
}

// TestVMFaults checks the driver's refusals against a real libvirtd; none
// of them boots a guest.
func TestVMFaults(t *testing.T) {
	requireVMs(t)
	img := requireImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("port in use", func(t *testing.T) {
		d, state := newVMDriver(t, img)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		g := newGuest(t, uniqueName("port"), 1)
		g.spec.SSHPort = l.Addr().(*net.TCPAddr).Port
		if err := d.Define(ctx, g.spec); err != nil {
			t.Fatalf("Define: %v", err)
		}
		if err := d.Start(ctx, g.name); !errors.Is(err, hypervisor.ErrPortInUse) {
			t.Errorf("Start with port %d taken = %v, want %v", g.spec.SSHPort, err, hypervisor.ErrPortInUse)
		}
		if dom, err := d.Lookup(ctx, g.name); err != nil || dom.State != hypervisor.StateShutoff {
			t.Errorf("after refused Start Lookup = %+v, %v; want defined and shutoff", dom, err)
		}
		if err := d.Undefine(ctx, g.name); err != nil {
			t.Fatalf("Undefine: %v", err)
		}
		if virshHas(t, g.name) {
			t.Errorf("virsh still lists %q after Undefine", g.name)
		}
		if entries, _ := os.ReadDir(state); len(entries) > 1 || (len(entries) == 1 && entries[0].Name() != "kvm-probe") {
			t.Errorf("state dir after Undefine holds %v, want nothing but the probe cache", entries)
		}
	})

	t.Run("name clash", func(t *testing.T) {
		d, _ := newVMDriver(t, img)
		g := newGuest(t, uniqueName("clash"), 1)
		if err := d.Define(ctx, g.spec); err != nil {
			t.Fatalf("Define: %v", err)
		}
		t.Cleanup(func() { _ = d.Undefine(context.Background(), g.name) })
		again := g.spec
		again.SSHPort = freePort(t)
		if err := d.Define(ctx, again); !errors.Is(err, hypervisor.ErrExists) {
			t.Errorf("second Define(%q) = %v, want %v", g.name, err, hypervisor.ErrExists)
		}
		if dom, err := d.Lookup(ctx, g.name); err != nil || dom.SSH.Port != g.spec.SSHPort {
			t.Errorf("after clash Lookup = %+v, %v; want the first definition (port %d)", dom, err, g.spec.SSHPort)
		}
	})

	t.Run("foreign domain", func(t *testing.T) {
		d, _ := newVMDriver(t, img)
		name := uniqueName("foreign")
		xml := filepath.Join(t.TempDir(), "foreign.xml")
		doc := "<domain type='qemu'><name>" + name + "</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>"
		if err := os.WriteFile(xml, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("virsh", "-c", libvirtURI(), "define", xml).CombinedOutput(); err != nil {
			t.Fatalf("virsh define: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("virsh", "-c", libvirtURI(), "undefine", name).Run() })
		g := newGuest(t, name, 1)
		if err := d.Define(ctx, g.spec); !errors.Is(err, hypervisor.ErrExists) {
			t.Errorf("Define over a foreign domain = %v, want %v", err, hypervisor.ErrExists)
		}
		if err := d.Undefine(ctx, name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("Undefine of a foreign domain = %v, want %v", err, hypervisor.ErrNotFound)
		}
		if !virshHas(t, name) {
			t.Errorf("the foreign domain %q is gone", name)
		}
	})

	t.Run("unreachable libvirt", func(t *testing.T) {
		uri := "qemu+unix:///system?socket=" + filepath.Join(t.TempDir(), "nobody-listens.sock")
		_, err := libvirt.New(ctx, libvirt.Config{URI: uri, StateDir: t.TempDir(), DomainType: "qemu"})
		if !errors.Is(err, hypervisor.ErrUnavailable) {
			t.Errorf("New(%q) = %v, want %v", uri, err, hypervisor.ErrUnavailable)
		}
	})

	t.Run("missing base image", func(t *testing.T) {
		gone := img
		gone.Disk = filepath.Join(t.TempDir(), "no-such-disk.qcow2")
		d, state := newVMDriver(t, gone)
		g := newGuest(t, uniqueName("noimg"), 1)
		if err := d.Define(ctx, g.spec); !errors.Is(err, hypervisor.ErrImageMissing) {
			t.Fatalf("Define with base disk %s missing = %v, want %v", gone.Disk, err, hypervisor.ErrImageMissing)
		}
		if virshHas(t, g.name) {
			t.Errorf("virsh lists %q after a failed Define", g.name)
		}
		if _, err := os.Stat(filepath.Join(state, g.name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s after failed Define = %v, want not exist", filepath.Join(state, g.name), err)
		}
	})
}
