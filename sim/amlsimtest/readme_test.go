package amlsimtest_test

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"

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
