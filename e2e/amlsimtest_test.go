//go:build linux && cgo

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/amlsimtest"
)

// A test that starts amlsim with amlsimtest on libvirt and creates an
// instance leaves nothing behind when it ends: no domain (virsh, not the
// driver, says so), no disk in the state directory, no home.
func TestAmlsimtestOnLibvirtLeavesNothing(t *testing.T) {
	requireVMs(t)
	img := requireImage(t)
	// Skips (or fails, under AMLSIM_E2E_REQUIRED) when libvirtd cannot
	// be reached, and probes the domain type the server then reuses.
	newVMDriver(t, img)
	typeMu.Lock()
	domainType := probedType
	typeMu.Unlock()

	stateDir := vmStateDir(t)
	// Fast create off: a snapshot taken in the background would boot a
	// template guest the test does not wait for.
	config := fmt.Sprintf("[driver]\nuri = %q\nstate_dir = %q\ndomain_type = %q\nfast_create = false\n\n[local]\nport_range = [33022, 33999]\n",
		libvirtURI(), stateDir, domainType)
	// A compute instance's name (uniqueName's end in -digits, which
	// Azure's naming rule refuses).
	name := fmt.Sprintf("ast%x", time.Now().UnixNano()%0xfffff)
	var home, domain string
	t.Run("server", func(t *testing.T) {
		srv := amlsimtest.Start(t, amlsimtest.WithDriver("libvirt"), amlsimtest.WithConfigTOML(config))
		home = srv.Home()
		domain = domainOf(home, name)

		key, err := guestssh.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		computes := srv.ClientFactory().NewComputeClient()
		p, err := computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, name, sshInstance("Standard_DS2_v2", key, nil), nil)
		created := pollDone(t, "create", p, err)
		if st := *created.Properties.(*ml.ComputeInstance).Properties.State; st != ml.ComputeInstanceStateRunning {
			t.Fatalf("created instance is %s, want Running", st)
		}
		if !virshHas(t, domain) {
			t.Fatalf("virsh does not list %s while the instance runs", domain)
		}
		if _, err := os.Stat(filepath.Join(stateDir, domain)); err != nil {
			t.Fatalf("the domain's files: %v", err)
		}
	})
	if domain == "" {
		return // the server did not start: the subtest says why
	}
	// Whatever the server did, the domain is gone when this test ends,
	// after the checks below (the subtest's cleanups, amlsimtest's among
	// them, have run).
	removeOnCleanup(t, domain)
	if virshHas(t, domain) {
		t.Errorf("domain %s is still defined after the test", domain)
	}
	if _, err := os.Stat(filepath.Join(stateDir, domain)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the domain's directory (disk, seed, serial log) after the test: %v, want it gone", err)
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("home %s after the test: %v, want it gone", home, err)
	}
	entries, _ := os.ReadDir(stateDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), sim.HomeDomainPrefix(home)) {
			t.Errorf("%s of the test's server is left in the state directory", e.Name())
		}
	}
}
