package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/amlsim/amlsim/sim"
)

// Request is a request the simulator makes of its own API on behalf of a
// principal: a deployment creating its resources, the studio page acting
// for its user. It goes through everything a client's request does
// (authentication, RBAC, validation, the audit log).
type Request struct {
	// Host is the host clients reach amlsim on, for the URLs in the
	// answer (polling headers).
	Host          string
	Method        string
	Path          string     // not escaped; it may come from a template
	Version       string     // api-version
	Query         url.Values // more query parameters, or nil
	Body          []byte     // JSON, or nil
	CorrelationID string
}

// Response is the API's answer to a Request.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// OK reports a 2xx status.
func (r Response) OK() bool { return r.Status/100 == 2 }

// Err is the ARM error the answer carries (nil for a 2xx), as a
// *sim.Error of kind BadRequest, or of kind Internal when the body holds
// no ARM error.
func (r Response) Err() error {
	if r.OK() {
		return nil
	}
	var e armError
	if json.Unmarshal(r.Body, &e) != nil || e.Error.Code == "" {
		return sim.Errorf(sim.KindInternal, "ResourceRequestFailed", "The request failed with status %d.", r.Status)
	}
	return &sim.Error{Kind: sim.KindBadRequest, Code: e.Error.Code, Message: e.Error.Message, Target: e.Error.Target}
}

// Call serves r as who. It returns no error of its own: every failure,
// a token that could not be minted included, is an ARM error in the
// Response.
func (s *Server) Call(ctx context.Context, who sim.Principal, r Request) Response {
	var rd io.Reader
	if r.Body != nil {
		rd = bytes.NewReader(r.Body)
	}
	// The path is set as a URL, not parsed from a request line.
	req := httptest.NewRequestWithContext(ctx, r.Method, "/", rd)
	q := url.Values{}
	for k, v := range r.Query {
		q[k] = v
	}
	q.Set("api-version", r.Version)
	req.URL = &url.URL{Path: r.Path, RawQuery: q.Encode()}
	req.RequestURI = req.URL.RequestURI()
	req.Host = r.Host
	if r.CorrelationID != "" {
		req.Header.Set("x-ms-correlation-request-id", r.CorrelationID)
	}
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	if tok, err := s.tokens.Mint(who.ObjectID, who.TenantID, who.Name, time.Hour); err != nil {
		writeError(rec, err)
	} else {
		req.Header.Set("Authorization", "Bearer "+tok)
		s.ServeHTTP(rec, req)
	}
	return Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}
