package sim

import (
	"fmt"

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
	return s.begin(ref, name, action, TriggerUser, fmt.Sprintf("%s requested by %s", action, describe(p)))
}

func (s *Service) begin(ref WorkspaceRef, name string, action Action, trigger Trigger, why string) (Operation, error) {
	var op Operation
	var key string
	err := s.st.Update(func(tx *store.Tx) error {
		_, inst, err := getCompute(tx, ref, name)
		if err != nil {
			return err
		}
		key = inst.key()
		op, err = s.enter(tx, inst, action, trigger, why)
		return err
	})
	if err != nil {
		return Operation{}, err
	}
	s.runner.launch(key, op.ID)
	return op, nil
}

// enter moves inst into the transitional state of action, as the lifecycle
// table allows, and records the operation; an operation it cuts in on (a
// delete during a create) ends as Canceled. The caller launches the work
// once the transaction has committed.
func (s *Service) enter(tx *store.Tx, inst Instance, action Action, trigger Trigger, why string) (Operation, error) {
	to, err := Next(inst.State, action, inst.Name)
	if err != nil {
		return Operation{}, err
	}
	now := s.now().UTC()
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
	}
	op := Operation{ID: uuid.NewString(), Action: string(action), Location: inst.Location, Instance: inst.key(), Status: OpInProgress, Start: now}
	inst.State = to
	inst.Operation = op.ID
	inst.ModifiedOn = now
	inst.LastOperation = &LastOperation{Name: string(action), Time: now, Status: string(OpInProgress), Trigger: string(trigger)}
	inst.addEvent(Event{Time: now, State: to, Message: why})
	if err := putOperation(tx, op); err != nil {
		return Operation{}, err
	}
	return op, putInstance(tx, inst)
}

// describe names a principal for humans.
func describe(p Principal) string {
	if p.Name != "" {
		return p.Name
	}
	return p.ObjectID
}
