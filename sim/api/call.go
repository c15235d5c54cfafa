package api

import (
	"bytes"
	"context"
	"io"
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

// Call serves r as who and returns the recorded response.
func (s *Server) Call(ctx context.Context, who sim.Principal, r Request) *httptest.ResponseRecorder {
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
	tok, err := s.tokens.Mint(who.ObjectID, who.TenantID, who.Name, time.Hour)
	if err != nil {
		writeError(rec, err)
		return rec
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	s.ServeHTTP(rec, req)
	return rec
}
