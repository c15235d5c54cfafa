package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/pki"
)

// provider is the ARM resource provider the server serves.
const provider = "Microsoft.MachineLearningServices"

// client talks HTTPS to the amlsim server's ARM API: plain net/http and
// small structs, so the CLI can also reach amlsim's extension endpoints.
type client struct {
	base  string // scheme://host[:port], no trailing slash
	sub   string
	user  string
	token string
	http  *http.Client
}

// newClient prepares a client from the global flags: it trusts the CA in
// the home and mints a token with the home's key, as `amlsim token` does.
func newClient(g globals) (*client, error) {
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
	name := ""
	if g.user == sim.DefaultOwner.ObjectID {
		name = sim.DefaultOwner.Name
	}
	tok, err := signer.Mint(g.user, sim.DefaultOwner.TenantID, name, time.Hour)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return &client{
		base:  strings.TrimRight(u.Scheme+"://"+u.Host, "/"),
		sub:   g.sub,
		user:  g.user,
		token: tok,
		http:  &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}, nil
}

// computePath is the ARM path of a workspace's computes, or of one compute.
func (c *client) computePath(w *workspaceRef, name string) string {
	p := "/subscriptions/" + url.PathEscape(c.sub) + "/resourceGroups/" + url.PathEscape(w.rg) +
		"/providers/" + provider + "/workspaces/" + url.PathEscape(w.name) + "/computes"
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

// locationPath is the ARM path of a location's resources.
func (c *client) locationPath(location string) string {
	return "/subscriptions/" + url.PathEscape(c.sub) + "/providers/" + provider + "/locations/" + url.PathEscape(location)
}

// response is an answer of the server that was not an error.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request. target is a path under the endpoint or an absolute
// URL (a polling header); api-version is added when absent. An ARM error
// answer is returned as a *cliError carrying its code.
func (c *client) do(ctx context.Context, method, target string, query url.Values, body any) (*response, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("request URL %q: %w", target, err)
	}
	if !u.IsAbs() {
		u, err = url.Parse(c.base + target)
		if err != nil {
			return nil, fmt.Errorf("request URL %q: %w", target, err)
		}
	}
	q := u.Query()
	for k, vs := range query {
		q[k] = vs
	}
	if q.Get("api-version") == "" {
		q.Set("api-version", apiVersion)
	}
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", "amlsim-cli")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &cliError{Status: exitUnreachable, Code: "ServerUnreachable",
			Message: fmt.Sprintf("cannot reach amlsim at %s (is 'amlsim serve' running? set --endpoint or AMLSIM_ENDPOINT): %v", c.base, unwrapURLError(err))}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer to %s %s: %w", method, u.Path, err)
	}
	if resp.StatusCode >= 400 {
		return nil, decodeError(resp.StatusCode, b)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
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

// getJSON GETs target and decodes the JSON answer into v.
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
