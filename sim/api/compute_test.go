package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
)

const computesPath = "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.MachineLearningServices/workspaces/" + ws + "/computes"

// armErr asserts err is an ARM error with the status and code.
func armErr(t *testing.T, err error, status int, code string) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want an ARM error %d %s", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("error = %d %s, want %d %s (%v)", re.StatusCode, re.ErrorCode, status, code, err)
	}
	return re
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	body := instanceBody("STANDARD_D3_V2")
	body.Properties.(*ml.ComputeInstance).Properties.SSHSettings = &ml.ComputeInstanceSSHSettings{
		SSHPublicAccess: to(ml.SSHPublicAccessEnabled), AdminPublicKey: to(key.AuthorizedKey()),
	}
	p, err := e.computes().BeginCreateOrUpdate(ctx(t), rg, ws, "ci-life", body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.state("ci-life"); got != ml.ComputeInstanceStateCreating && got != ml.ComputeInstanceStateRunning {
		t.Errorf("state right after create = %s, want Creating", got)
	}
	res, err := p.PollUntilDone(ctx(t), fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	ci := res.Properties.(*ml.ComputeInstance)
	if *ci.ProvisioningState != ml.ProvisioningStateSucceeded || *ci.Properties.State != ml.ComputeInstanceStateRunning {
		t.Fatalf("after create: provisioning %s state %s, want Succeeded Running", *ci.ProvisioningState, *ci.Properties.State)
	}
	props := ci.Properties
	if *props.VMSize != "Standard_D3_v2" {
		t.Errorf("vmSize = %s, want Standard_D3_v2", *props.VMSize)
	}
	ssh := props.SSHSettings
	if *ssh.AdminUserName != "azureuser" || ssh.SSHPort == nil || *ssh.SSHPort == 0 || *ssh.AdminPublicKey != key.AuthorizedKey() {
		t.Errorf("sshSettings = %+v, want azureuser, a port and the key", ssh)
	}
	if *props.ConnectivityEndpoints.PublicIPAddress != "127.0.0.1" {
		t.Errorf("public IP = %s, want 127.0.0.1", *props.ConnectivityEndpoints.PublicIPAddress)
	}
	if *props.CreatedBy.UserID == "" || *props.LastOperation.OperationName != ml.OperationNameCreate || *props.LastOperation.OperationStatus != ml.OperationStatusSucceeded {
		t.Errorf("createdBy %+v lastOperation %+v", props.CreatedBy, props.LastOperation)
	}

	steps := []struct {
		name string
		do   func() error
		want ml.ComputeInstanceState
	}{
		{"stop", func() error {
			p, err := e.computes().BeginStop(ctx(t), rg, ws, "ci-life", nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx(t), fastPoll)
			}
			return err
		}, ml.ComputeInstanceStateStopped},
		{"start", func() error {
			p, err := e.computes().BeginStart(ctx(t), rg, ws, "ci-life", nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx(t), fastPoll)
			}
			return err
		}, ml.ComputeInstanceStateRunning},
		{"restart", func() error {
			p, err := e.computes().BeginRestart(ctx(t), rg, ws, "ci-life", nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx(t), fastPoll)
			}
			return err
		}, ml.ComputeInstanceStateRunning},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := e.state("ci-life"); got != s.want {
			t.Fatalf("after %s: state = %s, want %s", s.name, got, s.want)
		}
		lo := e.get("ci-life").Properties.LastOperation
		if !strings.EqualFold(string(*lo.OperationName), s.name) || *lo.OperationStatus != ml.OperationStatusSucceeded {
			t.Errorf("after %s: lastOperation = %s %s", s.name, *lo.OperationName, *lo.OperationStatus)
		}
	}

	dp, err := e.computes().BeginDelete(ctx(t), rg, ws, "ci-life", ml.UnderlyingResourceActionDelete, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	_, err = e.computes().Get(ctx(t), rg, ws, "ci-life", nil)
	armErr(t, err, 404, "ResourceNotFound")
	if doms, _ := e.drv.List(ctx(t)); len(doms) != 0 {
		t.Errorf("domains after delete = %v, want none", doms)
	}
	// Deleting what is gone is 204, which the SDK takes as done.
	dp, err = e.computes().BeginDelete(ctx(t), rg, ws, "ci-life", ml.UnderlyingResourceActionDelete, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Errorf("second delete: %v", err)
	}
	// The name is free again (S19).
	e.mustCreate("ci-life", "Standard_D3_v2")
}

func TestSSHDisabledHidesPortAndKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-nossh", "Standard_DS1_v2")
	ssh := e.get("ci-nossh").Properties.SSHSettings
	if *ssh.SSHPublicAccess != ml.SSHPublicAccessDisabled || ssh.SSHPort != nil || ssh.AdminPublicKey != nil {
		t.Errorf("sshSettings = access %s port %v key %v, want Disabled, no port, no key", *ssh.SSHPublicAccess, ssh.SSHPort, ssh.AdminPublicKey)
	}
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *sim.Config) { c.PageSize = 3 })
	want := map[string]bool{}
	for i := range 8 {
		name := fmt.Sprintf("ci-page%c", 'a'+i)
		want[name] = true
		e.mustCreate(name, "Standard_D1_v2")
	}
	pager := e.computes().NewListPager(rg, ws, nil)
	pages, got := 0, map[string]bool{}
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Value) > 3 {
			t.Errorf("page %d has %d items, want at most 3", pages, len(page.Value))
		}
		for _, c := range page.Value {
			if got[*c.Name] {
				t.Errorf("%s listed twice", *c.Name)
			}
			got[*c.Name] = true
		}
	}
	if pages != 3 || len(got) != len(want) {
		t.Errorf("listed %d instances in %d pages, want %d in 3", len(got), pages, len(want))
	}
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-taken", "Standard_D1_v2")
	cases := []struct {
		name, ci string
		body     ml.ComputeResource
		status   int
		code     string
		msg      string
	}{
		{"too short", "ab", instanceBody("Standard_D1_v2"), 400, "InvalidResourceName", "Reason: Invalid"},
		{"ends in dash digits", "ci-12", instanceBody("Standard_D1_v2"), 400, "InvalidResourceName", "must start with letters"},
		{"starts with digit", "1ci", instanceBody("Standard_D1_v2"), 400, "InvalidResourceName", ""},
		// "If - is used, it needs to be followed by at least one letter
		// later in the name" (how-to-create-compute-instance).
		{"ends in a dash", "abc-", instanceBody("Standard_D1_v2"), 400, "InvalidResourceName", "Please specify a different Azure ML Instance name"},
		{"two dashes", "ab--", instanceBody("Standard_D1_v2"), 400, "InvalidResourceName", ""},
		{"dash then digits", "cpu-cluster-1", instanceBody("Standard_D1_v2"), 400, "InvalidResourceName", ""},
		{"unknown size", "ci-size", instanceBody("Standard_Z99"), 400, "InvalidPropertyValue", "is not a supported VM size"},
		{"missing size", "ci-size", instanceBody(""), 400, "InvalidPropertyValue", "VMSize"},
		{"family quota", "ci-gpu", instanceBody("Standard_NC6"), 400, "QuotaExceeded", "Standard NC family vCPU quota of 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.create(c.ci, c.body)
			re := armErr(t, err, c.status, c.code)
			if c.msg != "" && !strings.Contains(re.Error(), c.msg) {
				t.Errorf("message %q does not contain %q", re.Error(), c.msg)
			}
		})
	}
	// Refused requests changed nothing.
	pager := e.computes().NewListPager(rg, ws, nil)
	page, err := pager.NextPage(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Value) != 1 {
		t.Errorf("%d instances after refused creates, want 1", len(page.Value))
	}
	if doms, _ := e.drv.List(ctx(t)); len(doms) != 1 {
		t.Errorf("%d domains after refused creates, want 1", len(doms))
	}

	// The name is taken across the region, not only the workspace (S2).
	p, err := e.computes().BeginCreateOrUpdate(ctx(t), rg, "ws-other", "ci-taken", instanceBody("Standard_D1_v2"), nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx(t), fastPoll)
	}
	re := armErr(t, err, 409, "ComputeNameAlreadyExists")
	if !strings.Contains(re.Error(), "unique across all existing computes within an Azure region") {
		t.Errorf("message = %v", re)
	}

	// The VM size cannot change (S5).
	_, err = e.create("ci-taken", instanceBody("Standard_D2_v2"))
	armErr(t, err, 400, "ComputeInstanceVmSizeUpdateNotSupported")
}

