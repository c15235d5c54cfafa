package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/amlsim/amlsim/sim"
)

const (
	jobsPath   = "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.MachineLearningServices/workspaces/" + ws + "/jobs"
	curatedEnv = "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"
)

func (e *env) jobs() *ml.JobsClient { return e.factory.NewJobsClient() }

// commandJob is a Command job on the instance, with the fake driver's
// variables (AMLSIM_FAKE_DURATION, AMLSIM_FAKE_EXIT_CODE, …).
func commandJob(compute, command string, vars map[string]string) ml.JobBase {
	env := map[string]*string{}
	for k, v := range vars {
		env[k] = to(v)
	}
	return ml.JobBase{Properties: &ml.CommandJob{
		JobType:              to(ml.JobTypeCommand),
		Command:              to(command),
		EnvironmentID:        to(curatedEnv),
		ComputeID:            to(computesPath + "/" + compute),
		EnvironmentVariables: env,
		DisplayName:          to("a job"),
	}}
}

func (e *env) submit(name string, job ml.JobBase) (ml.JobsClientCreateOrUpdateResponse, error) {
	return e.jobs().CreateOrUpdate(ctx(e.t), rg, ws, name, job, nil)
}

func (e *env) jobStatus(name string) ml.JobStatus {
	e.t.Helper()
	r, err := e.jobs().Get(ctx(e.t), rg, ws, name, nil)
	if err != nil {
		e.t.Fatalf("get job %s: %v", name, err)
	}
	return *r.Properties.GetJobBaseProperties().Status
}

// waitJob waits until the job's status is want.
func (e *env) waitJob(name string, want ml.JobStatus) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.jobStatus(name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s is %s after 10 s, want %s", name, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A job submitted with the Go SDK runs to Completed; its record answers
// as Azure's (201, then 200 for an update of a mutable property), its log
// holds what the fake driver says it would run, and a failing one ends
// Failed with the service's wording.
func TestJobRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-jobs", "Standard_DS2_v2")
	job := commandJob("ci-jobs", "python train.py --lr ${{inputs.lr}}", map[string]string{"AMLSIM_FAKE_DURATION": "50ms", "AMLSIM_FAKE_OUTPUT": "epoch 1 done"})
	job.Properties.(*ml.CommandJob).Inputs = map[string]ml.JobInputClassification{"lr": &ml.LiteralJobInput{JobInputType: to(ml.JobInputTypeLiteral), Value: to("0.01")}}
	resp, err := e.submit("train-1", job)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Properties.(*ml.CommandJob)
	if *p.ExperimentName != "Default" || *p.IsArchived || p.Status == nil || p.Services["Studio"] == nil {
		t.Errorf("created job: experiment %v archived %v status %v services %v; want Default, false, a status, a Studio service", *p.ExperimentName, *p.IsArchived, p.Status, p.Services)
	}
	e.waitJob("train-1", ml.JobStatusCompleted)

	svcJob, err := e.svc.Job(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "train-1")
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(e.svc.LogDir(svcJob), "user_logs", "std_log.txt"))
	if err != nil || !strings.Contains(string(log), "python train.py --lr 0.01") || !strings.Contains(string(log), "epoch 1 done") {
		t.Errorf("log = %q (%v), want the resolved command and the output", log, err)
	}

	// An update may change tags and the like (200), not the command.
	job.Properties.(*ml.CommandJob).Tags = map[string]*string{"stage": to("two")}
	raw := e.raw("GET", jobsPath+"/train-1?api-version=2024-04-01", e.token, "")
	raw.Body.Close()
	if _, err := e.submit("train-1", job); err != nil {
		t.Errorf("update of the tags: %v", err)
	}
	job.Properties.(*ml.CommandJob).Command = to("python other.py")
	_, err = e.submit("train-1", job)
	re := armErr(t, err, http.StatusBadRequest, "UserError")
	if !strings.Contains(re.Error(), "JobPropertyImmutable") || !strings.Contains(re.Error(), "Only description, tags, displayName, properties, and isArchived can be updated") {
		t.Errorf("changed command: %v, want the service's JobPropertyImmutable", re)
	}

	if _, err := e.submit("fails-3", commandJob("ci-jobs", "python broken.py", map[string]string{"AMLSIM_FAKE_DURATION": "10ms", "AMLSIM_FAKE_EXIT_CODE": "3"})); err != nil {
		t.Fatal(err)
	}
	e.waitJob("fails-3", ml.JobStatusFailed)
	got, _ := e.svc.Job(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "fails-3")
	if got.Error == nil || !strings.Contains(got.Error.Message, "User process 'python' exited with status code 3") || got.ExitCode == nil || *got.ExitCode != 3 {
		t.Errorf("failed job: error %+v, exit %v; want the service's 'exited with status code 3'", got.Error, got.ExitCode)
	}

	pager := e.jobs().NewListPager(rg, ws, nil)
	var names []string
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Value {
			names = append(names, *j.Name)
		}
	}
	if strings.Join(names, ",") != "fails-3,train-1" {
		t.Errorf("list = %v, want the two jobs, newest first", names)
	}
}

