//go:build linux && cgo

package libvirt

import (
	"context"
	"fmt"

	"github.com/amlsim/amlsim/hypervisor"
)

var _ hypervisor.Forwarder = (*Driver)(nil)

// EnsureForwards re-applies every forward of a running domain (SSH and
// the extra ones): it removes each rule QEMU may have and adds it again,
// so it is safe whether or not an earlier Start got as far as adding it.
func (d *Driver) EnsureForwards(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("forwards of domain %q: %w", name, err)
	}
	dom, meta, err := d.owned(name)
	if err != nil {
		return fmt.Errorf("forwards of domain %q: %w", name, err)
	}
	defer dom.Free()
	st, err := domainState(dom)
	if err != nil {
		return fmt.Errorf("forwards of domain %q: %w", name, err)
	}
	if st != hypervisor.StateRunning {
		return fmt.Errorf("forwards of domain %q: %w: it is %s", name, hypervisor.ErrInvalidState, st)
	}
	if d.testDriver {
		return nil
	}
	for _, f := range meta.rules() {
		if err := removeForward(dom, f.HostPort); err != nil {
			return fmt.Errorf("forwards of domain %q: %w", name, err)
		}
		if err := addForward(dom, f.HostPort, f.GuestPort); err != nil {
			return fmt.Errorf("forwards of domain %q: %w", name, err)
		}
	}
	return nil
}