func TestQuotaCountsStoppedInstancesAndFreesOnDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	usage := func(name string) (int64, int64) {
		pager := e.factory.NewUsagesClient().NewListPager("eastus", nil)
		for pager.More() {
			page, err := pager.NextPage(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range page.Value {
				if *u.Name.Value == name {
					return *u.CurrentValue, *u.Limit
				}
			}
		}
		t.Fatalf("no usage %s", name)
		return 0, 0
	}
	// Six D3_v2 (4 vCPUs each) fill the Dv2 family's 24.
	for i := range 6 {
		e.mustCreate(fmt.Sprintf("ci-q%c", 'a'+i), "Standard_D3_v2")
	}
	if cur, lim := usage("standardDv2Family"); cur != 24 || lim != 24 {
		t.Fatalf("Dv2 usage = %d/%d, want 24/24", cur, lim)
	}
	p, err := e.computes().BeginStop(ctx(t), rg, ws, "ci-qa", nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Stopped, yet its quota is held (S6).
	_, err = e.create("ci-qg", instanceBody("Standard_D1_v2"))
	re := armErr(t, err, 400, "QuotaExceeded")
	if !strings.Contains(re.Error(), "Standard Dv2 family vCPU quota of 0") {
		t.Errorf("message = %v", re)
	}
	dp, err := e.computes().BeginDelete(ctx(t), rg, ws, "ci-qa", ml.UnderlyingResourceActionDelete, nil)
	if err == nil {
		_, err = dp.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := usage("standardDv2Family"); cur != 20 {
		t.Errorf("Dv2 usage after delete = %d, want 20", cur)
	}
	e.mustCreate("ci-qg", "Standard_D3_v2")

	// The total regional quota binds across families.
	_, err = e.factory.NewQuotasClient().Update(ctx(t), "eastus", ml.QuotaUpdateParameters{
		Value: []*ml.QuotaBaseProperties{{ID: to("/subscriptions/" + sub + "/providers/Microsoft.MachineLearningServices/locations/eastus/quotas/totalCores"), Limit: to[int64](26)}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.create("ci-total", instanceBody("Standard_DS3_v2"))
	re = armErr(t, err, 400, "QuotaExceeded")
	if !strings.Contains(re.Error(), "total vCPU quota of 2") {
		t.Errorf("message = %v", re)
	}
}

func TestIllegalTransitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-state", "Standard_D1_v2")
	// Azure accepts a start of a running instance and fails its operation
	// (microsoft/vscode-tools-for-ai#2096): the poller reports the
	// operation's error (azcore gives the status monitor's 200 with it),
	// and the instance is as it was.
	sp, err := e.computes().BeginStart(ctx(t), rg, ws, "ci-state", nil)
	if err != nil {
		t.Fatalf("start of a running instance: %v, want it accepted", err)
	}
	_, err = sp.PollUntilDone(ctx(t), fastPoll)
	re := armErr(t, err, 200, "StartComputeInstanceOnlyAllowedInStoppedState")
	if !strings.Contains(re.Error(), "only allowed when the instance ci-state is in 'stopped' state") {
		t.Errorf("message = %v", re)
	}
	ci := e.get("ci-state")
	if *ci.Properties.State != ml.ComputeInstanceStateRunning || *ci.Properties.LastOperation.OperationStatus != ml.OperationStatusStartFailed {
		t.Errorf("after the refused start: state %s, lastOperation %s; want Running, StartFailed", *ci.Properties.State, *ci.Properties.LastOperation.OperationStatus)
	}
	p, err := e.computes().BeginStop(ctx(t), rg, ws, "ci-state", nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Fatal(err)
	}
	// No report shows what Azure answers to a stop of a stopped instance:
	// it stays a 409.
	_, err = e.computes().BeginStop(ctx(t), rg, ws, "ci-state", nil)
	armErr(t, err, 409, "StopComputeInstanceOnlyAllowedInRunningState")
	_, err = e.computes().BeginRestart(ctx(t), rg, ws, "ci-state", nil)
	armErr(t, err, 409, "RestartComputeInstanceOnlyAllowedInRunningState")
}

func TestFailedCreateIsCreateFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.drv.FailNext("start", "", errors.New("qemu exploded"))
	_, err := e.create("ci-fail", instanceBody("Standard_D1_v2"))
	if err == nil {
		t.Fatal("create with a failing start succeeded")
	}
	ci := e.get("ci-fail")
	if *ci.Properties.State != ml.ComputeInstanceStateCreateFailed || *ci.ProvisioningState != ml.ProvisioningStateFailed {
		t.Errorf("state %s provisioning %s, want CreateFailed Failed", *ci.Properties.State, *ci.ProvisioningState)
	}
	if len(ci.Properties.Errors) == 0 || !strings.Contains(*ci.Properties.Errors[0].Error.Message, "qemu exploded") {
		t.Errorf("errors = %v, want the start failure", ci.Properties.Errors)
	}
	if doms, _ := e.drv.List(ctx(t)); len(doms) != 0 {
		t.Errorf("domains after failed create = %v, want none (undone)", doms)
	}
}

func TestListNodesAndSizes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-nodes", "Standard_D1_v2")
	pager := e.computes().NewListNodesPager(rg, ws, "ci-nodes", nil)
	page, err := pager.NextPage(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Nodes) != 1 || *page.Nodes[0].PublicIPAddress != "127.0.0.1" {
		t.Errorf("nodes = %+v, want one at 127.0.0.1", page.Nodes)
	}
	sizes, err := e.factory.NewVirtualMachineSizesClient().List(ctx(t), "eastus", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range sizes.Value {
		if *s.Name == "Standard_D3_v2" && *s.VCPUs == 4 && *s.Family == "standardDv2Family" {
			found = true
		}
	}
	if !found {
		t.Error("vmSizes lacks Standard_D3_v2 with 4 vCPUs in standardDv2Family")
	}
}

func TestRawErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other, _ := newEnv(t).tokens.Mint("x", "y", "", 3600e9)
	expired, _ := e.tokens.Mint("x", "y", "", -3600e9)
	q := "?api-version=2024-04-01"
	body := `{"location":"eastus","properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2"}}}`
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"no token", "GET", computesPath + q, "", "", 401, "AuthenticationFailed"},
		{"basic auth", "GET", computesPath + q, "", "", 401, "AuthenticationFailedInvalidHeader"},
		{"malformed token", "GET", computesPath + q, "garbage", "", 401, "InvalidAuthenticationToken"},
		{"foreign token", "GET", computesPath + q, other, "", 401, "InvalidAuthenticationToken"},
		{"expired token", "GET", computesPath + q, expired, "", 401, "ExpiredAuthenticationToken"},
		{"no api-version", "GET", computesPath, e.token, "", 400, "MissingApiVersionParameter"},
		{"bad api-version", "GET", computesPath + "?api-version=latest", e.token, "", 400, "InvalidApiVersionParameter"},
		{"preview api-version", "GET", computesPath + "?api-version=2025-10-01-preview", e.token, "", 200, ""},
		// Published versions only, as ARM answers for a provider's type.
		{"unpublished api-version", "GET", computesPath + "?api-version=2023-02-15", e.token, "", 400, "NoRegisteredProviderFound"},
		{"impossible api-version", "GET", computesPath + "?api-version=2024-13-45", e.token, "", 400, "NoRegisteredProviderFound"},
		{"newer api-version", "GET", computesPath + "?api-version=2031-01-01-preview", e.token, "", 200, ""},
		{"malformed json", "PUT", computesPath + "/ci-x" + q, e.token, `{"location":`, 400, "InvalidRequestContent"},
		{"body too large", "PUT", computesPath + "/ci-x" + q, e.token, `{"x":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "RequestEntityTooLarge"},
		{"wrong verb", "PATCH", computesPath + "/ci-x/start" + q, e.token, "", 405, "HttpMethodNotSupported"},
		{"unknown path", "GET", "/subscriptions/" + sub + "/nothing" + q, e.token, "", 404, "NotFound"},
		{"unknown workspace", "PUT", strings.Replace(computesPath, ws, "ws-none", 1) + "/ci-x" + q, e.token, body, 404, "ParentResourceNotFound"},
		{"list in unknown workspace", "GET", strings.Replace(computesPath, ws, "ws-none", 1) + q, e.token, "", 404, "ParentResourceNotFound"},
		{"unknown workspace itself", "GET", strings.TrimSuffix(strings.Replace(computesPath, ws, "ws-none", 1), "/computes") + q, e.token, "", 404, "ResourceNotFound"},
		{"unknown subscription", "GET", strings.Replace(computesPath, sub, "11111111-0000-0000-0000-000000000000", 1) + q, e.token, "", 404, "SubscriptionNotFound"},
		{"unknown compute type", "PUT", computesPath + "/ci-x" + q, e.token, strings.Replace(body, "ComputeInstance", "Mainframe", 1), 400, "InvalidPropertyValue"},
		{"cluster compute type", "PUT", computesPath + "/ci-x" + q, e.token, strings.Replace(body, "ComputeInstance", "AmlCompute", 1), 400, "ComputeTypeNotSupported"},
		{"missing compute type", "PUT", computesPath + "/ci-x" + q, e.token, `{"location":"eastus","properties":{}}`, 400, "InvalidPropertyValue"},
		{"bad ssh access", "PUT", computesPath + "/ci-x" + q, e.token, strings.Replace(body, `"vmSize"`, `"sshSettings":{"sshPublicAccess":"Sometimes"},"vmSize"`, 1), 400, "InvalidPropertyValue"},
		// A NUL in the key's comment parses, then breaks the guest's
		// authorized_keys: refused up front.
		{"ssh key with a NUL", "PUT", computesPath + "/ci-x" + q, e.token, strings.Replace(body, `"vmSize"`, `"sshSettings":{"sshPublicAccess":"Enabled","adminPublicKey":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJaQ3vS+rGnPOeBFEsr4m0dxe6cNLvDAmo1ib9Vzu1Gb me\u0000you"},"vmSize"`, 1), 400, "InvalidPropertyValue"},
		{"bad ssh key", "PUT", computesPath + "/ci-x" + q, e.token, strings.Replace(body, `"vmSize"`, `"sshSettings":{"sshPublicAccess":"Enabled","adminPublicKey":"ssh-rsa nope"},"vmSize"`, 1), 400, "InvalidPropertyValue"},
		{"detach", "DELETE", computesPath + "/ci-x" + q + "&underlyingResourceAction=Detach", e.token, "", 400, "InvalidQueryParameterValue"},
		{"delete in unknown workspace", "DELETE", strings.Replace(computesPath, ws, "ws-none", 1) + "/ci-x" + q + "&underlyingResourceAction=Delete", e.token, "", 404, "ParentResourceNotFound"},
		{"delete without action", "DELETE", computesPath + "/ci-x" + q, e.token, "", 400, "MissingRequiredQueryParameter"},
	}
	// Parts of the messages, as Azure words them.
	messages := map[string]string{
		"basic auth":               "The 'Authorization' header is provided in an invalid format.",
		"malformed token":          "The access token is invalid.",
		"foreign token":            "The access token is invalid.",
		"expired token":            "is earlier than current UTC time",
		"bad api-version":          "The supported versions are '2018-03-01-preview,2018-11-19,",
		"malformed json":           "could not be deserialized: '",
		"unknown workspace":        "Can not perform requested operation on nested resource. Parent resource 'ws-none' not found.",
		"unknown workspace itself": "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.raw(c.method, c.path, c.token, c.body)
			if c.name == "basic auth" {
				req, _ := http.NewRequest("GET", e.srv.URL+c.path, nil)
				req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
				var err error
				if resp, err = e.srv.Client().Do(req); err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, c.status, b)
			}
			if c.code == "" {
				return
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(b, &body); err != nil || body.Error.Code != c.code || body.Error.Message == "" || !strings.Contains(body.Error.Message, messages[c.name]) {
				t.Errorf("body = %s, want error code %s with a message containing %q", b, c.code, messages[c.name])
			}
		})
	}
	if doms, _ := e.drv.List(ctx(t)); len(doms) != 0 {
		t.Errorf("domains after bad requests = %v, want none", doms)
	}
}