// One job per vCPU of the instance's size runs at a time (Standard_DS2_v2:
// 2); the others wait Queued, and run in the order they came.
func TestJobQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-queue", "Standard_DS2_v2")
	names := []string{"q1", "q2", "q3"}
	for _, n := range names {
		if _, err := e.submit(n, commandJob("ci-queue", "sleep 1", map[string]string{"AMLSIM_FAKE_DURATION": "600ms"})); err != nil {
			t.Fatal(err)
		}
	}
	sawQueued := false
	deadline := time.Now().Add(10 * time.Second)
	for {
		running, done := 0, 0
		st := map[string]ml.JobStatus{}
		// Newest first: a status read later is at least as far along, so
		// "q3 runs while q1 and q2 have not ended" is seen only if true.
		for i := len(names) - 1; i >= 0; i-- {
			n := names[i]
			st[n] = e.jobStatus(n)
			switch st[n] {
			case ml.JobStatusRunning:
				running++
			case ml.JobStatusCompleted:
				done++
			}
		}
		if running > 2 {
			t.Fatalf("%d jobs run at once on a 2-vCPU instance: %v", running, st)
		}
		if st["q3"] == ml.JobStatusQueued && st["q1"] == ml.JobStatusRunning && st["q2"] == ml.JobStatusRunning {
			sawQueued = true
		}
		if st["q3"] == ml.JobStatusRunning && st["q1"] != ml.JobStatusCompleted && st["q2"] != ml.JobStatusCompleted {
			t.Fatalf("q3 runs before q1 or q2 ended: %v", st)
		}
		if done == len(names) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs after 10 s: %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawQueued {
		t.Error("q3 was never seen Queued while q1 and q2 ran")
	}
}

