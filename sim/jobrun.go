package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/amlsim/amlsim/sim/clock"
	"github.com/amlsim/amlsim/sim/store"
)

// jobEngine runs the jobs that have not ended: a goroutine per job walks
// it through its statuses, and each instance has one slot per vCPU of its
// Azure size, taken by the queued jobs in the order they came (the seed:
// an instance "runs several jobs in parallel and has one job queue").
// Every status is stored as it is reached, so a restarted server resumes
// each job where it was: a running one is attached to again, as its
// command runs on in the guest.
type jobEngine struct {
	s *Service

	mu sync.Mutex
	// running counts the slots taken on each instance (by key); held
	// marks the jobs whose slot resume took for them.
	running map[string]int
	held    map[string]bool
	// stop is closed to cancel a job's run (by job key).
	stop map[string]chan struct{}
	// changed is closed, and replaced, when a slot frees or an instance
	// may have changed state.
	changed chan struct{}
}

func newJobEngine(s *Service) *jobEngine {
	return &jobEngine{s: s, running: map[string]int{}, held: map[string]bool{}, stop: map[string]chan struct{}{}, changed: make(chan struct{})}
}

// launch starts the run of the job at key unless it runs already.
func (e *jobEngine) launch(key string) {
	e.mu.Lock()
	if _, ok := e.stop[key]; ok {
		e.mu.Unlock()
		return
	}
	stop := make(chan struct{})
	e.stop[key] = stop
	e.mu.Unlock()
	e.s.wg.Add(1)
	go func() {
		defer e.s.wg.Done()
		if err := e.run(e.s.ctx, key, stop); err != nil && e.s.ctx.Err() == nil {
			e.s.log.Error("job", "job", key, "err", err)
		}
		e.mu.Lock()
		delete(e.stop, key)
		e.mu.Unlock()
	}()
}

// cancel tells the run of the job at key to stop.
func (e *jobEngine) cancel(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if stop, ok := e.stop[key]; ok {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}
}

// runningOn counts the jobs holding a slot of the instance at key.
func (e *jobEngine) runningOn(instKey string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running[instKey]
}

// poke wakes the queued jobs to look at their instances again.
func (e *jobEngine) poke() {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.changed)
	e.changed = make(chan struct{})
}

