package guestssh_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/amlsim/amlsim/hypervisor/guestssh"
)

func genKey(t *testing.T) guestssh.Key {
	t.Helper()
	k, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pair is a running server and the keys to reach it.
type pair struct {
	srv        *testServer
	user, host guestssh.Key
}

func newPair(t *testing.T) pair {
	user, host := genKey(t), genKey(t)
	return pair{srv: startServer(t, user.PublicKey(), host.Signer()), user: user, host: host}
}

func (p pair) dial(t *testing.T) *guestssh.Client {
	t.Helper()
	c, err := guestssh.Dial(testCtx(t, 10*time.Second), p.srv.addr, "azureuser", p.user.Signer(), p.host.PublicKey())
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestKeyRoundTrip(t *testing.T) {
	k := genKey(t)
	pemBytes := k.PrivatePEM()
	if !bytes.HasPrefix(pemBytes, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n")) {
		t.Errorf("PrivatePEM starts %q, want an OpenSSH private key", pemBytes[:min(40, len(pemBytes))])
	}
	line := k.AuthorizedKey()
	if !strings.HasPrefix(line, "ssh-ed25519 AAAA") || strings.ContainsAny(line, "\r\n") {
		t.Errorf("AuthorizedKey = %q, want one ssh-ed25519 line without newline", line)
	}
	back, err := guestssh.ParseKey(pemBytes)
	if err != nil {
		t.Fatalf("ParseKey(PrivatePEM()) = %v", err)
	}
	if got := back.AuthorizedKey(); got != line {
		t.Errorf("parsed key's AuthorizedKey = %q, want %q", got, line)
	}
	pub, err := guestssh.ParseAuthorizedKey(line)
	if err != nil {
		t.Fatalf("ParseAuthorizedKey = %v", err)
	}
	if !bytes.Equal(pub.Marshal(), k.PublicKey().Marshal()) {
		t.Error("ParseAuthorizedKey(AuthorizedKey()) is another key")
	}
	if other := genKey(t); other.AuthorizedKey() == line {
		t.Error("two generated keys are equal")
	}
	if _, err := guestssh.ParseKey([]byte("not a key")); err == nil {
		t.Error("ParseKey(garbage) = nil error")
	}
}

func TestPrivatePEMReadableByOpenSSH(t *testing.T) {
	// cloud-init writes ed25519_private as is to the guest's host key file,
	// where OpenSSH must read it.
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed: cannot check OpenSSH reads the key")
	}
	k := genKey(t)
	path := filepath.Join(t.TempDir(), "ssh_host_ed25519_key")
	if err := os.WriteFile(path, k.PrivatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keygen, "-y", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != k.AuthorizedKey() {
		t.Errorf("ssh-keygen -y = %q, want %q", got, k.AuthorizedKey())
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", "keys", "id_ed25519")
	k1, err := guestssh.LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKey (create) = %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %o, want 600", got)
	}
	k2, err := guestssh.LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKey (load) = %v", err)
	}
	if k1.AuthorizedKey() != k2.AuthorizedKey() {
		t.Error("second LoadOrCreateKey returned another key")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("key directory holds %d entries, want only the key (no temporary files)", len(entries))
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id_ed25519")
	keys := make([]string, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := guestssh.LoadOrCreateKey(path)
			if err != nil {
				t.Errorf("LoadOrCreateKey #%d = %v", i, err)
				return
			}
			keys[i] = k.AuthorizedKey()
		})
	}
	wg.Wait()
	onDisk, err := guestssh.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if k != onDisk.AuthorizedKey() {
			t.Errorf("caller #%d got %q, want the key on disk %q", i, k, onDisk.AuthorizedKey())
		}
	}
}

func TestLoadOrCreateKeyRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := guestssh.LoadOrCreateKey(path); err == nil {
		t.Fatal("LoadOrCreateKey over a corrupt file = nil error, want one (never overwrite a user's key)")
	}
	if b, _ := os.ReadFile(path); string(b) != "garbage" {
		t.Errorf("corrupt key file now holds %q, want it untouched", b)
	}
}