// TestLocationPolling follows the Location header alone, as clients that
// ignore Azure-AsyncOperation do: 202 until done, then 200.
func TestLocationPolling(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-loc", "Standard_D1_v2")
	resp := e.raw("POST", computesPath+"/ci-loc/stop?api-version=2024-04-01", e.token, "")
	if resp.StatusCode != 202 {
		t.Fatalf("stop: status %d, want 202", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "https://") || resp.Header.Get("Retry-After") != "1" || !strings.HasPrefix(resp.Header.Get("Azure-AsyncOperation"), "https://") {
		t.Fatalf("headers = %v, want absolute Location and Azure-AsyncOperation, Retry-After 1", resp.Header)
	}
	path := strings.TrimPrefix(loc, e.srv.URL)
	done := false
	for range 300 {
		r := e.raw("GET", path, e.token, "")
		if r.StatusCode == http.StatusAccepted {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if r.StatusCode != http.StatusOK {
			t.Fatalf("location poll: status %d", r.StatusCode)
		}
		done = true
		break
	}
	if !done {
		t.Fatal("the Location URL still says 202 after 3 s")
	}
	if got := e.state("ci-loc"); got != ml.ComputeInstanceStateStopped {
		t.Errorf("state = %s, want Stopped", got)
	}
}

func TestEventsShowProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCreate("ci-events", "Standard_D1_v2")
	resp := e.raw("GET", computesPath+"/ci-events/amlsim/events?api-version=2024-04-01", e.token, "")
	var body struct {
		Value []struct{ Message string }
		State string
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, ev := range body.Value {
		msgs = append(msgs, ev.Message)
	}
	want := []string{"Create requested by amlsim owner", "VM defined", "VM started", "SSH up", "Creating done: Running"}
	if strings.Join(msgs, "|") != strings.Join(want, "|") || body.State != "Running" {
		t.Errorf("events = %q (state %s), want %q", msgs, body.State, want)
	}
	// The fake driver keeps no serial log: a clear 404.
	resp = e.raw("GET", computesPath+"/ci-events/amlsim/logs/serial?api-version=2024-04-01", e.token, "")
	if resp.StatusCode != 404 {
		t.Errorf("serial log on the fake driver: status %d, want 404", resp.StatusCode)
	}
}

func TestSetupScriptInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := "?api-version=2024-04-01"
	put := func(scripts string) *http.Response {
		body := `{"location":"eastus","properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2","setupScripts":{"scripts":` + scripts + `}}}}`
		return e.raw("PUT", computesPath+"/ci-script"+q, e.token, body)
	}
	for name, c := range map[string]struct{ scripts, code string }{
		"bad timeout":  {`{"startupScript":{"scriptSource":"inline","scriptData":"ZWNobyBoaQ==","timeout":"forever"}}`, "InvalidSetupScript"},
		"no source":    {`{"startupScript":{"scriptData":"ZWNobyBoaQ=="}}`, "InvalidSetupScript"},
		"empty script": {`{"creationScript":{"scriptSource":"inline","scriptData":""}}`, "UserError"}, // Azure/data-product-analytics#141
	} {
		resp := put(c.scripts)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(b), c.code) {
			t.Errorf("%s: %d %s, want 400 %s", name, resp.StatusCode, b, c.code)
		}
	}
	if resp := e.raw("GET", computesPath+"/ci-script"+q, e.token, ""); resp.StatusCode != 404 {
		t.Errorf("instance exists after refused creates: %d", resp.StatusCode)
	}
	// A good one is kept and echoed, as the studio shows it (S17).
	resp := put(`{"creationScript":{"scriptSource":"inline","scriptData":"ZWNobyBoaQ==","scriptArguments":"a 'b c'","timeout":"5m"}}`)
	if resp.StatusCode != 201 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("create with a good script: %d %s", resp.StatusCode, b)
	}
	ci := e.get("ci-script")
	waitEvent(t, e, "ci-script", "setup scripts are not run by the fake driver")
	cs := ci.Properties.SetupScripts.Scripts.CreationScript
	if *cs.ScriptArguments != "a 'b c'" || *cs.Timeout != "5m" {
		t.Errorf("echoed creation script = %+v", cs)
	}
}

