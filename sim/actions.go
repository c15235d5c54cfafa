package sim

import (
	"errors"
	"fmt"
	"slices"

	"github.com/amlsim/amlsim/sim/store"
	"github.com/google/uuid"
)

// Begin starts a user action (start, stop, restart, delete) on an
// instance. The lifecycle table decides whether it is allowed; in one
// transaction the instance moves to the transitional state, the operation
// is recorded, and an operation it cuts in on (a delete during a create)
// ends as Canceled. The work goes on in the background under the returned
// operation.
func (s *Service) Begin(p Principal, ref WorkspaceRef, name string, action Action) (Operation, error) {
	op, err := s.request(ref, name, action, TriggerUser, requestedBy(action, p), p.ObjectID, false, nil)
	if err != nil {
		return Operation{}, err
	}
	return *op, nil
}

// Delete starts deleting an instance, as Begin does. In a workspace that
// exists, an instance that does not is no error and no operation (nil):
// ARM's 204 for a DELETE of what is not there.
func (s *Service) Delete(p Principal, ref WorkspaceRef, name string) (*Operation, error) {
	return s.request(ref, name, ActionDelete, TriggerUser, requestedBy(ActionDelete, p), p.ObjectID, true, nil)
}

// Resize starts changing a stopped instance's VM size (Compute_Resize of
// the preview api-versions: POST …/resize with {"targetVMSize"}, 202 and
// Location, REST spec 2026-09-15-preview). A size the catalog lacks, and
// one the region's quota cannot take while the resize holds both sizes
// (the larger within a family), are refused up front with 400; the
// lifecycle table decides the rest as for a start. The VM gets the new
// size's local resources.
func (s *Service) Resize(p Principal, ref WorkspaceRef, name, target string) (Operation, error) {
	var op Operation
	var key string
	err := s.st.Update(func(tx *store.Tx) error {
		ws, inst, err := getCompute(tx, ref, name)
		if err != nil {
			return err
		}
		if target == "" {
			return Errorf(KindBadRequest, "InvalidPropertyValue", "The property targetVMSize is required to resize a compute instance.")
		}
		size, ok := s.catalog.Lookup(target)
		if !ok {
			return Errorf(KindBadRequest, "InvalidPropertyValue",
				"The specified value %s for property ComputeInstance.VMSize is not a supported VM size in location %s.", target, ws.Location)
		}
		if _, _, err := Next(inst.State, ActionResize, inst.Name); err == nil {
			inst.Resize = &Resize{Size: size, Local: s.cfg.Local.LocalFor(size.Name)}
			if err := s.ledger.checkQuota(tx, inst, size); err != nil {
				return err
			}
		}
		key = inst.key()
		op, err = s.enter(tx, inst, ActionResize, TriggerUser, fmt.Sprintf("Resize to %s requested by %s", target, describe(p)), p.ObjectID)
		return err
	})
	if err != nil {
		return Operation{}, err
	}
	if op.Status == OpInProgress {
		s.runner.launch(key, op.ID)
	}
	return op, nil
}

func (s *Service) begin(ref WorkspaceRef, name string, action Action, trigger Trigger, why string) (Operation, error) {
	return s.beginIf(ref, name, action, trigger, why, nil)
}

// errChanged is returned by beginIf when the instance is no longer what
// the caller decided on.
var errChanged = errors.New("the instance changed since it was looked at")

// beginIf is begin for the service's own triggers (schedules, idle
// shutdown), which decide on an instance read earlier: in the request's
// transaction, still(inst) must hold of the instance as it is now, else
// nothing happens and the error is errChanged.
func (s *Service) beginIf(ref WorkspaceRef, name string, action Action, trigger Trigger, why string, still func(Instance) bool) (Operation, error) {
	op, err := s.request(ref, name, action, trigger, why, "", false, still)
	if err != nil {
		return Operation{}, err
	}
	return *op, nil
}

