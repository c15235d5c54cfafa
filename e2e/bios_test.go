//go:build linux && cgo

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/fixtures"
	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/libvirt"
)

// TestBIOSBoot boots a disk the way a configured cloud image boots: the
// libvirt driver gets no kernel, so SeaBIOS runs the disk's MBR and its
// bootloader loads the guest's own kernel. The disk is the default image on
// an MBR partition with extlinux (fixtures/image-bios), so what is checked
// is the driver's BIOS path and a partitioned root that cloud-init grows,
// not a different guest.
func TestBIOSBoot(t *testing.T) {
	requireVMs(t)
	base := requireImage(t)
	disk := requireBIOSImage(t, base)
	d := newBIOSDriver(t, base, disk)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	name := uniqueName("bios")
	g := newGuest(t, name, 2)
	g.logPath = d.SerialLog(name)
	t.Cleanup(func() {
		// Force it off first: an Undefine of a guest still booting under
		// TCG must not wait on it.
		_ = d.Destroy(context.Background(), name)
		if err := d.Undefine(context.Background(), name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("cleanup: Undefine: %v", err)
		}
	})

	begin := time.Now()
	if err := d.Define(ctx, g.spec); err != nil {
		t.Fatalf("Define: %v", err)
	}
	started := time.Now()
	if err := d.Start(ctx, name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c := g.waitSSH(ctx, t)
	toSSH := time.Since(started)
	// The guest's uptime counts from the kernel's start: the rest of the
	// time to SSH went to QEMU, SeaBIOS and the bootloader.
	uptime, err := strconv.ParseFloat(strings.Fields(run(ctx, t, c, "cat /proc/uptime"))[0], 64)
	if err != nil {
		t.Fatalf("parse /proc/uptime: %v", err)
	}
	kernel := time.Duration(uptime * float64(time.Second))
	t.Logf("Start to SSH ready: %s (kernel start to SSH %s, before the kernel %s; Define to SSH %s)",
		toSSH.Round(100*time.Millisecond), kernel.Round(100*time.Millisecond),
		(toSSH - kernel).Round(100*time.Millisecond), time.Since(begin).Round(100*time.Millisecond))

	out := run(ctx, t, c, "cat /proc/cmdline; df -h /")
	t.Logf("guest:\n%s", out)
	cmdline := strings.SplitN(out, "\n", 2)[0]
	// Syslinux puts BOOT_IMAGE= first; the marker is in the recipe's
	// extlinux.conf. Neither is in a direct kernel boot's command line.
	for _, want := range []string{"BOOT_IMAGE=", "amlsim.boot=extlinux"} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("/proc/cmdline = %q, want it to contain %q (booted through the bootloader)", cmdline, want)
		}
	}
	if got := run(ctx, t, c, "findmnt -n -o SOURCE /"); got != "/dev/vda1" {
		t.Errorf("root device = %q, want /dev/vda1 (the partition of the BIOS disk)", got)
	}
	// The disk's root partition is ~2 GB; growpart and resizefs must have
	// grown it to the 120 GB virtual disk (ext4 shows ~118G).
	size := run(ctx, t, c, "df -BG --output=size / | tail -1")
	gb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(size), "G"))
	if err != nil || gb < 110 || gb > 120 {
		t.Errorf("root filesystem size = %q, want about 118G (partition grown to the 120 GB disk at first boot)", size)
	}
	if got := run(ctx, t, c, "whoami"); got != "azureuser" {
		t.Errorf("whoami = %q, want azureuser", got)
	}
	c.Close()

	if err := d.Undefine(ctx, name); err != nil {
		t.Fatalf("Undefine: %v", err)
	}
	if virshHas(t, name) {
		t.Errorf("virsh still lists %q after Undefine", name)
	}
}

// requireBIOSImage returns the path of the BIOS-bootable disk made from the
// default image base, building it (about 15 s) when this machine has none
// for the current recipe. Building needs root for loop devices.
func requireBIOSImage(t *testing.T, base fixtures.Image) string {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "fixtures", "image-bios", "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	hashOut, err := exec.Command("bash", script, "--hash", base.Dir).Output()
	if err != nil {
		t.Fatalf("%s --hash %s: %v", script, base.Dir, err)
	}
	hash := strings.TrimSpace(string(hashOut))
	if len(hash) < 16 {
		t.Fatalf("%s --hash = %q, want a sha256", script, hash)
	}
	// Beside the default image cache, so QEMU (libvirt-qemu) can read it.
	dir := filepath.Join(filepath.Dir(fixtures.DefaultImageCache()), "images-bios", hash[:16])
	disk := filepath.Join(dir, "disk.qcow2")
	if recorded, err := os.ReadFile(filepath.Join(dir, "recipe.sha256")); err == nil && strings.TrimSpace(string(recorded)) == hash {
		return disk
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "BIOS test image not built in %s and building it needs root (loop devices)", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script, base.Dir, dir)
	cmd.Stdout, cmd.Stderr = &log, &log
	// An interrupt lets the script unmount and detach its loop device.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	begin := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("build BIOS test image: %v\n%s", err, log.String())
	}
	t.Logf("built BIOS test image in %s:\n%s", time.Since(begin).Round(100*time.Millisecond), log.String())
	return disk
}

// newBIOSDriver connects a libvirt driver whose base image is disk with no
// kernel, so its domains boot through the BIOS. With no kernel the driver
// cannot probe KVM itself and would trust libvirt, which reports KVM on
// hosts where it hangs; so a driver on the default image (the same kernel
// the disk boots) settles the domain type first.
func newBIOSDriver(t *testing.T, base fixtures.Image, disk string) *libvirt.Driver {
	t.Helper()
	newVMDriver(t, base)
	d := openDriver(t, hypervisor.BaseImage{Disk: disk}, vmStateDir(t))
	typeMu.Lock()
	want := probedType
	typeMu.Unlock()
	if got, why := d.DomainType(); got != want {
		t.Fatalf("DomainType() = %q (%s), want the probed %q", got, why, want)
	}
	return d
}
