package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim"
)

// wantDriverChecks returns the names of the driver checks doctor prints,
// which depend on the build: with cgo on Linux, the libvirt driver's own;
// otherwise one "libvirtd" warning saying why.
func wantDriverChecks() []string {
	if _, ok := hypervisor.Lookup(libvirtDriver); ok {
		return []string{"libvirtd", "qemu-system-x86_64", "qemu-img", "kvm"}
	}
	return []string{"libvirtd"}
}

func TestDriverChecks(t *testing.T) {
	t.Parallel()
	cfg := sim.DefaultConfig()
	cfg.Driver.URI = "test:///default" // libvirt's in-process driver: no daemon needed
	cfg.Driver.StateDir = t.TempDir()
	checks := driverChecks(context.Background(), cfg)
	var names []string
	for _, ch := range checks {
		names = append(names, ch.Name)
	}
	if want := wantDriverChecks(); !slices.Equal(names, want) {
		t.Fatalf("driver checks = %q, want %q", names, want)
	}
	if _, ok := hypervisor.Lookup(libvirtDriver); ok {
		if checks[0].Status != checkOK {
			t.Errorf("libvirtd check on test:///default = %+v, want ok", checks[0])
		}
		return
	}
	ch := checks[0]
	if ch.Name != "libvirtd" || ch.Status != checkWarn || !strings.Contains(ch.Detail, "without cgo") || !strings.Contains(ch.Fix, "CGO_ENABLED=1") {
		t.Errorf("libvirtd check without libvirt = %+v, want a warning saying why, and how to build with cgo in the fix", ch)
	}
}

// What serve --driver libvirt says in a build without cgo.
func TestNoDriverErrorNamesTheDriversOfThisBuild(t *testing.T) {
	t.Parallel()
	msg := noDriverError(libvirtDriver).Error()
	for _, want := range []string{`"libvirt"`, "needs cgo and Linux", "it has: " + strings.Join(driverNames(), ", ")} {
		if !strings.Contains(msg, want) {
			t.Errorf("noDriverError(libvirt) = %q, want it to contain %q", msg, want)
		}
	}
}