// A script Azure only finds missing inside the VM is accepted, and the
// create fails with SetupScriptsError, leaving a SetupFailed instance to
// delete (Azure/azure-sdk-for-go#18017, Azure/azure-cli#31838).
func TestSetupScriptsMissingFailLate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, c := range map[string]struct{ ci, scripts string }{
		"path leaves share": {"ci-late-a", `{"creationScript":{"scriptSource":"workspaceStorage","scriptData":"../../etc/passwd"}}`},
		"absolute path":     {"ci-late-b", `{"creationScript":{"scriptSource":"workspaceStorage","scriptData":"/etc/passwd"}}`},
		"missing file":      {"ci-late-c", `{"creationScript":{"scriptSource":"workspaceStorage","scriptData":"Users/nobody/setup.sh"}}`},
		"not base64":        {"ci-late-d", `{"creationScript":{"scriptSource":"inline","scriptData":"echo hi"}}`},
		"a URL":             {"ci-late-e", `{"startupScript":{"scriptSource":"https://example.invalid/setup.sh","scriptData":"https://example.invalid/setup.sh"}}`},
	} {
		var scripts ml.SetupScripts
		if err := json.Unmarshal([]byte(`{"scripts":`+c.scripts+`}`), &scripts); err != nil {
			t.Fatal(err)
		}
		_, err := e.create(c.ci, ml.ComputeResource{Properties: &ml.ComputeInstance{Properties: &ml.ComputeInstanceProperties{
			VMSize: to("Standard_D1_v2"), SetupScripts: &scripts}}})
		re := armErr(t, err, 200, "SetupScriptsError")
		if !strings.Contains(re.Error(), "User specified setup script file not found.") {
			t.Errorf("%s: %v, want Azure's message", name, re)
		}
		ci := e.get(c.ci)
		if *ci.Properties.State != ml.ComputeInstanceStateSetupFailed || len(ci.Properties.Errors) == 0 || *ci.Properties.Errors[0].Error.Code != "SetupScriptsError" {
			t.Errorf("%s: state %s, errors %v; want SetupFailed with SetupScriptsError", name, *ci.Properties.State, ci.Properties.Errors)
		}
	}
}

