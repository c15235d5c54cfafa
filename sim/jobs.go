package sim

import (
	"cmp"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/sosodev/duration"

	"github.com/amlsim/amlsim/sim/store"
)

// Command jobs on compute instances (mission row S25): a workspace's jobs
// ("PUT …/workspaces/{ws}/jobs/{name}", REST spec 2024-04-01 mfe.json,
// Jobs_CreateOrUpdate) run on the instance their computeId names, one
// job per vCPU of its Azure size at a time, the others queued in the
// order they came. Under the libvirt driver the command runs in the guest
// as azureuser, as a plain process (no container runtime offline); the
// fake driver runs nothing and says so in the job's log.

const (
	bucketJobs         = "jobs"
	bucketEnvironments = "environments"
)

// JobStatus is a job's status (REST spec JobStatus). amlsim's jobs go
// NotStarted → Starting → Preparing → Queued → Running → Finalizing →
// Completed or Failed; a cancel makes them CancelRequested, then Canceled.
type JobStatus string

const (
	JobNotStarted      JobStatus = "NotStarted"
	JobStarting        JobStatus = "Starting"
	JobPreparing       JobStatus = "Preparing"
	JobQueued          JobStatus = "Queued"
	JobRunning         JobStatus = "Running"
	JobFinalizing      JobStatus = "Finalizing"
	JobCompleted       JobStatus = "Completed"
	JobFailed          JobStatus = "Failed"
	JobCancelRequested JobStatus = "CancelRequested"
	JobCanceled        JobStatus = "Canceled"
)

// Terminal reports whether a job in status s is over.
func (s JobStatus) Terminal() bool {
	return s == JobCompleted || s == JobFailed || s == JobCanceled
}

// Job is a command job as the simulator records it.
type Job struct {
	// ID identifies this job record: a job deleted and submitted again
	// under its name is another run, with another ID (it names the job's
	// directory in the guest, as Azure's runtime names it by a GUID).
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Workspace WorkspaceRef `json:"workspace"`
	// Spec is the job's properties as the client gave them, defaults
	// filled in and the read-only ones (status, parameters) left out: the
	// API answers them back.
	Spec map[string]any `json:"spec"`
	// Command, EnvironmentID and Variables are what runs; Compute is the
	// instance's name.
	Command       string            `json:"command"`
	EnvironmentID string            `json:"environmentId"`
	Variables     map[string]string `json:"variables,omitempty"`
	Compute       string            `json:"compute"`
	// Timeout is limits.timeout: a job running longer is canceled (0:
	// none).
	Timeout   time.Duration `json:"timeout,omitempty"`
	Status    JobStatus     `json:"status"`
	CreatedBy Principal     `json:"createdBy"`
	CreatedOn time.Time     `json:"createdOn"`
	// ModifiedOn is the time of the last PUT.
	ModifiedOn time.Time `json:"modifiedOn"`
	// Seq orders the queue: lower runs first.
	Seq uint64 `json:"seq"`
	// StartTime and EndTime bound the command's run (zero until then).
	StartTime time.Time `json:"startTime,omitzero"`
	EndTime   time.Time `json:"endTime,omitzero"`
	// Launched is set once the command was started in the guest: a
	// restarted server then attaches to it rather than starting it.
	Launched bool `json:"launched,omitempty"`
	// ExitCode is the command's, once it ended.
	ExitCode *int `json:"exitCode,omitempty"`
	// Error says why a Failed job failed.
	Error *InstanceError `json:"error,omitempty"`
	// Warnings are run history's warnings: what amlsim does differently.
	Warnings []string `json:"warnings,omitempty"`
	// Deleting marks a job whose delete waits for its cancel.
	Deleting bool `json:"deleting,omitempty"`
}

func jobKey(ref WorkspaceRef, name string) string { return ref.key() + "/" + name }

func (j Job) key() string { return jobKey(j.Workspace, j.Name) }

// Archived reports the job's isArchived.
func (j Job) Archived() bool { b, _ := j.Spec["isArchived"].(bool); return b }

// JobType is the job's jobType.
func (j Job) JobType() string { t, _ := j.Spec["jobType"].(string); return t }

