//go:build linux && cgo

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
)

// Two instances created at once start from one snapshot of a booted guest
// (fast create, on by default) and come out as two machines: each has its
// own machine-id, SSH host key, MAC and DHCP lease, hostname, cloud-init
// instance-id and random seed, and was restored, not booted.
func TestFastCreateClonesOnRealVM(t *testing.T) {
	requireVMs(t)
	img := requireImage(t)
	home, config, stateDir := simHome(t, 28022, "")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := startSim(t, home, config, listen)
	f := sdkClients(t, home, listen)
	computes := f.NewComputeClient()
	key, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{
		fmt.Sprintf("fca%x", time.Now().UnixNano()%0xfffff),
		fmt.Sprintf("fcb%x", time.Now().UnixNano()%0xfffff),
	}
	type clone struct {
		port int32
		hk   *tofu
		took time.Duration
	}
	clones := make([]clone, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		removeOnCleanup(t, domainOf(home, name))
		wg.Add(1)
		go func() {
			defer wg.Done()
			begin := time.Now()
			p, err := computes.BeginCreateOrUpdate(context.Background(), rgLocal, wsLocal, name, sshInstance("STANDARD_D3_V2", key, nil), nil)
			res := pollDone(t, "create "+name, p, err)
			ci := res.Properties.(*ml.ComputeInstance)
			if *ci.Properties.State != ml.ComputeInstanceStateRunning {
				t.Errorf("%s after create: %s, errors %v", name, *ci.Properties.State, ci.Properties.Errors)
				return
			}
			clones[i] = clone{port: *ci.Properties.SSHSettings.SSHPort, hk: &tofu{}, took: time.Since(begin)}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// What makes a machine itself; reidentify's status says it was restored.
	const facts = `cat /etc/machine-id; sudo cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub; ` +
		`cat /sys/class/net/$(ls /sys/class/net | grep -v lo | head -1)/address; hostname; ` +
		`cat /var/lib/cloud/data/instance-id; sudo sha256sum /var/lib/systemd/random-seed | cut -d' ' -f1; ` +
		`ip -4 -br addr show scope global | awk '{print $3}'; sudo cat /run/amlsim/reidentify.status 2>/dev/null || echo booted`
	labels := []string{"machine-id", "host key", "MAC", "hostname", "instance-id", "random seed", "address", "reidentify"}
	// A restored guest answers SSH as the instance first, then runs
	// cloud-init's stages (about 20 s under TCG): wait for them.
	for i, c := range clones {
		begin := time.Now()
		for userSSH(t, c.port, key, c.hk, "sudo cat /run/amlsim/reidentify.status") == "identity" {
			if time.Since(begin) > 3*time.Minute {
				t.Fatalf("%s: cloud-init's stages did not end within 3 min", names[i])
			}
			time.Sleep(2 * time.Second)
		}
		t.Logf("%s: create to Running in %.1fs; cloud-init's stages done %.1fs later", names[i], c.took.Seconds(), time.Since(begin).Seconds())
	}
	got := make([][]string, len(names))
	for i, c := range clones {
		got[i] = strings.Split(userSSH(t, c.port, key, c.hk, facts), "\n")
		if len(got[i]) != len(labels) {
			t.Fatalf("%s: facts %q", names[i], got[i])
		}
	}
	for j, label := range labels {
		a, b := got[0][j], got[1][j]
		switch label {
		case "address":
			// Each VM has a user-mode network of its own: the same address.
			if a != "10.0.2.15/24" || b != a {
				t.Errorf("addresses %q and %q, want 10.0.2.15/24 (a lease of QEMU's DHCP)", a, b)
			}
		case "reidentify":
			if a != "done" || b != "done" {
				t.Errorf("reidentify status %q and %q, want done: the VMs were not restored from the snapshot", a, b)
			}
		default:
			if a == b || a == "" {
				t.Errorf("%s is the same in both clones: %q", label, a)
			}
		}
	}
	if got[0][3] != names[0] || got[1][3] != names[1] {
		t.Errorf("hostnames %q, %q; want the instance names", got[0][3], got[1][3])
	}
	for i, name := range names {
		if mac := got[i][2]; mac != hypervisor.MACAddress(domainOf(home, name)) {
			t.Errorf("%s: MAC %s, want its domain's %s", name, mac, hypervisor.MACAddress(domainOf(home, name)))
		}
	}
	if strings.Contains(srv.log.String(), "restoring the snapshot failed") {
		t.Errorf("a restore failed; server log:\n%s", srv.log)
	}
	// The driver says so too, and each guest announced its identity on its
	// serial console: amlsim waits for that line instead of trying SSH
	// while the guest reidentifies itself.
	drv, _ := newVMDriver(t, img)
	for i, name := range names {
		dom := domainOf(home, name)
		if d, err := drv.Lookup(context.Background(), dom); err != nil || !d.Restored {
			t.Errorf("%s: Lookup says restored %v (err %v), want true", name, d.Restored, err)
		}
		line := "amlsim-reidentify: identity " + got[i][4] + "\r\n"
		if serial, err := os.ReadFile(filepath.Join(stateDir, dom, "serial.log")); err != nil || !strings.Contains(string(serial), line) {
			t.Errorf("%s: serial log (%v) lacks %q", name, err, line)
		}
	}
	// A restart boots the clone's own disk: the identity stays.
	rp, err := computes.BeginRestart(context.Background(), rgLocal, wsLocal, names[0], nil)
	pollDone(t, "restart", rp, err)
	after := strings.Split(userSSH(t, clones[0].port, key, clones[0].hk, facts), "\n")
	for j, label := range labels[:5] {
		if after[j] != got[0][j] {
			t.Errorf("%s changed across a restart: %q, then %q", label, got[0][j], after[j])
		}
	}
}

// A domain whose snapshot cannot be restored boots instead, once: its
// first start logs why and boots from the disk layered on the snapshot's.
func TestSnapshotFallbackBoots(t *testing.T) {
	requireVMs(t)
	img := requireImage(t)
	drv, state := newVMDriver(t, img)
	snap := filepath.Join(state, "broken-snapshot")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img.Disk, filepath.Join(snap, "disk.qcow2")).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	if err := os.Chmod(filepath.Join(snap, "disk.qcow2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snap, "state.save"), []byte("LibvirtQemudSave but nothing a QEMU could load"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := uniqueName("fallback")
	removeOnCleanup(t, name)
	spec := hypervisor.Spec{Name: name, VCPUs: 1, MemoryMiB: 512, DiskSizeGB: 8, SSHPort: freePort(t), Seed: []byte("seed"), Snapshot: snap}
	if err := drv.Define(ctx, spec); err != nil {
		t.Fatalf("Define: %v", err)
	}
	if err := drv.Start(ctx, name); err != nil {
		t.Fatalf("Start of a domain whose snapshot is broken: %v, want a boot", err)
	}
	d, err := drv.Lookup(ctx, name)
	if err != nil || d.State != hypervisor.StateRunning || d.Restored {
		t.Fatalf("after Start: %+v, %v; want running, booted", d, err)
	}
	out, err := exec.Command("virsh", "-c", libvirtURI(), "dumpxml", "--inactive", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "snapshot>") {
		t.Errorf("the snapshot mark is still in the definition: later starts would try it again")
	}
	if err := drv.Undefine(ctx, name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatal(err)
	}
}
