package sim

import (
	"context"
	"errors"
	"fmt"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim/store"
	"github.com/google/uuid"
)

// Begin starts a user action (start, stop, restart, delete) on an
// instance. The state table decides whether it is allowed; the instance
// moves to the transitional state at once and the work goes on in the
// background under the returned operation.
func (s *Service) Begin(p Principal, ref WorkspaceRef, name string, action Action) (Operation, error) {
	var op Operation
	var key, previous string
	err := s.st.Update(func(tx *store.Tx) error {
		var ws Workspace
		ok, err := tx.Get(bucketWorkspaces, ref.key(), &ws)
		if err != nil {
			return err
		}
		if !ok {
			return workspaceNotFound(ref)
		}
		inst, err := getInWorkspace(tx, ws, name)
		if err != nil {
			return err
		}
		to, err := Next(inst.State, action, inst.Name)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		op = Operation{ID: uuid.NewString(), Action: string(action), Location: inst.Location, Instance: inst.key(), Status: OpInProgress, Start: now}
		key, previous = inst.key(), inst.Operation
		inst.State = to
		inst.Operation = op.ID
		inst.ModifiedOn = now
		inst.LastOperation = &LastOperation{Name: string(action), Time: now, Status: "InProgress", Trigger: "User"}
		inst.Events = append(inst.Events, Event{Time: now, State: to, Message: fmt.Sprintf("%s requested by %s", action, describe(p))})
		if len(inst.Events) > maxEvents {
			inst.Events = inst.Events[len(inst.Events)-maxEvents:]
		}
		if err := tx.Put(bucketOperations, op.ID, op); err != nil {
			return err
		}
		return tx.Put(bucketInstances, key, inst)
	})
	if err != nil {
		return Operation{}, err
	}
	if previous != "" {
		// Only a delete may cut in on an operation in flight; the worker
		// cancelled here marks its own operation as superseded.
		s.stopWorker(key)
	}
	s.spawn(key, op.ID, s.workFor(action))
	return op, nil
}

// workFor returns the background work of an action.
func (s *Service) workFor(a Action) func(ctx context.Context, key, opID string) error {
	switch a {
	case ActionStart:
		return s.start
	case ActionStop:
		return s.stop
	case ActionRestart:
		return s.restart
	case ActionDelete:
		return s.delete
	}
	panic("no work for action " + string(a))
}

// run loads the instance, does work and records the outcome, unless the
// service is closing (then Recover resumes the operation).
func (s *Service) run(ctx context.Context, key, opID, action string, work func(Instance) error) error {
	inst, err := s.load(key)
	if err != nil {
		return err
	}
	err = work(inst)
	if s.ctx.Err() != nil {
		return err
	}
	return errors.Join(err, s.finish(key, opID, wrapOpError(action, inst.Name, err)))
}