func TestDialAndRun(t *testing.T) {
	c := newPair(t).dial(t)
	res, err := c.Run(testCtx(t, 10*time.Second), "echo hello; err oops; exit 3", nil)
	if err != nil {
		t.Fatalf("Run = %v, want a result (non-zero exit is not an error)", err)
	}
	if res.ExitStatus != 3 || string(res.Stdout) != "hello\n" || string(res.Stderr) != "oops\n" {
		t.Errorf("Run = {%d %q %q}, want {3 %q %q}", res.ExitStatus, res.Stdout, res.Stderr, "hello\n", "oops\n")
	}
	res, err = c.Run(testCtx(t, 10*time.Second), "echo ok", nil)
	if err != nil || res.ExitStatus != 0 || string(res.Stdout) != "ok\n" {
		t.Errorf("second Run on the same client = %+v, %v; want exit 0 and %q", res, err, "ok\n")
	}
}

func TestRunStdinAndBinary(t *testing.T) {
	c := newPair(t).dial(t)
	in := make([]byte, 1<<20)
	rand.Read(in)
	res, err := c.Run(testCtx(t, 30*time.Second), "cat", bytes.NewReader(in))
	if err != nil || res.ExitStatus != 0 {
		t.Fatalf("Run(cat) = exit %d, %v", res.ExitStatus, err)
	}
	if !bytes.Equal(res.Stdout, in) {
		t.Errorf("cat returned %d bytes differing from the %d random bytes sent", len(res.Stdout), len(in))
	}
}

func TestRunLargeOutput(t *testing.T) {
	c := newPair(t).dial(t)
	const n = 10 << 20
	res, err := c.Run(testCtx(t, 60*time.Second), "bytes 10485760", nil)
	if err != nil || res.ExitStatus != 0 {
		t.Fatalf("Run = exit %d, %v", res.ExitStatus, err)
	}
	if len(res.Stdout) != n {
		t.Fatalf("stdout has %d bytes, want %d", len(res.Stdout), n)
	}
	for i, b := range res.Stdout {
		if b != byte(i) {
			t.Fatalf("stdout byte %d = %#x, want %#x", i, b, byte(i))
		}
	}
}

func TestRunNoExitStatus(t *testing.T) {
	c := newPair(t).dial(t)
	_, err := c.Run(testCtx(t, 10*time.Second), "echo partial; noexit", nil)
	if !errors.Is(err, guestssh.ErrNoExitStatus) {
		t.Errorf("Run of a command that ends without a status = %v, want ErrNoExitStatus", err)
	}
}

func TestRunCancelled(t *testing.T) {
	p := newPair(t)
	c := p.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := c.Run(ctx, "echo started; hang", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run past its deadline = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Run returned %v after its deadline, want promptly", took)
	}
	// The session, not the connection, is closed: the server sees it end
	// and the client still works.
	deadline := time.Now().Add(5 * time.Second)
	for p.srv.ended.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("server never saw the cancelled session end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res, err := c.Run(testCtx(t, 10*time.Second), "echo again", nil); err != nil || string(res.Stdout) != "again\n" {
		t.Errorf("Run after a cancelled one = %+v, %v", res, err)
	}
}

// TestRunServerSilent: a server that stops answering before the command
// starts (a guest going down under an open connection) must not hold Run
// past its context.
func TestRunServerSilent(t *testing.T) {
	for _, tc := range []struct {
		name, cmd string
		muteOpen  bool
	}{
		{name: "session open unanswered", cmd: "echo never", muteOpen: true},
		{name: "exec unanswered", cmd: "mute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			c := p.dial(t)
			p.srv.muteOpen.Store(tc.muteOpen)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := c.Run(ctx, tc.cmd, nil)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Run against a silent server = %v, want DeadlineExceeded", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run against a silent server still blocked 10 s after its deadline")
			}
		})
	}
}

func TestWrongUserKeyRefused(t *testing.T) {
	p := newPair(t)
	stranger := genKey(t)
	_, err := guestssh.Dial(testCtx(t, 10*time.Second), p.srv.addr, "azureuser", stranger.Signer(), p.host.PublicKey())
	if !errors.Is(err, guestssh.ErrAuthFailed) {
		t.Fatalf("Dial with an unauthorized key = %v, want ErrAuthFailed", err)
	}
	begin := time.Now()
	_, err = guestssh.WaitForSSH(testCtx(t, 30*time.Second), p.srv.addr, "azureuser", stranger.Signer(), p.host.PublicKey(),
		guestssh.WithInterval(time.Second))
	if !errors.Is(err, guestssh.ErrAuthFailed) {
		t.Fatalf("WaitForSSH with an unauthorized key = %v, want ErrAuthFailed", err)
	}
	if took := time.Since(begin); took > 900*time.Millisecond {
		t.Errorf("WaitForSSH took %v to give up, want no retry", took)
	}
}

