package api_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/amlsimtest"
	"github.com/amlsim/amlsim/sim/api"
	"github.com/amlsim/amlsim/sim/auth"
)

const (
	sub = "00000000-0000-0000-0000-000000000000"
	rg  = "rg-local"
	ws  = "ws-local"
)

// env is a simulator on the fake driver, served over HTTPS in-process,
// and real Azure SDK clients pointed at it: a whole amlsim server
// (sim/amlsimtest: the wiring of `amlsim serve`, recovered, with its audit
// log and studio).
type env struct {
	t testing.TB
	// srv is where the tests reach the server: its base URL, and an HTTP
	// client that trusts it.
	srv    endpoint
	svc    *sim.Service
	drv    *fake.Driver
	tokens *auth.Signer
	// token is the built-in owner's.
	token   string
	factory *ml.ClientFactory
	opts    *arm.ClientOptions
	// amlsim is the server.
	amlsim *amlsimtest.Server
}

// endpoint is a server's base URL and a client that trusts it.
type endpoint struct {
	URL    string
	client *http.Client
}

// Client returns an HTTP client that trusts the server. It speaks
// HTTP/2 to the server, as the SDK does.
func (p endpoint) Client() *http.Client { return p.client }

// HTTP1Client returns a client that trusts the server and speaks
// HTTP/1.1 only, as a browser does to open a WebSocket (an HTTP/2 client
// cannot send an Upgrade).
func (p endpoint) HTTP1Client() *http.Client {
	tr := p.client.Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	return &http.Client{Transport: tr}
}

type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// testConfig is the configuration of the tests' servers: the defaults,
// a second workspace, ports of their own, fake steps of 20 ms, and tweaks.
func testConfig(tweak []func(*sim.Config)) sim.Config {
	cfg := sim.DefaultConfig()
	// Ports of their own: port allocation probes by listening, the
	// package's tests run in parallel, and so do the packages'.
	n := int(envPorts.Add(1)) % 100
	cfg.Local.PortRange = [2]int{50022 + 90*n, 50111 + 90*n}
	cfg.Workspaces = append(cfg.Workspaces, sim.WorkspaceConfig{ResourceGroup: rg, Name: "ws-other", Location: "eastus"})
	cfg.Fake.Delay.Duration = 20 * time.Millisecond
	for _, f := range tweak {
		f(&cfg)
	}
	return cfg
}

func newEnv(t testing.TB, tweak ...func(*sim.Config)) *env {
	t.Helper()
	return newServerEnv(t, tweak)
}

// newEnvDriver is newEnv with more options for the fake driver.
func newEnvDriver(t testing.TB, drvOpts []fake.Option, tweak ...func(*sim.Config)) *env {
	t.Helper()
	return newServerEnv(t, tweak, amlsimtest.WithFakeOptions(drvOpts...))
}

// newServerEnv is an environment on a whole amlsim server started by
// amlsimtest with the test configuration and opts, telling clients to
// poll every 50 ms.
func newServerEnv(t testing.TB, tweak []func(*sim.Config), opts ...amlsimtest.Option) *env {
	t.Helper()
	srv := amlsimtest.Start(t, append([]amlsimtest.Option{
		amlsimtest.WithConfig(testConfig(tweak)),
		amlsimtest.WithAPIOptions(api.WithPollInterval(50 * time.Millisecond)),
	}, opts...)...)
	// The server's token key, read from its home as the CLI reads it.
	tokens, err := auth.LoadOrCreate(srv.Home())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: endpoint{URL: srv.Endpoint(), client: srv.HTTPClient()}, svc: srv.Service(),
		drv: srv.Driver().(*fake.Driver), tokens: tokens, amlsim: srv}
	e.opts = srv.ClientOptions()
	// No retries: a test sees every answer.
	e.opts.Retry = policy.RetryOptions{MaxRetries: -1}
	e.init()
	return e
}

// init mints the owner's token and makes the SDK's client factory.
func (e *env) init() {
	e.t.Helper()
	tok, err := e.tokens.Mint(sim.DefaultOwner.ObjectID, sim.DefaultOwner.TenantID, sim.DefaultOwner.Name, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	e.token = tok
	if e.factory, err = ml.NewClientFactory(sub, staticToken(tok), e.opts); err != nil {
		e.t.Fatal(err)
	}
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

// envPorts numbers the test servers, for their port ranges.
var envPorts atomic.Int32

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