// Tags are the job's tags.
func (j Job) Tags() map[string]string { return stringMap(j.Spec["tags"]) }

// LogDir is where the job's logs are kept on the host (the job's
// artifacts on Azure): user_logs/std_log.txt under it.
func (s *Service) LogDir(j Job) string {
	return filepath.Join(s.jobsDir, strings.ToLower(j.Workspace.ResourceGroup), strings.ToLower(j.Workspace.Name), j.Name)
}

// StdLog is the name, among a job's logs, of its command's output, as
// Azure's common runtime names it (azure-ai-ml JobLogPattern prefers it).
const StdLog = "user_logs/std_log.txt"

// jobNameRE is the spec's pattern of a job's name on PUT (mfe.json,
// Jobs_CreateOrUpdate's {id}).
var jobNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$`)

// MaxCommandBytes bounds a job's command.
const MaxCommandBytes = 256 << 10

// jobMutable are the properties an update may change; the others must
// stay as they are. The service's own answer to a changed one
// (MicrosoftDocs/azure-docs#122250): "Only description, tags,
// displayName, properties, and isArchived can be updated."
var jobMutable = []string{"description", "tags", "displayName", "properties", "isArchived"}

// jobReadOnly are the properties the service sets: a client may echo
// them back (azure-ai-ml's archive GETs the job and PUTs it whole).
var jobReadOnly = []string{"status", "parameters", "services"}

// userError is the shape Azure ML's service gives a refused job: code
// UserError, and the specific reason in innerError.
func userError(inner []string, format string, args ...any) *Error {
	e := Errorf(KindBadRequest, "UserError", format, args...)
	e.Inner = inner
	return e
}

// SubmitJob creates the job name in a workspace, or updates the
// properties an update may change; created reports which. A job is
// checked as Azure checks it: a Command job, a command, an environment
// that resolves, and a compute that is a compute instance of the
// workspace. spec is the properties object as the client sent it.
func (s *Service) SubmitJob(p Principal, ref WorkspaceRef, name string, spec map[string]any) (job Job, created bool, err error) {
	if !jobNameRE.MatchString(name) {
		return Job{}, false, userError([]string{"BadArgument"},
			"The job name '%s' is invalid: it must start with a letter or digit and have only letters, digits, '-' and '_', 255 characters at most.", name)
	}
	spec = normalizeJobSpec(spec)
	err = s.st.Update(func(tx *store.Tx) error {
		ws, err := getParent(tx, ref)
		if err != nil {
			return err
		}
		var old Job
		ok, err := tx.Get(bucketJobs, jobKey(ref, name), &old)
		if err != nil {
			return err
		}
		if ok {
			if old.Deleting {
				return Errorf(KindConflict, "Conflict", "The job '%s' is being deleted; submit it again once it is gone.", name)
			}
			job, err = updateJob(old, spec)
			if err != nil {
				return err
			}
			job.ModifiedOn = s.now().UTC()
			return tx.Put(bucketJobs, job.key(), job)
		}
		if ws.Deleting != "" {
			return Errorf(KindConflict, "WorkspaceBeingDeleted", "The workspace '%s' is being deleted.", ws.Name)
		}
		job, err = s.newJob(tx, ws, name, spec)
		if err != nil {
			return err
		}
		job.ID = uuid.NewString()
		job.CreatedBy, job.CreatedOn = p, s.now().UTC()
		job.ModifiedOn = job.CreatedOn
		created = true
		return tx.Put(bucketJobs, job.key(), job)
	})
	if err == nil && created {
		s.jobs.launch(job)
	}
	return job, created, err
}

// normalizeJobSpec fills in the spec's defaults (REST spec: experimentName
// "Default", isArchived false, resources instanceCount 1 and shmSize
// "2g") and drops nulls and read-only properties, so that a job read back
// and sent again compares equal.
func normalizeJobSpec(in map[string]any) map[string]any {
	spec := map[string]any{}
	for k, v := range in {
		if v != nil && !slices.Contains(jobReadOnly, k) {
			spec[k] = v
		}
	}
	if _, ok := spec["experimentName"]; !ok {
		spec["experimentName"] = "Default"
	}
	if _, ok := spec["isArchived"]; !ok {
		spec["isArchived"] = false
	}
	res, _ := spec["resources"].(map[string]any)
	res = maps.Clone(res)
	if res == nil {
		res = map[string]any{}
	}
	if _, ok := res["instanceCount"]; !ok {
		res["instanceCount"] = float64(1)
	}
	if _, ok := res["shmSize"]; !ok {
		res["shmSize"] = "2g"
	}
	spec["resources"] = res
	return spec
}

// updateJob applies a PUT to an existing job: only the mutable properties
// may differ, and the tags given replace the job's (Jobs_CreateOrUpdate).
func updateJob(old Job, spec map[string]any) (Job, error) {
	for k := range mergeKeys(old.Spec, spec) {
		if slices.Contains(jobMutable, k) {
			continue
		}
		if !reflect.DeepEqual(old.Spec[k], spec[k]) {
			e := userError([]string{"Immutable", "JobPropertyImmutable"},
				"A job with this name already exists. If you are trying to create a new job, use a different name. If you are trying to update an existing job, the existing job's %s cannot be changed. Only description, tags, displayName, properties, and isArchived can be updated.", k)
			e.Target = k
			return Job{}, e
		}
	}
	// "MFE does not allow existing properties to be updated, only for new
	// props to be added" (azure-ai-ml 1.4.0, _job_operations.py).
	oldProps, newProps := stringMap(old.Spec["properties"]), stringMap(spec["properties"])
	for k, v := range oldProps {
		if nv, ok := newProps[k]; ok && nv != v {
			return Job{}, userError([]string{"Immutable", "JobPropertyImmutable"},
				"The job's property '%s' cannot be changed once set; new properties can be added.", k)
		}
	}
	for k, v := range oldProps {
		newProps[k] = v
	}
	if len(newProps) > 0 {
		props := map[string]any{}
		for k, v := range newProps {
			props[k] = v
		}
		spec["properties"] = props
	}
	job := old
	job.Spec = spec
	return job, nil
}

func mergeKeys(a, b map[string]any) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := map[string]string{}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// newJob checks a new job's spec and makes its record.
func (s *Service) newJob(tx *store.Tx, ws Workspace, name string, spec map[string]any) (Job, error) {
	str := func(k string) string { v, _ := spec[k].(string); return v }
	switch t := str("jobType"); t {
	case "Command":
	case "AutoML", "Sweep", "Pipeline":
		return Job{}, userError([]string{"NotSupported"}, "amlsim runs Command jobs only; a %s job is not supported.", t)
	default:
		return Job{}, userError([]string{"BadArgument"}, "The jobType '%s' is not one of AutoML, Command, Sweep, Pipeline.", t)
	}
	cmd := str("command")
	if strings.TrimSpace(cmd) == "" {
		return Job{}, userError([]string{"BadArgument"}, "The command of a Command job is required and cannot be empty.")
	}
	if len(cmd) > MaxCommandBytes {
		return Job{}, userError([]string{"BadArgument"}, "The command is %d bytes long; at most %d are accepted.", len(cmd), MaxCommandBytes)
	}
	if str("codeId") != "" {
		return Job{}, userError([]string{"NotSupported"},
			"amlsim does not serve code upload yet: the job's codeId '%s' cannot be used. Put the code in the workspace file share (mounted at /home/azureuser/cloudfiles/code) and refer to it from the command.", str("codeId"))
	}
	if err := resolveEnvironment(tx, ws.Ref(), str("environmentId")); err != nil {
		return Job{}, err
	}
	inst, err := jobCompute(tx, ws, str("computeId"))
	if err != nil {
		return Job{}, err
	}
	job := Job{Name: name, Workspace: ws.Ref(), Spec: spec, Command: cmd, EnvironmentID: str("environmentId"),
		Variables: stringMap(spec["environmentVariables"]), Compute: inst.Name, Status: JobNotStarted}
	if lim, ok := spec["limits"].(map[string]any); ok {
		if t, _ := lim["timeout"].(string); t != "" {
			d, err := duration.Parse(t)
			if err != nil || d.Negative || d.ToTimeDuration() <= 0 {
				return Job{}, userError([]string{"BadArgument"}, "The limits.timeout '%s' is not an ISO 8601 duration such as PT5M.", t)
			}
			job.Timeout = d.ToTimeDuration()
		}
	}
	job.Warnings = []string{"amlsim runs the command as a plain process in the compute instance, as azureuser, not in a container built from the environment '" + job.EnvironmentID + "'."}
	var seq uint64
	if _, err := tx.Get(bucketMeta, metaJobSeq, &seq); err != nil {
		return Job{}, err
	}
	seq++
	job.Seq = seq
	return job, tx.Put(bucketMeta, metaJobSeq, seq)
}

const metaJobSeq = "jobSeq"

// jobCompute resolves a job's computeId (an ARM ID, or the name of a
// compute of the workspace) to a compute instance of the workspace.
func jobCompute(tx *store.Tx, ws Workspace, id string) (Instance, error) {
	if id == "" {
		return Instance{}, userError([]string{"BadArgument"}, "The job has no computeId: amlsim runs jobs on a compute instance of the workspace.")
	}
	name := id
	if i := strings.LastIndex(strings.ToLower(id), "/computes/"); i >= 0 {
		name = id[i+len("/computes/"):]
		prefix := strings.ToLower(id[:i])
		want := strings.ToLower("/resourceGroups/" + ws.ResourceGroup + "/providers/Microsoft.MachineLearningServices/workspaces/" + ws.Name)
		if !strings.HasSuffix(prefix, want) {
			return Instance{}, userError([]string{"BadArgument", "ComputeNotFound"}, "The compute '%s' is not in workspace '%s'.", id, ws.Name)
		}
	}
	inst, ok, err := getInstance(tx, instanceKey(ws.Location, name))
	if err != nil {
		return Instance{}, err
	}
	if !ok || inst.Workspace.key() != ws.Ref().key() {
		// As the service words a missing compute target
		// (Azure/MachineLearningNotebooks#906).
		return Instance{}, userError([]string{"BadArgument", "ComputeNotFound"}, "Compute %s does not exist in workspace %s.", name, ws.Name)
	}
	return inst, nil
}

// Job returns a job of a workspace.
func (s *Service) Job(ref WorkspaceRef, name string) (Job, error) {
	var job Job
	err := s.st.View(func(tx *store.Tx) error {
		if _, err := getParent(tx, ref); err != nil {
			return err
		}
		var err error
		job, err = getJob(tx, ref, name)
		return err
	})
	return job, err
}

func getJob(tx *store.Tx, ref WorkspaceRef, name string) (Job, error) {
	var job Job
	ok, err := tx.Get(bucketJobs, jobKey(ref, name), &job)
	if err == nil && !ok {
		e := userError([]string{"NotFound"}, "The specified resource was not found: job '%s' in workspace '%s'.", name, ref.Name)
		e.Kind = KindNotFound
		err = e
	}
	return job, err
}

// JobFilter selects jobs in a list (Jobs_List's query parameters).
type JobFilter struct {
	// View is listViewType: ActiveOnly (the default), ArchivedOnly, All.
	View string
	// JobType and Tag, when set, keep the jobs of that type and with
	// that tag key.
	JobType, Tag string
}

// JobPageSize is how many jobs a list page holds.
const JobPageSize = 50

// Jobs lists a workspace's jobs, newest first, skipping skip of them;
// more reports whether others follow.
func (s *Service) Jobs(ref WorkspaceRef, f JobFilter, skip int) (page []Job, more bool, err error) {
	var all []Job
	err = s.st.View(func(tx *store.Tx) error {
		if _, err := getParent(tx, ref); err != nil {
			return err
		}
		return store.Each(tx, bucketJobs, func(_ string, j Job) error {
			if j.Workspace.key() != ref.key() {
				return nil
			}
			switch f.View {
			case "", "ActiveOnly":
				if j.Archived() {
					return nil
				}
			case "ArchivedOnly":
				if !j.Archived() {
					return nil
				}
			}
			if f.JobType != "" && !strings.EqualFold(f.JobType, j.JobType()) {
				return nil
			}
			if _, ok := j.Tags()[f.Tag]; f.Tag != "" && !ok {
				return nil
			}
			all = append(all, j)
			return nil
		})
	})
	slices.SortFunc(all, func(a, b Job) int { return cmp.Compare(b.Seq, a.Seq) })
	if skip >= len(all) {
		return nil, false, err
	}
	all = all[skip:]
	if len(all) > JobPageSize {
		return all[:JobPageSize], true, err
	}
	return all, false, err
}

// CancelJob asks a job to stop: a job not yet running is canceled at
// once, a running one is CancelRequested until its command is stopped.
// Canceling a job that has ended changes nothing.
func (s *Service) CancelJob(ref WorkspaceRef, name string) (Job, error) {
	job, err := s.updateJobRecord(ref, name, func(j *Job) error {
		if j.Status.Terminal() {
			return nil
		}
		j.Status = JobCancelRequested
		return nil
	})
	if err == nil && job.Status == JobCancelRequested {
		s.jobs.cancel(job.ID)
	}
	return job, err
}

// DeleteJob deletes a job, canceling it first if it has not ended; done
// reports whether it is gone already (else it goes once canceled).
func (s *Service) DeleteJob(ref WorkspaceRef, name string) (done bool, err error) {
	var job Job
	err = s.st.Update(func(tx *store.Tx) error {
		if _, err := getParent(tx, ref); err != nil {
			return err
		}
		job, err = getJob(tx, ref, name)
		if err != nil {
			return err
		}
		if job.Status.Terminal() {
			done = true
			return tx.Delete(bucketJobs, job.key())
		}
		job.Deleting, job.Status = true, JobCancelRequested
		return tx.Put(bucketJobs, job.key(), job)
	})
	switch {
	case err != nil:
	case done:
		err = os.RemoveAll(s.LogDir(job))
	default:
		s.jobs.cancel(job.ID)
	}
	return done, err
}

// updateJobRecord changes a job in a transaction of its own.
func (s *Service) updateJobRecord(ref WorkspaceRef, name string, change func(*Job) error) (Job, error) {
	var job Job
	err := s.st.Update(func(tx *store.Tx) error {
		if _, err := getParent(tx, ref); err != nil {
			return err
		}
		var err error
		if job, err = getJob(tx, ref, name); err != nil {
			return err
		}
		if err := change(&job); err != nil {
			return err
		}
		return tx.Put(bucketJobs, job.key(), job)
	})
	return job, err
}

// --- environments ---

// Environment is an environment version of a workspace, stored as the
// client gave its properties.
type Environment struct {
	Workspace  WorkspaceRef   `json:"workspace"`
	Name       string         `json:"name"`
	Version    string         `json:"version"`
	Properties map[string]any `json:"properties"`
	CreatedBy  Principal      `json:"createdBy"`
	CreatedOn  time.Time      `json:"createdOn"`
}

func environmentKey(ref WorkspaceRef, name, version string) string {
	return ref.key() + "/" + strings.ToLower(name) + "/" + version
}

// PutEnvironment creates or replaces an environment version.
func (s *Service) PutEnvironment(p Principal, ref WorkspaceRef, name, version string, props map[string]any) (Environment, error) {
	if !jobNameRE.MatchString(name) || version == "" {
		return Environment{}, userError([]string{"BadArgument"}, "The environment name '%s' or version '%s' is invalid.", name, version)
	}
	env := Environment{Workspace: ref, Name: name, Version: version, Properties: props, CreatedBy: p, CreatedOn: s.now().UTC()}
	err := s.st.Update(func(tx *store.Tx) error {
		if _, err := getParent(tx, ref); err != nil {
			return err
		}
		var old Environment
		if ok, err := tx.Get(bucketEnvironments, environmentKey(ref, name, version), &old); err != nil {
			return err
		} else if ok {
			env.CreatedBy, env.CreatedOn = old.CreatedBy, old.CreatedOn
		}
		return tx.Put(bucketEnvironments, environmentKey(ref, name, version), env)
	})
	return env, err
}

// GetEnvironment returns an environment version.
func (s *Service) GetEnvironment(ref WorkspaceRef, name, version string) (Environment, error) {
	var env Environment
	err := s.st.View(func(tx *store.Tx) error {
		if _, err := getParent(tx, ref); err != nil {
			return err
		}
		ok, err := tx.Get(bucketEnvironments, environmentKey(ref, name, version), &env)
		if err == nil && !ok {
			err = environmentNotFound(name, version, "")
		}
		return err
	})
	return env, err
}

// environmentNotFound is the service's answer for an environment that
// does not resolve (Azure/azure-sdk-for-python#38594).
func environmentNotFound(name, version, label string) *Error {
	return userError([]string{"NotFound"}, "No environment exists for name: %s, version: %s, label: %s", name, version, label)
}

// environmentIDRE matches the forms of environmentId: an ARM ID of a
// workspace's environment version, azureml:NAME:VERSION, azureml:NAME@LABEL
// (curated ones, such as AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest)
// and a registry's azureml://registries/R/environments/NAME/versions/V.
var (
	envARMRE      = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/([^/]+)/providers/Microsoft\.MachineLearningServices/workspaces/([^/]+)/environments/([^/]+)/versions/([^/]+)$`)
	envShortRE    = regexp.MustCompile(`^azureml:([A-Za-z0-9][A-Za-z0-9._\-]*)(?::([^:@/]+)|@([A-Za-z0-9_\-]+))$`)
	envRegistryRE = regexp.MustCompile(`^azureml://registries/[A-Za-z0-9_\-]+/environments/[A-Za-z0-9._\-]+/(versions/[^/]+|labels/[A-Za-z0-9_\-]+)$`)
)