// A job on a stopped instance waits Queued, and runs once the instance
// is started; cancel and delete are long-running operations the Go SDK
// polls to their end.
func TestJobStoppedInstanceCancelDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-stop", "Standard_DS2_v2")
	e.stop("ci-stop")
	if _, err := e.submit("waits", commandJob("ci-stop", "echo hi", map[string]string{"AMLSIM_FAKE_DURATION": "10ms"})); err != nil {
		t.Fatal(err)
	}
	e.waitJob("waits", ml.JobStatusQueued)
	time.Sleep(200 * time.Millisecond)
	if got := e.jobStatus("waits"); got != ml.JobStatusQueued {
		t.Fatalf("job on a stopped instance is %s, want Queued", got)
	}
	start, err := e.computes().BeginStart(ctx(t), rg, ws, "ci-stop", nil)
	if err == nil {
		_, err = start.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.waitJob("waits", ml.JobStatusCompleted)

	if _, err := e.submit("long", commandJob("ci-stop", "sleep 600", map[string]string{"AMLSIM_FAKE_DURATION": "10m"})); err != nil {
		t.Fatal(err)
	}
	e.waitJob("long", ml.JobStatusRunning)
	cancel, err := e.jobs().BeginCancel(ctx(t), rg, ws, "long", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cancel.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	if got := e.jobStatus("long"); got != ml.JobStatusCanceled {
		t.Errorf("after the cancel: %s, want Canceled", got)
	}

	if _, err := e.submit("doomed", commandJob("ci-stop", "sleep 600", map[string]string{"AMLSIM_FAKE_DURATION": "10m"})); err != nil {
		t.Fatal(err)
	}
	e.waitJob("doomed", ml.JobStatusRunning)
	del, err := e.jobs().BeginDelete(ctx(t), rg, ws, "doomed", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := del.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	_, err = e.jobs().Get(ctx(t), rg, ws, "doomed", nil)
	armErr(t, err, http.StatusNotFound, "UserError")
}

// Bad input gets the service's UserError and leaves nothing behind.
func TestJobBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-bad", "Standard_DS2_v2")
	for name, c := range map[string]struct {
		name string
		job  func(*ml.CommandJob)
		want string
	}{
		"compute of nothing": {"j1", func(j *ml.CommandJob) { j.ComputeID = to(computesPath + "/nothing") }, "Compute nothing does not exist"},
		"empty command":      {"j2", func(j *ml.CommandJob) { j.Command = to(" ") }, "cannot be empty"},
		"1 MB command":       {"j3", func(j *ml.CommandJob) { j.Command = to(strings.Repeat("x", 1<<20)) }, "at most"},
		"unresolvable env": {"j4", func(j *ml.CommandJob) {
			j.EnvironmentID = to("/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.MachineLearningServices/workspaces/" + ws + "/environments/missing/versions/3")
		}, "No environment exists for name: missing, version: 3"},
		"code upload": {"j5", func(j *ml.CommandJob) { j.CodeID = to("azureml:code:1") }, "code upload"},
		"bad name":    {"-bad", func(*ml.CommandJob) {}, "job name '-bad' is invalid"},
	} {
		job := commandJob("ci-bad", "echo hi", nil)
		c.job(job.Properties.(*ml.CommandJob))
		_, err := e.submit(c.name, job)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 400 || re.ErrorCode != "UserError" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want 400 UserError saying %q", name, err, c.want)
			continue
		}
		if _, err := e.jobs().Get(ctx(t), rg, ws, c.name, nil); err == nil {
			t.Errorf("%s: the refused job was stored", name)
		}
	}
	resp := e.raw("PUT", jobsPath+"/j6?api-version=2024-04-01", e.token, `{"properties": {"jobType": "Explode", "command": "x", "environmentId": "`+curatedEnv+`"}}`)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("unknown jobType: %d, want 400", resp.StatusCode)
	}
	// A workspace environment version resolves once it is there.
	envs := e.factory.NewEnvironmentVersionsClient()
	if _, err := envs.CreateOrUpdate(ctx(t), rg, ws, "my-env", "1", ml.EnvironmentVersion{Properties: &ml.EnvironmentVersionProperties{Image: to("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04")}}, nil); err != nil {
		t.Fatal(err)
	}
	job := commandJob("ci-bad", "echo hi", map[string]string{"AMLSIM_FAKE_DURATION": "10ms"})
	job.Properties.(*ml.CommandJob).EnvironmentID = to("/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.MachineLearningServices/workspaces/" + ws + "/environments/my-env/versions/1")
	if _, err := e.submit("with-env", job); err != nil {
		t.Errorf("a job on a stored environment: %v", err)
	}
}

