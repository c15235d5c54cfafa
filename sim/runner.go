package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim/clock"
	"github.com/amlsim/amlsim/sim/store"
	"github.com/sosodev/duration"
)

// runner runs the work of operations in the background, one worker per
// instance, and records how each ends as the lifecycle table says. A worker
// launched for an operation that is no longer its instance's current one
// does nothing; a worker cut short by Close records nothing, and the
// reconciler resumes its operation at the next start.
type runner struct {
	cfg   Config
	st    *store.Store
	drv   hypervisor.Driver
	guest Guest
	log   *slog.Logger
	now   func() time.Time
	// clock is the service's clock (a test clock in tests), for waits.
	clock clock.Clock
	// settle checks an instance against its VM once its operation ended
	// (the reconciler's check): a failure's nominal outcome gives way to
	// what the VM really does.
	settle func(ctx context.Context, key string)
	// ended is told of each operation that succeeded (fault injection
	// acts on the VMs of instances that became Running).
	ended func(key string, action Action)
	// snaps gives new VMs a snapshot to start from (fast create); nil
	// when the driver or guest cannot, or the configuration says no.
	snaps *snapshots

	// ctx ends when the service closes.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	workers map[string]*worker // by instance key
	wg      sync.WaitGroup
}

type worker struct {
	op     string
	cancel context.CancelFunc
	done   chan struct{}
}

// job is one run of an operation's work.
type job struct {
	ctx  context.Context
	op   string
	inst Instance // as recorded when the work began
	// fault is the fault rule the operation was started under, if any.
	fault *OperationFault
}

func (j job) key() string { return j.inst.key() }

// launch runs the work of operation op on the instance at key, first
// cancelling and waiting for the worker of any earlier operation (a delete
// cuts in on a create, say). Launching the operation already running is a
// no-op.
func (r *runner) launch(key, op string) { r.spawn(key, op, false) }

// resume runs the lifecycle table's Resume of operation op, only when no
// worker runs for the instance: the reconciler's way to take up an
// operation a crash cut short without touching one a request has just
// launched.
func (r *runner) resume(key, op string) { r.spawn(key, op, true) }

func (r *runner) spawn(key, op string, resume bool) {
	r.mu.Lock()
	prev := r.workers[key]
	if prev != nil && (prev.op == op || resume) || r.ctx.Err() != nil {
		// Running already, or closing: the next start resumes it.
		r.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	w := &worker{op: op, cancel: cancel, done: make(chan struct{})}
	r.workers[key] = w
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer close(w.done)
		defer cancel()
		defer func() {
			r.mu.Lock()
			if r.workers[key] == w {
				delete(r.workers, key)
			}
			r.mu.Unlock()
		}()
		if prev != nil {
			prev.cancel()
			<-prev.done
		}
		if err := r.run(ctx, key, op, resume); err != nil && ctx.Err() == nil {
			r.log.Error("operation failed", "instance", key, "operation", op, "err", err)
		}
	}()
}

// busy reports whether a worker runs for the instance.
func (r *runner) busy(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.workers[key] != nil
}

// close stops every worker without recording anything.
func (r *runner) close() {
	r.cancel()
	r.wg.Wait()
}

// run does the work (or, resuming, the Resume) of operation op and
// records its outcome.
func (r *runner) run(ctx context.Context, key, op string, resume bool) error {
	var inst Instance
	var rec Operation
	var current bool
	err := r.st.View(func(tx *store.Tx) error {
		var err error
		inst, current, err = getInstance(tx, key)
		current = current && inst.Operation == op
		if err != nil || !current {
			return err
		}
		rec, _, err = getOperation(tx, op)
		return err
	})
	if err != nil || !current {
		return err // superseded before it began: ended by whoever superseded it
	}
	row := lifecycle[inst.State]
	if row.Op == nil {
		return fmt.Errorf("operation %s of %s: state %s has no work in the lifecycle table", op, inst.Name, inst.State)
	}
	w := row.Op.Work
	if resume {
		w = row.Op.Resume
	}
	werr := r.injected(ctx, rec.Fault)
	if werr == nil {
		werr = w(r, job{ctx: ctx, op: op, inst: inst, fault: rec.Fault})
	}
	if ctx.Err() != nil {
		// Closing (the reconciler resumes it at the next start) or
		// superseded (ended as Canceled by the request that cut in).
		return werr
	}
	ferr := r.finish(key, op, wrapOpError(row.Op.Action, inst.Name, werr))
	if ferr == nil && r.settle != nil {
		r.settle(r.ctx, key)
	}
	if ferr == nil && werr == nil && r.ended != nil {
		r.ended(key, row.Op.Action)
	}
	return errors.Join(werr, ferr)
}

