package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
)

// testImage is the guest image version of the test environment: on the
// fake driver, the driver's name.
const testImage = "fake"

// previewVersion is the newest preview api-version, the one that defines
// resize, customServices and updateDataMounts.
const previewVersion = "2026-09-15-preview"

// post sends a POST through the Azure SDK's own pipeline (bearer token,
// retries off) and, for a 202, polls it with the SDK's long-running
// operation poller as a generated client does (final-state-via location),
// since no Go SDK release has these preview operations yet.
func (e *env) post(ctx context.Context, path string, body any) (*http.Response, error) {
	e.t.Helper()
	client, err := arm.NewClient("amlsim-test", "v0.0.0", staticToken(e.token), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	req, err := runtime.NewRequest(ctx, http.MethodPost, client.Endpoint()+path)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		if err := runtime.MarshalAsJSON(req, body); err != nil {
			e.t.Fatal(err)
		}
	}
	resp, err := client.Pipeline().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusAccepted {
		if resp.StatusCode >= 300 {
			return resp, runtime.NewResponseError(resp)
		}
		return resp, nil
	}
	poller, err := runtime.NewPoller(resp, client.Pipeline(), &runtime.NewPollerOptions[struct{}]{FinalStateVia: runtime.FinalStateViaLocation})
	if err != nil {
		return resp, err
	}
	_, err = poller.PollUntilDone(ctx, fastPoll)
	return resp, err
}

func (e *env) stop(name string) {
	e.t.Helper()
	p, err := e.computes().BeginStop(ctx(e.t), rg, ws, name, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx(e.t), fastPoll)
	}
	if err != nil {
		e.t.Fatalf("stop %s: %v", name, err)
	}
}

func (e *env) familyUsage(family string) int64 {
	e.t.Helper()
	usages, err := e.svc.Usages("eastus")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, u := range usages {
		if u.Name == family {
			return int64(u.Current)
		}
	}
	e.t.Fatalf("no usage %s", family)
	return 0
}

