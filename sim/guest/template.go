package guest

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/amlsim/amlsim/cloudinit"
	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
	"golang.org/x/crypto/ssh"
)

// Fast create (sim.Templater): one template guest per VM shape boots from
// a seed of its own, starts reidentify.py (which loads cloud-init's Python
// and waits), and is saved. A new instance's VM is restored from that
// state with its own seed attached; reidentify.py sees the new seed and
// makes the guest the instance. WaitReady finds the template's host key
// until then, and from then on the guest is what a cold boot of the
// instance's seed gives.

//go:embed reidentify.py
var reidentifyPy []byte

// Where the template's pieces are in the guest.
const (
	reidentifyPath = "/usr/local/lib/amlsim/reidentify.py"
	reidentifyUnit = "/etc/systemd/system/amlsim-reidentify.service"
	// templateKeysDir holds the file that authorizes the template key for
	// azureuser. It is on a tmpfs, so it lives in the saved memory but not
	// on any disk: a clone that boots instead of being restored does not
	// have it, and reidentify.py deletes it once the instance's keys are
	// in place.
	templateKeysDir = "/run/amlsim-template"
	templateSSHD    = "/etc/ssh/sshd_config.d/amlsim-template.conf"
	templateStatus  = "/run/amlsim/reidentify.status"
)

// templateAddress is the guest's address on QEMU's user-mode network, and
// templateGateway and templateDNS are the host's side of it (QEMU docs,
// "Network emulation", user networking: "the DHCP server assign addresses
// to the hosts starting from 10.0.2.15", gateway 10.0.2.2, DNS 10.0.2.3).
// The template takes it statically: a DHCP lease would stay in the saved
// network state under the template's MAC, and each clone asks for its
// own with its own MAC.
const (
	templateAddress = "10.0.2.15/24"
	templateGateway = "10.0.2.2"
	templateDNS     = "10.0.2.3"
)

const reidentifyService = `[Unit]
Description=amlsim: wait, with cloud-init loaded, to make this saved guest a new instance
After=cloud-final.service

[Service]
Type=simple
ExecStart=/usr/bin/python3 ` + reidentifyPath + `
# As cloud-final.service: what setup scripts leave running outlives the unit.
KillMode=process
`

// repairKeysDropIn makes sshd of a clone that boots (after a stop, or a
// crash) check its host keys first: see repair_host_keys in
// reidentify.py.
const (
	repairKeysUnit   = "/etc/systemd/system/ssh.service.d/amlsim-repair-host-keys.conf"
	repairKeysDropIn = "[Service]\nExecStartPre=-/usr/bin/python3 " + reidentifyPath + " --repair-host-keys\n"
)

const templateSSHDConf = "# amlsim: the template key, for the host to reach a guest just restored.\n" +
	"AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 " + templateKeysDir + "/authorized_keys\n"

// TemplateKeys are the keys of template guests: Host is their SSH host key,
// User is authorized for azureuser. They belong with the snapshots (every
// amlsim home that uses a snapshot needs them), not with one home.
type TemplateKeys struct {
	Host guestssh.Key
	User guestssh.Key
}

// LoadTemplateKeys loads the template keys kept in dir, creating them on
// first use.
func LoadTemplateKeys(dir string) (*TemplateKeys, error) {
	host, err := guestssh.LoadOrCreateKey(filepath.Join(dir, "template-host-key.pem"))
	if err != nil {
		return nil, err
	}
	user, err := guestssh.LoadOrCreateKey(filepath.Join(dir, "template-user-key.pem"))
	if err != nil {
		return nil, err
	}
	return &TemplateKeys{Host: host, User: user}, nil
}

var _ sim.Templater = (*SSH)(nil)