// injected applies the fault an operation was started under before its
// work: a delay waits on the service's clock, a failure is the outcome
// (the work does not run).
func (r *runner) injected(ctx context.Context, f *OperationFault) error {
	switch {
	case f == nil:
		return nil
	case f.Effect.Delay != "":
		d, err := duration.Parse(f.Effect.Delay)
		if err != nil {
			return err
		}
		return clock.Sleep(ctx, r.clock, d.ToTimeDuration())
	case f.Effect.Fail != nil:
		return Errorf(KindBadRequest, f.Effect.Fail.Code, "%s", f.Effect.Fail.Message)
	}
	return nil
}

// finish records the end of operation op on the instance at key: the
// state the lifecycle table gives for the outcome, the operation's status
// and, on failure, the error on the instance. An operation that is no
// longer the instance's current one was ended by whoever superseded it.
func (r *runner) finish(key, opID string, opErr error) error {
	return r.st.Update(func(tx *store.Tx) error {
		now := r.now().UTC()
		inst, ok, err := getInstance(tx, key)
		if err != nil || !ok || inst.Operation != opID {
			return err
		}
		op, _, err := getOperation(tx, opID)
		if err != nil {
			return err
		}
		from := inst.State
		row := lifecycle[from].Op
		var setupErr *SetupError
		to := row.Done
		switch {
		case opErr == nil:
		case errors.As(opErr, &setupErr):
			to = row.SetupFailed
		case errors.Is(opErr, hypervisor.ErrNotFound):
			to = row.Vanished
		default:
			to = row.Failed
		}
		op.End = now
		if opErr == nil || to == "" && errors.Is(opErr, hypervisor.ErrNotFound) {
			op.Status = OpSucceeded
		} else {
			e := AsError(opErr)
			op.Status, op.Error = OpFailed, e
			inst.Errors = append(inst.Errors, InstanceError{Code: e.Code, Message: e.Message})
		}
		if err := putOperation(tx, op); err != nil {
			return err
		}
		if to == "" {
			// The name, quota and ports are free again (S19).
			if err := deleteInstance(tx, key); err != nil {
				return err
			}
			return endWorkspaceDelete(tx, inst.Workspace, now)
		}
		if row.Action == ActionDelete {
			if err := failWorkspaceDelete(tx, inst, op.Error, now); err != nil {
				return err
			}
		}
		if inst.Resize != nil {
			if opErr == nil {
				inst.Size, inst.Local = inst.Resize.Size, inst.Resize.Local
			}
			inst.Resize = nil
		}
		inst.State, inst.Operation, inst.ModifiedOn = to, "", now
		if inst.LastOperation != nil {
			inst.LastOperation.Time = now
			inst.LastOperation.Status = "Succeeded"
			if op.Status == OpFailed {
				inst.LastOperation.Status = inst.LastOperation.Name + "Failed"
			}
		}
		if opErr != nil {
			inst.addEvent(Event{Time: now, State: to, Message: string(from) + " failed: " + AsError(opErr).Message})
		} else {
			inst.Errors = nil
			inst.addEvent(Event{Time: now, State: to, Message: string(from) + " done: " + string(to)})
		}
		return putInstance(tx, inst)
	})
}

// step is one named part of a long operation, with its undo.
type step struct {
	name string
	do   func(ctx context.Context) error
	undo func(ctx context.Context) error
	// done is the event recorded when the step succeeds, if any.
	done string
}

