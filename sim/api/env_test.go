package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/guest"
	"github.com/amlsim/amlsim/sim/store"
)

const (
	sub = "00000000-0000-0000-0000-000000000000"
	rg  = "rg-local"
	ws  = "ws-local"
)

// env is a simulator on the fake driver served over HTTPS in-process, and
// real Azure SDK clients pointed at it.
type env struct {
	t       testing.TB
	srv     *httptest.Server
	svc     *sim.Service
	drv     *fake.Driver
	tokens  *auth.Signer
	token   string
	factory *ml.ClientFactory
	opts    *arm.ClientOptions
	// activity is what the fake guests report to idle shutdown.
	activity *guest.FakeActivity
}

type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func newEnv(t testing.TB, tweak ...func(*sim.Config)) *env {
	t.Helper()
	return newEnvDriver(t, nil, tweak...)
}

// newEnvDriver is newEnv with more options for the fake driver.
func newEnvDriver(t testing.TB, drvOpts []fake.Option, tweak ...func(*sim.Config)) *env {
	t.Helper()
	return newEnvFull(t, drvOpts, nil, nil, tweak...)
}

// newEnvFull is newEnv with options for the fake driver, the API and the
// service.
func newEnvFull(t testing.TB, drvOpts []fake.Option, apiOpts []api.Option, simOpts []sim.Option, tweak ...func(*sim.Config)) *env {
	t.Helper()
	cfg := sim.DefaultConfig()
	// Ports of their own: port allocation probes by listening, and the
	// packages' tests run in parallel (cmd/amlsim's use the default range).
	cfg.Local.PortRange = [2]int{31022, 31999}
	cfg.Workspaces = append(cfg.Workspaces, sim.WorkspaceConfig{ResourceGroup: rg, Name: "ws-other", Location: "eastus"})
	for _, f := range tweak {
		f(&cfg)
	}
	home := t.TempDir()
	st, err := store.Open(filepath.Join(home, "state.db"), sim.Buckets()...)
	if err != nil {
		t.Fatal(err)
	}
	d := 20 * time.Millisecond
	drv := fake.New(append([]fake.Option{fake.WithDelays(fake.Delays{Define: d, Start: d, Shutdown: d, Reboot: d, Destroy: d, Undefine: d})}, drvOpts...)...)
	activity := &guest.FakeActivity{}
	svc, err := sim.New(cfg, st, drv, guest.Fake{Driver: drv, Active: activity}, append([]sim.Option{sim.WithShares(filepath.Join(home, "shares")), sim.WithImageVersion(testImage)}, simOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.LoadOrCreate(home)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(api.New(svc, tokens, append([]api.Option{api.WithPollInterval(50 * time.Millisecond)}, apiOpts...)...))
	t.Cleanup(func() {
		srv.Close()
		svc.Close()
		st.Close()
	})
	tok, err := tokens.Mint(sim.DefaultOwner.ObjectID, sim.DefaultOwner.TenantID, sim.DefaultOwner.Name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, svc: svc, drv: drv, tokens: tokens, token: tok, activity: activity}
	e.opts = &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: "https://login.invalid/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: srv.URL, Audience: "https://management.azure.com"},
			},
		},
		Transport: srv.Client(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
	e.factory, err = ml.NewClientFactory(sub, staticToken(tok), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) computes() *ml.ComputeClient { return e.factory.NewComputeClient() }

// resources returns the Go SDK's client factory for Microsoft.Resources.
func (e *env) resources() *armresources.ClientFactory {
	f, err := armresources.NewClientFactory(sub, staticToken(e.token), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// group creates a resource group with the Go SDK.
func (e *env) group(name, location string) {
	e.t.Helper()
	if _, err := e.resources().NewResourceGroupsClient().CreateOrUpdate(ctx(e.t), name, armresources.ResourceGroup{Location: to(location)}, nil); err != nil {
		e.t.Fatal(err)
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

var fastPoll = &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond}

func instanceBody(size string) ml.ComputeResource {
	return ml.ComputeResource{
		Location: to("eastus"),
		Properties: &ml.ComputeInstance{
			ComputeType: to(ml.ComputeTypeComputeInstance),
			Properties:  &ml.ComputeInstanceProperties{VMSize: to(size)},
		},
	}
}

func to[T any](v T) *T { return &v }

// create creates an instance and waits for the operation to finish.
func (e *env) create(name string, body ml.ComputeResource) (ml.ComputeClientCreateOrUpdateResponse, error) {
	e.t.Helper()
	p, err := e.computes().BeginCreateOrUpdate(ctx(e.t), rg, ws, name, body, nil)
	if err != nil {
		return ml.ComputeClientCreateOrUpdateResponse{}, err
	}
	return p.PollUntilDone(ctx(e.t), fastPoll)
}

func (e *env) mustCreate(name, size string) {
	e.t.Helper()
	if _, err := e.create(name, instanceBody(size)); err != nil {
		e.t.Fatalf("create %s: %v", name, err)
	}
}

func (e *env) get(name string) *ml.ComputeInstance {
	e.t.Helper()
	r, err := e.computes().Get(ctx(e.t), rg, ws, name, nil)
	if err != nil {
		e.t.Fatalf("get %s: %v", name, err)
	}
	ci, ok := r.Properties.(*ml.ComputeInstance)
	if !ok {
		e.t.Fatalf("get %s: properties are %T, want *ComputeInstance", name, r.Properties)
	}
	return ci
}

func (e *env) state(name string) ml.ComputeInstanceState {
	e.t.Helper()
	return *e.get(name).Properties.State
}

// raw sends a JSON request with the test token (or none when token is "").
func (e *env) raw(method, path, token, body string) *http.Response {
	e.t.Helper()
	return e.rawType(method, path, token, "application/json", body)
}

// rawType is raw with a Content-Type of one's choosing ("" sends none).
func (e *env) rawType(method, path, token, contentType, body string) *http.Response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}
