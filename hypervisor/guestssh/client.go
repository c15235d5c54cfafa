package guestssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

var (
	// ErrHostKeyMismatch is returned when the server presents a host key
	// other than the one expected: the port leads to another machine (or
	// the guest did not get its key). WaitForSSH does not retry it.
	ErrHostKeyMismatch = errors.New("ssh host key mismatch")
	// ErrAuthFailed is returned when the server refuses the user's key.
	// WaitForSSH does not retry it.
	ErrAuthFailed = errors.New("ssh authentication failed")
	// ErrTimeout is returned by WaitForSSH when its context ends before the
	// guest accepts a connection.
	ErrTimeout = errors.New("timed out waiting for ssh")
	// ErrNoExitStatus is returned by Run when the connection or session
	// ended without the command reporting how it exited, as when the guest
	// reboots under it.
	ErrNoExitStatus = errors.New("command ended without an exit status")
)

// Client is an SSH connection to a guest.
type Client struct {
	c    *ssh.Client
	addr string
}

// Result is how a command ended. A non-zero ExitStatus is a normal result,
// not an error.
type Result struct {
	ExitStatus int
	Stdout     []byte
	Stderr     []byte
}

// Dial connects to addr and authenticates as user with signer, accepting
// only hostKey from the server. ctx bounds the TCP connection and the
// handshake.
func Dial(ctx context.Context, addr, user string, signer ssh.Signer, hostKey ssh.PublicKey) (*Client, error) {
	return dial(ctx, addr, user, signer, hostKey, 0)
}

// errNoBanner is dial's error when the server sent nothing within
// bannerWait of the TCP connection.
var errNoBanner = errors.New("no ssh banner")

// dial is Dial; if bannerWait is not zero, the server must start its
// version banner within bannerWait of the connection, or dial fails with
// errNoBanner.
func dial(ctx context.Context, addr, user string, signer ssh.Signer, hostKey ssh.PublicKey, bannerWait time.Duration) (*Client, error) {
	if hostKey == nil {
		// Refusing here keeps "no host key" from ever meaning "any".
		return nil, fmt.Errorf("ssh to %s: no host key given", addr)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ssh to %s: %w", addr, err)
	}

	var mismatch error
	fixed := ssh.FixedHostKey(hostKey)
	config := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			if err := fixed(hostname, remote, key); err != nil {
				mismatch = fmt.Errorf("%w: server presented %s %s, want %s %s", ErrHostKeyMismatch,
					key.Type(), ssh.FingerprintSHA256(key), hostKey.Type(), ssh.FingerprintSHA256(hostKey))
				return mismatch
			}
			return nil
		},
		// Ask for the algorithm of the key we know, so that a server with
		// several host keys presents that one rather than a mismatch.
		HostKeyAlgorithms: hostKeyAlgorithms(hostKey),
	}

	// The handshake takes no context: bound it with the connection's
	// deadline and by closing the connection when ctx ends.
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	banner := &bannerConn{Conn: conn, deadline: dl}
	if bannerWait > 0 {
		banner.SetReadDeadline(time.Now().Add(bannerWait))
	} else {
		banner.seen = true
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(banner, addr, config)
	if !stop() {
		// ctx ended during the handshake and conn is closed (or closing).
		if err == nil {
			sc.Close()
		}
		conn.Close()
		return nil, fmt.Errorf("ssh to %s: %w", addr, ctx.Err())
	}
	if err != nil {
		conn.Close()
		switch {
		case !banner.seen:
			return nil, fmt.Errorf("ssh to %s: %w within %v: %v", addr, errNoBanner, bannerWait, err)
		case mismatch != nil:
			return nil, fmt.Errorf("ssh to %s: %w", addr, mismatch)
		case strings.Contains(err.Error(), "unable to authenticate"):
			// x/crypto/ssh has no typed error for this.
			return nil, fmt.Errorf("ssh to %s as %q: %w: %v", addr, user, ErrAuthFailed, err)
		}
		return nil, fmt.Errorf("ssh to %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return &Client{c: ssh.NewClient(sc, chans, reqs), addr: addr}, nil
}

// bannerConn is a connection whose first bytes must come before its read
// deadline; from then on the deadline is the handshake's.
type bannerConn struct {
	net.Conn
	deadline time.Time // the handshake's deadline (zero: none)
	seen     bool      // the server has sent something
}

func (c *bannerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.seen {
		c.seen = true
		c.Conn.SetReadDeadline(c.deadline)
	}
	return n, err
}

func hostKeyAlgorithms(k ssh.PublicKey) []string {
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{k.Type()}
}

// SSH returns the underlying connection, for what Run does not cover (port
// forwarding, SFTP).
func (c *Client) SSH() *ssh.Client { return c.c }

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// Run runs cmd in a new session, feeding it stdin (nil for none), and
// returns its exit status and output. When ctx ends first, Run asks the
// server to KILL the command and closes the session, returning what output
// arrived and an error matching ctx.Err(); a server that ignores signals
// leaves a pty-less command running until it next touches its closed
// stdin, stdout or stderr.
//
// Opening the session and starting the command wait for the server's
// answers, which a guest going down (or a wedged sshd) may never send. If
// ctx ends during that wait, Run closes the whole connection: the Client is
// then unusable and Run returns an error matching ctx.Err().
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("run %q on %s: %w", cmd, c.addr, err)
	}
	var stdout, stderr lockedBuffer
	s, err := c.start(ctx, cmd, stdin, &stdout, &stderr)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()

	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		res := Result{ExitStatus: -1, Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
		return res, fmt.Errorf("run %q on %s: %w", cmd, c.addr, ctx.Err())
	}
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case waitErr == nil:
		return res, nil
	case errors.As(waitErr, &exit):
		res.ExitStatus = exit.ExitStatus()
		return res, nil
	case errors.As(waitErr, &missing):
		res.ExitStatus = -1
		return res, fmt.Errorf("run %q on %s: %w", cmd, c.addr, ErrNoExitStatus)
	default:
		res.ExitStatus = -1
		return res, fmt.Errorf("run %q on %s: %w", cmd, c.addr, waitErr)
	}
}

// start opens a session and starts cmd in it, closing the connection if
// ctx ends before the server has answered both requests.
func (c *Client) start(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (*ssh.Session, error) {
	stop := context.AfterFunc(ctx, func() { c.c.Close() })
	s, err := c.c.NewSession()
	if err == nil {
		s.Stdout, s.Stderr = stdout, stderr
		if stdin != nil {
			s.Stdin = stdin
		}
		err = s.Start(cmd)
	}
	if !stop() {
		if s != nil {
			s.Close()
		}
		return nil, fmt.Errorf("run %q on %s: %w (the server did not answer; connection closed)", cmd, c.addr, ctx.Err())
	}
	if err != nil {
		if s != nil {
			s.Close()
		}
		return nil, fmt.Errorf("run %q on %s: %w", cmd, c.addr, err)
	}
	return s, nil
}

// lockedBuffer lets Run read what arrived so far while the session's copy
// goroutines may still be writing, after a cancellation.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
