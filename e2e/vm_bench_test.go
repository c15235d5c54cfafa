//go:build linux && cgo

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/fixtures"
	"github.com/amlsim/amlsim/hypervisor"
)

// baselineXML is the domain a user would write by hand for the same guest:
// the same disks, console and devices, with the SSH forward declared on
// QEMU's command line (libvirt 9.0 cannot declare it on a user-mode NIC).
const baselineXML = `<domain type='%[1]s' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>%[2]s</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>%[3]d</vcpu>
  <os>
    <type>hvm</type>
    <kernel>%[4]s</kernel>
    <initrd>%[5]s</initrd>
    <cmdline>%[6]s</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='%[7]s/disk.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='%[7]s/seed.iso'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <serial type='file'><source path='%[7]s/serial.log'/><target port='0'/></serial>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=n0,hostfwd=tcp:127.0.0.1:%[8]d-:22'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=n0,mac=%[9]s,bus=pci.0,addr=0x10'/>
  </qemu:commandline>
</domain>
`

// TestBootTimeVersusVirsh measures Define-to-SSH through the driver against
// a hand-written `virsh create` of the same guest. It boots four VMs per
// round, so it runs only when AMLSIM_E2E_BENCH is set (to the number of
// rounds, 1 if not a number).
func TestBootTimeVersusVirsh(t *testing.T) {
	requireVMs(t)
	rounds, err := strconv.Atoi(os.Getenv("AMLSIM_E2E_BENCH"))
	if os.Getenv("AMLSIM_E2E_BENCH") == "" {
		t.Skip("set AMLSIM_E2E_BENCH=ROUNDS to measure boot times (four VM boots per round)")
	}
	if err != nil || rounds < 1 {
		rounds = 1
	}
	img := requireImage(t)
	d, _ := newVMDriver(t, img)
	typ, _ := d.DomainType()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*20*time.Minute)
	defer cancel()

	ours := map[int][]time.Duration{}
	base := map[int][]time.Duration{}
	for r := range rounds {
		for _, vcpus := range []int{1, 2} {
			driver := func() {
				name := uniqueName(fmt.Sprintf("bench%d", vcpus))
				g := newGuest(t, name, vcpus)
				g.logPath = d.SerialLog(name)
				begin := time.Now()
				if err := d.Define(ctx, g.spec); err != nil {
					t.Fatalf("Define: %v", err)
				}
				if err := d.Start(ctx, name); err != nil {
					t.Fatalf("Start: %v", err)
				}
				launched := time.Since(begin)
				g.waitSSH(ctx, t).Close()
				took := time.Since(begin)
				ours[vcpus] = append(ours[vcpus], took)
				if err := d.Undefine(ctx, name); err != nil {
					t.Fatalf("Undefine: %v", err)
				}
				t.Logf("round %d, %d vCPU: driver Define→SSH %s (Define+Start returned after %s)", r+1, vcpus, took.Round(100*time.Millisecond), launched.Round(time.Millisecond))
			}
			virsh := func() {
				took := virshBaseline(ctx, t, img, typ, vcpus)
				base[vcpus] = append(base[vcpus], took)
				t.Logf("round %d, %d vCPU: virsh create→SSH %s", r+1, vcpus, took.Round(100*time.Millisecond))
			}
			// Alternate who goes first, so a drift in host load does not
			// always favour the same side.
			if r%2 == 0 {
				driver()
				virsh()
			} else {
				virsh()
				driver()
			}
		}
	}
	for _, vcpus := range []int{1, 2} {
		o, b := mean(ours[vcpus]), mean(base[vcpus])
		t.Logf("%d vCPU / 1 GiB, %s, %d round(s): driver %s, virsh %s, overhead %+.1f%%",
			vcpus, typ, rounds, o.Round(100*time.Millisecond), b.Round(100*time.Millisecond), 100*(o.Seconds()-b.Seconds())/b.Seconds())
	}
}

// virshBaseline boots the same guest from baselineXML with virsh and
// returns the time from creating its overlay to SSH answering.
func virshBaseline(ctx context.Context, t *testing.T, img fixtures.Image, typ string, vcpus int) time.Duration {
	t.Helper()
	name := uniqueName(fmt.Sprintf("virsh%d", vcpus))
	g := newGuest(t, name, vcpus)
	dir := vmStateDir(t)
	g.logPath = filepath.Join(dir, "serial.log")
	xmlPath := filepath.Join(dir, "domain.xml")
	doc := fmt.Sprintf(baselineXML, typ, name, vcpus, img.Kernel, img.Initrd, img.Cmdline, dir, g.spec.SSHPort, hypervisor.MACAddress(name))
	if err := os.WriteFile(xmlPath, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("virsh", "-c", libvirtURI(), "destroy", name).Run() })

	begin := time.Now()
	sh := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	sh("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img.Disk, filepath.Join(dir, "disk.qcow2"), "120G")
	if err := os.WriteFile(filepath.Join(dir, "seed.iso"), g.spec.Seed, 0o644); err != nil {
		t.Fatal(err)
	}
	sh("virsh", "-c", libvirtURI(), "create", xmlPath)
	launched := time.Since(begin)
	g.waitSSH(ctx, t).Close()
	took := time.Since(begin)
	t.Logf("qemu-img create + seed + virsh create returned after %s", launched.Round(time.Millisecond))
	sh("virsh", "-c", libvirtURI(), "destroy", name)
	return took
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}
