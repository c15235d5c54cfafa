//go:build linux && cgo

package main

// The libvirt driver registers itself (hypervisor.Register) when linked.
// It needs cgo and Linux, so another build (CGO_ENABLED=0, a
// cross-compile, macOS) has the fake driver only; drivers.go says so to
// the user.
import _ "github.com/amlsim/amlsim/hypervisor/libvirt"
