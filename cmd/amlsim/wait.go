package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Polling: start fast so quick operations (the fake driver) return at once,
// then settle at about a second, as the server's Retry-After asks.
const (
	firstPoll = 100 * time.Millisecond
	maxPoll   = time.Second
)

// operationStatus is the Azure-AsyncOperation status resource.
type operationStatus struct {
	Status    string    `json:"status"`
	StartTime time.Time `json:"startTime"`
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// event is one entry of amlsim's events extension.
type event struct {
	Time    time.Time `json:"time"`
	State   string    `json:"state"`
	Message string    `json:"message"`
}

type eventList struct {
	Value []event `json:"value"`
	State string  `json:"state"`
	// ScriptRuns are the outcomes of the latest setup script runs.
	ScriptRuns []scriptRun `json:"scriptRuns"`
}

// progress shows an operation's events while the CLI waits for it: on a
// terminal one live line (state, latest event, elapsed time), elsewhere one
// plain line per event, for logs.
type progress struct {
	w     io.Writer
	tty   bool
	name  string
	start time.Time
	live  bool // a live line is on screen
}

func (p *progress) event(e event) {
	if p.tty {
		return
	}
	fmt.Fprintf(p.w, "%s %s %s\n", e.Time.UTC().Format(time.RFC3339), e.State, e.Message)
}

func (p *progress) status(state, latest string) {
	if !p.tty {
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%s: %s - %s (%s)", p.name, state, latest, time.Since(p.start).Round(time.Second))
	p.live = true
}

func (p *progress) done(state string) {
	if p.live {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "%s: %s after %s\n", p.name, state, time.Since(p.start).Round(100*time.Millisecond))
}

// wait polls the operation at opURL until it ends, showing the events of
// the instance at computePath that belong to it. It returns the
// operation's error, as a *cliError with its ARM code, when it failed.
func (c *client) wait(ctx context.Context, p *progress, opURL, computePath string) error {
	p.start = time.Now()
	seen := map[event]bool{}
	state, latest := "", "waiting"
	eventsGone := false
	for interval := firstPoll; ; interval = min(2*interval, maxPoll) {
		var op operationStatus
		if err := c.getJSON(ctx, opURL, nil, &op); err != nil {
			return fmt.Errorf("poll operation: %w", err)
		}
		// Events are read after the status: the server records an
		// operation's last event and its end together, so a finished
		// operation's events are all there.
		if !eventsGone {
			var ev eventList
			err := c.getJSON(ctx, computePath+"/amlsim/events", nil, &ev)
			var ce *cliError
			switch {
			case errors.As(err, &ce) && ce.Status == exitNotFound:
				// A deleted instance has no events any more.
				eventsGone = true
			case err != nil:
				return fmt.Errorf("poll events: %w", err)
			default:
				state = ev.State
				for _, e := range ev.Value {
					// Events before the operation began are an earlier
					// operation's.
					if e.Time.Before(op.StartTime) || seen[e] {
						continue
					}
					seen[e] = true
					latest = e.Message
					p.event(e)
				}
			}
		}
		switch op.Status {
		case "Succeeded":
			if eventsGone {
				state = "Deleted"
			}
			p.done(state)
			return nil
		case "Failed", "Canceled":
			if state == "" {
				state = op.Status
			}
			p.done(state)
			if op.Error != nil {
				return apiError(0, op.Error.Code, op.Error.Message)
			}
			return &cliError{Status: exitFailed, Code: "OperationFailed", Message: "the operation " + op.Status}
		}
		p.status(state, latest)
		select {
		case <-ctx.Done():
			if p.live {
				fmt.Fprintln(p.w)
			}
			return &cliError{Status: exitFailed, Code: "Interrupted",
				Message: "stopped waiting; the operation goes on in the server (see 'amlsim compute show')"}
		case <-time.After(interval):
		}
	}
}
