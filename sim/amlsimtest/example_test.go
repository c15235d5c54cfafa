package amlsimtest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/amlsim/amlsim/sim/amlsimtest"
)

// In a test, Start takes the test's *testing.T:
//
//	func TestMyTool(t *testing.T) {
//		srv := amlsimtest.Start(t)
//		…
//	}
//
// An example function has no *testing.T, so this one passes a stand-in
// that does what the testing package does: run the cleanups at the end.
func Example() {
	t := &exampleT{}
	defer t.end()

	srv := amlsimtest.Start(t) // the fake driver: no VM
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
		log.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 100 * time.Millisecond}); err != nil {
		log.Fatal(err)
	}
	got, err := computes.Get(ctx, "rg-local", "ws-local", "my-ci", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(*got.Properties.(*armmachinelearning.ComputeInstance).Properties.State)
	// Output: Running
}

// exampleT stands in for a *testing.T where there is none.
type exampleT struct{ cleanups []func() }

func (*exampleT) Helper()                           {}
func (t *exampleT) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }
func (*exampleT) Errorf(format string, args ...any) { log.Printf(format, args...) }
func (*exampleT) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }
func (*exampleT) Logf(format string, args ...any)   {}

// end runs the cleanups, last first, as a test's end does: the server
// stops and its home is removed.
func (t *exampleT) end() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