func TestHostKeyMismatch(t *testing.T) {
	p := newPair(t)
	impostor := genKey(t)
	begin := time.Now()
	_, err := guestssh.WaitForSSH(testCtx(t, 30*time.Second), p.srv.addr, "azureuser", p.user.Signer(), impostor.PublicKey(),
		guestssh.WithInterval(time.Second))
	if !errors.Is(err, guestssh.ErrHostKeyMismatch) {
		t.Fatalf("WaitForSSH expecting another host key = %v, want ErrHostKeyMismatch", err)
	}
	if took := time.Since(begin); took > 900*time.Millisecond {
		t.Errorf("WaitForSSH took %v to report the mismatch, want no retry", took)
	}
	if n := p.srv.conns.Load(); n != 1 {
		t.Errorf("server saw %d connections, want 1", n)
	}
	if p.srv.handshakes.Load() != 0 {
		t.Error("a handshake completed with the wrong host key")
	}
}

func TestHostKeyChosenAmongSeveral(t *testing.T) {
	// sshd offers every host key it has; the client must ask for the kind
	// it knows, or it sees (say) the ECDSA key and reports a mismatch.
	user, host := genKey(t), genKey(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := ssh.NewSignerFromKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, user.PublicKey(), ecSigner, host.Signer())
	c, err := guestssh.Dial(testCtx(t, 10*time.Second), srv.addr, "azureuser", user.Signer(), host.PublicKey())
	if err != nil {
		t.Fatalf("Dial to a server with ECDSA and ed25519 host keys, expecting ed25519 = %v", err)
	}
	c.Close()
}

func TestDialRefusesNilHostKey(t *testing.T) {
	p := newPair(t)
	if _, err := guestssh.Dial(testCtx(t, 10*time.Second), p.srv.addr, "azureuser", p.user.Signer(), nil); err == nil {
		t.Fatal("Dial without a host key = nil error, want a refusal (never trust any key)")
	}
}

// reservePort returns a loopback address nothing listens on.
func reservePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestWaitForSSHListenerStartsLate(t *testing.T) {
	user, host := genKey(t), genKey(t)
	addr := reservePort(t)
	const delay = 700 * time.Millisecond
	started := make(chan *testServer, 1)
	go func() {
		time.Sleep(delay)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen on %s later: %v", addr, err)
			close(started)
			return
		}
		started <- serve(t, l, newServerConfig(t, user.PublicKey(), host.Signer()), nil)
	}()
	begin := time.Now()
	c, err := guestssh.WaitForSSH(testCtx(t, 20*time.Second), addr, "azureuser", user.Signer(), host.PublicKey(),
		guestssh.WithInterval(100*time.Millisecond))
	if err != nil {
		t.Fatalf("WaitForSSH = %v", err)
	}
	defer c.Close()
	if took := time.Since(begin); took < delay {
		t.Errorf("WaitForSSH returned after %v, before the server listened (%v)", took, delay)
	}
	<-started
	if res, err := c.Run(testCtx(t, 10*time.Second), "echo up", nil); err != nil || string(res.Stdout) != "up\n" {
		t.Errorf("Run after WaitForSSH = %+v, %v", res, err)
	}
}

func TestWaitForSSHThroughEOFs(t *testing.T) {
	// QEMU's user-mode forward accepts TCP while sshd is not yet up in the
	// guest, then drops the connection: the client sees EOF mid-handshake.
	user, host := genKey(t), genKey(t)
	const drops = 3
	srv := startServerBefore(t, func(n int32, c net.Conn) bool { return n > drops }, user.PublicKey(), host.Signer())
	c, err := guestssh.WaitForSSH(testCtx(t, 20*time.Second), srv.addr, "azureuser", user.Signer(), host.PublicKey(),
		guestssh.WithInterval(50*time.Millisecond))
	if err != nil {
		t.Fatalf("WaitForSSH = %v", err)
	}
	c.Close()
	if got := srv.conns.Load(); got != drops+1 {
		t.Errorf("server saw %d connections, want %d dropped and 1 served", got, drops)
	}
}

