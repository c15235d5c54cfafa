package api

import (
	"net/http"
	"strconv"

	"github.com/amlsim/amlsim/sim"
)

// Extensions under …/computes/{name}/amlsim/ serve what Azure shows only in
// its studio: an instance's progress events and its logs. The amlsim CLI
// uses them; ARM clients never see them.

func (s *Server) events(w http.ResponseWriter, r *request) error {
	inst, err := s.svc.Compute(r.workspace(), r.vars["name"])
	if err != nil {
		return err
	}
	events := inst.Events
	if events == nil {
		events = []sim.Event{}
	}
	runs := []scriptRunView{}
	for _, r := range inst.ScriptRuns {
		runs = append(runs, scriptRunView{Kind: string(r.Kind), ExitCode: r.ExitCode, TimedOut: r.TimedOut, Seconds: r.Duration.Seconds(), Log: r.Log, HostLog: r.HostLog})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": events, "state": inst.State, "scriptRuns": runs})
	return nil
}

// scriptRunView is one setup script run, for clients that act on its
// outcome (amlsim setup-script run exits with the script's code).
type scriptRunView struct {
	Kind     string  `json:"kind"`
	ExitCode int     `json:"exitCode"`
	TimedOut bool    `json:"timedOut"`
	Seconds  float64 `json:"durationSeconds"`
	Log      string  `json:"log"`
	HostLog  string  `json:"hostLog,omitempty"`
}

// activity answers GET (what idle shutdown sees) and PUT (a simulated
// activity, fake driver only) of …/computes/{name}/amlsim/activity:
// {"sshSessions": 0, "kernels": 1, "terminals": 0}.
func (s *Server) activity(w http.ResponseWriter, r *request) error {
	if r.Method == http.MethodPut {
		var a sim.Activity
		if err := decode(r, &a); err != nil {
			return err
		}
		if err := s.svc.SetActivity(r.workspace(), r.vars["name"], a); err != nil {
			return err
		}
	}
	a, err := s.svc.Activity(r.workspace(), r.vars["name"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) logs(w http.ResponseWriter, r *request) error {
	b, err := s.svc.Log(r.workspace(), r.vars["name"], sim.LogKind(r.vars["kind"]))
	if err != nil {
		return err
	}
	if v := r.URL.Query().Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return sim.Errorf(sim.KindBadRequest, "InvalidQueryParameterValue", "The value '%s' of query parameter 'tail' is not a non-negative integer.", v)
		}
		b = sim.LastLines(b, n)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return nil
}
