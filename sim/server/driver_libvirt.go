//go:build linux && cgo

package server

// The libvirt driver registers itself (hypervisor.Register) when linked.
// It needs cgo and Linux, so another build (CGO_ENABLED=0, a
// cross-compile, macOS) has the fake driver only, and Start says so when
// asked for libvirt.
import _ "github.com/amlsim/amlsim/hypervisor/libvirt"
