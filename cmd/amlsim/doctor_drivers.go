package main

import (
	"context"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim"
)

// driverChecks runs the checks of every driver this build has, with the
// [driver] section of cfg: for libvirt "libvirtd", "qemu-system-x86_64",
// "qemu-img" and "kvm". A build without the libvirt driver says so in
// one failed "libvirtd" check, since libvirt is what serve runs on by
// default.
func driverChecks(ctx context.Context, cfg sim.Config) []check {
	var checks []check
	if _, ok := hypervisor.Lookup(libvirtDriver); !ok {
		checks = append(checks, check{Name: "libvirtd", Status: checkFail,
			Detail: "this build of amlsim has no libvirt driver: it was built with CGO_ENABLED=0",
			Fix:    buildWithLibvirt})
	}
	opts := hypervisor.Options{URI: cfg.Driver.URI, StateDir: cfg.Driver.StateDir, DomainType: cfg.Driver.DomainType}
	for _, name := range hypervisor.Names() {
		reg, _ := hypervisor.Lookup(name)
		if reg.Check == nil {
			continue
		}
		for _, ch := range reg.Check(ctx, opts) {
			// The same fields: doctor's JSON keeps check's tags.
			checks = append(checks, check(ch))
		}
	}
	return checks
}
