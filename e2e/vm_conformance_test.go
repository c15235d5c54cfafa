//go:build linux && cgo

package e2e

import (
	"testing"
	"time"

	"github.com/amlsim/amlsim/cloudinit"
	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/hypervisortest"
)

// TestDriverConformanceQEMU runs the shared driver suite against real QEMU
// domains. The guests start (so Start, forwards, ACPI and Destroy act on a
// real QEMU process) but the suite does not wait for them to boot: with up
// to seven TCG guests at once on a small host that would take too long.
func TestDriverConformanceQEMU(t *testing.T) {
	requireVMs(t)
	img := requireImage(t)
	newVMDriver(t, img) // skips when libvirtd is unreachable; settles the domain type
	hypervisortest.Run(t, func(t *testing.T) hypervisor.Driver {
		d, _ := newVMDriver(t, img)
		return d
	}, hypervisortest.Options{
		Spec: func(name string) hypervisor.Spec {
			seed, err := cloudinit.Config{
				InstanceID: name, Hostname: "conformance", User: "azureuser",
				AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcGXmXoJQeAgXH2C5L5zrbOPQ7yAN8y6pXh1h0b2Y7f conformance"},
				MACAddress:     hypervisor.MACAddress(name),
			}.ISO()
			if err != nil {
				t.Fatalf("seed: %v", err)
			}
			return hypervisor.Spec{VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 4, Seed: seed}
		},
		ShutdownGrace: 3 * time.Second,
	})
}
