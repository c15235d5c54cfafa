package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/clock"
	"github.com/sosodev/duration"
)

// ClockPath is where `serve --test-clock` serves the test clock:
//
//	GET  /amlsim/clock                          → {"now": "2026-12-01T17:59:00Z"}
//	POST /amlsim/clock {"now": "RFC 3339"}      → the new {"now": …}
//	POST /amlsim/clock {"advance": "PT2H"}      → the new {"now": …}
//
// The clock only moves forward. Only a principal allowed to assign roles
// at the subscription (an Owner) may read or move it; without the flag
// the path does not exist (404).
const ClockPath = "/amlsim/clock"

// WithTestClock serves c at ClockPath.
func WithTestClock(c *clock.Test) Option { return func(s *Server) { s.testClock = c } }

type clockView struct {
	Now time.Time `json:"now"`
}

func (s *Server) serveClock(w http.ResponseWriter, r *http.Request, who sim.Principal, actions *[]string) error {
	if s.testClock == nil || r.URL.Path != ClockPath {
		return sim.Errorf(sim.KindNotFound, "NotFound", "The requested path '%s' was not found.", r.URL.Path)
	}
	*actions = []string{sim.ActAssignmentWrite}
	if err := s.svc.Authorize(who, sim.ActAssignmentWrite, "/subscriptions/"+s.sub()); err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		var body struct {
			Now     *time.Time `json:"now"`
			Advance string     `json:"advance"`
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.bodyTimeout)); err != nil {
			s.log.Debug("no read deadline for the body", "err", err)
		}
		if err := decode(&request{Request: r}, &body); err != nil {
			return err
		}
		var err error
		switch {
		case body.Now != nil && body.Advance == "":
			_, err = s.testClock.Set(*body.Now)
		case body.Now == nil && body.Advance != "":
			d, perr := duration.Parse(body.Advance)
			if perr != nil {
				return sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The advance '%s' is not an ISO 8601 duration such as PT2H.", body.Advance)
			}
			_, err = s.testClock.Advance(d.ToTimeDuration())
			if d.Negative {
				err = clock.ErrBackwards
			}
		default:
			return sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", `Send either {"now": "<RFC 3339 time>"} or {"advance": "<ISO 8601 duration>"}.`)
		}
		if errors.Is(err, clock.ErrBackwards) {
			return sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The test clock only moves forward; it is %s.", s.testClock.Now().UTC().Format(time.RFC3339))
		}
		if err != nil {
			return err
		}
	default:
		return sim.Errorf(sim.KindMethod, "HttpMethodNotSupported", "The requested resource does not support http method '%s'.", r.Method)
	}
	writeJSON(w, http.StatusOK, clockView{Now: s.testClock.Now().UTC()})
	return nil
}
