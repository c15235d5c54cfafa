package api_test

import (
	"strings"
	"testing"

	ml3 "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v3"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
)

func TestWorkspaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.group("rg-team", "westeurope")
	wc := e.factory.NewWorkspacesClient()
	p, err := wc.BeginCreateOrUpdate(ctx(t), "rg-team", "ws-team", ml.Workspace{Location: to("westeurope")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	got, err := wc.Get(ctx(t), "rg-team", "ws-team", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Location != "westeurope" || *got.Name != "ws-team" {
		t.Errorf("workspace = %s in %s, want ws-team in westeurope", *got.Name, *got.Location)
	}
	n := 0
	pager := wc.NewListBySubscriptionPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 3 { // ws-local, ws-other, ws-team
		t.Errorf("%d workspaces in the subscription, want 3", n)
	}

	// A compute in the new workspace lives in its region.
	p2, err := e.computes().BeginCreateOrUpdate(ctx(t), "rg-team", "ws-team", "ci-eu", ml.ComputeResource{
		Properties: &ml.ComputeInstance{Properties: &ml.ComputeInstanceProperties{VMSize: to("Standard_DS2_v2")}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p2.PollUntilDone(ctx(t), fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	if *res.Location != "westeurope" {
		t.Errorf("compute location = %s, want westeurope", *res.Location)
	}
	// The same name is free in another region.
	e.mustCreate("ci-eu", "Standard_D1_v2")

	// Deleting a workspace deletes its computes, VMs and quota included,
	// as Azure does (concept-soft-delete: "Compute instance: Hard
	// deleted"), as a long-running operation.
	dp, err := wc.BeginDelete(ctx(t), "rg-team", "ws-team", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	_, err = wc.Get(ctx(t), "rg-team", "ws-team", nil)
	armErr(t, err, 404, "ResourceNotFound")
	doms, _ := e.drv.List(ctx(t))
	for _, d := range doms {
		if strings.HasSuffix(d.Name, "westeurope-ci-eu") {
			t.Errorf("domain %s of the deleted workspace's compute is left", d.Name)
		}
	}
	usages := e.factory.NewUsagesClient().NewListPager("westeurope", nil)
	for usages.More() {
		page, err := usages.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Value {
			if *u.CurrentValue != 0 {
				t.Errorf("westeurope usage %s = %d after the workspace went, want 0", *u.Name.Value, *u.CurrentValue)
			}
		}
	}
	// Deleting it again is a 204 (no poller error).
	dp, err = wc.BeginDelete(ctx(t), "rg-team", "ws-team", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}

	_, err = wc.Get(ctx(t), "rg-team", "ws-none", nil)
	armErr(t, err, 404, "ResourceNotFound")
	_, err = wc.BeginCreateOrUpdate(ctx(t), "rg-team", "ws-mars", ml.Workspace{Location: to("marsnorth")}, nil)
	armErr(t, err, 400, "LocationNotAvailableForResourceType")
}

// TestOlderSDK drives the server with armmachinelearning/v3, which sends an
// older api-version.
func TestOlderSDK(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f, err := ml3.NewClientFactory(sub, staticToken(e.token), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	c := f.NewComputeClient()
	p, err := c.BeginCreateOrUpdate(ctx(t), rg, ws, "ci-v3", ml3.ComputeResource{
		Location:   to("eastus"),
		Properties: &ml3.ComputeInstance{Properties: &ml3.ComputeInstanceProperties{VMSize: to("STANDARD_DS3_V2")}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.PollUntilDone(ctx(t), fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	ci := res.Properties.(*ml3.ComputeInstance)
	if *ci.Properties.State != ml3.ComputeInstanceStateRunning {
		t.Errorf("state = %s, want Running", *ci.Properties.State)
	}
	sp, err := c.BeginStop(ctx(t), rg, ws, "ci-v3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	if got := e.state("ci-v3"); got != ml.ComputeInstanceStateStopped {
		t.Errorf("state = %s, want Stopped", got)
	}
}

func TestQuotasListAndUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	qc := e.factory.NewQuotasClient()
	limits := func() map[string]int64 {
		out := map[string]int64{}
		pager := qc.NewListPager("eastus", nil)
		for pager.More() {
			page, err := pager.NextPage(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range page.Value {
				out[*q.Name.Value] = *q.Limit
			}
		}
		return out
	}
	if got := limits(); got["standardNCFamily"] != 0 || got["standardDSv2Family"] != 24 {
		t.Fatalf("quotas = %v, want NC 0 and DSv2 24", got)
	}
	_, err := e.create("ci-gpu", instanceBody("Standard_NC6"))
	armErr(t, err, 400, "QuotaExceeded")

	qid := func(f string) *string {
		return to("/subscriptions/" + sub + "/providers/Microsoft.MachineLearningServices/locations/eastus/quotas/" + f)
	}
	res, err := qc.Update(ctx(t), "eastus", ml.QuotaUpdateParameters{Value: []*ml.QuotaBaseProperties{
		{ID: qid("standardNCFamily"), Limit: to[int64](12)},
		{ID: qid("standardWarpDriveFamily"), Limit: to[int64](12)},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *res.Value[0].Status != ml.StatusSuccess || *res.Value[1].Status != ml.StatusInvalidVMFamilyName {
		t.Errorf("statuses = %s, %s; want Success, InvalidVMFamilyName", *res.Value[0].Status, *res.Value[1].Status)
	}
	if got := limits(); got["standardNCFamily"] != 12 {
		t.Errorf("NC limit after update = %d, want 12", got["standardNCFamily"])
	}
	e.mustCreate("ci-gpu", "Standard_NC6")

	// A limit below what is in use is refused.
	res, err = qc.Update(ctx(t), "eastus", ml.QuotaUpdateParameters{Value: []*ml.QuotaBaseProperties{{ID: qid("standardNCFamily"), Limit: to[int64](2)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *res.Value[0].Status != ml.StatusInvalidQuotaBelowClusterMinimum {
		t.Errorf("status = %s, want InvalidQuotaBelowClusterMinimum", *res.Value[0].Status)
	}
}
