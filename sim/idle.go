package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/amlsim/amlsim/sim/clock"
	"github.com/amlsim/amlsim/sim/store"
	"github.com/sosodev/duration"
)

// Idle shutdown bounds: "compute instance must be inactive for a minimum
// of 15 mins and a maximum of three days" (MicrosoftDocs azure-ai-docs,
// how-to-create-compute-instance.md, "Configure idle shutdown"; the REST
// spec's IdleShutdownSetting: "Time is defined in ISO8601 format. Minimum
// is 15 min, maximum is 3 days.").
const (
	minIdleTime = 15 * time.Minute
	maxIdleTime = 3 * 24 * time.Hour
)

// parseIdleTime checks an idleTimeBeforeShutdown value and returns it as
// given; "" turns idle shutdown off.
func parseIdleTime(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	d, err := duration.Parse(s)
	if err != nil || d.Negative {
		return "", idleTimeError(s)
	}
	if t := d.ToTimeDuration(); t < minIdleTime || t > maxIdleTime {
		return "", idleTimeError(s)
	}
	return s, nil
}

// The compute service reports invalid input as 400 UserError (a recorded
// compute-instance PUT in Azure/azure-cli-extensions,
// src/machinelearningservices/azext_mlv2/tests/recordings/
// test_compute_compute_instance_with_no_public_ip.yaml; and
// Azure/data-product-analytics#141). No report shows the text for a bad
// schedule or idle time, so the messages are amlsim's.
func idleTimeError(s string) error {
	return Errorf(KindBadRequest, "UserError",
		"The idleTimeBeforeShutdown '%s' is not valid: it must be an ISO 8601 duration from PT15M to P3D.", s)
}

// IdleDuration is the instance's idle shutdown time; zero when it has none.
func (i Instance) IdleDuration() time.Duration {
	if i.IdleTime == "" {
		return 0
	}
	d, err := duration.Parse(i.IdleTime)
	if err != nil {
		return 0
	}
	return d.ToTimeDuration()
}

// migrateSettings moves schedules and idleTimeBeforeShutdown of records
// written before they acted (kept among the echoed properties) to the
// fields that make them act. Values that no longer pass are left where
// they were, echoed and inert, as before.
func migrateSettings(tx *store.Tx) error {
	insts, err := instances(tx, "")
	if err != nil {
		return err
	}
	for _, inst := range insts {
		raw, hasSched := inst.Extra["schedules"]
		idle, hasIdle := inst.Extra["idleTimeBeforeShutdown"].(string)
		if !hasSched && !hasIdle {
			continue
		}
		if hasSched {
			b, _ := json.Marshal(raw)
			if scheds, err := parseSchedules(b, nil); err == nil {
				inst.Schedules = scheds
				delete(inst.Extra, "schedules")
			}
		}
		if hasIdle {
			if v, err := parseIdleTime(idle); err == nil {
				inst.IdleTime = v
				delete(inst.Extra, "idleTimeBeforeShutdown")
			}
		}
		if err := putInstance(tx, inst); err != nil {
			return err
		}
	}
	return nil
}

// Activity is what keeps a running instance from being idle. Azure counts
// "no active Jupyter kernel sessions, no active Jupyter terminal sessions,
// no active Azure Machine Learning runs or experiments, no VS Code
// connections" (how-to-create-compute-instance.md, "Configure idle
// shutdown"); amlsim counts what its guests have: SSH sessions, Jupyter
// kernels and terminals, and its running jobs (Azure's "runs"). A setup
// script runs only while the instance is not yet Running, so it keeps it
// from idle shutdown too.
type Activity struct {
	SSHSessions int `json:"sshSessions"`
	Kernels     int `json:"kernels"`
	Terminals   int `json:"terminals"`
	// Jobs counts the instance's jobs holding a slot (amlsim's own count,
	// not the guest's).
	Jobs int `json:"jobs"`
}

// ActivitySetter is implemented by guests whose activity is simulated
// (the fake driver's), so that users of `serve --driver fake` can keep an
// instance busy or let it idle.
type ActivitySetter interface {
	SetActivity(name string, a Activity)
}

