package guestssh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"
)

// WaitOption tunes WaitForSSH.
type WaitOption func(*waitConfig)

type waitConfig struct {
	interval    time.Duration
	attempt     time.Duration
	banner      time.Duration
	diagnostics func() string
}

// bannerWait is how long an attempt waits for the server's first bytes.
// Through QEMU's user-mode forward, a connection made while the guest has
// no address yet is accepted on the host and then hangs while the forward
// retries its SYN to the guest, so it can reach sshd only seconds after sshd
// started listening. sshd under TCG sends its banner well within this; a
// guest too busy to do so is still reached, as every fourth attempt in a row
// waits for the whole attempt timeout.
const bannerWait = 3 * time.Second

// WithInterval sets the pause between attempts (1 s by default).
func WithInterval(d time.Duration) WaitOption {
	return func(c *waitConfig) { c.interval = d }
}

// WithAttemptTimeout bounds one connection attempt, TCP and handshake (20 s
// by default): a guest under TCG can be slow to answer, but a handshake
// that hangs must not use up the whole wait.
func WithAttemptTimeout(d time.Duration) WaitOption {
	return func(c *waitConfig) { c.attempt = d }
}

// WithBannerWait sets how long an attempt waits for the server's first
// bytes (bannerWait, 3 s, by default); 0 waits for the whole attempt.
func WithBannerWait(d time.Duration) WaitOption {
	return func(c *waitConfig) { c.banner = d }
}

// WithDiagnostics appends what fn returns (typically the tail of the
// guest's serial log) to the timeout error, so a failed boot explains
// itself. fn is called only on timeout.
func WithDiagnostics(fn func() string) WaitOption {
	return func(c *waitConfig) { c.diagnostics = fn }
}

// WaitForSSH dials addr until the guest answers or ctx ends. While the
// guest boots, connections are refused, reset, or (through QEMU's user-mode
// forward, which accepts before the guest listens) closed during the
// handshake; those are retried. A host-key mismatch or a refused user key
// is returned at once. When ctx ends the error matches ErrTimeout and
// ctx.Err() (context.DeadlineExceeded for a deadline) and tells the last
// failure.
func WaitForSSH(ctx context.Context, addr, user string, signer ssh.Signer, hostKey ssh.PublicKey, opts ...WaitOption) (*Client, error) {
	cfg := waitConfig{interval: time.Second, attempt: 20 * time.Second, banner: bannerWait}
	for _, o := range opts {
		o(&cfg)
	}
	begin := time.Now()
	attempts, silent := 0, 0
	var last error
	for {
		attempts++
		banner := cfg.banner
		if silent == 3 {
			banner, silent = 0, 0
		}
		actx, cancel := context.WithTimeout(ctx, cfg.attempt)
		c, err := dial(actx, addr, user, signer, hostKey, banner)
		cancel()
		if err == nil {
			return c, nil
		}
		if errors.Is(err, errNoBanner) {
			silent++
		} else {
			silent = 0
		}
		if errors.Is(err, ErrHostKeyMismatch) || errors.Is(err, ErrAuthFailed) {
			return nil, err
		}
		// An attempt cut short by ctx itself says nothing new. ctx's
		// deadline may have passed before ctx says so (its timer fires
		// apart): a dial begun then fails at once with an i/o timeout.
		dl, hasDeadline := ctx.Deadline()
		cutShort := ctx.Err() != nil || hasDeadline && !time.Now().Before(dl)
		if !cutShort || last == nil {
			last = err
		}
		if ctx.Err() != nil {
			return nil, timeoutError(ctx, addr, begin, attempts, last, cfg.diagnostics)
		}
		t := time.NewTimer(cfg.interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, timeoutError(ctx, addr, begin, attempts, last, cfg.diagnostics)
		}
	}
}

func timeoutError(ctx context.Context, addr string, begin time.Time, attempts int, last error, diag func() string) error {
	err := fmt.Errorf("%w at %s after %s and %d attempts: %w; last error: %w",
		ErrTimeout, addr, time.Since(begin).Round(time.Millisecond), attempts, ctx.Err(), last)
	if diag == nil {
		return err
	}
	return &diagnosedError{err: err, diagnostics: diag()}
}

// diagnosedError carries diagnostics in its message but not in its chain,
// so errors.Is still sees ErrTimeout and the context error.
type diagnosedError struct {
	err         error
	diagnostics string
}

func (e *diagnosedError) Error() string {
	return e.err.Error() + "\n--- diagnostics ---\n" + e.diagnostics
}

func (e *diagnosedError) Unwrap() error { return e.err }
