//go:build linux && cgo

package libvirt

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/amlsim/amlsim/hypervisor"
)

func TestRegistered(t *testing.T) {
	reg, ok := hypervisor.Lookup(Name)
	if !ok {
		t.Fatalf("hypervisor.Lookup(%q) found nothing; registered: %q", Name, hypervisor.Names())
	}
	d, err := reg.Open(context.Background(), hypervisor.Options{URI: "test:///default", StateDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Open(test:///default) = %v", err)
	}
	defer d.(*Driver).Close()
	if _, ok := d.(hypervisor.SerialLogger); !ok {
		t.Errorf("the registered driver %T has no serial log", d)
	}

	d, err = reg.Open(context.Background(), hypervisor.Options{URI: "test:///default", StateDir: t.TempDir(), DomainType: "xen"})
	if err == nil || d != nil {
		t.Errorf("Open with domain type xen = (%v, %v), want (nil, an error)", d, err)
	}
}

func TestCheckHostNames(t *testing.T) {
	var got []string
	for _, ch := range checkHost(context.Background(), hypervisor.Options{URI: "test:///default", StateDir: t.TempDir()}) {
		got = append(got, ch.Name)
		if ch.Detail == "" || (ch.Status != hypervisor.CheckOK && ch.Fix == "") {
			t.Errorf("check %+v lacks a detail, or a fix for its status", ch)
		}
	}
	// amlsim doctor's users and tests know the checks by these names.
	if want := []string{"libvirtd", "qemu-system-x86_64", "qemu-img", "kvm"}; !slices.Equal(got, want) {
		t.Errorf("check names = %q, want %q", got, want)
	}
}

func TestCheckLibvirt(t *testing.T) {
	ch := checkLibvirt(context.Background(), "test:///default")
	if ch.Status != hypervisor.CheckOK || !strings.HasPrefix(ch.Detail, "reachable at test:///default (libvirt ") {
		t.Errorf("libvirtd check on the test driver = %+v, want ok, reachable", ch)
	}
	uri := "qemu:///system?socket=" + filepath.Join(t.TempDir(), "no-socket")
	ch = checkLibvirt(context.Background(), uri)
	if ch.Status != hypervisor.CheckFail || !strings.HasPrefix(ch.Detail, "cannot connect to "+uri+": ") ||
		strings.Contains(ch.Detail, "virError") || !strings.Contains(ch.Fix, "libvirtd -d") {
		t.Errorf("libvirtd check with no daemon = %+v, want fail, libvirt's message and how to start it", ch)
	}
}

func TestCheckKVM(t *testing.T) {
	verdict := func(t *testing.T, content string) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, kvmProbeFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	cases := []struct {
		name   string
		opts   hypervisor.Options
		status string
		detail string
	}{
		{"configured", hypervisor.Options{DomainType: "qemu", StateDir: verdict(t, `{"type":"kvm","reason":"r"}`)},
			hypervisor.CheckOK, `domain type "qemu" set in the configuration`},
		{"probed kvm", hypervisor.Options{StateDir: verdict(t, `{"type":"kvm","reason":"it booted"}`)},
			hypervisor.CheckOK, "KVM works: it booted"},
		{"probed tcg", hypervisor.Options{DomainType: "auto", StateDir: verdict(t, `{"type":"qemu","reason":"it hung"}`)},
			hypervisor.CheckWarn, "TCG (software emulation, boots take ~45 s): it hung"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := checkKVM(c.opts)
			if ch.Name != "kvm" || ch.Status != c.status || ch.Detail != c.detail {
				t.Errorf("checkKVM = %+v, want kvm %s %q", ch, c.status, c.detail)
			}
			if (ch.Status == hypervisor.CheckOK) != (ch.Fix == "") {
				t.Errorf("checkKVM = %+v: a fix, if and only if not ok", ch)
			}
		})
	}
	// Without a verdict, /dev/kvm decides what doctor expects.
	ch := checkKVM(hypervisor.Options{StateDir: t.TempDir()})
	_, err := os.Stat("/dev/kvm")
	if want := map[bool]string{true: hypervisor.CheckOK, false: hypervisor.CheckWarn}[err == nil]; ch.Status != want {
		t.Errorf("checkKVM with no verdict and /dev/kvm present = %v: %+v, want %s", err == nil, ch, want)
	}
}
