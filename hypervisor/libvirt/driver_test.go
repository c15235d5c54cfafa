//go:build linux && cgo

package libvirt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/hypervisortest"
	golibvirt "libvirt.org/go/libvirt"
)

// testBaseImage writes a small real qcow2 for overlays to sit on.
func testBaseImage(t *testing.T) hypervisor.BaseImage {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (Debian package qemu-utils): cannot create overlays")
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", disk, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	return hypervisor.BaseImage{Disk: disk, Kernel: kernel, Cmdline: "console=ttyS0"}
}

// newTestDriver connects to libvirt's in-process test driver, which needs
// no daemon and no QEMU.
func newTestDriver(t *testing.T, img hypervisor.BaseImage) (*Driver, string) {
	t.Helper()
	state := t.TempDir()
	d, err := New(context.Background(), Config{URI: "test:///default", StateDir: state, Image: img})
	if err != nil {
		t.Fatalf("New(test:///default) = %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d, state
}

func TestConformanceTestDriver(t *testing.T) {
	img := testBaseImage(t)
	hypervisortest.Run(t, func(t *testing.T) hypervisor.Driver {
		d, _ := newTestDriver(t, img)
		return d
	}, hypervisortest.Options{
		Spec: func(name string) hypervisor.Spec {
			return hypervisor.Spec{VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 2, Seed: []byte("seed")}
		},
		// test:///default always carries this domain, not ours.
		Foreign: []string{"test"},
	})
}

func TestDomainTypeTestDriver(t *testing.T) {
	d, _ := newTestDriver(t, testBaseImage(t))
	if typ, _ := d.DomainType(); typ != "test" {
		t.Errorf("DomainType() = %q, want %q", typ, "test")
	}
}

func TestDefineFiles(t *testing.T) {
	img := testBaseImage(t)
	d, state := newTestDriver(t, img)
	ctx := context.Background()
	spec := hypervisor.Spec{Name: "files-a", VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 120, SSHPort: 40022, Seed: []byte("seed bytes")}
	if err := d.Define(ctx, spec); err != nil {
		t.Fatalf("Define = %v", err)
	}
	dir := filepath.Join(state, spec.Name)
	seed, err := os.ReadFile(filepath.Join(dir, SeedISO))
	// Padded with zeros to one size for all seeds (see seedCapacity).
	if err != nil || len(seed) != seedCapacity || !bytes.HasPrefix(seed, []byte("seed bytes")) || bytes.Count(seed, []byte{0}) != seedCapacity-len("seed bytes") {
		t.Errorf("seed: %d bytes, %v; want %q and zeros up to %d", len(seed), err, "seed bytes", seedCapacity)
	}
	out, err := exec.Command("qemu-img", "info", "--output=json", filepath.Join(dir, OverlayDisk)).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	for _, want := range []string{`"virtual-size": 128849018880`, `"backing-filename": "` + img.Disk + `"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("overlay info lacks %s:\n%s", want, out)
		}
	}
	if got := d.SerialLog(spec.Name); got != filepath.Join(dir, SerialLog) {
		t.Errorf("SerialLog = %q, want %q", got, filepath.Join(dir, SerialLog))
	}
	if err := d.Undefine(ctx, spec.Name); err != nil {
		t.Fatalf("Undefine = %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Undefine, stat %s = %v, want not exist", dir, err)
	}
}

// A domain undefined behind the driver's back (`virsh undefine` keeps the
// files libvirt does not manage) leaves its files to the driver's
// Undefine, which reports the domain gone and removes them.
func TestUndefineBehindTheBackRemovesFiles(t *testing.T) {
	d, state := newTestDriver(t, testBaseImage(t))
	ctx := context.Background()
	spec := hypervisor.Spec{Name: "files-gone", VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 1, SSHPort: 40024, Seed: []byte("seed")}
	if err := d.Define(ctx, spec); err != nil {
		t.Fatalf("Define = %v", err)
	}
	conn, err := golibvirt.NewConnect("test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dom, err := conn.LookupDomainByName(spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := dom.Undefine(); err != nil {
		t.Fatal(err)
	}
	dom.Free()
	dir := filepath.Join(state, spec.Name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the files went with the domain (%v): nothing left to test", err)
	}
	if err := d.Undefine(ctx, spec.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Undefine = %v, want %v", err, hypervisor.ErrNotFound)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Undefine, stat %s = %v, want not exist", dir, err)
	}
}

func TestDefineFaults(t *testing.T) {
	ctx := context.Background()
	img := testBaseImage(t)

	t.Run("missing base image", func(t *testing.T) {
		missing := img
		missing.Disk = filepath.Join(t.TempDir(), "gone.qcow2")
		d, state := newTestDriver(t, missing)
		spec := hypervisor.Spec{Name: "fault-img", VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 1, SSHPort: 40023}
		if err := d.Define(ctx, spec); !errors.Is(err, hypervisor.ErrImageMissing) {
			t.Fatalf("Define = %v, want %v", err, hypervisor.ErrImageMissing)
		}
		if _, err := d.Lookup(ctx, spec.Name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("Lookup after failed Define = %v, want %v", err, hypervisor.ErrNotFound)
		}
		if entries, _ := os.ReadDir(state); len(entries) != 0 {
			t.Errorf("state dir after failed Define holds %v, want nothing", entries)
		}
	})

	t.Run("rejected by libvirt undoes files", func(t *testing.T) {
		d, state := newTestDriver(t, img)
		// A share makes the XML carry a filesystem; an unknown domain type
		// makes libvirt refuse the definition after the files exist.
		d.domType = "no-such-type"
		spec := hypervisor.Spec{Name: "fault-xml", VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 1, SSHPort: 40024}
		err := d.Define(ctx, spec)
		if err == nil {
			t.Fatalf("Define with a bad domain type = nil, want an error")
		}
		if _, err := os.Stat(filepath.Join(state, spec.Name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after failed Define, domain dir: %v, want not exist", err)
		}
	})

	t.Run("invalid spec", func(t *testing.T) {
		d, _ := newTestDriver(t, img)
		for _, name := range []string{"", "..", "a/b"} {
			err := d.Define(ctx, hypervisor.Spec{Name: name, VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 1, SSHPort: 40025})
			if !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("Define(name %q) = %v, want %v", name, err, ErrInvalidSpec)
			}
		}
	})
}

func TestCheckSpecForwards(t *testing.T) {
	base := hypervisor.Spec{Name: "fwd", VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 1, SSHPort: 2222}
	cases := []struct {
		name     string
		forwards []hypervisor.Forward
		problem  string // empty when the spec is valid
	}{
		{"none", nil, ""},
		{"two to one guest port", []hypervisor.Forward{{HostPort: 2888, GuestPort: 8888}, {HostPort: 2889, GuestPort: 8888}}, ""},
		{"host port 0", []hypervisor.Forward{{HostPort: 0, GuestPort: 8888}}, "forward 127.0.0.1:0 to guest port 8888: ports must be 1 to 65535"},
		{"host port too big", []hypervisor.Forward{{HostPort: 65536, GuestPort: 8888}}, "ports must be 1 to 65535"},
		{"guest port 0", []hypervisor.Forward{{HostPort: 2888, GuestPort: 0}}, "forward 127.0.0.1:2888 to guest port 0: ports must be 1 to 65535"},
		{"guest port negative", []hypervisor.Forward{{HostPort: 2888, GuestPort: -1}}, "ports must be 1 to 65535"},
		{"SSH port", []hypervisor.Forward{{HostPort: 2222, GuestPort: 8888}}, "forward 127.0.0.1:2222 to guest port 8888: host port is the SSHPort"},
		{"host port twice", []hypervisor.Forward{{HostPort: 2888, GuestPort: 8888}, {HostPort: 2888, GuestPort: 8080}}, "forward 127.0.0.1:2888 to guest port 8080: host port is forwarded twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := base
			spec.Forwards = c.forwards
			err := checkSpec(spec)
			switch {
			case c.problem == "" && err != nil:
				t.Errorf("checkSpec = %v, want nil", err)
			case c.problem != "" && (!errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), c.problem)):
				t.Errorf("checkSpec = %v, want %v saying %q", err, ErrInvalidSpec, c.problem)
			}
		})
	}
}

func TestDefineInvalidForward(t *testing.T) {
	ctx := context.Background()
	d, state := newTestDriver(t, testBaseImage(t))
	spec := hypervisor.Spec{Name: "fwd-bad", VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 1, SSHPort: 40026,
		Forwards: []hypervisor.Forward{{HostPort: 40026, GuestPort: 8888}}}
	if err := d.Define(ctx, spec); !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), `"fwd-bad"`) {
		t.Fatalf("Define with a forward on the SSH port = %v, want %v naming the domain", err, ErrInvalidSpec)
	}
	if _, err := d.Lookup(ctx, spec.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup after refused Define = %v, want %v", err, hypervisor.ErrNotFound)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("state dir after refused Define holds %v, want nothing", entries)
	}
}

func TestStartPortInUse(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDriver(t, testBaseImage(t))
	l, err := listenLoopback()
	if err != nil {
		t.Skipf("cannot listen on loopback: %v", err)
	}
	defer l.Close()
	spec := hypervisor.Spec{Name: "port-taken", VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 1, SSHPort: l.port}
	if err := d.Define(ctx, spec); err != nil {
		t.Fatalf("Define = %v", err)
	}
	t.Cleanup(func() { _ = d.Undefine(ctx, spec.Name) })
	if err := d.Start(ctx, spec.Name); !errors.Is(err, hypervisor.ErrPortInUse) {
		t.Errorf("Start with port %d taken = %v, want %v", l.port, err, hypervisor.ErrPortInUse)
	}
	dom, err := d.Lookup(ctx, spec.Name)
	if err != nil || dom.State != hypervisor.StateShutoff {
		t.Errorf("after refused Start, Lookup = %+v, %v; want state %q", dom, err, hypervisor.StateShutoff)
	}
}

func TestNewUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A session URI pointing at a socket that does not exist cannot connect.
	uri := "qemu+unix:///system?socket=" + filepath.Join(t.TempDir(), "no-libvirtd.sock")
	_, err := New(ctx, Config{URI: uri, StateDir: t.TempDir(), DomainType: "qemu"})
	if !errors.Is(err, hypervisor.ErrUnavailable) {
		t.Errorf("New(%q) = %v, want %v", uri, err, hypervisor.ErrUnavailable)
	}
}

func TestStartForwardPortInUse(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDriver(t, testBaseImage(t))
	// Three distinct ports: SSH and the first forward free, the second
	// forward taken.
	var ls [3]*loopbackListener
	for i := range ls {
		l, err := listenLoopback()
		if err != nil {
			t.Skipf("cannot listen on loopback: %v", err)
		}
		defer l.Close()
		ls[i] = l
	}
	ls[0].Close()
	ls[1].Close()
	taken := ls[2].port
	spec := hypervisor.Spec{Name: "fwd-taken", VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 1, SSHPort: ls[0].port,
		Forwards: []hypervisor.Forward{{HostPort: ls[1].port, GuestPort: 8080}, {HostPort: taken, GuestPort: 8888}}}
	if err := d.Define(ctx, spec); err != nil {
		t.Fatalf("Define = %v", err)
	}
	t.Cleanup(func() { _ = d.Undefine(ctx, spec.Name) })
	err := d.Start(ctx, spec.Name)
	if !errors.Is(err, hypervisor.ErrPortInUse) || !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d (for guest port 8888)", taken)) {
		t.Errorf("Start with forward port %d taken = %v, want %v naming it", taken, err, hypervisor.ErrPortInUse)
	}
	dom, err := d.Lookup(ctx, spec.Name)
	if err != nil || dom.State != hypervisor.StateShutoff {
		t.Errorf("after refused Start, Lookup = %+v, %v; want state %q", dom, err, hypervisor.StateShutoff)
	}
	if !slices.Equal(dom.Forwards, spec.Forwards) {
		t.Errorf("Lookup forwards = %v, want %v", dom.Forwards, spec.Forwards)
	}
}
