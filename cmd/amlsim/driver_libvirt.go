//go:build cgo

package main

// The libvirt driver registers itself (hypervisor.Register) when linked.
// It needs cgo, so a build without cgo (CGO_ENABLED=0, or a
// cross-compile) has the fake driver only; drivers.go says so to the user.
import _ "github.com/amlsim/amlsim/hypervisor/libvirt"
