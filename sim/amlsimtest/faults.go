package amlsimtest

import (
	"net/http"
	"net/url"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
)

// Faults are a server's fault rules, put, listed and removed through its
// API (api.FaultsPath) as the built-in owner, as a suite talking to
// `amlsim serve --faults` manages them. The README's "Injecting Azure's
// failures" says what rules do.
type Faults struct{ s *Server }

// Faults returns the server's fault rules. It fails the test when the
// server was started without WithFaults.
func (s *Server) Faults() *Faults {
	s.t.Helper()
	if !s.faults {
		s.t.Fatalf("amlsimtest: the server injects no faults: start it WithFaults")
	}
	return &Faults{s: s}
}

// Put puts the rule under its ID, replacing a rule of that ID, and
// returns it as the server keeps it. A rule the server refuses (no ID,
// two effects, …) fails the test.
func (f *Faults) Put(rule sim.FaultRule) sim.FaultRule {
	f.s.t.Helper()
	if rule.ID == "" {
		f.s.t.Fatalf("amlsimtest: a fault rule needs an ID")
	}
	var saved sim.FaultRule
	f.s.call("PUT", api.FaultsPath+"/"+url.PathEscape(rule.ID), rule, &saved, http.StatusOK, http.StatusCreated)
	return saved
}

// List returns the rules in force, oldest first, with how many times each
// applied and (for those given a number of times) how many are left.
func (f *Faults) List() []sim.FaultRule {
	f.s.t.Helper()
	var v struct {
		Value []sim.FaultRule `json:"value"`
	}
	f.s.call("GET", api.FaultsPath, nil, &v, http.StatusOK)
	return v.Value
}

// Remove removes the rule called id, and reports whether there was one.
func (f *Faults) Remove(id string) bool {
	f.s.t.Helper()
	return f.s.call("DELETE", api.FaultsPath+"/"+url.PathEscape(id), nil, nil, http.StatusOK, http.StatusNoContent) == http.StatusOK
}
