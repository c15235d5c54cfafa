//go:build linux && cgo

package libvirt

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
)

// fakeQemu writes a shell script standing in for qemu-system-x86_64 and
// counts its runs in a file beside it.
func fakeQemu(t *testing.T, body string) (path, runs string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "qemu")
	runs = filepath.Join(dir, "runs")
	script := "#!/bin/sh\necho run >> " + runs + "\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, runs
}

func countRuns(t *testing.T, runs string) int {
	t.Helper()
	b, err := os.ReadFile(runs)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "run")
}

func TestProbeDomainType(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skip("no /dev/kvm on this host: the probe answers qemu without booting anything")
	}
	ctx := context.Background()
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("panic means kvm, cached", func(t *testing.T) {
		state := t.TempDir()
		qemu, runs := fakeQemu(t, `echo "[    0.5] VFS: Unable to mount root fs on unknown-block(0,0)"; echo "Kernel panic - not syncing"; sleep 30`)
		for i := range 2 {
			typ, reason, err := probeDomainType(ctx, state, qemu, kernel, 5*time.Second)
			if err != nil || typ != "kvm" {
				t.Fatalf("probe #%d = %q (%s), %v; want kvm", i+1, typ, reason, err)
			}
		}
		if n := countRuns(t, runs); n != 1 {
			t.Errorf("qemu ran %d times for two probes of one kernel, want 1 (cached)", n)
		}
		// A new kernel (new mtime) is probed again.
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(kernel, later, later); err != nil {
			t.Fatal(err)
		}
		if _, _, err := probeDomainType(ctx, state, qemu, kernel, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if n := countRuns(t, runs); n != 2 {
			t.Errorf("qemu ran %d times after the kernel changed, want 2", n)
		}
	})

	t.Run("silence means qemu", func(t *testing.T) {
		qemu, _ := fakeQemu(t, `echo "SeaBIOS"; sleep 30`)
		start := time.Now()
		typ, reason, err := probeDomainType(ctx, t.TempDir(), qemu, kernel, 500*time.Millisecond)
		if err != nil || typ != "qemu" {
			t.Fatalf("probe = %q (%s), %v; want qemu", typ, reason, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("probe of a hanging guest took %s, want about its 500ms timeout", d)
		}
	})

	t.Run("qemu failing means qemu", func(t *testing.T) {
		qemu, _ := fakeQemu(t, `echo "Could not access KVM kernel module" >&2; exit 1`)
		typ, reason, err := probeDomainType(ctx, t.TempDir(), qemu, kernel, 5*time.Second)
		if err != nil || typ != "qemu" || !strings.Contains(reason, "KVM kernel module") {
			t.Fatalf("probe = %q (%s), %v; want qemu with qemu's complaint as reason", typ, reason, err)
		}
	})
}

// A BIOS-booted image has no kernel: the probe boots Config.ProbeKernel
// instead of trusting libvirt, which reports KVM where it hangs guests.
func TestDecideTypeProbesWithProbeKernel(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skip("no /dev/kvm on this host: the probe answers qemu without booting anything")
	}
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(kernel, []byte("kernel"), 0o644)
	qemu, runs := fakeQemu(t, `echo "failed to set MSR 0x10a" >&2; exit 1`)
	d := &Driver{cfg: Config{URI: "qemu:///system", StateDir: t.TempDir(), QemuSystem: qemu, DomainType: "auto",
		Image: hypervisor.BaseImage{Disk: "/cloud.qcow2"}, ProbeKernel: kernel}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := d.decideType(context.Background()); err != nil {
		t.Fatal(err)
	}
	if typ, why := d.DomainType(); typ != "qemu" || countRuns(t, runs) != 1 {
		t.Errorf("domain type %q (%s) after %d probe runs; want qemu from one probe of the probe kernel", typ, why, countRuns(t, runs))
	}
}
