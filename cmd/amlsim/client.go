package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/pki"
)

// provider is the ARM resource provider the server serves.
const provider = "Microsoft.MachineLearningServices"

// extensionAPIVersion is the api-version sent to amlsim's own endpoints
// (events, logs, the test clock): armmachinelearning v4's.
const extensionAPIVersion = "2024-04-01"

// client calls the amlsim server through the Azure SDK for Go: the
// armmachinelearning v4 and armauthorization clients for Azure's APIs, and
// the same pipeline (credential, trusted CA, retries, logging) for
// amlsim's extension endpoints. Every CLI run is thus a run of the SDK
// path users depend on.
type client struct {
	sub   string
	user  string
	cred  azcore.TokenCredential
	ml    *ml.ClientFactory
	authz *armauthorization.ClientFactory
	arm   *arm.Client
	base  string // scheme://host[:port]
}

// newClient prepares a client from the global flags: it trusts the CA in
// the home and mints tokens with the home's key.
func newClient(g *globals) (*client, error) {
	u, err := url.Parse(g.endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, usageErrorf("--endpoint %q is not an https://HOST:PORT URL", g.endpoint)
	}
	// Check the CA first: LoadOrCreate would otherwise create a token key in
	// a home no server uses, and every call would then fail with 401.
	caPath := filepath.Join(g.home, pki.CAFile)
	if _, err := os.Stat(caPath); err != nil {
		return nil, &cliError{Status: exitUnreachable, Code: "HomeNotInitialized",
			Message: fmt.Sprintf("no CA at %s: start the server once with 'amlsim serve --home %s' or point --home/AMLSIM_HOME at its home", caPath, g.home)}
	}
	pool, err := pki.Pool(g.home)
	if err != nil {
		return nil, &cliError{Status: exitUnreachable, Code: "HomeNotInitialized", Message: err.Error()}
	}
	signer, err := auth.LoadOrCreate(g.home)
	if err != nil {
		return nil, &cliError{Status: exitAuth, Code: "TokenKeyUnreadable", Message: err.Error()}
	}
	base := u.Scheme + "://" + u.Host
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	opts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{
			// Never asked: the credential mints its tokens itself.
			ActiveDirectoryAuthorityHost: base + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: base, Audience: auth.Audience},
			},
		},
		Transport: &http.Client{Transport: tr},
		// The SDK's retry policy, for what a client should retry: ARM
		// throttling (429) and a service that is briefly unavailable
		// (503), honouring Retry-After. Not a connection refused or a
		// timeout (the server is not running: say so at once), and not
		// a 500 of a POST that may have been acted on.
		Retry: policy.RetryOptions{
			MaxRetries: 3, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 10 * time.Second,
			TryTimeout: 30 * time.Second,
			ShouldRetry: func(resp *http.Response, err error) bool {
				return err == nil && resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable)
			},
		},
		Telemetry: policy.TelemetryOptions{ApplicationID: "amlsim-cli"},
		// Plain HTTP is for a server behind a TLS-terminating proxy.
		InsecureAllowCredentialWithHTTP: u.Scheme == "http",
	}}
	name := ""
	if g.user == sim.DefaultOwner.ObjectID {
		name = sim.DefaultOwner.Name
	}
	// Minted with the home's token key, as `amlsim token` does.
	cred := signer.Credential(g.user, sim.DefaultOwner.TenantID, name)
	c := &client{sub: g.sub, user: g.user, cred: cred, base: base}
	if c.ml, err = ml.NewClientFactory(g.sub, cred, opts); err != nil {
		return nil, err
	}
	if c.authz, err = armauthorization.NewClientFactory(g.sub, cred, opts); err != nil {
		return nil, err
	}
	if c.arm, err = arm.NewClient("amlsim-cli", "v1.0.0", cred, opts); err != nil {
		return nil, err
	}
	return c, nil
}

// token returns a bearer token for the client's principal.
func (c *client) token(ctx context.Context) (string, error) {
	t, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{auth.Audience + ".default"}})
	return t.Token, err
}

