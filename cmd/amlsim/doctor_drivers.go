package main

import (
	"context"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim"
)

// driverChecks runs the checks of every driver this build has, with the
// [driver] section of cfg: for libvirt "libvirtd", "qemu-system-x86_64",
// "qemu-img" and "kvm". A build without the libvirt driver (a client
// build) says so in one "libvirtd" warning: serve runs on libvirt by
// default, but such a build is made to be a client.
func driverChecks(ctx context.Context, cfg sim.Config) []check {
	var checks []check
	if _, ok := hypervisor.Lookup(libvirtDriver); !ok {
		checks = append(checks, check{Name: "libvirtd", Status: checkWarn,
			Detail: "this build of amlsim has no libvirt driver (built without cgo, or not for Linux): it serves with --driver fake only",
			Fix:    buildWithLibvirt})
	}
	opts := hypervisor.Options{URI: cfg.Driver.URI, StateDir: cfg.Driver.StateDir, DomainType: cfg.Driver.DomainType}
	for _, name := range hypervisor.Names() {
		reg, _ := hypervisor.Lookup(name)
		if reg.Check == nil {
			continue
		}
		checks = append(checks, reg.Check(ctx, opts)...)
	}
	return checks
}
