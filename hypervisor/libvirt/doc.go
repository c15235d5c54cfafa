// Package libvirt runs amlsim's compute-instance VMs as libvirt domains:
// real QEMU guests (KVM, or TCG where KVM does not work) with a qcow2
// overlay on a shared base image, a cloud-init seed disk, user-mode
// networking with SSH and the caller's other ports forwarded from
// 127.0.0.1, and the serial console logged to a file. It is the only
// package of amlsim that uses cgo.
//
// It needs cgo and Linux (libvirt.org/go/libvirt): in a build without
// them the package is empty, and amlsim has no libvirt driver.
package libvirt