// waitEvent waits for an instance to record an event.
// waitEvent waits for an event of the instance whose message contains msg.
func waitEvent(t *testing.T, e *env, name, msg string) {
	t.Helper()
	for range 100 {
		resp := e.raw("GET", computesPath+"/"+name+"/amlsim/events?api-version=2024-04-01", e.token, "")
		var body struct{ Value []struct{ Message string } }
		json.NewDecoder(resp.Body).Decode(&body)
		for _, ev := range body.Value {
			if strings.Contains(ev.Message, msg) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%s never recorded the event %q", name, msg)
}

// The full-object PUT clients send back after a GET (azure-ai-ml's
// begin_update; `az ml compute update`, which leaves sshSettings out)
// applies what may change and keeps the rest; a change of anything else
// is refused and changes nothing.
func TestUpdateAfterGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJaQ3vS+rGnPOeBFEsr4m0dxe6cNLvDAmo1ib9Vzu1Gb me@host"
	body := instanceBody("Standard_D1_v2")
	props := body.Properties.(*ml.ComputeInstance).Properties
	props.SSHSettings = &ml.ComputeInstanceSSHSettings{SSHPublicAccess: to(ml.SSHPublicAccessEnabled), AdminPublicKey: to(key)}
	if _, err := e.create("ci-upd", body); err != nil {
		t.Fatal(err)
	}
	got, err := e.computes().Get(ctx(t), rg, ws, "ci-upd", nil)
	if err != nil {
		t.Fatal(err)
	}
	res := got.ComputeResource
	ci := res.Properties.(*ml.ComputeInstance)
	ci.Description = to("updated")
	res.Tags = map[string]*string{"team": to("ml")}
	ci.Properties.Schedules = &ml.ComputeSchedules{ComputeStartStop: []*ml.ComputeStartStopSchedule{{
		Action: to(ml.ComputePowerActionStop), TriggerType: to(ml.ComputeTriggerTypeCron), Status: to(ml.ScheduleStatusEnabled),
		Cron: &ml.Cron{Expression: to("0 18 * * *"), StartTime: to("2026-01-01T00:00:00"), TimeZone: to("UTC")},
	}}}
	ci.Properties.SSHSettings = nil // as az ml compute update sends it
	p, err := e.computes().BeginCreateOrUpdate(ctx(t), rg, ws, "ci-upd", res, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Fatalf("PUT of the GET result with changes: %v", err)
	}
	after := e.get("ci-upd")
	if *after.Description != "updated" || after.Properties.Schedules == nil || len(after.Properties.Schedules.ComputeStartStop) != 1 ||
		*after.Properties.SSHSettings.SSHPublicAccess != ml.SSHPublicAccessEnabled {
		t.Errorf("after the update: description %v, schedules %+v, ssh %+v; want updated, one schedule, SSH kept", after.Description, after.Properties.Schedules, after.Properties.SSHSettings)
	}
	// A property Azure does not let change: refused, nothing changed.
	ci.Properties.ApplicationSharingPolicy = to(ml.ApplicationSharingPolicyShared)
	ci.Description = to("again")
	_, err = e.computes().BeginCreateOrUpdate(ctx(t), rg, ws, "ci-upd", res, nil)
	re := armErr(t, err, 400, "InvalidPropertyValue")
	if !strings.Contains(re.Error(), "applicationSharingPolicy") {
		t.Errorf("refusal %v does not name the property", re)
	}
	if d := *e.get("ci-upd").Description; d != "updated" {
		t.Errorf("description after a refused update = %q, want updated", d)
	}
}