// A stopped instance is resized through Compute_Resize (202, polled to
// the end by the SDK's poller): its vmSize, its quota and its VM change. A
// size the catalog lacks, or that the quota cannot take, is refused up
// front and changes nothing; a resize of a running instance is accepted
// and fails, as Azure fails a start of one; a failure in the hypervisor
// keeps the old size.
func TestResize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *sim.Config) {
		c.Local.Sizes = map[string]sim.LocalResource{"Standard_D3_v2": {VCPUs: 3, MemoryMiB: 2048}}
	})
	path := computePath + "ci-rs/resize?api-version=" + previewVersion
	e.mustCreate("ci-rs", "Standard_D1_v2")
	e.stop("ci-rs")

	resp, err := e.post(ctx(t), computePath+"ci-rs/getAllowedVmSizesForResize?api-version="+previewVersion, nil)
	if err != nil {
		t.Fatalf("getAllowedVmSizesForResize: %v", err)
	}
	var sizes ml.VirtualMachineSizeListResult
	if err := json.NewDecoder(resp.Body).Decode(&sizes); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, z := range sizes.Value {
		found = found || *z.Name == "Standard_D3_v2" && *z.VCPUs == 4
	}
	if !found || len(sizes.Value) != len(e.svc.Catalog().Sizes()) {
		t.Errorf("allowed sizes: %d, Standard_D3_v2 with 4 vCPUs found: %v", len(sizes.Value), found)
	}

	resp, err = e.post(ctx(t), path, map[string]string{"targetVMSize": "Standard_D3_v2"})
	if err != nil {
		t.Fatalf("resize: %v", err)
	}
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") == "" {
		t.Errorf("resize answered %d, Location %q; want 202 with Location", resp.StatusCode, resp.Header.Get("Location"))
	}
	ci := e.get("ci-rs")
	if *ci.Properties.State != ml.ComputeInstanceStateStopped || *ci.Properties.VMSize != "Standard_D3_v2" {
		t.Errorf("after resize: %s, %s; want Stopped, Standard_D3_v2", *ci.Properties.State, *ci.Properties.VMSize)
	}
	if lo := ci.Properties.LastOperation; *lo.OperationName != "Resize" || *lo.OperationStatus != ml.OperationStatusSucceeded {
		t.Errorf("lastOperation = %s %s, want Resize Succeeded", *lo.OperationName, *lo.OperationStatus)
	}
	inst, _ := e.svc.Compute(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "ci-rs")
	dom, err := e.drv.Lookup(ctx(t), inst.Domain)
	if err != nil || dom.VCPUs != 3 || dom.MemoryMiB != 2048 {
		t.Errorf("VM after resize: %d vCPUs, %d MiB (%v); want 3, 2048", dom.VCPUs, dom.MemoryMiB, err)
	}
	if got := e.familyUsage("standardDv2Family"); got != 4 {
		t.Errorf("Dv2 usage after resizing to D3_v2 = %d, want 4", got)
	}

	unchanged := func(when string) {
		t.Helper()
		ci := e.get("ci-rs")
		if *ci.Properties.VMSize != "Standard_D3_v2" || e.familyUsage("standardDv2Family") != 4 {
			t.Errorf("%s: vmSize %s, Dv2 usage %d; want Standard_D3_v2 and 4 as before", when, *ci.Properties.VMSize, e.familyUsage("standardDv2Family"))
		}
	}
	_, err = e.post(ctx(t), path, map[string]string{"targetVMSize": "Standard_Nope"})
	armErr(t, err, 400, "InvalidPropertyValue")
	unchanged("unknown size")
	status, code, _ := e.send("POST", path, "application/json", `{"targetVMSize": 4}`)
	if status != 400 || code != "InvalidRequestContent" {
		t.Errorf("targetVMSize 4: %d %s, want 400 InvalidRequestContent", status, code)
	}
	unchanged("ill-typed size")
	if out, err := e.svc.UpdateQuotas("eastus", []sim.QuotaUpdate{{Name: "standardDSv2Family", Limit: 2}}); err != nil || out[0].Status != "Success" {
		t.Fatalf("quota update: %v %v", out, err)
	}
	_, err = e.post(ctx(t), path, map[string]string{"targetVMSize": "Standard_DS3_v2"})
	re := armErr(t, err, 400, "QuotaExceeded")
	if !strings.Contains(re.Error(), "Standard DSv2 family vCPU quota of 2") {
		t.Errorf("quota message: %v", re)
	}
	unchanged("over quota")

	// Within the family, the old size's vCPUs are given back: D3_v2 (4)
	// to D4_v2 (8) fits a limit of 8.
	if _, err := e.svc.UpdateQuotas("eastus", []sim.QuotaUpdate{{Name: "standardDv2Family", Limit: 8}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.post(ctx(t), path, map[string]string{"targetVMSize": "Standard_D4_v2"}); err != nil {
		t.Fatalf("resize within the family's limit: %v", err)
	}
	if got := e.familyUsage("standardDv2Family"); got != 8 {
		t.Errorf("Dv2 usage after D4_v2 = %d, want 8", got)
	}

	// A failure in the hypervisor: the operation fails, the instance
	// stays stopped with its old size and quota.
	e.drv.FailNext(fake.OpResize, "", errors.New("injected"))
	_, err = e.post(ctx(t), path, map[string]string{"targetVMSize": "Standard_D3_v2"})
	armErr(t, err, 200, "ResizeComputeInstanceFailed") // the SDK reports the failed status resource
	ci = e.get("ci-rs")
	if *ci.Properties.State != ml.ComputeInstanceStateStopped || *ci.Properties.VMSize != "Standard_D4_v2" || e.familyUsage("standardDv2Family") != 8 {
		t.Errorf("after a failed resize: %s %s, usage %d; want Stopped, Standard_D4_v2, 8", *ci.Properties.State, *ci.Properties.VMSize, e.familyUsage("standardDv2Family"))
	}
	if lo := ci.Properties.LastOperation; *lo.OperationStatus != "ResizeFailed" {
		t.Errorf("lastOperation status = %s, want ResizeFailed", *lo.OperationStatus)
	}
	if dom, err := e.drv.Lookup(ctx(t), inst.Domain); err != nil || dom.VCPUs != 2 || dom.MemoryMiB != 1024 {
		t.Errorf("VM after a failed resize: %d vCPUs, %d MiB (%v); want D4_v2's 2, 1024 back", dom.VCPUs, dom.MemoryMiB, err)
	}

	// Running: accepted, then failed with the state it needs.
	p, err := e.computes().BeginStart(ctx(t), rg, ws, "ci-rs", nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp, err = e.post(ctx(t), path, map[string]string{"targetVMSize": "Standard_D1_v2"})
	if resp == nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("resize of a running instance: %v, want 202 then a failed operation", err)
	}
	re = armErr(t, err, 200, "ResizeComputeInstanceOnlyAllowedInStoppedState")
	if !strings.Contains(re.Error(), "Resize Azure ML Compute Instance is only allowed when the instance ci-rs is in 'stopped' state") {
		t.Errorf("message: %v", re)
	}
	if ci := e.get("ci-rs"); *ci.Properties.State != ml.ComputeInstanceStateRunning || *ci.Properties.VMSize != "Standard_D4_v2" {
		t.Errorf("after a refused resize: %s %s, want Running, Standard_D4_v2", *ci.Properties.State, *ci.Properties.VMSize)
	}
}

// Custom services are replaced as a whole, echoed in the api-versions
// that define them and listed among the applications, whose proxy says
// they cannot run; data mounts are recorded with the reason amlsim cannot
// mount them. Bad input is refused with 400 and changes nothing.
func TestCustomServicesAndDataMounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-cs", "Standard_D1_v2")
	services := computePath + "ci-cs/customServices?api-version=" + previewVersion
	rstudio := `[{"name":"rstudio-workbench","image":{"type":"docker","reference":"ghcr.io/azure/rstudio-workbench:latest"},` +
		`"endpoints":[{"protocol":"http","name":"connect","target":8787,"published":4444,"hostIp":null}],` +
		`"environmentVariables":{"RSP_LICENSE":{"type":"local","value":"X"}},"docker":{"privileged":true}}]`
	if status, code, msg := e.send("POST", services, "application/json", rstudio); status != 200 {
		t.Fatalf("customServices: %d %s %q, want 200", status, code, msg)
	}
	ci := e.get("ci-cs")
	if cs := ci.Properties.CustomServices; len(cs) != 1 || *cs[0].Name != "rstudio-workbench" || *cs[0].Endpoints[0].Target != 8787 {
		t.Errorf("customServices after the update: %+v", cs)
	}
	var endpoint string
	for _, a := range ci.Properties.Applications {
		if *a.DisplayName == "rstudio-workbench" {
			endpoint = *a.EndpointURI
		}
	}
	if !strings.HasSuffix(endpoint, "/services/rstudio-workbench/") {
		t.Fatalf("applications lack the custom service: %+v", ci.Properties.Applications)
	}
	resp := e.raw("GET", strings.TrimPrefix(endpoint, e.srv.URL), e.token, "")
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "CustomServiceNotRunning") {
		t.Errorf("custom service's endpoint: %d %s, want 502 CustomServiceNotRunning", resp.StatusCode, body)
	}
	// 2022-10-01 (Go SDK v3) has no customServices.
	body, _ := io.ReadAll(e.raw("GET", computePath+"ci-cs?api-version=2022-10-01", e.token, "").Body)
	if strings.Contains(string(body), `"customServices"`) || strings.Contains(string(body), "osImageMetadata") {
		t.Errorf("2022-10-01 shows properties it does not define: %s", body)
	}

	for body, want := range map[string]string{
		`[{"name":3}]`:                  "InvalidRequestContent",
		`[{"image":{}}]`:                "InvalidPropertyValue",
		`[{"name":"a"},{"name":"A"}]`:   "InvalidPropertyValue",
		`{"name":"not-a-list"}`:         "InvalidRequestContent",
		`[{"name":"a","endpoints":{}}]`: "InvalidRequestContent",
	} {
		if status, code, msg := e.send("POST", services, "application/json", body); status != 400 || code != want {
			t.Errorf("customServices %s: %d %s %q, want 400 %s", body, status, code, msg, want)
		}
	}
	if cs := e.get("ci-cs").Properties.CustomServices; len(cs) != 1 || *cs[0].Name != "rstudio-workbench" {
		t.Errorf("customServices after refused updates: %+v", cs)
	}

	mounts := computePath + "ci-cs/updateDataMounts?api-version=" + previewVersion
	mount := `[{"mountAction":"Mount","mountMode":"ReadOnly","mountName":"hello","mountPath":"/some/random/path/on/host",` +
		`"source":"azureml://subscriptions/some-sub/resourcegroups/some-rg/workspaces/some-ws/data/some-data-asset-name/versions/1","sourceType":"URI"}]`
	if status, code, msg := e.send("POST", mounts, "application/json", mount); status != 200 {
		t.Fatalf("updateDataMounts: %d %s %q, want 200", status, code, msg)
	}
	dm := e.get("ci-cs").Properties.DataMounts
	if len(dm) != 1 || *dm[0].MountName != "hello" || *dm[0].MountState != ml.MountStateMountFailed || !strings.Contains(*dm[0].Error, "amlsim cannot mount") {
		t.Errorf("dataMounts after a mount: %+v", dm)
	}
	if status, code, _ := e.send("POST", mounts, "application/json", `[{"mountName":"hello","sourceType":"Blob"}]`); status != 400 || code != "InvalidPropertyValue" {
		t.Errorf("sourceType Blob: %d %s, want 400 InvalidPropertyValue", status, code)
	}
	if status, _, _ := e.send("POST", mounts, "application/json", `[{"mountName":"hello","mountAction":"Unmount"}]`); status != 200 {
		t.Errorf("unmount: %d", status)
	}
	if dm := e.get("ci-cs").Properties.DataMounts; len(dm) != 1 || *dm[0].MountState != ml.MountStateUnmounted {
		t.Errorf("dataMounts after an unmount: %+v", dm)
	}

	img := e.get("ci-cs").Properties.OSImageMetadata
	if img == nil || *img.CurrentImageVersion != testImage || *img.LatestImageVersion != testImage || !*img.IsLatestOsImageVersion {
		t.Errorf("osImageMetadata = %+v, want %s, latest", img, testImage)
	}
}

