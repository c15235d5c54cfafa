// Package guest prepares and reaches the guest OS of compute instances:
// the cloud-init seed each VM boots with, and the wait until the guest
// answers SSH with the host key the simulator gave it.
package guest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/amlsim/amlsim/cloudinit"
	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
	"golang.org/x/crypto/ssh"
)

// User is the login user of every instance, as on Azure.
const User = "azureuser"

// SSH is the guest setup for real VMs: cloud-init and SSH.
type SSH struct {
	// Key is the simulator's management key, authorized in every guest.
	Key guestssh.Key
	// SerialLog returns the path of a domain's serial log ("" if none); its
	// tail is added to the error when a guest never answers.
	SerialLog func(domain string) string
	// Template holds the keys of template guests (fast create); nil means
	// the guest takes no part in fast create.
	Template *TemplateKeys
	// Subscription is the simulated subscription, for the environment of
	// jobs (AZUREML_ARM_SUBSCRIPTION).
	Subscription string
	// Restored tells whether a domain runs a guest restored from a
	// snapshot (hypervisor.Domain.Restored); nil means never.
	Restored func(ctx context.Context, domain string) bool
}

var _ sim.Guest = (*SSH)(nil)

// Seed renders the instance's cloud-init NoCloud seed.
func (g *SSH) Seed(inst sim.Instance) ([]byte, error) {
	hk, err := guestssh.ParseKey(inst.HostKey)
	if err != nil {
		return nil, fmt.Errorf("host key of %s: %w", inst.Name, err)
	}
	keys := []string{g.Key.AuthorizedKey()}
	if inst.SSHPublic && inst.AdminKey != "" {
		keys = append(keys, inst.AdminKey)
	}
	files := setupFiles(inst)
	if inst.HasApplications() {
		files = append(files, jupyterFile(inst))
	}
	cfg := cloudinit.Config{
		InstanceID:     inst.ID,
		Hostname:       strings.ToLower(inst.Name),
		User:           User,
		AuthorizedKeys: keys,
		HostKeys:       []cloudinit.HostKey{{Type: "ed25519", Private: string(hk.PrivatePEM()), Public: hk.AuthorizedKey()}},
		MACAddress:     hypervisor.MACAddress(inst.Domain),
		Files:          files,
	}
	return cfg.ISO()
}

// JupyterEnvPath is the environment file of the image's notebook server
// unit (fixtures/image/amlsim-jupyter.service): without it the server does
// not start.
const JupyterEnvPath = "/etc/amlsim/jupyter.env"

// jupyterFile configures the guest's notebook server: served under the
// instance's path on amlsim's endpoint, requiring the token only the API's
// proxy sends, rooted in the workspace share as on Azure when there is one.
func jupyterFile(inst sim.Instance) cloudinit.File {
	root := "/home/" + User
	if inst.Share != "" {
		root = SharePath
	}
	env := fmt.Sprintf("JUPYTER_BASE_URL=%s\nJUPYTER_TOKEN=%s\nJUPYTER_ROOT=%s\n",
		sim.AppBasePath(inst.Location, inst.Name), inst.AppToken, root)
	return cloudinit.File{Path: JupyterEnvPath, Content: []byte(env), Permissions: "0600"}
}

// WaitReady waits until the guest answers SSH as azureuser with the
// management key and presents the host key it was given, then flushes the
// guest's writes to its disk: the host keys and user cloud-init wrote
// must survive a VM that is powered off hard (QEMU killed, `virsh
// destroy`) right after it is reported ready. Without the flush, a guest
// destroyed within seconds of its first boot came back with sshd failing
// to start, for good (seen under TCG: ext4 had not yet written the keys).
// A guest restored from a snapshot is waited for as waitRestored says,
// and not flushed: reidentify.py flushed the identity before it announced
// it (and a restored guest that rebooted since has it on its disk).
func (g *SSH) WaitReady(ctx context.Context, inst sim.Instance) error {
	addr, hk, err := sshEndpoint(inst)
	if err != nil {
		return err
	}
	diag := guestssh.WithDiagnostics(func() string { return g.serialTail(inst.Domain) })
	restored := g.Template != nil && g.Restored != nil && g.Restored(ctx, inst.Domain)
	var c *guestssh.Client
	if restored {
		c, err = g.waitRestored(ctx, inst, addr, hk, false, diag)
	} else {
		c, err = guestssh.WaitForSSH(ctx, addr, User, g.Key.Signer(), hk, diag)
		if errors.Is(err, guestssh.ErrHostKeyMismatch) && g.Template != nil {
			// Restored from a snapshot after all: the template guest
			// answers, until it has made itself the instance.
			restored = true
			c, err = g.waitRestored(ctx, inst, addr, hk, true, diag)
		}
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if restored {
		return nil
	}
	res, err := c.Run(ctx, "sync", nil)
	if err == nil && res.ExitStatus != 0 {
		err = fmt.Errorf("exit status %d: %s", res.ExitStatus, res.Stderr)
	}
	if err != nil {
		return fmt.Errorf("flush the guest's disk (sync): %w", err)
	}
	return nil
}

// sshEndpoint is where the instance's guest answers SSH on the host, and
// the host key it must present.
func sshEndpoint(inst sim.Instance) (addr string, hostKey ssh.PublicKey, err error) {
	hk, err := guestssh.ParseKey(inst.HostKey)
	if err != nil {
		return "", nil, fmt.Errorf("host key of %s: %w", inst.Name, err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.SSHPort)), hk.PublicKey(), nil
}

func (g *SSH) serialTail(domain string) string {
	if g.SerialLog == nil {
		return ""
	}
	path := g.SerialLog(domain)
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return "last lines of the serial console (" + path + "):\n" + strings.TrimRight(string(sim.LastLines(b, 20)), "\n")
}

// Fake is the guest setup for the fake driver: no seed, and the guest is
// ready as soon as the driver says the domain runs.
type Fake struct {
	Driver hypervisor.Driver
	// Active, if set, is the activity instances report (idle shutdown).
	Active *FakeActivity
}

var _ sim.Guest = (*Fake)(nil)

// Seed returns no seed: fake domains boot nothing.
func (Fake) Seed(sim.Instance) ([]byte, error) { return nil, nil }

// WaitReady checks that the domain runs.
func (f Fake) WaitReady(ctx context.Context, inst sim.Instance) error {
	d, err := f.Driver.Lookup(ctx, inst.Domain)
	if err != nil {
		return err
	}
	if d.State != hypervisor.StateRunning {
		return fmt.Errorf("domain %s is %s, not running", inst.Domain, d.State)
	}
	return nil
}