// TemplateVersion implements sim.Templater: a hash of everything the
// template guest is made of besides the image.
func (g *SSH) TemplateVersion() string {
	h := sha256.New()
	fmt.Fprintf(h, "template 1\n%s\n%s\n%s\n%s\n%s\n", reidentifyPy, reidentifyService, templateSSHDConf, templateAddress, repairKeysDropIn)
	if g.Template != nil {
		fmt.Fprintf(h, "%s\n%s\n", g.Template.Host.AuthorizedKey(), g.Template.User.AuthorizedKey())
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// TemplateSeed implements sim.Templater.
func (g *SSH) TemplateSeed(name string) ([]byte, error) {
	cfg, err := g.templateConfig(name)
	if err != nil {
		return nil, err
	}
	return cfg.ISO()
}

func (g *SSH) templateConfig(name string) (cloudinit.Config, error) {
	if g.Template == nil {
		return cloudinit.Config{}, errors.New("no template keys")
	}
	return cloudinit.Config{
		InstanceID:     "amlsim-template-" + g.TemplateVersion(),
		Hostname:       "amlsim-template",
		User:           User,
		AuthorizedKeys: []string{g.Template.User.AuthorizedKey()},
		HostKeys: []cloudinit.HostKey{{Type: "ed25519", Private: string(g.Template.Host.PrivatePEM()),
			Public: g.Template.Host.AuthorizedKey()}},
		MACAddress: hypervisor.MACAddress(name),
		Static:     &cloudinit.StaticIPv4{Address: templateAddress, Gateway: templateGateway, Nameservers: []string{templateDNS}},
		Files: []cloudinit.File{
			{Path: reidentifyPath, Content: reidentifyPy, Permissions: "0755"},
			{Path: reidentifyUnit, Content: []byte(reidentifyService)},
			{Path: templateSSHD, Content: []byte(templateSSHDConf)},
			{Path: repairKeysUnit, Content: []byte(repairKeysDropIn)},
		},
		RunCmd: [][]string{{"systemctl", "start", "--no-block", "amlsim-reidentify.service"}},
	}, nil
}

// prepareTemplate moves the template key to the tmpfs file sshd now reads,
// empties the machine-id (a clone that boots makes its own), and writes and
// drops the page cache, so the saved memory is small and holds no blocks of
// the template's seed.
const prepareTemplate = `set -e
install -d -o ` + User + ` -g ` + User + ` -m 0700 ` + templateKeysDir + `
install -o ` + User + ` -g ` + User + ` -m 0600 /home/` + User + `/.ssh/authorized_keys ` + templateKeysDir + `/authorized_keys
: > /home/` + User + `/.ssh/authorized_keys
systemctl reload ssh.service
: > /etc/machine-id
sync
echo 3 > /proc/sys/vm/drop_caches
`

// TemplateReady implements sim.Templater.
func (g *SSH) TemplateReady(ctx context.Context, sshPort int) error {
	if g.Template == nil {
		return errors.New("no template keys")
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sshPort))
	c, err := guestssh.WaitForSSH(ctx, addr, User, g.Template.User.Signer(), g.Template.Host.PublicKey())
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		res, err := runBounded(ctx, c, "sudo cat "+templateStatus+" 2>/dev/null; true")
		if err != nil {
			return fmt.Errorf("read reidentify status: %w", err)
		}
		st := strings.TrimSpace(string(res.Stdout))
		if st == "ready" {
			break
		}
		if strings.HasPrefix(st, "failed") {
			return fmt.Errorf("reidentify in the template: %s", st)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reidentify in the template never got ready: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
	res, err := runBounded(ctx, c, "sudo sh -c "+shellQuote(prepareTemplate))
	if err == nil && res.ExitStatus != 0 {
		err = fmt.Errorf("exit status %d: %s", res.ExitStatus, res.Stderr)
	}
	if err != nil {
		return fmt.Errorf("prepare the template guest: %w", err)
	}
	return nil
}

// nudgeReidentify starts reidentify.py anew in a restored guest where the
// resident copy shows no sign of having seen the new seed (it is gone, or
// still "ready"): the template's unit is stopped first.
const nudgeReidentify = `s=$(cat ` + templateStatus + ` 2>/dev/null)
case $s in
""|ready)
	systemctl stop amlsim-reidentify.service
	systemd-run --quiet --unit amlsim-reidentify-now -p KillMode=process /usr/bin/python3 ` + reidentifyPath + ` --now
	;;
failed*)
	echo "$s" >&2
	exit 1
	;;
esac
`

// restoredPatience is how long a restored guest may keep the template's
// host key before amlsim starts reidentify.py in it by hand. The resident
// copy serves the instance's key within seconds of the restore.
const restoredPatience = time.Minute

// restoredRetry is how often a restored guest whose serial log has not
// announced its identity is tried over SSH all the same (a guest with no
// serial log is tried every second). Each try is a handshake that takes
// the vCPU from reidentify.py: under TCG, a try made at the restore took
// 4 s and put off the instance's identity by about a second.
const restoredRetry = 5 * time.Second

// announcedIdentity tells whether serial, a serial console's log, has the
// line reidentify.py writes to the kernel log once sshd serves the host key
// of instance instanceID ("amlsim-reidentify: identity ID", ended by CR LF
// on the console).
func announcedIdentity(serial []byte, instanceID string) bool {
	marker := []byte("amlsim-reidentify: identity " + instanceID)
	for {
		i := bytes.Index(serial, marker)
		if i < 0 {
			return false
		}
		serial = serial[i+len(marker):]
		if len(serial) > 0 && (serial[0] == '\r' || serial[0] == '\n') {
			return true
		}
	}
}

// waitRestored waits for a guest restored from a snapshot (it presents the
// template's host key) to present the instance's: reidentify.py in the
// guest sees the new seed, makes the guest the instance and announces it on
// the serial console, and SSH is tried then, or every restoredRetry without
// an announcement (tried says whether it was tried just now). A guest that
// keeps the template's key is nudged once, over SSH with the template's key.
func (g *SSH) waitRestored(ctx context.Context, inst sim.Instance, addr string, hk ssh.PublicKey, tried bool, opts ...guestssh.WaitOption) (*guestssh.Client, error) {
	begin := time.Now()
	serial := ""
	if g.SerialLog != nil {
		serial = g.SerialLog(inst.Domain)
	}
	// The zero lastTry tries at once.
	var lastTry time.Time
	if tried || serial != "" {
		lastTry = begin
	}
	announced, nudged := false, false
	for {
		interval := restoredRetry
		if !announced && serial != "" {
			if b, err := os.ReadFile(serial); err != nil || announcedIdentity(b, inst.ID) {
				announced, lastTry = true, time.Time{}
			}
		}
		if announced || nudged || serial == "" {
			interval = time.Second
		}
		if time.Since(lastTry) >= interval {
			c, err := guestssh.WaitForSSH(ctx, addr, User, g.Key.Signer(), hk, opts...)
			if !errors.Is(err, guestssh.ErrHostKeyMismatch) {
				return c, err
			}
			lastTry = time.Now()
		}
		if !nudged && time.Since(begin) > restoredPatience {
			nudged = true
			if err := g.nudge(ctx, addr); err != nil {
				return nil, fmt.Errorf("the guest restored from a snapshot did not take its identity: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the guest restored from a snapshot never took its identity: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (g *SSH) nudge(ctx context.Context, addr string) error {
	c, err := guestssh.Dial(ctx, addr, User, g.Template.User.Signer(), g.Template.Host.PublicKey())
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := runBounded(ctx, c, "sudo sh -c "+shellQuote(nudgeReidentify))
	if err == nil && res.ExitStatus != 0 {
		err = fmt.Errorf("exit status %d: %s", res.ExitStatus, strings.TrimSpace(string(res.Stderr)))
	}
	return err
}
