package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim/store"
)

// reconciler keeps what the store says true of the hypervisor, as Nomad's
// RecoverTask does at start-up and Lima's host agent does while running:
//   - an operation in flight with no worker (the server died under it)
//     resumes, by running the lifecycle table's Resume of it;
//   - an operation that was acknowledged but is no one's current one any
//     more ends, as Canceled;
//   - a settled instance whose VM drifted (powered off from inside, QEMU
//     died, destroyed or undefined behind amlsim's back) moves where the
//     lifecycle table says, with an event saying what happened.
//
// It runs once at start-up (Recover), on every domain event the driver
// reports, and every resync period as a backstop for drivers without
// events or events lost.
type reconciler struct {
	st     *store.Store
	drv    hypervisor.Driver
	runner *runner
	log    *slog.Logger
	now    func() time.Time
	prefix string
}

// reconcile brings every record in line once: orphaned operations end,
// interrupted ones resume, settled instances follow their VMs.
func (c *reconciler) reconcile(ctx context.Context) error {
	var insts []Instance
	err := c.st.Update(func(tx *store.Tx) error {
		var err error
		if insts, err = instances(tx, ""); err != nil {
			return err
		}
		wss, err := workspaces(tx)
		if err != nil {
			return err
		}
		if err := c.endOrphans(tx, insts, wss); err != nil {
			return err
		}
		// A workspace whose last instance went while the server was
		// down is deleted now.
		for _, ws := range wss {
			if err := endWorkspaceDelete(tx, ws.Ref(), c.now().UTC()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, inst := range insts {
		if Transitional(inst.State) && inst.Operation != "" {
			if !c.runner.busy(inst.key()) {
				c.log.Info("resuming operation", "instance", inst.Name, "state", inst.State, "operation", inst.Operation)
				c.runner.resume(inst.key(), inst.Operation)
			}
			continue
		}
		c.settle(ctx, inst.key())
	}
	return nil
}

// endOrphans ends the operations in progress that no instance is running:
// their instance was deleted or a later operation superseded them before
// they could record it.
func (c *reconciler) endOrphans(tx *store.Tx, insts []Instance, wss []Workspace) error {
	current := map[string]bool{}
	for _, i := range insts {
		if i.Operation != "" {
			current[i.Operation] = true
		}
	}
	for _, ws := range wss {
		if ws.Deleting != "" {
			current[ws.Deleting] = true
		}
	}
	ops, err := operationsInProgress(tx)
	if err != nil {
		return err
	}
	for _, op := range ops {
		if current[op.ID] {
			continue
		}
		c.log.Warn("ending an operation no instance runs", "operation", op.ID, "action", op.Action, "instance", op.Instance)
		cancelOperation(&op, c.now().UTC(), op.Instance)
		if err := putOperation(tx, op); err != nil {
			return err
		}
	}
	return nil
}

// cancelOperation ends op as superseded.
func cancelOperation(op *Operation, now time.Time, instance string) {
	if _, name, ok := strings.Cut(instance, "/"); ok {
		instance = name
	}
	op.Status, op.End = OpCanceled, now
	op.Error = Errorf(KindConflict, "OperationCanceled",
		"The operation was canceled by a later operation on compute instance '%s'.", instance)
}

// settle checks one settled instance against its VM and moves it as the
// lifecycle table says when they disagree. An instance with an operation
// in flight is left to it.
func (c *reconciler) settle(ctx context.Context, key string) {
	var inst Instance
	var ok bool
	if err := c.st.View(func(tx *store.Tx) (err error) {
		inst, ok, err = getInstance(tx, key)
		return err
	}); err != nil || !ok || Transitional(inst.State) {
		return
	}
	d, err := c.drv.Lookup(ctx, inst.Domain)
	gone := errors.Is(err, hypervisor.ErrNotFound)
	if err != nil && !gone {
		c.log.Warn("cannot check an instance's VM", "instance", inst.Name, "err", err)
		return
	}
	on := !gone && d.State != hypervisor.StateShutoff && d.State != hypervisor.StateCrashed
	if _, changed := inst.State.drift(on, gone); !changed {
		return
	}
	what := fmt.Sprintf("the VM is %s", d.State)
	if gone {
		what = "the VM no longer exists"
	}
	err = c.st.Update(func(tx *store.Tx) error {
		cur, ok, err := getInstance(tx, key)
		if err != nil || !ok || cur.State != inst.State || cur.Operation != "" {
			return err // moved meanwhile: the next check sees the new state
		}
		to, _ := cur.State.drift(on, gone)
		now := c.now().UTC()
		c.log.Warn("instance's VM changed behind amlsim", "instance", cur.Name, "was", cur.State, "now", to, "because", what)
		cur.addEvent(Event{Time: now, State: to, Message: fmt.Sprintf("%s → %s: %s (%s)", cur.State, to, what, TriggerSystem)})
		if gone {
			cur.Errors = append(cur.Errors, InstanceError{Code: "VirtualMachineNotFound",
				Message: fmt.Sprintf("The virtual machine %s of compute instance '%s' no longer exists.", cur.Domain, cur.Name)})
		}
		cur.State, cur.ModifiedOn = to, now
		return putInstance(tx, cur)
	})
	if err != nil {
		c.log.Error("record drift", "instance", inst.Name, "err", err)
		return
	}
	// A VM started behind amlsim's back (`virsh start`) has none of the
	// forwards the driver adds on Start: add them, so that its SSH and
	// applications answer as the instance's state promises.
	if f, ok := c.drv.(hypervisor.Forwarder); ok && on {
		if err := f.EnsureForwards(ctx, inst.Domain); err != nil {
			c.log.Warn("cannot add the forwards of a VM started outside amlsim", "instance", inst.Name, "err", err)
		}
	}
}

// instanceOfDomain returns the key of the instance whose VM is domain.
func (c *reconciler) instanceOfDomain(domain string) (string, bool) {
	var key string
	c.st.View(func(tx *store.Tx) error {
		insts, err := instances(tx, "")
		for _, i := range insts {
			if i.Domain == domain {
				key = i.key()
			}
		}
		return err
	})
	return key, key != ""
}

// watch follows the driver's domain events, and reconciles everything
// every resync, until ctx ends.
func (c *reconciler) watch(ctx context.Context, resync time.Duration) {
	var events <-chan hypervisor.Event
	if w, ok := c.drv.(hypervisor.Watcher); ok {
		ch, err := w.Watch(ctx)
		if err != nil {
			c.log.Warn("the hypervisor reports no domain events; checking VMs every resync period only", "every", resync, "err", err)
		} else {
			events = ch
		}
	}
	tick := time.NewTicker(resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if key, ok := c.instanceOfDomain(ev.Domain); ok {
				c.log.Debug("domain event", "domain", ev.Domain, "state", ev.State, "gone", ev.Gone, "reason", ev.Reason)
				c.settle(ctx, key)
			}
		case <-tick.C:
			if err := c.reconcile(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("reconcile", "err", err)
			}
		}
	}
}

// strays logs the domains of this server that no record claims; they are
// left alone.
func (c *reconciler) strays(ctx context.Context) error {
	domains, err := c.drv.List(ctx)
	if err != nil {
		return fmt.Errorf("list domains: %w", err)
	}
	claimed := map[string]bool{}
	if err := c.st.View(func(tx *store.Tx) error {
		insts, err := instances(tx, "")
		for _, i := range insts {
			claimed[i.Domain] = true
		}
		return err
	}); err != nil {
		return err
	}
	for _, d := range domains {
		if !claimed[d.Name] && strings.HasPrefix(d.Name, c.prefix) {
			c.log.Warn("domain of amlsim with no instance record; left alone", "domain", d.Name, "labels", d.Labels)
		}
	}
	return nil
}