// request moves an instance into action's transitional state and launches
// the work; by is the object ID of the principal who asked (a user
// trigger's). With absentOK, a missing instance in an existing workspace
// gives a nil operation and no error; with still, see beginIf.
func (s *Service) request(ref WorkspaceRef, name string, action Action, trigger Trigger, why, by string, absentOK bool, still func(Instance) bool) (*Operation, error) {
	var op *Operation
	var key string
	err := s.st.Update(func(tx *store.Tx) error {
		ws, inst, err := getCompute(tx, ref, name)
		if err != nil {
			if absentOK && ws.Name != "" && IsKind(err, KindNotFound) {
				return nil
			}
			return err
		}
		if still != nil && !still(inst) {
			return errChanged
		}
		key = inst.key()
		o, err := s.enter(tx, inst, action, trigger, why, by)
		op = &o
		return err
	})
	if err != nil || op == nil {
		return nil, err
	}
	if op.Status == OpInProgress {
		s.runner.launch(key, op.ID)
	}
	return op, nil
}

// enter moves inst into the transitional state of action, as the lifecycle
// table allows, and records the operation, with the fault rule it matches
// (asked by the principal with object ID by, if a user asked); an
// operation it cuts in on (a delete during a create) ends as Canceled.
// The caller launches the work once the transaction has committed.
func (s *Service) enter(tx *store.Tx, inst Instance, action Action, trigger Trigger, why, by string) (Operation, error) {
	if !slices.Contains(requests[action].Triggers, trigger) {
		return Operation{}, fmt.Errorf("%s of %s: trigger %s may not make it (lifecycle table)", action, inst.Name, trigger)
	}
	to, late, err := Next(inst.State, action, inst.Name)
	if err != nil && !late {
		return Operation{}, err
	}
	now := s.now().UTC()
	if late {
		// Accepted, and failed at once: the state and the operation in
		// flight, if any, stay as they are.
		op := Operation{ID: uuid.NewString(), Action: string(action), Location: inst.Location, Instance: inst.key(),
			Status: OpFailed, Error: AsError(err), Start: now, End: now}
		inst.LastOperation = &LastOperation{Name: string(action), Time: now, Status: string(action) + "Failed", Trigger: string(trigger)}
		inst.addEvent(Event{Time: now, State: inst.State, Message: why + ": " + AsError(err).Message})
		if err := putOperation(tx, op); err != nil {
			return Operation{}, err
		}
		return op, putInstance(tx, inst)
	}
	if inst.Operation != "" {
		prev, ok, err := getOperation(tx, inst.Operation)
		if err != nil {
			return Operation{}, err
		}
		if ok && prev.Status == OpInProgress {
			cancelOperation(&prev, now, inst.Name)
			if err := putOperation(tx, prev); err != nil {
				return Operation{}, err
			}
		}
		if action != ActionResize {
			inst.Resize = nil // a resize cut in on keeps the old size
		}
	}
	op := Operation{ID: uuid.NewString(), Action: string(action), Location: inst.Location, Instance: inst.key(), Status: OpInProgress, Start: now}
	inst.State = to
	inst.Operation = op.ID
	inst.ModifiedOn = now
	inst.LastOperation = &LastOperation{Name: string(action), Time: now, Status: string(OpInProgress), Trigger: string(trigger)}
	inst.addEvent(Event{Time: now, State: to, Message: why})
	if err := attachFault(tx, &op, &inst, by, now); err != nil {
		return Operation{}, err
	}
	if err := putOperation(tx, op); err != nil {
		return Operation{}, err
	}
	return op, putInstance(tx, inst)
}

// requestedBy is the event that records who asked for an action.
func requestedBy(a Action, p Principal) string {
	return fmt.Sprintf("%s requested by %s", a, describe(p))
}

// describe names a principal for humans.
func describe(p Principal) string {
	if p.Name != "" {
		return p.Name
	}
	return p.ObjectID
}
