package amlsimtest

import (
	"time"

	"github.com/sosodev/duration"

	"github.com/amlsim/amlsim/sim/api"
)

// Clock is a server's test clock, read and moved through its API
// (api.ClockPath) as the built-in owner, as a suite talking to `amlsim
// serve --test-clock` moves it. It only moves forward.
type Clock struct{ s *Server }

// Clock returns the server's test clock. It fails the test when the
// server was started without WithTestClock.
func (s *Server) Clock() *Clock {
	s.t.Helper()
	if s.clock == nil {
		s.t.Fatalf("amlsimtest: the server runs on the wall clock: start it WithTestClock to move its clock")
	}
	return &Clock{s: s}
}

type clockBody struct {
	Now     *time.Time `json:"now,omitempty"`
	Advance string     `json:"advance,omitempty"`
}

// Now is the test clock's time.
func (c *Clock) Now() time.Time {
	c.s.t.Helper()
	var v clockBody
	c.s.call("GET", api.ClockPath, nil, &v, 200)
	return *v.Now
}

// Set moves the clock forward to t and returns its new time. A t before
// the clock's time fails the test.
func (c *Clock) Set(t time.Time) time.Time {
	c.s.t.Helper()
	var v clockBody
	c.s.call("POST", api.ClockPath, clockBody{Now: &t}, &v, 200)
	return *v.Now
}

// Advance moves the clock forward by d and returns its new time; the
// schedules and idle shutdowns that fall due act at once.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.s.t.Helper()
	var v clockBody
	c.s.call("POST", api.ClockPath, clockBody{Advance: duration.Format(d)}, &v, 200)
	return *v.Now
}