// What azure-ai-ml's jobs.stream does after the job's GET: the
// workspace's discoveryUrl, fetched without a token, gives run history's
// base ("api"); RunDetails gives the status, warnings and logFiles; each
// log URL is fetched without a token and carries its own signature.
func TestJobStreamFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-stream", "Standard_DS2_v2")
	if _, err := e.submit("streamed", commandJob("ci-stream", "echo hello", map[string]string{"AMLSIM_FAKE_DURATION": "10ms", "AMLSIM_FAKE_OUTPUT": "hello from the job"})); err != nil {
		t.Fatal(err)
	}
	e.waitJob("streamed", ml.JobStatusCompleted)

	wsr, err := e.factory.NewWorkspacesClient().Get(ctx(t), rg, ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := wsr.Properties
	if p.DiscoveryURL == nil || p.WorkspaceID == nil || p.MlFlowTrackingURI == nil || !strings.HasPrefix(*p.MlFlowTrackingURI, "azureml://") {
		t.Fatalf("workspace: discoveryUrl %v workspaceId %v mlFlowTrackingUri %v", p.DiscoveryURL, p.WorkspaceID, p.MlFlowTrackingURI)
	}
	getJSON := func(url, token string, v any) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := e.srv.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if v != nil {
			json.NewDecoder(resp.Body).Decode(v)
		}
		return resp.StatusCode
	}
	var disc map[string]string
	if st := getJSON(*p.DiscoveryURL, "", &disc); st != 200 || disc["api"] != e.srv.URL {
		t.Fatalf("discovery: %d %v, want 200 with api = %s", st, disc, e.srv.URL)
	}
	var details struct {
		Status   string            `json:"status"`
		LogFiles map[string]string `json:"logFiles"`
		Warnings []struct{ Message string }
	}
	detailsURL := disc["api"] + "/history/v1.0/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.MachineLearningServices/workspaces/" + ws + "/runs/streamed/details"
	if st := getJSON(detailsURL, "", nil); st != 401 {
		t.Errorf("run details without a token: %d, want 401", st)
	}
	if st := getJSON(detailsURL, e.token, &details); st != 200 || details.Status != "Completed" || len(details.Warnings) == 0 {
		t.Fatalf("run details: %d %+v, want Completed with amlsim's warning", st, details)
	}
	logURL := details.LogFiles["user_logs/std_log.txt"]
	resp, err := e.srv.client.Get(logURL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !strings.Contains(string(b), "hello from the job") {
		t.Errorf("log URL: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if st := getJSON(strings.Replace(logURL, "sig=", "sig=0", 1), "", nil); st != 403 {
		t.Errorf("log URL with a bad signature: %d, want 403", st)
	}
	if st := getJSON(strings.Replace(logURL, "/streamed/", "/other/", 1), "", nil); st != 403 {
		t.Errorf("another job's log under this signature: %d, want 403", st)
	}
}

// The rest of what a client meets: archived jobs leave the default list
// (listViewType), limits.timeout cancels a job, a running job keeps its
// instance from idle shutdown (activity "jobs"), a Reader reads jobs but
// cannot submit or cancel them, and a workspace's delete takes its jobs.
func TestJobArchiveTimeoutActivityRBAC(t *testing.T) {
	t.Parallel()
	e := rbacEnv(t)
	e.mustCreate("ci-more", "Standard_DS2_v2")
	job := commandJob("ci-more", "echo a", map[string]string{"AMLSIM_FAKE_DURATION": "10ms"})
	if _, err := e.submit("to-archive", job); err != nil {
		t.Fatal(err)
	}
	e.waitJob("to-archive", ml.JobStatusCompleted)
	job.Properties.(*ml.CommandJob).IsArchived = to(true)
	if _, err := e.submit("to-archive", job); err != nil {
		t.Fatalf("archive: %v", err)
	}
	count := func(view ml.ListViewType) int {
		t.Helper()
		page, err := e.jobs().NewListPager(rg, ws, &ml.JobsClientListOptions{ListViewType: &view}).NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Value)
	}
	if a, ar, all := count(ml.ListViewTypeActiveOnly), count(ml.ListViewTypeArchivedOnly), count(ml.ListViewTypeAll); a != 0 || ar != 1 || all != 1 {
		t.Errorf("lists after the archive: active %d, archived %d, all %d; want 0, 1, 1", a, ar, all)
	}

	busy := commandJob("ci-more", "sleep 600", map[string]string{"AMLSIM_FAKE_DURATION": "10m"})
	if _, err := e.submit("busy", busy); err != nil {
		t.Fatal(err)
	}
	e.waitJob("busy", ml.JobStatusRunning)
	resp := e.raw("GET", computesPath+"/ci-more/amlsim/activity?api-version=2024-04-01", e.token, "")
	var act sim.Activity
	json.NewDecoder(resp.Body).Decode(&act)
	resp.Body.Close()
	if act.Jobs != 1 || !act.Active() {
		t.Errorf("activity with a job running: %+v, want jobs 1", act)
	}

	slow := commandJob("ci-more", "sleep 600", map[string]string{"AMLSIM_FAKE_DURATION": "10m"})
	slow.Properties.(*ml.CommandJob).Limits = &ml.CommandJobLimits{JobLimitsType: to(ml.JobLimitsTypeCommand), Timeout: to("PT1S")}
	if _, err := e.submit("timed-out", slow); err != nil {
		t.Fatal(err)
	}
	e.waitJob("timed-out", ml.JobStatusCanceled)
	if j, _ := e.svc.Job(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "timed-out"); !strings.Contains(strings.Join(j.Warnings, " "), "limits.timeout") {
		t.Errorf("warnings of the timed-out job: %q", j.Warnings)
	}

	reader, _ := e.as(oidReader)
	if _, err := reader.NewJobsClient().Get(ctx(t), rg, ws, "timed-out", nil); err != nil {
		t.Errorf("a Reader reads a job: %v", err)
	}
	_, err := reader.NewJobsClient().CreateOrUpdate(ctx(t), rg, ws, "by-reader", job, nil)
	armErr(t, err, http.StatusForbidden, "AuthorizationFailed")
	_, err = reader.NewJobsClient().BeginCancel(ctx(t), rg, ws, "timed-out", nil)
	armErr(t, err, http.StatusForbidden, "AuthorizationFailed")

	del, err := e.factory.NewWorkspacesClient().BeginDelete(ctx(t), rg, ws, nil)
	if err == nil {
		_, err = del.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.factory.NewWorkspacesClient().BeginCreateOrUpdate(ctx(t), rg, ws, ml.Workspace{Location: to("eastus")}, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(ml.ListViewTypeAll); n != 0 {
		t.Errorf("a workspace made again under the deleted one's name lists %d jobs, want 0", n)
	}
}

// A job whose instance is deleted under it fails, and one queued on it
// fails too: nothing waits for an instance that will not come back.
func TestJobInstanceDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-gone", "Standard_D1_v2") // 1 vCPU: the second job queues
	for _, n := range []string{"running", "queued"} {
		if _, err := e.submit(n, commandJob("ci-gone", "sleep 600", map[string]string{"AMLSIM_FAKE_DURATION": "10m"})); err != nil {
			t.Fatal(err)
		}
	}
	e.waitJob("running", ml.JobStatusRunning)
	e.waitJob("queued", ml.JobStatusQueued)
	del, err := e.computes().BeginDelete(ctx(t), rg, ws, "ci-gone", ml.UnderlyingResourceActionDelete, nil)
	if err == nil {
		_, err = del.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.waitJob("running", ml.JobStatusFailed)
	e.waitJob("queued", ml.JobStatusFailed)
	j, _ := e.svc.Job(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "queued")
	if j.Error == nil || !strings.Contains(j.Error.Message, "ci-gone") {
		t.Errorf("the queued job's error: %+v, want one naming the deleted instance", j.Error)
	}
}

// A list longer than a page has a nextLink the Go SDK's pager follows,
// keeping the list's filters.
func TestJobListPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-many", "Standard_DS2_v2")
	n := sim.JobPageSize + 3
	for i := range n {
		job := commandJob("ci-many", "true", map[string]string{"AMLSIM_FAKE_DURATION": "1ms"})
		job.Properties.(*ml.CommandJob).Tags = map[string]*string{"batch": to("one")}
		if _, err := e.submit(fmt.Sprintf("job-%03d", i), job); err != nil {
			t.Fatal(err)
		}
	}
	pages, total := 0, 0
	pager := e.jobs().NewListPager(rg, ws, &ml.JobsClientListOptions{Tag: to("batch")})
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		total += len(page.Value)
	}
	if pages != 2 || total != n {
		t.Errorf("list: %d jobs in %d pages, want %d in 2", total, pages, n)
	}
	page, err := e.jobs().NewListPager(rg, ws, &ml.JobsClientListOptions{Tag: to("other")}).NextPage(ctx(t))
	if err != nil || len(page.Value) != 0 {
		t.Errorf("list by a tag no job has: %d jobs, %v", len(page.Value), err)
	}
}

