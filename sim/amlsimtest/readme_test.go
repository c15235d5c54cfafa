package amlsimtest_test

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/amlsim/amlsim/sim/amlsimtest"
)

// TestCreateRuns is the README's Go sample (section "From a Go test"),
// word for word: TestREADMEGoSample checks.
func TestCreateRuns(t *testing.T) {
	srv := amlsimtest.Start(t)
	computes := srv.ClientFactory().NewComputeClient()
	ctx := context.Background()
	poller, err := computes.BeginCreateOrUpdate(ctx, "rg-local", "ws-local", "my-ci", armmachinelearning.ComputeResource{
		Location: to.Ptr("eastus"),
		Properties: &armmachinelearning.ComputeInstance{
			ComputeType: to.Ptr(armmachinelearning.ComputeTypeComputeInstance),
			Properties:  &armmachinelearning.ComputeInstanceProperties{VMSize: to.Ptr("Standard_DS3_v2")},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	created, err := poller.PollUntilDone(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if state := *created.Properties.(*armmachinelearning.ComputeInstance).Properties.State; state != armmachinelearning.ComputeInstanceStateRunning {
		t.Errorf("state = %s, want Running", state)
	}
}

// TestJobSubmits is the README's job sample (section "Command jobs"),
// word for word, on a server with my-ci running.
func TestJobSubmits(t *testing.T) {
	srv := amlsimtest.Start(t)
	ctx := context.Background()
	poller, err := srv.ClientFactory().NewComputeClient().BeginCreateOrUpdate(ctx, "rg-local", "ws-local", "my-ci", armmachinelearning.ComputeResource{
		Location:   to.Ptr("eastus"),
		Properties: &armmachinelearning.ComputeInstance{Properties: &armmachinelearning.ComputeInstanceProperties{VMSize: to.Ptr("Standard_DS3_v2")}},
	}, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := submitTraining(ctx, srv); err != nil {
		t.Fatal(err)
	}
	jobs := srv.ClientFactory().NewJobsClient()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := jobs.Get(ctx, "rg-local", "ws-local", "train-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := *r.Properties.GetJobBaseProperties().Status; st == armmachinelearning.JobStatusCompleted {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("train-1 is %s after 10 s, want Completed", st)
		}
	}
}

// submitTraining runs `python train.py` on the instance my-ci as job train-1.
func submitTraining(ctx context.Context, srv *amlsimtest.Server) error {
	jobs := srv.ClientFactory().NewJobsClient()
	_, err := jobs.CreateOrUpdate(ctx, "rg-local", "ws-local", "train-1", armmachinelearning.JobBase{
		Properties: &armmachinelearning.CommandJob{
			JobType:       to.Ptr(armmachinelearning.JobTypeCommand),
			Command:       to.Ptr("python train.py --lr ${{inputs.lr}}"),
			EnvironmentID: to.Ptr("azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"),
			ComputeID:     to.Ptr("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local/providers/Microsoft.MachineLearningServices/workspaces/ws-local/computes/my-ci"),
			Inputs: map[string]armmachinelearning.JobInputClassification{
				"lr": &armmachinelearning.LiteralJobInput{JobInputType: to.Ptr(armmachinelearning.JobInputTypeLiteral), Value: to.Ptr("0.01")},
			},
		},
	}, nil)
	return err
}

// Every Go block of the README is in this file as it is there, so the
// README shows only Go that compiles and runs.
func TestREADMEGoSample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("the README has no Go sample")
	}
	for _, b := range blocks {
		if !bytes.Contains(src, b[1]) {
			t.Errorf("the README's Go block is not in readme_test.go as it is in the README:\n%s", b[1])
		}
	}
}