// PATCH is Compute_Update, the scale settings of an AmlCompute cluster:
// the SDK's BeginUpdate reaches amlsim and gets a 400 for an instance, a
// 404 for a compute that does not exist.
func TestPatchIsForClusters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-patch", "Standard_D1_v2")
	update := ml.ClusterUpdateParameters{Properties: &ml.ClusterUpdateProperties{Properties: &ml.ScaleSettingsInformation{
		ScaleSettings: &ml.ScaleSettings{MaxNodeCount: to[int32](4), MinNodeCount: to[int32](0)}}}}
	_, err := e.computes().BeginUpdate(ctx(t), rg, ws, "ci-patch", update, nil)
	re := armErr(t, err, 400, "BadRequest")
	if !strings.Contains(re.Error(), "Only AmlCompute/KubernetesCompute cluster properties are supported, compute name ci-patch, is ComputeInstance type.") {
		t.Errorf("message: %v", re)
	}
	_, err = e.computes().BeginUpdate(ctx(t), rg, ws, "ci-none", update, nil)
	armErr(t, err, 404, "ResourceNotFound")
	if st := e.state("ci-patch"); st != ml.ComputeInstanceStateRunning {
		t.Errorf("state after a refused PATCH = %s", st)
	}
}

// A PUT on an instance being deleted is refused with 409, as every other
// request on it is, and changes nothing.
func TestPutWhileDeleting(t *testing.T) {
	t.Parallel()
	e := newEnvDriver(t, []fake.Option{fake.WithDelays(fake.Delays{Undefine: 2 * time.Second})})
	e.mustCreate("ci-del", "Standard_D1_v2")
	if _, err := e.computes().BeginDelete(ctx(t), rg, ws, "ci-del", ml.UnderlyingResourceActionDelete, nil); err != nil {
		t.Fatal(err)
	}
	body := instanceBody("Standard_D1_v2")
	body.Properties.(*ml.ComputeInstance).Description = to("changed")
	_, err := e.computes().BeginCreateOrUpdate(ctx(t), rg, ws, "ci-del", body, nil)
	armErr(t, err, 409, "ComputeInstanceBeingDeleted")
	if inst, err := e.svc.Compute(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "ci-del"); err == nil && inst.Description != "" {
		t.Errorf("description after a refused PUT = %q", inst.Description)
	}
}