// runSteps runs steps in order, reporting each step's done event; on
// failure it runs the undos of the steps done, in reverse, and joins their
// errors to the failure. Cancelled steps are not undone: the operation
// that cancelled them, or its resumption, takes over.
func runSteps(ctx context.Context, report func(string), steps []step) error {
	var done []step
	for _, st := range steps {
		if err := st.do(ctx); err != nil {
			err = fmt.Errorf("%s: %w", st.name, err)
			if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			undoCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			for i := len(done) - 1; i >= 0; i-- {
				if done[i].undo != nil {
					if uerr := done[i].undo(undoCtx); uerr != nil {
						err = errors.Join(err, fmt.Errorf("undo %s: %w", done[i].name, uerr))
					}
				}
			}
			return err
		}
		done = append(done, st)
		if st.done != "" {
			report(st.done)
		}
	}
	return nil
}

// event records a step of the instance's life.
func (r *runner) event(key, msg string) {
	err := r.st.Update(func(tx *store.Tx) error {
		inst, ok, err := getInstance(tx, key)
		if err != nil || !ok {
			return err
		}
		inst.addEvent(Event{Time: r.now().UTC(), State: inst.State, Message: msg})
		return putInstance(tx, inst)
	})
	if err != nil {
		r.log.Error("record event", "instance", key, "event", msg, "err", err)
	}
}

// reporter returns the event recorder of one instance.
func (r *runner) reporter(key string) func(string) {
	return func(msg string) { r.event(key, msg) }
}

// recordRuns keeps the outcome of the latest script runs on the instance.
func (r *runner) recordRuns(key string, runs []ScriptRun) {
	err := r.st.Update(func(tx *store.Tx) error {
		inst, ok, err := getInstance(tx, key)
		if err != nil || !ok {
			return err
		}
		inst.ScriptRuns = runs
		return putInstance(tx, inst)
	})
	if err != nil {
		r.log.Error("record script runs", "instance", key, "err", err)
	}
}

// --- the works of the lifecycle table ---

// create builds and boots the instance's VM and waits until its guest is
// ready. Each step tolerates having been done already, so a create cut
// short by a server restart resumes.
func (r *runner) create(j job) error {
	inst, exitCode := withInjectedScript(j.inst, Creation, j.fault)
	err := runSteps(j.ctx, r.reporter(j.key()), []step{
		{name: "define domain", do: func(ctx context.Context) error {
			if _, err := r.drv.Lookup(ctx, inst.Domain); err == nil {
				return nil // defined before a restart of the server
			}
			seed, err := r.guest.Seed(inst)
			if err != nil {
				return err
			}
			spec := r.spec(inst, seed)
			if r.snaps != nil {
				spec.Snapshot = r.snaps.forShape(ctx, inst.Local, r.reporter(j.key()))
			}
			return r.drv.Define(ctx, spec)
		}, undo: func(ctx context.Context) error { return r.drv.Undefine(ctx, inst.Domain) }, done: "VM defined"},
		{name: "start domain", do: func(ctx context.Context) error {
			return r.ensureRunning(ctx, inst.Domain)
		}, done: "VM started"},
		{name: "wait for guest", do: func(ctx context.Context) error {
			return r.waitReady(ctx, inst)
		}, done: "SSH up"},
	})
	if err == nil && len(inst.Scripts) > 0 {
		// Outside the steps: a failed script keeps the VM for inspection.
		err = r.runSetup(j.ctx, inst, ScriptRun{Kind: Creation, ExitCode: exitCode}, Creation, Startup)
	}
	return err
}

func (r *runner) start(j job) error {
	inst, exitCode, cleanup, err := injectStartupScript(j.inst, j.fault)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx := j.ctx
	report := r.reporter(j.key())
	err = r.ensureRunning(ctx, inst.Domain)
	if err == nil {
		report("VM started")
		err = r.waitReady(ctx, inst)
	}
	if err == nil {
		report("SSH up")
		if inst.Script(Startup) != nil {
			return r.runSetup(ctx, inst, ScriptRun{Kind: Startup, ExitCode: exitCode}, Startup) // the VM stays up for inspection
		}
		return nil
	}
	if ctx.Err() == nil && !errors.Is(err, hypervisor.ErrNotFound) {
		// A start that failed leaves the instance stopped, VM off.
		err = errors.Join(err, r.drv.Destroy(context.WithoutCancel(ctx), inst.Domain))
	}
	return err
}

