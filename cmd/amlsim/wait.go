package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/spf13/cobra"
)

// Polling: start fast so quick operations (the fake driver) return at once,
// then settle at about a second, as the server's Retry-After asks.
const (
	firstPoll = 100 * time.Millisecond
	maxPoll   = time.Second
)

// operationStatus is the part of the Azure-AsyncOperation status
// resource the progress display reads.
type operationStatus struct {
	StartTime time.Time `json:"startTime"`
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
	w    io.Writer
	tty  bool
	name string
	// width is the terminal's width in columns (0: unknown): a live line
	// is cut to fit, since one that wraps cannot be redrawn in place.
	width int
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
	line := fmt.Sprintf("%s: %s - %s (%s)", p.name, state, latest, time.Since(p.start).Round(time.Second))
	fmt.Fprint(p.w, "\r\033[K"+fitLine(line, p.width))
	p.live = true
}

func (p *progress) done(state string) {
	if p.live {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "%s: %s after %s\n", p.name, state, time.Since(p.start).Round(100*time.Millisecond))
}

// waitFor polls an operation the SDK started until it ends, showing the
// events of the instance at computePath that belong to it, and returns its
// result; or the operation's error, as a *cliError with its ARM code,
// when it failed. An operation that ended in its first answer (a PUT
// that changed nothing) shows nothing.
func waitFor[T any](ctx context.Context, c *client, p *progress, poller *runtime.Poller[T], computePath string) (T, error) {
	if poller.Done() {
		v, err := poller.Result(ctx)
		if err != nil {
			return v, c.failure(ctx, err)
		}
		return v, nil
	}
	var zero T
	p.start = time.Now()
	seen := map[event]bool{}
	state, latest := "", "waiting"
	eventsGone := false
	var op operationStatus
	for interval := firstPoll; ; interval = min(2*interval, maxPoll) {
		if !poller.Done() {
			resp, err := poller.Poll(ctx)
			if err != nil {
				return zero, c.pollFailure(ctx, p, err)
			}
			// The status resource: its startTime tells this operation's
			// events from earlier ones.
			if b, err := runtime.Payload(resp); err == nil {
				json.Unmarshal(b, &op)
			}
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
			case err != nil && ctx.Err() != nil:
				return zero, c.pollFailure(ctx, p, err)
			case err != nil:
				return zero, fmt.Errorf("poll events: %w", err)
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
		if poller.Done() {
			v, err := poller.Result(ctx)
			switch {
			case err != nil && state == "":
				state = "Failed"
			case err == nil && eventsGone:
				state = "Deleted"
			}
			p.done(state)
			if err != nil {
				return v, c.failure(ctx, err)
			}
			return v, nil
		}
		p.status(state, latest)
		select {
		case <-ctx.Done():
			return zero, c.pollFailure(ctx, p, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// pollFailure ends a wait that could not go on: interrupted, or the
// server gone.
func (c *client) pollFailure(ctx context.Context, p *progress, err error) error {
	if p.live {
		fmt.Fprintln(p.w)
	}
	if ctx.Err() != nil {
		return &cliError{Status: exitFailed, Code: "Interrupted",
			Message: "stopped waiting; the operation goes on in the server (see 'amlsim compute show')"}
	}
	return fmt.Errorf("poll operation: %w", c.failure(ctx, err))
}

// newProgress is the progress display of a verb waiting for name: a live
// line when its standard error is a terminal.
func newProgress(cmd *cobra.Command, name string) *progress {
	w := cmd.ErrOrStderr()
	f, ok := w.(*os.File)
	p := &progress{w: w, tty: ok && isTerminal(f), name: name}
	if p.tty {
		p.width = terminalWidth(f)
	}
	return p
}

// fitLine cuts line to fewer than width columns (counting runes), ending
// it with "…"; width 0 leaves it whole.
func fitLine(line string, width int) string {
	r := []rune(line)
	if width <= 1 || len(r) < width {
		return line
	}
	return string(r[:width-2]) + "…"
}
