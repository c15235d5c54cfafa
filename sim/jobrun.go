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
//
// A run belongs to one job record (its ID): a record deleted and made
// again under the same name is another run.
type jobEngine struct {
	s *Service

	mu sync.Mutex
	// running counts the slots taken on each instance (by key).
	running map[string]int
	// held maps the ID of a job that was running before a restart to the
	// instance whose slot resume took for it, until its run takes it over.
	held map[string]string
	// stop is closed to cancel a run (by job ID).
	stop map[string]chan struct{}
	// changed is closed, and replaced, when a slot frees or an instance
	// may have changed state.
	changed chan struct{}
}

func newJobEngine(s *Service) *jobEngine {
	return &jobEngine{s: s, running: map[string]int{}, held: map[string]string{}, stop: map[string]chan struct{}{}, changed: make(chan struct{})}
}

// launch starts the run of a job unless it runs already.
func (e *jobEngine) launch(j Job) {
	e.mu.Lock()
	if _, ok := e.stop[j.ID]; ok {
		e.mu.Unlock()
		return
	}
	stop := make(chan struct{})
	e.stop[j.ID] = stop
	e.mu.Unlock()
	e.s.wg.Add(1)
	go func() {
		defer e.s.wg.Done()
		if err := e.run(e.s.ctx, j.key(), j.ID, stop); err != nil && e.s.ctx.Err() == nil {
			e.s.log.Error("job", "job", j.key(), "err", err)
		}
		e.mu.Lock()
		delete(e.stop, j.ID)
		inst, leftover := e.held[j.ID]
		e.mu.Unlock()
		if leftover {
			// Its run ended before taking over the slot resume took.
			e.release(j.ID, inst)
		}
	}()
}

// cancel tells the run of the job with this ID to stop.
func (e *jobEngine) cancel(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if stop, ok := e.stop[id]; ok {
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
		if !j.started() {
			continue
		}
		inst, ok, err := e.instance(j)
		if err != nil {
			return err
		}
		if ok {
			e.mu.Lock()
			e.running[inst.key()]++
			e.held[j.ID] = inst.key()
			e.mu.Unlock()
		}
	}
	for _, j := range jobs {
		e.launch(j)
	}
	return nil
}

// started reports whether the job's command was started (it holds a
// slot until it ends).
func (j Job) started() bool {
	return j.Status == JobRunning || j.Status == JobFinalizing || j.Status == JobCancelRequested && !j.StartTime.IsZero()
}

// set changes the job at key, if it is still the run id, in a
// transaction; errJobGone if it was deleted (or made again).
func (e *jobEngine) set(key, id string, change func(*Job)) (Job, error) {
	var job Job
	err := e.s.st.Update(func(tx *store.Tx) error {
		ok, err := tx.Get(bucketJobs, key, &job)
		if err != nil {
			return err
		}
		if !ok || job.ID != id {
			return errJobGone
		}
		change(&job)
		return tx.Put(bucketJobs, key, job)
	})
	return job, err
}

// advance moves the job from status from to next; a job in another
// status (a cancel came first: CancelRequested) is returned as it is.
func (e *jobEngine) advance(key, id string, from, next JobStatus, also func(*Job)) (Job, error) {
	return e.set(key, id, func(j *Job) {
		if j.Status != from {
			return
		}
		j.Status = next
		if also != nil {
			also(j)
		}
	})
}

// instance returns the instance a job runs on; ok is false when it is
// gone (an instance of that name in another workspace is not it).
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
		ok = ok && inst.Workspace.key() == j.Workspace.key()
		return err
	})
	return inst, ok, err
}

// run walks the job at key, run id, to its end. stop is closed when the
// job is canceled; ctx ends when the service closes (the job then stays
// as it is, to be resumed).
func (e *jobEngine) run(ctx context.Context, key, id string, stop <-chan struct{}) error {
	// Starting and Preparing take no time here: no image is built, no
	// node allocated.
	var job Job
	var err error
	for _, step := range [][2]JobStatus{{JobNotStarted, JobStarting}, {JobStarting, JobPreparing}, {JobPreparing, JobQueued}} {
		if job, err = e.advance(key, id, step[0], step[1], nil); err != nil {
			return ignoreGone(err)
		}
	}
	if job.started() {
		// Running before a restart: its slot was taken back by resume.
		instKey, inst, err := e.hold(job)
		if err != nil {
			return e.fail(key, id, err)
		}
		defer e.release("", instKey)
		return e.execute(ctx, key, job, inst, stop)
	}
	switch job.Status {
	case JobCancelRequested:
		return e.end(key, id, JobCanceled, nil, nil)
	case JobQueued:
	default:
		return fmt.Errorf("job %s: no run from status %s", key, job.Status)
	}
	inst, err := e.wait(ctx, job, stop)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errCanceled) {
			return e.end(key, id, JobCanceled, nil, nil)
		}
		return e.fail(key, id, err)
	}
	defer e.release("", inst.key())
	now := e.s.now().UTC()
	job, err = e.advance(key, id, JobQueued, JobRunning, func(j *Job) { j.StartTime = now })
	e.poke() // the next in the queue may go
	if err != nil {
		return ignoreGone(err)
	}
	if job.Status == JobCancelRequested {
		return e.end(key, id, JobCanceled, nil, nil)
	}
	return e.execute(ctx, key, job, inst, stop)
}

var errCanceled = errors.New("canceled")