func (r *runner) stop(j job) error {
	if err := r.shutdown(j.ctx, j.inst.Domain); err != nil {
		return err
	}
	r.event(j.key(), "VM powered off")
	return nil
}

// restart powers the VM off and on again rather than rebooting it in place:
// the forwards are re-applied and "ready" cannot be mistaken for the guest
// still going down.
func (r *runner) restart(j job) error {
	inst, exitCode, cleanup, err := injectStartupScript(j.inst, j.fault)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx := j.ctx
	report := r.reporter(j.key())
	if err := r.shutdown(ctx, inst.Domain); err != nil {
		return err
	}
	report("VM powered off")
	if err := r.ensureRunning(ctx, inst.Domain); err != nil {
		return err
	}
	report("VM started")
	if err := r.waitReady(ctx, inst); err != nil {
		return err
	}
	report("SSH up")
	if inst.Script(Startup) != nil {
		return r.runSetup(ctx, inst, ScriptRun{Kind: Startup, ExitCode: exitCode}, Startup)
	}
	return nil
}

// resize gives the stopped VM the new size's local resources; a VM that
// has them already is done.
func (r *runner) resize(j job) error {
	rs := j.inst.Resize
	if rs == nil {
		return fmt.Errorf("resize of %s: no size recorded", j.inst.Name)
	}
	d, err := r.drv.Lookup(j.ctx, j.inst.Domain)
	if err != nil {
		return err
	}
	if d.VCPUs == rs.Local.VCPUs && d.MemoryMiB == rs.Local.MemoryMiB {
		return nil
	}
	if err := r.drv.SetResources(j.ctx, j.inst.Domain, rs.Local.VCPUs, rs.Local.MemoryMiB); err != nil {
		// The change takes several libvirt calls: put the old resources
		// back, as the instance keeps its old size.
		old := j.inst.Local
		if j.ctx.Err() == nil {
			if uerr := r.drv.SetResources(context.WithoutCancel(j.ctx), j.inst.Domain, old.VCPUs, old.MemoryMiB); uerr != nil {
				err = errors.Join(err, fmt.Errorf("put back %d vCPUs, %d MiB: %w", old.VCPUs, old.MemoryMiB, uerr))
			}
		}
		return err
	}
	r.event(j.key(), fmt.Sprintf("VM resized to %d vCPUs, %d MiB", rs.Local.VCPUs, rs.Local.MemoryMiB))
	return nil
}

// delete removes the VM and all its files; finish then removes the record.
// A VM already gone is deleted.
func (r *runner) delete(j job) error {
	err := r.drv.Undefine(j.ctx, j.inst.Domain)
	if errors.Is(err, hypervisor.ErrNotFound) {
		return nil
	}
	return err
}

// shutdown powers the domain off, politely first; a domain already off is
// done.
func (r *runner) shutdown(ctx context.Context, domain string) error {
	d, err := r.drv.Lookup(ctx, domain)
	if err != nil {
		return err
	}
	if d.State == hypervisor.StateShutoff || d.State == hypervisor.StateCrashed {
		return nil
	}
	return r.drv.Shutdown(ctx, domain, r.cfg.Timeouts.ShutdownGrace.Duration)
}