// resume launches every job that has not ended (at the service's start).
// The jobs that were running take their slots first, before any queued
// job can.
func (e *jobEngine) resume() error {
	var jobs []Job
	err := e.s.st.View(func(tx *store.Tx) error {
		return store.Each(tx, bucketJobs, func(_ string, j Job) error {
			if !j.Status.Terminal() {
				jobs = append(jobs, j)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.started() {
			inst, ok, err := e.instance(j)
			if err != nil {
				return err
			}
			if ok {
				e.mu.Lock()
				e.running[inst.key()]++
				e.held[j.key()] = true
				e.mu.Unlock()
			}
		}
	}
	for _, j := range jobs {
		e.launch(j.key())
	}
	return nil
}

// started reports whether the job's command was started (it holds a
// slot until it ends).
func (j Job) started() bool {
	return j.Status == JobRunning || j.Status == JobFinalizing || j.Status == JobCancelRequested && !j.StartTime.IsZero()
}

// set changes the job at key in a transaction; ErrJobGone if it was
// deleted.
func (e *jobEngine) set(key string, change func(*Job)) (Job, error) {
	var job Job
	err := e.s.st.Update(func(tx *store.Tx) error {
		ok, err := tx.Get(bucketJobs, key, &job)
		if err != nil {
			return err
		}
		if !ok {
			return ErrJobGone
		}
		change(&job)
		return tx.Put(bucketJobs, key, job)
	})
	return job, err
}

// instance returns the instance a job runs on; ok is false when it is
// gone.
func (e *jobEngine) instance(j Job) (inst Instance, ok bool, err error) {
	err = e.s.st.View(func(tx *store.Tx) error {
		ws, err := getWorkspace(tx, j.Workspace)
		if err != nil {
			if IsKind(err, KindNotFound) {
				return nil
			}
			return err
		}
		inst, ok, err = getInstance(tx, instanceKey(ws.Location, j.Compute))
		return err
	})
	return inst, ok, err
}

// run walks the job at key to its end. stop is closed when the job is
// canceled; ctx ends when the service closes (the job then stays as it
// is, to be resumed).
func (e *jobEngine) run(ctx context.Context, key string, stop <-chan struct{}) error {
	job, err := e.set(key, func(j *Job) {
		if j.Status == JobNotStarted {
			j.Status = JobStarting
		}
	})
	if err != nil {
		return ignoreGone(err)
	}
	// Starting and Preparing take no time here: no image is built, no
	// node allocated.
	for _, next := range []JobStatus{JobPreparing, JobQueued} {
		if job.Status != JobStarting && job.Status != JobPreparing {
			break
		}
		if job, err = e.set(key, func(j *Job) { j.Status = next }); err != nil {
			return ignoreGone(err)
		}
	}
	var inst Instance
	switch job.Status {
	case JobCancelRequested:
		if !job.started() {
			return e.end(key, JobCanceled, nil, nil)
		}
		// Canceled while running, before a restart: stop the command.
		if inst, err = e.hold(job); err != nil {
			return e.fail(key, err)
		}
		defer e.release(inst.key())
	case JobQueued:
		if inst, err = e.wait(ctx, job, stop); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errCanceled) {
				return e.end(key, JobCanceled, nil, nil)
			}
			return e.fail(key, err)
		}
		defer e.release(inst.key())
		now := e.s.now().UTC()
		if job, err = e.set(key, func(j *Job) { j.Status, j.StartTime = JobRunning, now }); err != nil {
			return ignoreGone(err)
		}
		e.poke() // the next in the queue may go
	case JobRunning, JobFinalizing:
		if inst, err = e.hold(job); err != nil {
			return e.fail(key, err)
		}
		defer e.release(inst.key())
	default:
		return fmt.Errorf("job %s: no run from status %s", key, job.Status)
	}
	return e.execute(ctx, key, job, inst, stop)
}

var errCanceled = errors.New("canceled")

func ignoreGone(err error) error {
	if errors.Is(err, ErrJobGone) {
		return nil
	}
	return err
}

// wait queues the job until its instance is Running with a slot free and
// no job before it waiting, then takes the slot.
func (e *jobEngine) wait(ctx context.Context, job Job, stop <-chan struct{}) (Instance, error) {
	for {
		inst, ok, err := e.instance(job)
		if err != nil {
			return Instance{}, err
		}
		if !ok {
			return Instance{}, computeGone(job)
		}
		first, err := e.first(job)
		if err != nil {
			return Instance{}, err
		}
		k := inst.key()
		e.mu.Lock()
		if inst.State == StateRunning && first && e.running[k] < max(inst.Size.VCPUs, 1) {
			e.running[k]++
			e.mu.Unlock()
			return inst, nil
		}
		changed := e.changed
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return Instance{}, ctx.Err()
		case <-stop:
			e.poke()
			return Instance{}, errCanceled
		case <-changed:
		case <-time.After(time.Second):
			// An instance's state changes without a poke (drift, a
			// schedule): look again now and then.
		}
	}
}

// first reports whether no job queued before job on the same instance is
// still waiting for a slot (the store knows them all, even those whose
// run has not begun).
func (e *jobEngine) first(job Job) (bool, error) {
	first := true
	err := e.s.st.View(func(tx *store.Tx) error {
		return store.Each(tx, bucketJobs, func(_ string, j Job) error {
			waiting := j.Status == JobNotStarted || j.Status == JobStarting || j.Status == JobPreparing || j.Status == JobQueued
			if waiting && j.Seq < job.Seq && j.Workspace.key() == job.Workspace.key() && strings.EqualFold(j.Compute, job.Compute) {
				first = false
			}
			return nil
		})
	})
	return first, err
}

// hold returns the instance of a job that was running before a restart,
// whose slot resume took.
func (e *jobEngine) hold(job Job) (Instance, error) {
	e.mu.Lock()
	held := e.held[job.key()]
	delete(e.held, job.key())
	e.mu.Unlock()
	inst, ok, err := e.instance(job)
	if err != nil {
		return Instance{}, err
	}
	if !ok || !held {
		return Instance{}, computeGone(job)
	}
	return inst, nil
}

func (e *jobEngine) release(instKey string) {
	e.mu.Lock()
	e.running[instKey]--
	e.mu.Unlock()
	e.poke()
}

func computeGone(job Job) error {
	return userError(nil, "The compute instance '%s' the job ran on was deleted.", job.Compute)
}

// execute runs (or, after a restart, attaches to) the job's command in
// the guest, stopping it when the job is canceled or its timeout passes,
// and records the outcome.
func (e *jobEngine) execute(ctx context.Context, key string, job Job, inst Instance, stop <-chan struct{}) error {
	dir := e.s.LogDir(job)
	logPath := filepath.Join(dir, filepath.FromSlash(StdLog))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return e.fail(key, err)
	}
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return e.fail(key, err)
	}
	defer out.Close()
	var offset int64
	if fi, err := out.Stat(); err == nil {
		offset = fi.Size()
	}

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	why := make(chan string, 2) // why the run was cut short: "cancel" or "timeout"
	go func() {
		var timeout <-chan struct{}
		if job.Timeout > 0 {
			t := make(chan struct{})
			timeout = t
			go func() {
				left := job.Timeout - e.s.now().Sub(job.StartTime)
				if clock.Sleep(runCtx, e.s.clock, left) == nil {
					close(t)
				}
			}()
		}
		select {
		case <-stop:
			why <- "cancel"
			cancelRun()
		case <-timeout:
			why <- "timeout"
			cancelRun()
		case <-runCtx.Done():
		}
	}()
	if job.Status == JobCancelRequested {
		why <- "cancel"
		cancelRun()
	}

	code, err := e.s.guest.RunJob(runCtx, inst, job, out, offset)
	if err != nil && runCtx.Err() != nil {
		if ctx.Err() != nil {
			return nil // the service closes: the command runs on
		}
		code, err = e.s.guest.StopJob(ctx, inst, job)
		if err != nil {
			return e.fail(key, err)
		}
		if <-why == "timeout" {
			// "The max run duration …, after which the job will be
			// cancelled" (REST spec, JobLimits.timeout).
			msg := fmt.Sprintf("The job ran longer than its limits.timeout (%s) and was canceled.", job.Timeout)
			fmt.Fprintf(out, "\namlsim: %s\n", msg)
			if _, err := e.set(key, func(j *Job) { j.Warnings = append(j.Warnings, msg) }); err != nil {
				return ignoreGone(err)
			}
		} else {
			fmt.Fprintf(out, "\namlsim: the job was canceled.\n")
		}
		return e.end(key, JobCanceled, &code, nil)
	}
	if err != nil {
		if cur, ok, _ := e.instance(job); !ok || cur.State != StateRunning {
			err = userError(nil, "The compute instance '%s' stopped while the job ran: %v", job.Compute, err)
		}
		return e.fail(key, err)
	}
	if _, err := e.set(key, func(j *Job) { j.Status = JobFinalizing }); err != nil {
		return ignoreGone(err)
	}
	if code != 0 {
		// As the service words a command's failure (Azure-Samples/contoso-chat#51).
		process, _, _ := strings.Cut(strings.TrimSpace(job.Command), " ")
		return e.end(key, JobFailed, &code, userError(nil,
			"Execution failed. User process '%s' exited with status code %d. Please check log file '%s' for error details.", process, code, StdLog))
	}
	return e.end(key, JobCompleted, &code, nil)
}

// fail ends a job as Failed because of err.
func (e *jobEngine) fail(key string, err error) error {
	return e.end(key, JobFailed, nil, err)
}

// end records a job's last status; a job being deleted goes.
func (e *jobEngine) end(key string, status JobStatus, code *int, cause error) error {
	now := e.s.now().UTC()
	var deleted Job
	err := e.s.st.Update(func(tx *store.Tx) error {
		var j Job
		ok, err := tx.Get(bucketJobs, key, &j)
		if err != nil || !ok {
			return err
		}
		if j.Deleting {
			deleted = j
			return tx.Delete(bucketJobs, key)
		}
		j.Status, j.EndTime, j.ExitCode = status, now, code
		if cause != nil {
			ae := AsError(cause)
			j.Error = &InstanceError{Code: ae.Code, Message: ae.Message}
		}
		return tx.Put(bucketJobs, key, j)
	})
	if err == nil && deleted.Name != "" {
		err = os.RemoveAll(e.s.LogDir(deleted))
	}
	return err
}