// resolveEnvironment checks that a job's environmentId names an
// environment: a version stored in the workspace, or a curated or
// registry one (accepted and recorded: amlsim does not build images).
func resolveEnvironment(tx *store.Tx, ref WorkspaceRef, id string) error {
	if id == "" {
		return userError([]string{"BadArgument"}, "The environmentId of a Command job is required.")
	}
	if envRegistryRE.MatchString(id) {
		return nil
	}
	var name, version string
	if m := envARMRE.FindStringSubmatch(id); m != nil {
		if !strings.EqualFold(m[1], ref.ResourceGroup) || !strings.EqualFold(m[2], ref.Name) {
			return environmentNotFound(m[3], m[4], "")
		}
		name, version = m[3], m[4]
	} else if m := envShortRE.FindStringSubmatch(id); m != nil {
		if m[3] != "" || strings.HasPrefix(m[1], "AzureML-") {
			// A label (curated environments are named AzureML-…).
			return nil
		}
		name, version = m[1], m[2]
	} else {
		return userError([]string{"BadArgument"}, "The environmentId '%s' is not an environment's ARM ID, azureml:NAME:VERSION, azureml:NAME@LABEL or azureml://registries/… .", id)
	}
	ok, err := tx.Get(bucketEnvironments, environmentKey(ref, name, version), &Environment{})
	if err == nil && !ok {
		err = environmentNotFound(name, version, "")
	}
	return err
}

// inputRefRE matches a command's reference to an input, ${{inputs.NAME}}.
var inputRefRE = regexp.MustCompile(`\$\{\{\s*inputs\.([A-Za-z0-9_]+)\s*\}\}`)

// ResolvedCommand is the command with its references to literal inputs
// (${{inputs.NAME}}, jobInputType "literal") replaced by their values, as
// the service does before the command runs; other references stay.
func (j Job) ResolvedCommand() string {
	inputs, _ := j.Spec["inputs"].(map[string]any)
	return inputRefRE.ReplaceAllStringFunc(j.Command, func(ref string) string {
		name := inputRefRE.FindStringSubmatch(ref)[1]
		in, _ := inputs[name].(map[string]any)
		if t, _ := in["jobInputType"].(string); t != "literal" {
			return ref
		}
		v, _ := in["value"].(string)
		return v
	})
}

// errJobGone is what a job's run sees when its record was deleted (or
// made again, as another run).
var errJobGone = errors.New("job deleted")
