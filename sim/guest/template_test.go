package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
	"golang.org/x/crypto/ssh"
)

// The template guest's seed authorizes only the template key, takes the
// user-mode network's address statically (no DHCP lease to clone), and
// brings reidentify.py, its unit and the sshd setting for the tmpfs key.
func TestTemplateSeed(t *testing.T) {
	keys, err := LoadTemplateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g := &SSH{Template: keys}
	cfg, err := g.templateConfig("amlsim-template-x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.TemplateSeed("amlsim-template-x"); err != nil {
		t.Fatal(err)
	}
	b, err := cfg.UserData()
	if err != nil {
		t.Fatal(err)
	}
	ud := string(b)
	for _, want := range []string{keys.User.AuthorizedKey(), reidentifyPath, reidentifyUnit, templateSSHD, "amlsim-reidentify.service"} {
		if !strings.Contains(ud, want) {
			t.Errorf("user-data lacks %q", want)
		}
	}
	nc := string(cfg.NetworkConfig())
	for _, want := range []string{`"10.0.2.15/24"`, `gateway4: "10.0.2.2"`, "dhcp4: false"} {
		if !strings.Contains(nc, want) {
			t.Errorf("network-config lacks %q:\n%s", want, nc)
		}
	}
	if _, err := (&SSH{}).TemplateSeed("x"); err == nil {
		t.Error("TemplateSeed without template keys succeeded")
	}
	// The version names the keys too: a snapshot of another key pair is
	// one the host cannot log in to.
	other, err := LoadTemplateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if g.TemplateVersion() == (&SSH{Template: other}).TemplateVersion() {
		t.Error("TemplateVersion is the same for two template key pairs")
	}
}

// reidentify.py is Python the guest's python3 can compile.
func TestReidentifyCompiles(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed here: the guest image has it, this host does not")
	}
	path := filepath.Join(t.TempDir(), "reidentify.py")
	if err := os.WriteFile(path, reidentifyPy, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, "-c", "import ast,sys; ast.parse(open(sys.argv[1]).read())", path).CombinedOutput(); err != nil {
		t.Fatalf("reidentify.py does not parse: %v\n%s", err, out)
	}
}

// guestSSHD is an SSH server on 127.0.0.1 standing in for a restored guest:
// it presents the template's host key until become is called, then the
// instance's, and answers every command with exit status 0. It counts the
// handshakes made while it presented the template's key.
type guestSSHD struct {
	port     int
	template *ssh.ServerConfig
	instance *ssh.ServerConfig
	became   atomic.Bool
	// refused counts handshakes with the template's host key.
	refused atomic.Int32
}

func startGuestSSHD(t *testing.T, mgmt ssh.PublicKey, templateHost, instanceHost ssh.Signer) *guestSSHD {
	t.Helper()
	config := func(host ssh.Signer) *ssh.ServerConfig {
		c := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), mgmt.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("not authorized")
		}}
		c.AddHostKey(host)
		return c
	}
	s := &guestSSHD{template: config(templateHost), instance: config(instanceHost)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

func (s *guestSSHD) become() { s.became.Store(true) }

func (s *guestSSHD) serve(c net.Conn) {
	defer c.Close()
	config := s.instance
	if !s.became.Load() {
		config = s.template
		s.refused.Add(1) // the client hangs up on a key it does not expect
	}
	sc, chans, reqs, err := ssh.NewServerConn(c, config)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for r := range chReqs {
				r.Reply(r.Type == "exec", nil)
				if r.Type == "exec" {
					ch.SendRequest("exit-status", false, make([]byte, 4))
					return
				}
			}
		}()
	}
}

// A guest restored from a snapshot answers with the template's host key
// until reidentify.py has made it the instance and said so on the serial
// console. amlsim waits for that line, and does not take the guest's vCPU
// with handshakes meanwhile: none when the driver says the domain was
// restored, one (the try that found the template's key) when it cannot.
func TestWaitReadyWaitsForTheRestoredGuestsAnnouncement(t *testing.T) {
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("restored known %v", known), func(t *testing.T) {
			t.Parallel()
			mgmt, templateHost, instanceHost := newKey(t), newKey(t), newKey(t)
			sshd := startGuestSSHD(t, mgmt.PublicKey(), templateHost.Signer(), instanceHost.Signer())
			serial := filepath.Join(t.TempDir(), "serial.log")
			if err := os.WriteFile(serial, []byte("[    0.000000] Linux version 6.1\r\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			g := &SSH{Key: mgmt, Template: &TemplateKeys{Host: templateHost, User: newKey(t)},
				SerialLog: func(string) string { return serial }}
			want := int32(1)
			if known {
				g.Restored = func(_ context.Context, domain string) bool { return domain == "amlsim-ci1" }
				want = 0
			}
			inst := sim.Instance{ID: "5b0c7e0e-1d6a-4c8e-9d0f-6f1f0b6c2a11", Name: "ci1", Domain: "amlsim-ci1",
				SSHPort: sshd.port, HostKey: instanceHost.PrivatePEM()}

			done := make(chan error, 1)
			go func() { done <- g.WaitReady(t.Context(), inst) }()
			for sshd.refused.Load() < want {
				time.Sleep(10 * time.Millisecond)
			}
			// From here a try would find the instance's key; another
			// instance's announcement does not count.
			sshd.become()
			appendFile(t, serial, "[   96.1] amlsim-reidentify: identity 00000000-0000-0000-0000-000000000000\r\n")
			appendFile(t, serial, "[   96.1] amlsim-reidentify: identity "+inst.ID+"0\r\n")
			time.Sleep(2500 * time.Millisecond) // more than two tries a second apart
			select {
			case err := <-done:
				t.Fatalf("WaitReady returned before the announcement: %v", err)
			default:
			}
			if n := sshd.refused.Load(); n != want {
				t.Errorf("%d handshakes with the template's key, want %d", n, want)
			}
			appendFile(t, serial, "[   96.2] amlsim-reidentify: identity "+inst.ID+"\r\n")
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("WaitReady did not return after the announcement")
			}
		})
	}
}

func newKey(t *testing.T) guestssh.Key {
	t.Helper()
	k, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
