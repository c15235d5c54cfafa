// Package clock is the simulator's time. The wall clock serves everyday
// use; the test clock (`amlsim serve --test-clock`) runs at the wall
// clock's pace from a point a test sets or moves forward, so that a start
// schedule at 08:00 or an idle shutdown after three hours can be seen to
// act within seconds. Everything in amlsim that reads or waits for time
// (timestamps, schedules, idle shutdown) goes through a Clock.
package clock

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Clock tells the time and when it jumps.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// Jumps delivers a value after each jump of the clock (a Set or an
	// Advance of the test clock), so that whoever waits for a time can
	// look again; the wall clock never jumps. The channel holds one
	// pending value: jumps in a row may be delivered as one.
	Jumps() <-chan struct{}
}

// Wall is the real time.
type Wall struct{}

// Now is time.Now.
func (Wall) Now() time.Time { return time.Now() }

// Jumps never delivers.
func (Wall) Jumps() <-chan struct{} { return nil }

// Test is a clock a test sets and advances. Between jumps it runs at the
// wall clock's pace. It is safe for concurrent use.
type Test struct {
	real func() time.Time

	mu     sync.Mutex
	offset time.Duration
	jumps  []chan struct{}
}

// NewTest returns a test clock that starts at the wall clock's time.
func NewTest() *Test { return &Test{real: time.Now} }

// NewTestAt returns a test clock that starts at start, before the wall
// clock's time or after it: nothing has been recorded on it yet, so even
// the past is a place to start from.
func NewTestAt(start time.Time) *Test {
	return &Test{real: time.Now, offset: time.Until(start)}
}

// Now is the test clock's time.
func (c *Test) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.real().Add(c.offset)
}

// Jumps implements Clock; every call returns a new subscription.
func (c *Test) Jumps() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{}, 1)
	c.jumps = append(c.jumps, ch)
	return ch
}

// ErrBackwards is returned when a test asks the clock to go back: the
// operations and events amlsim recorded would then come from the future.
var ErrBackwards = errors.New("the test clock only moves forward")

// Set moves the clock to t, which must not be before Now, and returns the
// new time.
func (c *Test) Set(t time.Time) (time.Time, error) {
	c.mu.Lock()
	now := c.real()
	if t.Before(now.Add(c.offset)) {
		c.mu.Unlock()
		return time.Time{}, ErrBackwards
	}
	c.offset = t.Sub(now)
	c.mu.Unlock()
	c.notify()
	return t, nil
}

// Advance moves the clock forward by d, which must not be negative, and
// returns the new time.
func (c *Test) Advance(d time.Duration) (time.Time, error) {
	if d < 0 {
		return time.Time{}, ErrBackwards
	}
	c.mu.Lock()
	c.offset += d
	now := c.real().Add(c.offset)
	c.mu.Unlock()
	c.notify()
	return now, nil
}

func (c *Test) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.jumps {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Every calls fn at once, then every period of wall-clock time and after
// each jump of c, until ctx ends: the loop of whatever acts on times.
func Every(ctx context.Context, c Clock, period time.Duration, fn func()) {
	jumps := c.Jumps()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-jumps:
		}
	}
}

// Sleep waits until d has passed on c, or ctx ends (its error). A test
// clock moved past the end ends the wait at once.
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	end := c.Now().Add(d)
	jumps := c.Jumps()
	for {
		left := end.Sub(c.Now())
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-jumps:
		case <-t.C:
		}
		t.Stop()
	}
}
