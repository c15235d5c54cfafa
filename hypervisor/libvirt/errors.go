//go:build linux && cgo

package libvirt

import (
	"errors"
	"fmt"

	golibvirt "libvirt.org/go/libvirt"

	"github.com/amlsim/amlsim/hypervisor"
)

// ErrInvalidSpec is returned by Define when the spec cannot describe a
// domain, such as an empty name, a name with a path separator or no memory.
var ErrInvalidSpec = errors.New("invalid domain spec")

// translate maps a libvirt error to the hypervisor sentinel a caller can
// act on, keeping libvirt's own message. Errors that have no sentinel are
// returned unchanged.
func translate(err error) error {
	var lerr golibvirt.Error
	if !errors.As(err, &lerr) {
		return err
	}
	var sentinel error
	switch lerr.Code {
	case golibvirt.ERR_NO_DOMAIN, golibvirt.ERR_NO_DOMAIN_METADATA:
		sentinel = hypervisor.ErrNotFound
	case golibvirt.ERR_DOM_EXIST:
		sentinel = hypervisor.ErrExists
	case golibvirt.ERR_OPERATION_INVALID:
		sentinel = hypervisor.ErrInvalidState
	case golibvirt.ERR_NO_CONNECT, golibvirt.ERR_INVALID_CONN, golibvirt.ERR_AUTH_FAILED,
		golibvirt.ERR_AUTH_UNAVAILABLE, golibvirt.ERR_RPC:
		sentinel = hypervisor.ErrUnavailable
	default:
		return readable{lerr}
	}
	return fmt.Errorf("%w: %w", sentinel, readable{lerr})
}

// readable shows libvirt's message rather than the binding's
// "virError(Code=…)" dump, while errors.As still finds the libvirt error.
type readable struct{ err golibvirt.Error }

func (r readable) Error() string { return "libvirt: " + r.err.Message }
func (r readable) Unwrap() error { return r.err }

// isCode reports whether err is a libvirt error with the given code.
func isCode(err error, code golibvirt.ErrorNumber) bool {
	var lerr golibvirt.Error
	return errors.As(err, &lerr) && lerr.Code == code
}
