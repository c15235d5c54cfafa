package clock

import (
	"errors"
	"testing"
	"time"
)

func TestTestClock(t *testing.T) {
	real := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := &Test{real: func() time.Time { return real }}
	jumps := c.Jumps()
	if got := c.Now(); !got.Equal(real) {
		t.Fatalf("Now = %v, want the wall clock's %v", got, real)
	}
	target := time.Date(2026, 12, 1, 17, 59, 0, 0, time.UTC)
	if got, err := c.Set(target); err != nil || !got.Equal(target) {
		t.Fatalf("Set = %v, %v", got, err)
	}
	select {
	case <-jumps:
	default:
		t.Error("Set did not signal a jump")
	}
	// It runs on at the wall clock's pace.
	real = real.Add(90 * time.Second)
	if got := c.Now(); !got.Equal(target.Add(90 * time.Second)) {
		t.Errorf("Now after 90 s of wall time = %v, want %v", got, target.Add(90*time.Second))
	}
	if got, err := c.Advance(2 * time.Hour); err != nil || !got.Equal(target.Add(90*time.Second+2*time.Hour)) {
		t.Errorf("Advance(2h) = %v, %v", got, err)
	}
	if _, err := c.Set(target); !errors.Is(err, ErrBackwards) {
		t.Errorf("Set to the past = %v, want ErrBackwards", err)
	}
	if _, err := c.Advance(-time.Second); !errors.Is(err, ErrBackwards) {
		t.Errorf("Advance(-1s) = %v, want ErrBackwards", err)
	}
	// Two jumps in a row arrive as at least one, never block.
	c.Advance(time.Minute)
	c.Advance(time.Minute)
	select {
	case <-jumps:
	default:
		t.Error("Advance did not signal a jump")
	}
}

func TestNewTestAt(t *testing.T) {
	for _, start := range []time.Time{time.Date(2020, 2, 29, 12, 0, 0, 0, time.UTC), time.Now().Add(72 * time.Hour)} {
		c := NewTestAt(start)
		if now := c.Now(); now.Before(start) || now.After(start.Add(time.Second)) {
			t.Errorf("NewTestAt(%s).Now() = %s, want about the start", start, now)
		}
		if _, err := c.Set(start.Add(-time.Hour)); !errors.Is(err, ErrBackwards) {
			t.Errorf("Set an hour before the start: %v, want ErrBackwards", err)
		}
	}
}
