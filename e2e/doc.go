// Package e2e holds amlsim's end-to-end tests: they boot real VMs under
// libvirt (TCG where KVM is unusable) and reach them over SSH. Every test
// here is skipped under -short and explains why it skips when the host
// lacks libvirt or the guest image.
//
// They need the libvirt driver, so cgo and Linux: without them the
// package has no tests.
package e2e