// Activity reports what keeps a running instance from being idle, as idle
// shutdown sees it: asked of its guest now.
func (s *Service) Activity(ref WorkspaceRef, name string) (Activity, error) {
	inst, err := s.Compute(ref, name)
	if err != nil {
		return Activity{}, err
	}
	if inst.State != StateRunning {
		return Activity{}, Errorf(KindConflict, "ComputeInstanceNotRunning",
			"The activity of compute instance '%s' is known while it runs; it is %s.", name, inst.State)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	a, err := s.guest.Activity(ctx, inst)
	if err != nil {
		return Activity{}, Errorf(KindUnavailable, "GuestUnavailable", "The guest of compute instance '%s' did not say what it is doing: %v.", name, err)
	}
	a.Jobs = s.jobs.runningOn(inst.key())
	return a, nil
}

// SetActivity sets the simulated activity of an instance of the fake
// driver; a real VM's activity is what its guest does.
func (s *Service) SetActivity(ref WorkspaceRef, name string, a Activity) error {
	inst, err := s.Compute(ref, name)
	if err != nil {
		return err
	}
	if inst.State != StateRunning {
		return Errorf(KindConflict, "ComputeInstanceNotRunning",
			"The activity of compute instance '%s' is known while it runs; it is %s.", name, inst.State)
	}
	setter, ok := s.guest.(ActivitySetter)
	if !ok {
		return Errorf(KindConflict, "ActivityNotSimulated",
			"The activity of compute instance '%s' is what its VM does (SSH sessions, Jupyter kernels and terminals); only instances of the fake driver take a simulated one.", name)
	}
	if a.SSHSessions < 0 || a.Kernels < 0 || a.Terminals < 0 {
		return Errorf(KindBadRequest, "InvalidRequestContent", "Activity counts cannot be negative.")
	}
	setter.SetActivity(name, a)
	return nil
}

// Active reports whether anything keeps the instance busy.
func (a Activity) Active() bool { return a.SSHSessions+a.Kernels+a.Terminals+a.Jobs > 0 }

// idleProbe is how often (in wall-clock time) running instances with idle
// shutdown are asked for their activity; a jump of the test clock asks
// them at once.
const idleProbe = 30 * time.Second

// idler stops instances that were idle for their idleTimeBeforeShutdown,
// with the trigger IdleShutdown. An instance is idle from the last probe
// that found it active, or from its last change (ModifiedOn: it became
// Running, or it was updated, its idle setting included: "the idle time
// clock is reset to 0", as the docs say of an update).
type idler struct {
	svc   *Service
	clock clock.Clock
	log   *slog.Logger

	mu         sync.Mutex
	lastActive map[string]time.Time
}

func (d *idler) run(ctx context.Context) {
	clock.Every(ctx, d.clock, idleProbe, func() { d.check(ctx) })
}

// check asks every running instance with idle shutdown for its activity
// and stops those idle for long enough.
func (d *idler) check(ctx context.Context) {
	insts, err := readInstances(d.svc.st)
	if err != nil {
		d.log.Error("idle shutdown: read the store", "err", err)
		return
	}
	d.mu.Lock()
	for key := range d.lastActive {
		if !slices.ContainsFunc(insts, func(i Instance) bool { return i.key() == key && i.State == StateRunning }) {
			delete(d.lastActive, key) // stopped or gone: its idle clock starts again
		}
	}
	d.mu.Unlock()
	for _, inst := range insts {
		limit := inst.IdleDuration()
		if inst.State != StateRunning || limit == 0 {
			continue
		}
		probeCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		a, err := d.svc.guest.Activity(probeCtx, inst)
		cancel()
		a.Jobs = d.svc.jobs.runningOn(inst.key())
		now := d.clock.Now()
		if err != nil {
			// Cannot tell: never stop an instance on a guess.
			d.log.Debug("idle shutdown: no activity from the guest", "instance", inst.Name, "err", err)
			continue
		}
		d.mu.Lock()
		since := inst.ModifiedOn
		if t := d.lastActive[inst.key()]; t.After(since) {
			since = t
		}
		if a.Active() {
			d.lastActive[inst.key()] = now
		}
		d.mu.Unlock()
		if a.Active() || now.Sub(since) < limit {
			continue
		}
		why := fmt.Sprintf("Stop after %s idle (idleTimeBeforeShutdown %s)", now.Sub(since).Round(time.Second), inst.IdleTime)
		// Only if nothing changed while the guests were asked: the idle
		// setting, a start and stop in between, any update.
		still := func(cur Instance) bool {
			return cur.State == StateRunning && cur.IdleTime == inst.IdleTime && cur.ModifiedOn.Equal(inst.ModifiedOn)
		}
		if _, err := d.svc.beginIf(inst.Workspace, inst.Name, ActionStop, TriggerIdleShutdown, why, still); err != nil && !errors.Is(err, errChanged) {
			d.log.Warn("idle shutdown refused", "instance", inst.Name, "err", err)
		}
	}
}
