package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/amlsim/amlsim/sim"
)

// auditRecord is one line of the audit log: who asked what, and the answer.
type auditRecord struct {
	Time      time.Time `json:"time"`
	Principal string    `json:"principal,omitempty"`
	Name      string    `json:"name,omitempty"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Actions   []string  `json:"actions,omitempty"`
	Status    int       `json:"status"`
	// Fault is the fault rule that answered the request, if one did.
	Fault string `json:"fault,omitempty"`
}

// WithAudit writes one JSON line per request to w: time, principal,
// method, path, the RBAC actions checked and the status.
func WithAudit(w io.Writer) Option {
	return func(s *Server) { s.auditLog = &lockedEncoder{enc: json.NewEncoder(w)} }
}

type lockedEncoder struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// audit records a request, dated by the service's clock (the test clock
// when there is one), as every timestamp amlsim records.
func (s *Server) audit(who sim.Principal, r *http.Request, actions []string, status int, fault string) {
	if s.auditLog == nil {
		return
	}
	at := s.svc.Now()
	s.auditLog.mu.Lock()
	defer s.auditLog.mu.Unlock()
	s.auditLog.enc.Encode(auditRecord{Time: at.UTC(), Principal: who.ObjectID, Name: who.Name, Method: r.Method, Path: redactPath(r.URL.Path), Actions: actions, Status: status, Fault: fault})
}

// redactPath hides the identity secret an MSI_ENDPOINT path carries: any
// first segment under the prefix but "token".
func redactPath(p string) string {
	rest, ok := strings.CutPrefix(p, IdentityPathPrefix)
	if !ok {
		return p
	}
	first, tail, _ := strings.Cut(rest, "/")
	if first == "token" || first == "" {
		return p
	}
	return IdentityPathPrefix + "***/" + tail
}
