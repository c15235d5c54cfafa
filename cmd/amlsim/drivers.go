package main

import (
	"strings"

	"github.com/amlsim/amlsim/sim/server"
)

// Drivers amlsim serve can run on: sim/server opens them, and links
// libvirt only in a build with cgo on Linux.
const (
	fakeDriver    = server.FakeDriver
	libvirtDriver = server.LibvirtDriver
)

// buildWithLibvirt tells how to get a binary with the libvirt driver.
const buildWithLibvirt = "build amlsim with cgo: apt-get install -y gcc pkg-config libvirt-dev, then CGO_ENABLED=1 go build ./cmd/amlsim (or make build)"

// driverNames returns the drivers `serve --driver` takes in this build:
// the registered ones, sorted (libvirt, the default, in a cgo build), then
// the fake.
func driverNames() []string { return server.DriverNames() }

// noDriverError says that this build has no driver called name, and
// which drivers it has.
func noDriverError(name string) error {
	have := strings.Join(driverNames(), ", ")
	if name == libvirtDriver {
		return usageErrorf("driver %q is not in this build: the libvirt driver needs cgo and Linux, and this amlsim was built without them (it has: %s); to get it, %s",
			name, have, buildWithLibvirt)
	}
	return usageErrorf("unknown driver %q (this build has: %s)", name, have)
}
