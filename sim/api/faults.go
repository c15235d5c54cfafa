package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sosodev/duration"

	"github.com/amlsim/amlsim/sim"
)

// FaultsPath is where `serve --faults` serves its fault rules:
//
//	PUT    /amlsim/faults/{id}  {"operation", "match", "effect", "times"} → 200 or 201, the rule
//	GET    /amlsim/faults       → {"value": [rules, oldest first]}
//	GET    /amlsim/faults/{id}  → the rule
//	DELETE /amlsim/faults/{id}  → 200, or 204 when there was none
//
// Only a principal allowed to assign roles at the subscription (an Owner)
// may use them; without the flag the paths do not exist (404). The rules
// are sim.FaultRule; the README gives examples.
const FaultsPath = "/amlsim/faults"

// WithFaults serves FaultsPath and applies its rules to requests.
func WithFaults() Option { return func(s *Server) { s.faults = true } }

func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request, who sim.Principal, actions *[]string) error {
	id, hasID := strings.CutPrefix(r.URL.Path, FaultsPath+"/")
	if !s.faults || (r.URL.Path != FaultsPath && (!hasID || id == "" || strings.Contains(id, "/"))) {
		return sim.Errorf(sim.KindNotFound, "NotFound", "The requested path '%s' was not found.", r.URL.Path)
	}
	*actions = []string{sim.ActAssignmentWrite}
	if err := s.svc.Authorize(who, sim.ActAssignmentWrite, "/subscriptions/"+s.sub()); err != nil {
		return err
	}
	switch {
	case r.Method == http.MethodGet && !hasID:
		rules, err := s.svc.Faults()
		if err != nil {
			return err
		}
		if rules == nil {
			rules = []sim.FaultRule{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": rules})
	case r.Method == http.MethodGet:
		rules, err := s.svc.Faults()
		if err != nil {
			return err
		}
		for _, rule := range rules {
			if rule.ID == id {
				writeJSON(w, http.StatusOK, rule)
				return nil
			}
		}
		return sim.Errorf(sim.KindNotFound, "FaultRuleNotFound", "There is no fault rule '%s'.", id)
	case r.Method == http.MethodPut && hasID:
		var rule sim.FaultRule
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
		// Strict, unlike ARM: a misspelt field would silently widen a rule.
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rule); err != nil {
			return sim.Errorf(sim.KindBadRequest, "InvalidFaultRule", "The fault rule is not valid JSON of a rule: %v.", err)
		}
		rule.ID = id
		existed, err := s.svc.DeleteFault(id)
		if err != nil {
			return err
		}
		saved, err := s.svc.PutFault(rule)
		if err != nil {
			return err
		}
		status := http.StatusCreated
		if existed {
			status = http.StatusOK
		}
		writeJSON(w, status, saved)
	case r.Method == http.MethodDelete && hasID:
		ok, err := s.svc.DeleteFault(id)
		if err != nil {
			return err
		}
		if !ok {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		w.WriteHeader(http.StatusOK)
	default:
		return sim.Errorf(sim.KindMethod, "HttpMethodNotSupported", "The requested resource does not support http method '%s'.", r.Method)
	}
	return nil
}

// requestFault answers a compute request with the status of the first
// fault rule that matches it, if any (nil: serve it). Its texts are
// ARM's: throttling (SubscriptionRequestsThrottled, from the token-bucket
// limits of request-limits-and-throttling.md; wording as ARM returned it
// in roivaz/ARO-HCP-CIHealth's recorded failures), an internal error
// (Azure/azure-powershell#11291) and a 503 timeout (microsoft/MLOS#950).
func (s *Server) requestFault(w http.ResponseWriter, hr *http.Request, rt route, vars map[string]string, who sim.Principal) error {
	op := faultOperation(rt)
	if !s.faults || op == "" {
		return nil
	}
	t := sim.FaultTarget{Operation: op, Name: vars["name"], Principal: who.ObjectID}
	if ws, err := s.svc.Workspace(sim.WorkspaceRef{ResourceGroup: vars["rg"], Name: vars["ws"]}); err == nil {
		t.Location = ws.Location
	}
	if t.Name != "" {
		if inst, err := s.svc.Compute(sim.WorkspaceRef{ResourceGroup: vars["rg"], Name: vars["ws"]}, t.Name); err == nil {
			t.VMSize = inst.Size.Name
		} else if op == string(sim.ActionCreate) {
			t.VMSize = peekVMSize(hr)
		}
	}
	rule, err := s.svc.TakeRequestFault(t)
	if err != nil || rule == nil {
		return err
	}
	diag := fmt.Sprintf("Diagnostic information: timestamp '%s', subscription id '%s', tracking id '%s', request correlation id '%s'.",
		s.svc.Now().UTC().Format("20060102T150405Z"), s.sub(), w.Header().Get("x-ms-request-id"), w.Header().Get("x-ms-correlation-request-id"))
	var e *sim.Error
	switch rule.Effect.Status {
	case http.StatusTooManyRequests:
		kind := "read"
		if hr.Method != http.MethodGet {
			kind = "write"
		}
		// The caller's bucket holds nothing now.
		w.Header().Set("x-ms-ratelimit-remaining-subscription-"+kind+"s", "0")
		after := retryAfter(rule.Effect.RetryAfter)
		e = sim.Errorf(sim.KindThrottled, "SubscriptionRequestsThrottled",
			"Number of '%s' requests for subscription '%s' actor '%s' exceeded. Please try again after '%d' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
			kind, s.sub(), who.ObjectID, int(math.Ceil(after.Seconds())))
		e.RetryAfter = after
	case http.StatusServiceUnavailable:
		e = sim.Errorf(sim.KindServiceUnavailable, "ServerTimeout", "The request timed out. %s", diag)
		if rule.Effect.RetryAfter != "" {
			e.RetryAfter = retryAfter(rule.Effect.RetryAfter)
		}
	default:
		e = sim.Errorf(sim.KindInternal, "InternalServerError", "Encountered internal server error. %s", diag)
	}
	e.Fault = rule.ID
	return e
}

// retryAfter is a rule's retryAfter, 5 seconds when it gives none (as in
// request-limits-and-throttling.md's example); at least a second, as the
// header counts in whole seconds.
func retryAfter(iso string) time.Duration {
	d := 5 * time.Second
	if p, err := duration.Parse(iso); err == nil && iso != "" {
		d = p.ToTimeDuration()
	}
	return max(d, time.Second)
}

// faultOperation is the fault rules' name of what a route does to
// compute instances; "" for the routes faults leave alone.
func faultOperation(rt route) string {
	i := slices.Index(rt.segments, "computes")
	if i < 0 {
		return ""
	}
	rest := rt.segments[i+1:]
	switch {
	case len(rest) == 0 && rt.method == http.MethodGet:
		return sim.FaultList
	case len(rest) == 1 && rt.method == http.MethodGet:
		return sim.FaultGet
	case len(rest) == 1 && rt.method == http.MethodPut:
		return string(sim.ActionCreate)
	case len(rest) == 1 && rt.method == http.MethodDelete:
		return string(sim.ActionDelete)
	case len(rest) == 2 && rt.method == http.MethodPost:
		for _, a := range []sim.Action{sim.ActionStart, sim.ActionStop, sim.ActionRestart} {
			if strings.EqualFold(rest[1], string(a)) {
				return string(a)
			}
		}
	}
	return ""
}

// peekVMSize reads properties.properties.vmSize from a create's body,
// leaving the body for its handler.
func peekVMSize(hr *http.Request) string {
	if hr.Body == nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(hr.Body, MaxBody+1))
	hr.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return ""
	}
	var body struct {
		Properties struct {
			Properties struct {
				VMSize string `json:"vmSize"`
			} `json:"properties"`
		} `json:"properties"`
	}
	json.Unmarshal(b, &body)
	return body.Properties.Properties.VMSize
}