// computePath is the ARM path of a workspace's computes, or of one compute.
func (c *client) computePath(w *workspaceRef, name string) string {
	p := c.workspacePath(w) + "/computes"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// workspacePath is the ARM path of a workspace.
func (c *client) workspacePath(w *workspaceRef) string {
	return "/subscriptions/" + url.PathEscape(c.sub) + "/resourceGroups/" + url.PathEscape(w.rg) +
		"/providers/" + provider + "/workspaces/" + url.PathEscape(w.name)
}

// response is an answer of the server that was not an error.
type response struct {
	status int
	body   []byte
}

// do sends one request to an amlsim extension endpoint through the SDK's
// pipeline. target is a path under the endpoint or an absolute URL;
// api-version is added when absent. An ARM error answer is returned as a
// *cliError carrying its code.
func (c *client) do(ctx context.Context, method, target string, query url.Values, body any) (*response, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("request URL %q: %w", target, err)
	}
	if !u.IsAbs() {
		if u, err = url.Parse(c.base + target); err != nil {
			return nil, fmt.Errorf("request URL %q: %w", target, err)
		}
	}
	q := u.Query()
	for k, vs := range query {
		q[k] = vs
	}
	if q.Get("api-version") == "" {
		q.Set("api-version", extensionAPIVersion)
	}
	u.RawQuery = q.Encode()
	req, err := runtime.NewRequest(ctx, method, u.String())
	if err != nil {
		return nil, err
	}
	if body != nil {
		if err := runtime.MarshalAsJSON(req, body); err != nil {
			return nil, err
		}
	}
	resp, err := c.arm.Pipeline().Do(req)
	if err != nil {
		return nil, c.failure(ctx, err)
	}
	b, err := runtime.Payload(resp)
	if err != nil {
		return nil, fmt.Errorf("read answer to %s %s: %w", method, u.Path, err)
	}
	if resp.StatusCode >= 400 {
		return nil, decodeError(resp.StatusCode, b)
	}
	return &response{status: resp.StatusCode, body: b}, nil
}

// getJSON GETs an extension endpoint and decodes the JSON answer into v.
func (c *client) getJSON(ctx context.Context, target string, query url.Values, v any) error {
	resp, err := c.do(ctx, http.MethodGet, target, query, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		return fmt.Errorf("decode answer of GET %s: %w", target, err)
	}
	return nil
}

// failure turns an error of an SDK call into the CLI's: an ARM error
// answer keeps its code and message; a server that cannot be reached is
// ServerUnreachable.
func (c *client) failure(ctx context.Context, err error) error {
	var re *azcore.ResponseError
	var ce *cliError
	switch {
	case errors.As(err, &ce):
		return err
	case errors.As(err, &re):
		var b []byte
		if re.RawResponse != nil {
			b, _ = runtime.Payload(re.RawResponse)
		}
		if re.StatusCode < 400 && re.ErrorCode == "" {
			// An operation that ended Failed or Canceled without an
			// error object in its status.
			var op struct {
				Status string `json:"status"`
			}
			json.Unmarshal(b, &op)
			return &cliError{Status: exitFailed, Code: "OperationFailed", Message: "the operation ended " + op.Status}
		}
		e := decodeError(re.StatusCode, b).(*cliError)
		if re.ErrorCode != "" {
			e.Code = re.ErrorCode
			e.Status = exitStatusOf(re.StatusCode, re.ErrorCode)
		}
		return e
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return &cliError{Status: exitUnreachable, Code: "ServerUnreachable",
		Message: fmt.Sprintf("cannot reach amlsim at %s (is 'amlsim serve' running? set --endpoint or AMLSIM_ENDPOINT): %v", c.base, unwrapURLError(err))}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// armErrorBody is the ARM error answer.
type armErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// decodeError reads an ARM error answer (or an operation status with an
// error) into a *cliError.
func decodeError(status int, b []byte) error {
	var e armErrorBody
	if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
		return apiError(status, e.Error.Code, e.Error.Message)
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = http.StatusText(status)
	}
	return apiError(status, "", msg)
}