// A job name used again after its job was deleted is a new run: its own
// command, its own log; a queued job canceled never runs.
func TestJobNameReusedAndQueuedCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-reuse", "Standard_D1_v2") // 1 vCPU
	if _, err := e.submit("again", commandJob("ci-reuse", "echo first", map[string]string{"AMLSIM_FAKE_DURATION": "10m", "AMLSIM_FAKE_OUTPUT": "FIRST"})); err != nil {
		t.Fatal(err)
	}
	e.waitJob("again", ml.JobStatusRunning)
	if _, err := e.submit("waiting", commandJob("ci-reuse", "echo never", nil)); err != nil {
		t.Fatal(err)
	}
	e.waitJob("waiting", ml.JobStatusQueued)
	c, err := e.jobs().BeginCancel(ctx(t), rg, ws, "waiting", nil)
	if err == nil {
		_, err = c.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.Job(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "waiting"); got.Status != sim.JobCanceled || !got.StartTime.IsZero() {
		t.Errorf("canceled while queued: %s, started %v; want Canceled, never started", got.Status, got.StartTime)
	}

	for i := range 5 {
		d, err := e.jobs().BeginDelete(ctx(t), rg, ws, "again", nil)
		if err == nil {
			_, err = d.PollUntilDone(ctx(t), fastPoll)
		}
		if err != nil {
			t.Fatal(err)
		}
		out := fmt.Sprintf("RUN-%d", i)
		if _, err := e.submit("again", commandJob("ci-reuse", "echo again", map[string]string{"AMLSIM_FAKE_DURATION": "10m", "AMLSIM_FAKE_OUTPUT": out})); err != nil {
			t.Fatalf("submit again (%d): %v", i, err)
		}
		e.waitJob("again", ml.JobStatusRunning)
		j, _ := e.svc.Job(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "again")
		var log []byte
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if log, _ = os.ReadFile(filepath.Join(e.svc.LogDir(j), "user_logs", "std_log.txt")); strings.Contains(string(log), out) {
				break
			}
		}
		if !strings.Contains(string(log), out) || strings.Contains(string(log), "FIRST") || strings.Count(string(log), "this job would run") != 1 {
			t.Fatalf("log of run %d = %q, want its own output only", i, log)
		}
	}
}