func (s *Service) start(ctx context.Context, key, opID string) error {
	report := s.reporter(key)
	return s.run(ctx, key, opID, "Start", func(inst Instance) error {
		err := s.ensureRunning(ctx, inst.Domain)
		if err == nil {
			report("VM started")
			err = s.waitReady(ctx, inst)
		}
		if err == nil {
			report("SSH up")
			if inst.Script(Startup) != nil {
				err = s.runSetup(ctx, inst)
				if err != nil {
					return err // the VM stays up for inspection
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			// A start that failed leaves the instance stopped, VM off.
			err = errors.Join(err, s.drv.Destroy(context.WithoutCancel(ctx), inst.Domain))
		}
		return err
	})
}

func (s *Service) stop(ctx context.Context, key, opID string) error {
	return s.run(ctx, key, opID, "Stop", func(inst Instance) error {
		err := s.shutdown(ctx, inst.Domain)
		if err == nil {
			s.event(key, "VM powered off")
		}
		return err
	})
}

// restart powers the VM off and on again rather than rebooting it in place:
// the forwards are re-applied and "ready" cannot be mistaken for the guest
// still going down.
func (s *Service) restart(ctx context.Context, key, opID string) error {
	return s.run(ctx, key, opID, "Restart", func(inst Instance) error {
		report := s.reporter(key)
		if err := s.shutdown(ctx, inst.Domain); err != nil {
			return err
		}
		report("VM powered off")
		if err := s.drv.Start(ctx, inst.Domain); err != nil {
			return err
		}
		report("VM started")
		if err := s.waitReady(ctx, inst); err != nil {
			return err
		}
		report("SSH up")
		if inst.Script(Startup) != nil {
			return s.runSetup(ctx, inst)
		}
		return nil
	})
}

func (s *Service) shutdown(ctx context.Context, domain string) error {
	d, err := s.drv.Lookup(ctx, domain)
	if err != nil {
		return err
	}
	if d.State == hypervisor.StateShutoff {
		return nil
	}
	return s.drv.Shutdown(ctx, domain, s.cfg.Timeouts.ShutdownGrace.Duration)
}

// delete removes the VM and all its files, then the record: the name,
// quota and port are free again (S19).
func (s *Service) delete(ctx context.Context, key, opID string) error {
	inst, err := s.load(key)
	if err != nil {
		return err
	}
	err = s.drv.Undefine(ctx, inst.Domain)
	if errors.Is(err, hypervisor.ErrNotFound) {
		err = nil
	}
	if s.ctx.Err() != nil {
		return err
	}
	if err != nil {
		return errors.Join(err, s.finish(key, opID, wrapOpError("Delete", inst.Name, err)))
	}
	return s.st.Update(func(tx *store.Tx) error {
		var op Operation
		if _, err := tx.Get(bucketOperations, opID, &op); err != nil {
			return err
		}
		op.Status, op.End = OpSucceeded, s.now().UTC()
		if err := tx.Put(bucketOperations, opID, op); err != nil {
			return err
		}
		return tx.Delete(bucketInstances, key)
	})
}

// Recover reconciles the store with the hypervisor at start-up: operations
// cut short are resumed, instances whose VM changed power state while the
// server was down show their real state, and domains of ours that no
// record claims are reported and left alone.
func (s *Service) Recover(ctx context.Context) error {
	domains, err := s.drv.List(ctx)
	if err != nil {
		return fmt.Errorf("list domains: %w", err)
	}
	byName := map[string]hypervisor.Domain{}
	for _, d := range domains {
		byName[d.Name] = d
	}
	var insts []Instance
	if err := s.st.View(func(tx *store.Tx) error {
		insts, err = store.All[Instance](tx, bucketInstances)
		return err
	}); err != nil {
		return err
	}
	claimed := map[string]bool{}
	for _, inst := range insts {
		claimed[inst.Domain] = true
		if Transitional(inst.State) && inst.Operation != "" {
			s.log.Info("resuming operation", "instance", inst.Name, "state", inst.State)
			s.spawn(inst.key(), inst.Operation, s.resumeWork(inst.State))
			continue
		}
		d, ok := byName[inst.Domain]
		var to State
		switch {
		case !ok && inst.State != StateCreateFailed:
			to = StateUnusable
		case ok && inst.State == StateRunning && d.State != hypervisor.StateRunning:
			to = StateStopped
		case ok && inst.State == StateStopped && d.State == hypervisor.StateRunning:
			to = StateRunning
		default:
			if ok {
				s.log.Info("re-adopted instance", "instance", inst.Name, "state", inst.State, "domain", d.Name, "vm", d.State)
			}
			continue
		}
		s.log.Warn("instance changed while the server was down", "instance", inst.Name, "was", inst.State, "now", to)
		err := s.st.Update(func(tx *store.Tx) error {
			var cur Instance
			if ok, err := tx.Get(bucketInstances, inst.key(), &cur); err != nil || !ok {
				return err
			}
			cur.State = to
			cur.ModifiedOn = s.now().UTC()
			if to == StateUnusable {
				cur.Errors = append(cur.Errors, InstanceError{Code: "VirtualMachineNotFound", Message: fmt.Sprintf("The virtual machine %s of compute instance '%s' no longer exists.", inst.Domain, inst.Name)})
			}
			return tx.Put(bucketInstances, cur.key(), cur)
		})
		if err != nil {
			return err
		}
	}
	for _, d := range domains {
		if !claimed[d.Name] {
			s.log.Warn("domain of amlsim with no instance record; left alone", "domain", d.Name, "labels", d.Labels)
		}
	}
	return nil
}

func (s *Service) resumeWork(st State) func(ctx context.Context, key, opID string) error {
	switch st {
	case StateCreating:
		return s.create
	case StateStarting:
		return s.start
	case StateStopping:
		return s.stop
	case StateRestarting:
		return s.restart
	}
	return s.delete
}

// describe names a principal for humans.
func describe(p Principal) string {
	if p.Name != "" {
		return p.Name
	}
	return p.ObjectID
}