// ensureRunning brings the domain to running with its forwards in place,
// whatever a start cut short by a crash left: off, still starting (libvirt
// shows a domain paused while QEMU starts), or running with or without its
// forwards.
func (r *runner) ensureRunning(ctx context.Context, domain string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := r.drv.Lookup(ctx, domain)
		if err != nil {
			return err
		}
		switch d.State {
		case hypervisor.StateRunning:
			if f, ok := r.drv.(hypervisor.Forwarder); ok {
				return f.EnsureForwards(ctx, domain)
			}
			return nil
		case hypervisor.StateShutoff, hypervisor.StateCrashed:
			return r.drv.Start(ctx, domain)
		case hypervisor.StatePaused:
			// A domain restored from a snapshot by a server that stopped
			// before it ran: Start finishes that. Any other pause is waited
			// out.
			if err := r.drv.Start(ctx, domain); !errors.Is(err, hypervisor.ErrInvalidState) {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("domain %s stayed %s for a minute", domain, d.State)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// runSetup waits for the setup scripts of the given kinds that the
// guest's current boot runs; a script of those kinds that cannot be found
// fails at once, as it does in Azure's VM.
//
// injected is the run a setupScript fault asked for (ExitCode 0: none): a
// guest that runs no scripts (the fake driver's) reports no runs, and the
// injected failure is the outcome all the same.
func (r *runner) runSetup(ctx context.Context, inst Instance, injected ScriptRun, kinds ...ScriptKind) error {
	for _, k := range kinds {
		if sc := inst.Script(k); sc != nil && sc.Missing != "" {
			return &SetupError{Instance: inst.Name, Missing: sc}
		}
	}
	limit := r.cfg.Timeouts.Setup.Duration
	if len(inst.Scripts) > 0 {
		var total time.Duration
		for _, sc := range inst.Scripts {
			d := TimeoutDuration(sc.Timeout)
			if d <= 0 {
				total = 0
				break
			}
			total += d
		}
		if total > 0 {
			limit = total + 2*time.Minute
		}
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	runs, err := r.guest.RunSetup(ctx, inst, r.reporter(inst.key()))
	if len(runs) > 0 {
		r.recordRuns(inst.key(), runs)
	}
	if err == nil && injected.ExitCode != 0 && len(runs) == 0 {
		injected.Log = "(not run: this driver runs no scripts)"
		err = &SetupError{Run: injected}
	}
	if err == nil {
		r.event(inst.key(), "setup done")
	}
	return err
}

func (r *runner) waitReady(ctx context.Context, inst Instance) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeouts.SSHReady.Duration)
	defer cancel()
	return r.guest.WaitReady(ctx, inst)
}

// spec is the hypervisor domain of an instance.
func (r *runner) spec(inst Instance, seed []byte) hypervisor.Spec {
	return hypervisor.Spec{
		Name:       inst.Domain,
		VCPUs:      inst.Local.VCPUs,
		MemoryMiB:  inst.Local.MemoryMiB,
		DiskSizeGB: r.cfg.Local.DiskGB,
		Seed:       seed,
		SSHPort:    inst.SSHPort,
		Forwards:   forwards(inst),
		Shares:     shares(inst),
		Labels: map[string]string{
			"instance":  inst.ID,
			"name":      inst.Name,
			"location":  inst.Location,
			"workspace": inst.Workspace.ResourceGroup + "/" + inst.Workspace.Name,
		},
	}
}

func forwards(inst Instance) []hypervisor.Forward {
	if !inst.HasApplications() {
		return nil
	}
	return []hypervisor.Forward{{HostPort: inst.AppPort, GuestPort: JupyterGuestPort}}
}

func shares(inst Instance) []hypervisor.Share {
	if inst.Share == "" {
		return nil
	}
	return []hypervisor.Share{{Tag: ShareTag, HostPath: inst.Share}}
}

// wrapOpError turns a failure of a background operation into the ARM error
// clients see on the operation and in the instance's errors. A vanished VM
// keeps hypervisor.ErrNotFound in its chain, so finish can tell.
func wrapOpError(action Action, name string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var se *SetupError
	if errors.As(err, &se) {
		return se
	}
	if errors.Is(err, hypervisor.ErrNotFound) {
		return &vanishedError{arm: Errorf(KindInternal, "VirtualMachineNotFound",
			"%s of compute instance '%s' failed: its virtual machine no longer exists (%v).", action, name, err)}
	}
	return Errorf(KindInternal, string(action)+"ComputeInstanceFailed", "%s of compute instance '%s' failed: %v", action, name, err)
}

// vanishedError is an operation's ARM error whose cause is a VM that is
// gone: it is hypervisor.ErrNotFound to errors.Is.
type vanishedError struct{ arm *Error }

func (v *vanishedError) Error() string        { return v.arm.Error() }
func (v *vanishedError) ARM() *Error          { return v.arm }
func (v *vanishedError) Is(target error) bool { return target == hypervisor.ErrNotFound }