func TestWaitForSSHHungHandshake(t *testing.T) {
	// A guest that accepts but never speaks must not stall the wait: each
	// attempt is bounded, and the next one succeeds.
	user, host := genKey(t), genKey(t)
	srv := startServerBefore(t, silentFirst(5*time.Second), user.PublicKey(), host.Signer())
	begin := time.Now()
	c, err := guestssh.WaitForSSH(testCtx(t, 20*time.Second), srv.addr, "azureuser", user.Signer(), host.PublicKey(),
		guestssh.WithInterval(50*time.Millisecond), guestssh.WithAttemptTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatalf("WaitForSSH = %v", err)
	}
	c.Close()
	if took := time.Since(begin); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("WaitForSSH took %v past a hung handshake, want about the 300ms attempt timeout", took)
	}
}

func TestWaitForSSHSilentForward(t *testing.T) {
	// QEMU's user-mode forward accepts a connection made before the guest
	// has an address, then stays silent while it retries its SYN: the next
	// attempt must not wait for this one's whole timeout. With the 20 s
	// attempt timeout and a 10 s context, only the banner wait can succeed.
	user, host := genKey(t), genKey(t)
	srv := startServerBefore(t, silentFirst(15*time.Second), user.PublicKey(), host.Signer())
	c, err := guestssh.WaitForSSH(testCtx(t, 10*time.Second), srv.addr, "azureuser", user.Signer(), host.PublicKey(),
		guestssh.WithInterval(50*time.Millisecond), guestssh.WithBannerWait(200*time.Millisecond))
	if err != nil {
		t.Fatalf("WaitForSSH = %v", err)
	}
	c.Close()
	if got := srv.conns.Load(); got != 2 {
		t.Errorf("server saw %d connections, want the silent one and 1 served", got)
	}
}

func TestWaitForSSHSlowBanner(t *testing.T) {
	// A guest too busy to send its banner within the banner wait is still
	// reached: after three silent attempts in a row, one waits longer.
	user, host := genKey(t), genKey(t)
	srv := startServerBefore(t, func(int32, net.Conn) bool {
		time.Sleep(400 * time.Millisecond)
		return true
	}, user.PublicKey(), host.Signer())
	c, err := guestssh.WaitForSSH(testCtx(t, 10*time.Second), srv.addr, "azureuser", user.Signer(), host.PublicKey(),
		guestssh.WithInterval(50*time.Millisecond), guestssh.WithBannerWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("WaitForSSH = %v", err)
	}
	c.Close()
	if got := srv.conns.Load(); got != 4 {
		t.Errorf("server saw %d connections, want 3 given up on and 1 served", got)
	}
}

func TestWaitForSSHTimeout(t *testing.T) {
	user, host := genKey(t), genKey(t)
	addr := reservePort(t)
	const serial = "[   42.000000] cloud-init[311]: boom: setup script failed"
	begin := time.Now()
	_, err := guestssh.WaitForSSH(testCtx(t, 400*time.Millisecond), addr, "azureuser", user.Signer(), host.PublicKey(),
		guestssh.WithInterval(100*time.Millisecond),
		guestssh.WithDiagnostics(func() string { return serial }))
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("WaitForSSH returned %v after its 400ms deadline", took)
	}
	if !errors.Is(err, guestssh.ErrTimeout) {
		t.Errorf("error = %v, want one matching ErrTimeout", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want one matching context.DeadlineExceeded", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error = %v, want the last failure (connection refused) in its chain", err)
	}
	if err != nil && !strings.Contains(err.Error(), serial) {
		t.Errorf("error message = %q, want the diagnostics %q in it", err, serial)
	}
	if err != nil && !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error message = %q, want the last failure in it", err)
	}
}

func TestWaitForSSHCancelled(t *testing.T) {
	user, host := genKey(t), genKey(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := guestssh.WaitForSSH(ctx, reservePort(t), "azureuser", user.Signer(), host.PublicKey(),
		guestssh.WithInterval(50*time.Millisecond))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("WaitForSSH cancelled = %v, want an error matching context.Canceled", err)
	}
}
