package libvirt

import (
	"context"
	"fmt"

	"github.com/digitalocean/go-qemu/qmp/raw"

	"github.com/amlsim/amlsim/hypervisor"
)

var _ hypervisor.Forwarder = (*Driver)(nil)

// EnsureForwards re-applies the SSH forward of a running domain: it
// removes the rule if QEMU has it and adds it again, so it is safe whether
// or not an earlier Start got as far as adding it.
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
	// HMP answers an unknown rule with a message, not an error: either
	// way the rule is gone afterwards.
	mon := raw.NewMonitor(&domainMonitor{dom: dom})
	if _, err := mon.HumanMonitorCommand(fmt.Sprintf("hostfwd_remove %s tcp:127.0.0.1:%d", netdevID, meta.SSHPort), nil); err != nil {
		return fmt.Errorf("forwards of domain %q: remove old rule: %w", name, err)
	}
	if err := addSSHForward(dom, meta.SSHPort); err != nil {
		return fmt.Errorf("forwards of domain %q: %w", name, err)
	}
	return nil
}
