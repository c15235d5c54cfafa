package guestssh_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testServer is a tiny SSH server on 127.0.0.1 that runs "exec" requests
// in a toy shell, so the client is tested against a real SSH protocol peer.
// Commands, separated by ";":
//
//	echo WORDS   write WORDS and a newline to stdout
//	err WORDS    write WORDS and a newline to stderr
//	cat          copy stdin to stdout
//	bytes N      write N bytes cycling through every byte value to stdout
//	hang         wait until the client closes the session or signals it
//	noexit       end the session without an exit status
//	exit N       end with exit status N
//	mute         (alone) the server never answers the exec request
//
// With muteOpen set, the server never answers a request to open a session.
type testServer struct {
	addr   string
	config *ssh.ServerConfig
	// conns counts TCP connections accepted, handshakes counts completed
	// ones, closedSessions counts sessions the client ended or signalled.
	conns, handshakes, ended atomic.Int32
	// before runs on each accepted connection before SSH; returning false
	// closes it, like a QEMU forward whose guest does not listen yet.
	before   func(n int32, c net.Conn) bool
	muteOpen atomic.Bool
	wg       sync.WaitGroup
}

func newServerConfig(t *testing.T, authorized ssh.PublicKey, hostKeys ...ssh.Signer) *ssh.ServerConfig {
	t.Helper()
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() == "azureuser" && string(key.Marshal()) == string(authorized.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("key %s not authorized for %q", ssh.FingerprintSHA256(key), meta.User())
		},
	}
	for _, k := range hostKeys {
		config.AddHostKey(k)
	}
	return config
}

// serve serves on l until the test ends.
func serve(t *testing.T, l net.Listener, config *ssh.ServerConfig, before func(int32, net.Conn) bool) *testServer {
	s := &testServer{addr: l.Addr().String(), config: config, before: before}
	t.Cleanup(func() {
		l.Close()
		s.wg.Wait()
	})
	s.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n := s.conns.Add(1)
			s.wg.Go(func() {
				defer c.Close()
				if s.before != nil && !s.before(n, c) {
					return
				}
				s.handle(c)
			})
		}
	})
	return s
}

func startServer(t *testing.T, authorized ssh.PublicKey, hostKeys ...ssh.Signer) *testServer {
	t.Helper()
	return startServerBefore(t, nil, authorized, hostKeys...)
}

// startServerBefore is startServer with a hook run on each connection
// before SSH (testServer.before).
func startServerBefore(t *testing.T, before func(int32, net.Conn) bool, authorized ssh.PublicKey, hostKeys ...ssh.Signer) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, l, newServerConfig(t, authorized, hostKeys...), before)
}

// silentFirst is a before hook: the first connection gets no answer at all
// (what the client sends is swallowed) for up to hold, then is closed; the
// others are served.
func silentFirst(hold time.Duration) func(int32, net.Conn) bool {
	return func(n int32, c net.Conn) bool {
		if n == 1 {
			c.SetReadDeadline(time.Now().Add(hold))
			io.Copy(io.Discard, c)
			return false
		}
		return true
	}
}

func (s *testServer) handle(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	defer sc.Close()
	s.handshakes.Add(1)
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if s.muteOpen.Load() {
			continue // like a guest gone away: no answer, no close
		}
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		wg.Go(func() { s.session(ch, chReqs) })
	}
}

func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	signalled := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(signalled) }) }
	started := make(chan string, 1)
	go func() {
		defer stop() // the client closed the channel
		for r := range reqs {
			switch r.Type {
			case "exec":
				var payload struct{ Command string }
				ssh.Unmarshal(r.Payload, &payload)
				if payload.Command == "mute" {
					continue
				}
				r.Reply(true, nil)
				started <- payload.Command
			case "signal":
				stop()
				r.Reply(false, nil)
			default:
				r.Reply(false, nil)
			}
		}
	}()
	var cmd string
	select {
	case cmd = <-started:
	case <-signalled:
		return
	}
	status, ok := run(cmd, ch, signalled)
	if !ok {
		s.ended.Add(1)
		return
	}
	ch.CloseWrite()
	if status >= 0 {
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
	}
}

// run interprets cmd; it returns the exit status (-1 for none) and false
// when the client ended the session first.
func run(cmd string, ch ssh.Channel, signalled <-chan struct{}) (int, bool) {
	for _, part := range strings.Split(cmd, ";") {
		verb, arg, _ := strings.Cut(strings.TrimSpace(part), " ")
		switch verb {
		case "echo":
			fmt.Fprintln(ch, arg)
		case "err":
			fmt.Fprintln(ch.Stderr(), arg)
		case "cat":
			io.Copy(ch, ch)
		case "bytes":
			n, _ := strconv.Atoi(arg)
			buf := make([]byte, n)
			for i := range buf {
				buf[i] = byte(i)
			}
			ch.Write(buf)
		case "hang":
			<-signalled
			return 0, false
		case "noexit":
			return -1, true
		case "exit":
			n, _ := strconv.Atoi(arg)
			return n, true
		case "":
		default:
			fmt.Fprintf(ch.Stderr(), "%s: command not found\n", verb)
			return 127, true
		}
	}
	return 0, true
}
