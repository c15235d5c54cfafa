package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/amlsim/amlsim/sim/clock"
	"github.com/amlsim/amlsim/sim/schedule"
	"github.com/amlsim/amlsim/sim/store"
	"github.com/google/uuid"
)

// scheduler fires the instances' start and stop schedules through the
// lifecycle table, as a user's request would but with the trigger
// Schedule. It looks at the clock every scheduleTick and whenever the
// test clock jumps. How far it has looked is kept in the store (at once
// when something fired, else at most once a minute), so firings missed
// while amlsim was down happen at its next start and none happens twice.
type scheduler struct {
	svc   *Service
	st    *store.Store
	clock clock.Clock
	log   *slog.Logger

	// from is how far the scheduler has looked (zero: not since the last
	// time no instance had schedules); saved is when it was last stored.
	loaded      bool
	from, saved time.Time
}

// scheduleTick is how often the scheduler looks at the clock.
const scheduleTick = time.Second

// scheduleSave is how often, at most, the scheduler stores how far it
// looked when nothing fired.
const scheduleSave = time.Minute

const metaScheduled = "scheduledUpTo"

func (sc *scheduler) run(ctx context.Context) {
	clock.Every(ctx, sc.clock, scheduleTick, func() { sc.tick(sc.clock.Now()) })
}

// tick fires, for each instance, the latest firing of its enabled
// schedules since the previous tick (a jump of the clock over several
// firings acts on the last one only, as the instance would have ended
// there), then records now as done.
func (sc *scheduler) tick(now time.Time) {
	if !sc.loaded {
		err := sc.st.View(func(tx *store.Tx) error { _, err := tx.Get(bucketMeta, metaScheduled, &sc.from); return err })
		if err != nil {
			sc.log.Error("scheduler: read the store", "err", err)
			return
		}
		sc.loaded, sc.saved = true, sc.from
	}
	insts, err := readInstances(sc.st)
	if err != nil {
		sc.log.Error("scheduler: read the store", "err", err)
		return
	}
	scheduled := false
	for _, inst := range insts {
		scheduled = scheduled || len(inst.Schedules) > 0
	}
	acted := false
	switch {
	case !scheduled:
		// Nothing can fire, so nothing can be missed: forget how far the
		// scheduler looked, so that a schedule added later does not
		// fire for the time before it.
		if !sc.saved.IsZero() {
			if err := sc.st.Update(func(tx *store.Tx) error { return tx.Delete(bucketMeta, metaScheduled) }); err != nil {
				sc.log.Error("scheduler: record the time", "err", err)
			}
		}
		sc.from, sc.saved = time.Time{}, time.Time{}
		return
	case sc.from.IsZero() || now.Before(sc.from):
		// The first schedule: nothing is due from before it. Or the clock
		// went back (a server that ran a test clock ahead restarted on
		// the wall clock): go on from now.
	case now.After(sc.from):
		for _, inst := range insts {
			acted = sc.fire(inst, sc.from, now) || acted
		}
	default:
		return
	}
	sc.from = now
	if !acted && now.Sub(sc.saved) < scheduleSave && !sc.saved.IsZero() {
		return
	}
	if err := sc.st.Update(func(tx *store.Tx) error { return tx.Put(bucketMeta, metaScheduled, now) }); err != nil {
		sc.log.Error("scheduler: record the time", "err", err)
		return
	}
	sc.saved = now
}

// fire acts on the latest firing in (from, now] of inst's schedules, and
// reports whether there was one.
func (sc *scheduler) fire(inst Instance, from, now time.Time) bool {
	var due *schedule.Schedule
	var at time.Time
	for i, s := range inst.Schedules {
		if !s.Enabled() {
			continue
		}
		tr, err := s.Trigger()
		if err != nil {
			continue // checked when stored; an older record may hold one
		}
		if t, ok := tr.Latest(from, now); ok && t.After(at) {
			due, at = &inst.Schedules[i], t
		}
	}
	if due == nil {
		return false
	}
	action := Action(due.Action)
	why := fmt.Sprintf("%s by schedule %s (%s)", action, due.ID, at.UTC().Format(time.RFC3339))
	if _, _, err := Next(inst.State, action, inst.Name); err != nil {
		// A stop of a stopped instance, a start of a running one, or
		// an instance busy with an operation: nothing to do.
		sc.note(inst, why+" skipped: the instance is "+string(inst.State))
		return true
	}
	// Only if the schedule is still there, enabled, and the instance in
	// the state it was looked at in.
	id := due.ID
	still := func(cur Instance) bool {
		return cur.State == inst.State && slices.ContainsFunc(cur.Schedules, func(s schedule.Schedule) bool { return s.ID == id && s.Enabled() })
	}
	_, err := sc.svc.beginIf(inst.Workspace, inst.Name, action, TriggerSchedule, why, still)
	switch {
	case errors.Is(err, errChanged):
	case err != nil:
		sc.log.Warn("scheduled action refused", "instance", inst.Name, "action", action, "err", err)
		sc.note(inst, why+" refused: "+AsError(err).Message)
	}
	return true
}

// note records an event on the instance.
func (sc *scheduler) note(inst Instance, msg string) {
	err := sc.st.Update(func(tx *store.Tx) error {
		cur, ok, err := getInstance(tx, inst.key())
		if err != nil || !ok {
			return err
		}
		cur.addEvent(Event{Time: sc.clock.Now().UTC(), State: cur.State, Message: msg})
		return putInstance(tx, cur)
	})
	if err != nil {
		sc.log.Error("scheduler: record an event", "instance", inst.Name, "err", err)
	}
}

// parseSchedules checks the schedules property of a request (nil: absent)
// against prev, the instance's schedules, whose ids it keeps.
func parseSchedules(raw json.RawMessage, prev []schedule.Schedule) ([]schedule.Schedule, error) {
	if raw == nil {
		return prev, nil
	}
	s, err := schedule.Parse(raw, schedule.Schedules{ComputeStartStop: prev}, uuid.NewString)
	var se *schedule.Error
	if errors.As(err, &se) {
		return nil, Errorf(KindBadRequest, "UserError", "The property properties.properties.%s is invalid: %s.", se.Path, se.Message)
	}
	return s.ComputeStartStop, err
}
