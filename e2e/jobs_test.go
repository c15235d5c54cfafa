//go:build linux && cgo

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
)

// TestJobsOnRealVM submits command jobs with the Go SDK to a real
// instance: one printing its hostname, an input and an Azure variable,
// one exiting 3, one canceled while it runs (its process gone from the
// guest), one that runs on while the server is killed and restarted.
func TestJobsOnRealVM(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	home, config, _ := simHome(t, 35022, "")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := startSim(t, home, config, listen)
	f := sdkClients(t, home, listen)
	computes, jobs := f.NewComputeClient(), f.NewJobsClient()
	ctx := context.Background()
	name := fmt.Sprintf("jb%x", time.Now().UnixNano()%0xfffff)
	removeOnCleanup(t, domainOf(home, name))
	body := ml.ComputeResource{Location: ptr("eastus"), Properties: &ml.ComputeInstance{Properties: &ml.ComputeInstanceProperties{VMSize: ptr("Standard_DS2_v2")}}}
	p, err := computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, name, body, nil)
	pollDone(t, "create "+name, p, err)

	computeID := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/" + rgLocal + "/providers/Microsoft.MachineLearningServices/workspaces/" + wsLocal + "/computes/" + name
	submit := func(job, command string, inputs map[string]ml.JobInputClassification) {
		t.Helper()
		_, err := jobs.CreateOrUpdate(ctx, rgLocal, wsLocal, job, ml.JobBase{Properties: &ml.CommandJob{
			JobType: ptr(ml.JobTypeCommand), Command: ptr(command), ComputeID: ptr(computeID),
			EnvironmentID: ptr("azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"), Inputs: inputs,
		}}, nil)
		if err != nil {
			t.Fatalf("submit %s: %v", job, err)
		}
	}
	wait := func(job string, want ml.JobStatus) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for {
			r, err := jobs.Get(ctx, rgLocal, wsLocal, job, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := *r.Properties.GetJobBaseProperties().Status
			if got == want {
				return
			}
			if time.Now().After(deadline) || got == ml.JobStatusFailed || got == ml.JobStatusCompleted || got == ml.JobStatusCanceled {
				t.Fatalf("job %s is %s, want %s", job, got, want)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	log := func(job string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(home, "jobs", rgLocal, wsLocal, job, "user_logs", "std_log.txt"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	submit("hello", "echo host=$(hostname) arg=${{inputs.greeting}} run=$AZUREML_RUN_ID user=$(id -un) wd=$PWD",
		map[string]ml.JobInputClassification{"greeting": &ml.LiteralJobInput{JobInputType: ptr(ml.JobInputTypeLiteral), Value: ptr("bonjour")}})
	submit("exits3", "echo about to fail; exit 3", nil)
	wait("hello", ml.JobStatusCompleted)
	// The working directory is named by the job's GUID, as Azure's runtime
	// names it.
	want := regexp.MustCompile(`host=` + name + ` arg=bonjour run=hello user=azureuser wd=/tmp/azureml/cr/j/[0-9a-f-]{36}/exe/wd\n`)
	if got := log("hello"); !want.MatchString(got) {
		t.Errorf("hello's log = %q, want it to match %s", got, want)
	}
	wait("exits3", ml.JobStatusFailed)
	if got := log("exits3"); !strings.Contains(got, "about to fail") {
		t.Errorf("exits3's log = %q", got)
	}

	submit("sleeper", "echo started; exec sleep 600", nil)
	wait("sleeper", ml.JobStatusRunning)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(log("sleeper"), "started") {
		if time.Now().After(deadline) {
			t.Fatalf("sleeper's output never reached its log: %q", log("sleeper"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	cp, err := jobs.BeginCancel(ctx, rgLocal, wsLocal, "sleeper", nil)
	pollDone(t, "cancel sleeper", cp, err)
	wait("sleeper", ml.JobStatusCanceled)
	// A job sees the guest's processes: the canceled one's sleep is gone.
	submit("check", "pgrep -x sleep || echo none", nil)
	wait("check", ml.JobStatusCompleted)
	if out := log("check"); !strings.Contains(out, "none") {
		t.Errorf("the canceled job's process runs on: %q", out)
	}
	// A job outlives a kill -9 of the server: its command runs on in the
	// guest, and the next server attaches to it again.
	submit("survivor", "echo before; sleep 20; echo after", nil)
	wait("survivor", ml.JobStatusRunning)
	for deadline := time.Now().Add(time.Minute); !strings.Contains(log("survivor"), "before"); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("survivor's output never reached its log: %q", log("survivor"))
		}
	}
	srv.stop(syscall.SIGKILL)
	startSim(t, home, config, listen)
	wait("survivor", ml.JobStatusCompleted)
	if got := log("survivor"); got != "before\nafter\n" {
		t.Errorf("survivor's log across the restart = %q, want before and after once each", got)
	}

	dp, err := computes.BeginDelete(ctx, rgLocal, wsLocal, name, ml.UnderlyingResourceActionDelete, nil)
	pollDone(t, "delete "+name, dp, err)
}
