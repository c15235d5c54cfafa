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

// auditRecord is one line of the audit log: who asked what, and the
// answer; or a fault effect applied outside a request (no method or
// status, the instance's resource ID as path, the effect).
type auditRecord struct {
	Time      time.Time `json:"time"`
	Principal string    `json:"principal,omitempty"`
	Name      string    `json:"name,omitempty"`
	Method    string    `json:"method,omitempty"`
	Path      string    `json:"path"`
	Actions   []string  `json:"actions,omitempty"`
	Status    int       `json:"status,omitempty"`
	// Fault is the fault rule that answered the request, if one did, or
	// that acted on the instance at Path.
	Fault  string `json:"fault,omitempty"`
	Effect string `json:"effect,omitempty"`
}

// AuditLog is amlsim's audit log: one JSON line per request (time,
// principal, method, path, the RBAC actions checked, the status, the
// fault rule that answered it) and one per fault effect applied outside a
// request (sim.WithFaultLog). Safe for concurrent use.
type AuditLog struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewAuditLog writes the audit log to w.
func NewAuditLog(w io.Writer) *AuditLog { return &AuditLog{enc: json.NewEncoder(w)} }

// WithAudit writes a line to l for each request.
func WithAudit(l *AuditLog) Option {
	return func(s *Server) { s.auditLog = l }
}

func (l *AuditLog) write(rec auditRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.enc.Encode(rec)
}

// Fault records a fault effect applied to an instance outside a request.
func (l *AuditLog) Fault(f sim.InjectedFault) {
	l.write(auditRecord{Time: f.Time.UTC(), Path: f.Instance, Fault: f.Rule, Effect: f.Effect})
}

// audit records a request, dated by the service's clock (the test clock
// when there is one), as every timestamp amlsim records.
func (s *Server) audit(who sim.Principal, r *http.Request, actions []string, status int, fault string) {
	if s.auditLog == nil {
		return
	}
	s.auditLog.write(auditRecord{Time: s.svc.Now().UTC(), Principal: who.ObjectID, Name: who.Name, Method: r.Method, Path: redactPath(r.URL.Path), Actions: actions, Status: status, Fault: fault})
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
