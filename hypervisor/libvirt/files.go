//go:build linux && cgo

package libvirt

import "path/filepath"

// Names of the files a domain owns inside StateDir/<name>/. They are fixed so
// that an operator (and amlsim's own tools) can find a guest's console log or
// disk without asking libvirt.
const (
	// OverlayDisk is the copy-on-write root disk layered on the base image.
	OverlayDisk = "disk.qcow2"
	// SeedISO is the cloud-init NoCloud seed, attached read-only.
	SeedISO = "cidata.iso"
	// SerialLog receives everything the guest writes to its first serial port.
	SerialLog = "serial.log"
	// kvmProbeFile caches the verdict of the KVM probe boot in StateDir.
	kvmProbeFile = "kvm-probe"
)

// domainDir is the directory that holds every file a domain owns.
func (d *Driver) domainDir(name string) string {
	return filepath.Join(d.cfg.StateDir, name)
}