func ignoreGone(err error) error {
	if errors.Is(err, errJobGone) {
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

// hold takes over the slot resume took for a job that was running before
// a restart.
func (e *jobEngine) hold(job Job) (instKey string, inst Instance, err error) {
	e.mu.Lock()
	instKey, held := e.held[job.ID]
	delete(e.held, job.ID)
	e.mu.Unlock()
	if !held {
		return "", Instance{}, computeGone(job)
	}
	inst, ok, err := e.instance(job)
	if err == nil && (!ok || inst.key() != instKey) {
		err = computeGone(job)
	}
	if err != nil {
		e.release("", instKey)
		return "", Instance{}, err
	}
	return instKey, inst, nil
}

// release gives back a slot of the instance at instKey (taken for the job
// id by resume, when id is set).
func (e *jobEngine) release(id, instKey string) {
	e.mu.Lock()
	if id != "" {
		delete(e.held, id)
	}
	e.running[instKey]--
	if e.running[instKey] <= 0 {
		delete(e.running, instKey)
	}
	e.mu.Unlock()
	e.poke()
}

func computeGone(job Job) error {
	return userError(nil, "The compute instance '%s' the job ran on was deleted.", job.Compute)
}

// execute starts (or, after a restart, attaches to) the job's command in
// the guest, stopping it when the job is canceled or its timeout passes,
// and records the outcome.
func (e *jobEngine) execute(ctx context.Context, key string, job Job, inst Instance, stop <-chan struct{}) error {
	id := job.ID
	logPath := filepath.Join(e.s.LogDir(job), filepath.FromSlash(StdLog))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return e.fail(key, id, err)
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if !job.Launched {
		flags |= os.O_TRUNC // a run that starts now starts its log
	}
	out, err := os.OpenFile(logPath, flags, 0o644)
	if err != nil {
		return e.fail(key, id, err)
	}
	defer out.Close()
	var offset int64
	if fi, err := out.Stat(); err == nil {
		offset = fi.Size()
	}

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	why := make(chan string, 2) // why the run was cut short: "cancel" or "timeout"
	limit, began := job.Timeout, job.StartTime
	go func() {
		var timeout <-chan struct{}
		if limit > 0 {
			t := make(chan struct{})
			timeout = t
			go func() {
				left := limit - e.s.now().Sub(began)
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

	// tried: the command may be in the guest (a start cut short by a
	// cancel may have started it).
	tried := job.Launched
	if !job.Launched && runCtx.Err() == nil {
		tried = true
		if err := e.s.guest.StartJob(runCtx, inst, job); err == nil {
			if job, err = e.set(key, id, func(j *Job) { j.Launched = true }); err != nil {
				return ignoreGone(err)
			}
		} else if runCtx.Err() == nil {
			return e.failed(key, job, err)
		}
	}
	code := 0
	if runCtx.Err() == nil {
		code, err = e.s.guest.WaitJob(runCtx, inst, job, out, offset)
	}
	if runCtx.Err() != nil {
		if ctx.Err() != nil {
			return nil // the service closes: the command runs on
		}
		if tried {
			code, err = e.s.guest.StopJob(ctx, inst, job)
			if err != nil {
				if ctx.Err() != nil {
					return nil // stays CancelRequested, to be stopped at the next start
				}
				return e.fail(key, id, err)
			}
		}
		if <-why == "timeout" {
			// "The max run duration …, after which the job will be
			// cancelled" (REST spec, JobLimits.timeout).
			msg := fmt.Sprintf("The job ran longer than its limits.timeout (%s) and was canceled.", job.Timeout)
			fmt.Fprintf(out, "\namlsim: %s\n", msg)
			if _, err := e.set(key, id, func(j *Job) { j.Warnings = append(j.Warnings, msg) }); err != nil {
				return ignoreGone(err)
			}
		} else {
			fmt.Fprintf(out, "\namlsim: the job was canceled.\n")
		}
		var exit *int
		if job.Launched {
			exit = &code
		}
		return e.end(key, id, JobCanceled, exit, nil)
	}
	if err != nil {
		return e.failed(key, job, err)
	}
	if _, err := e.advance(key, id, JobRunning, JobFinalizing, nil); err != nil {
		return ignoreGone(err)
	}
	if code != 0 {
		// As the service words a command's failure (Azure-Samples/contoso-chat#51).
		process, _, _ := strings.Cut(strings.TrimSpace(job.Command), " ")
		return e.end(key, id, JobFailed, &code, userError(nil,
			"Execution failed. User process '%s' exited with status code %d. Please check log file '%s' for error details.", process, code, StdLog))
	}
	return e.end(key, id, JobCompleted, &code, nil)
}

// failed ends a job whose command the guest could not run or follow,
// saying so when its instance is no longer running.
func (e *jobEngine) failed(key string, job Job, err error) error {
	if cur, ok, _ := e.instance(job); !ok || cur.State != StateRunning {
		err = userError(nil, "The compute instance '%s' stopped while the job ran: %v", job.Compute, err)
	}
	return e.fail(key, job.ID, err)
}

// fail ends a job as Failed because of err.
func (e *jobEngine) fail(key, id string, err error) error {
	return e.end(key, id, JobFailed, nil, err)
}

// end records a job's last status; a job being deleted goes, with its
// logs.
func (e *jobEngine) end(key, id string, status JobStatus, code *int, cause error) error {
	now := e.s.now().UTC()
	var deleted Job
	err := e.s.st.Update(func(tx *store.Tx) error {
		var j Job
		ok, err := tx.Get(bucketJobs, key, &j)
		if err != nil || !ok || j.ID != id {
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
