package sim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
)

// waitSettled waits until every acknowledged operation has ended and the
// instance is gone or settled, and returns it (ok false when gone).
func waitSettled(t *testing.T, svc *sim.Service, name string, ops []sim.Operation) (sim.Instance, bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, op := range ops {
		for {
			got, err := svc.Operation("eastus", op.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != sim.OpInProgress {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("operation %s %s still in progress", op.Action, op.ID)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for {
		inst, err := svc.Compute(ref, name)
		if sim.IsKind(err, sim.KindNotFound) {
			return inst, false
		}
		if err != nil {
			t.Fatal(err)
		}
		if !sim.Transitional(inst.State) {
			return inst, true
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still %s", name, inst.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Concurrent start, stop, restart and delete requests on one instance: each
// is allowed or refused by the table, every accepted one ends, and the
// instance ends in a settled state its VM agrees with.
func TestConcurrentRequestsOnOneInstance(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	d := 20 * time.Millisecond
	drv := fake.New(fake.WithDelays(fake.Delays{Define: d, Start: d, Shutdown: d, Destroy: d, Undefine: d}))
	s := open(t, filepath.Join(t.TempDir(), "state.db"), drv)
	defer s.close()
	actions := []sim.Action{sim.ActionStart, sim.ActionStop, sim.ActionRestart, sim.ActionStop, sim.ActionStart, sim.ActionDelete}
	for round := range 10 {
		name := fmt.Sprintf("ci-race-%c", 'a'+round)
		if _, _, err := s.svc.CreateOrUpdate(sim.DefaultOwner, ref, name, sim.CreateRequest{Size: "Standard_D1_v2"}); err != nil {
			t.Fatal(err)
		}
		waitState(t, s.svc, name, sim.StateRunning)
		var mu sync.Mutex
		var ops []sim.Operation
		var wg sync.WaitGroup
		for range 8 {
			a := actions[rng.IntN(len(actions))]
			pause := time.Duration(rng.IntN(40)) * time.Millisecond
			wg.Go(func() {
				time.Sleep(pause)
				op, err := s.svc.Begin(sim.DefaultOwner, ref, name, a)
				if err != nil {
					if !sim.IsKind(err, sim.KindConflict) && !sim.IsKind(err, sim.KindNotFound) {
						t.Errorf("%s: %v, want a conflict or not found", a, err)
					}
					return
				}
				mu.Lock()
				ops = append(ops, op)
				mu.Unlock()
			})
		}
		wg.Wait()
		inst, ok := waitSettled(t, s.svc, name, ops)
		dom, err := drv.Lookup(context.Background(), inst.Domain)
		switch {
		case !ok:
			if err == nil {
				t.Errorf("%s deleted but its domain is %s", name, dom.State)
			}
		case inst.State.VMUp() && (err != nil || dom.State != hypervisor.StateRunning):
			t.Errorf("%s is %s but its VM: %+v, %v", name, inst.State, dom, err)
		case inst.State == sim.StateStopped && (err != nil || dom.State != hypervisor.StateShutoff):
			t.Errorf("%s is Stopped but its VM: %+v, %v", name, dom, err)
		}
	}
}

// A workspace deleted while computes are being created in it: the
// workspace goes with every compute that got in, and nothing is left
// behind: no instance, no domain, no quota.
func TestWorkspaceDeleteRacesCreates(t *testing.T) {
	drv := fake.New(fake.WithDelays(fake.Delays{Start: 10 * time.Millisecond}))
	s := open(t, filepath.Join(t.TempDir(), "state.db"), drv)
	defer s.close()
	other := sim.WorkspaceRef{ResourceGroup: "rg-local", Name: "ws-race"}
	if _, err := s.svc.PutWorkspace(other, "eastus", nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 3 * time.Millisecond)
			_, _, err := s.svc.CreateOrUpdate(sim.DefaultOwner, other, fmt.Sprintf("ci-ws-%c", 'a'+i), sim.CreateRequest{Size: "Standard_D1_v2"})
			if err != nil && !sim.IsKind(err, sim.KindNotFound) && !sim.IsKind(err, sim.KindConflict) {
				t.Errorf("create during the workspace delete: %v", err)
			}
		})
	}
	time.Sleep(8 * time.Millisecond)
	op, err := s.svc.DeleteWorkspace(sim.DefaultOwner, other)
	if err != nil || op == nil {
		t.Fatalf("DeleteWorkspace = %v, %v", op, err)
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.svc.Operation("eastus", op.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == sim.OpSucceeded {
			break
		}
		if got.Status != sim.OpInProgress || time.Now().After(deadline) {
			t.Fatalf("workspace delete = %+v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.svc.Workspace(other); !sim.IsKind(err, sim.KindNotFound) {
		t.Errorf("workspace after its delete: %v, want not found", err)
	}
	doms, _ := drv.List(context.Background())
	for _, d := range doms {
		if strings.Contains(d.Name, "ci-ws-") {
			t.Errorf("domain %s left after its workspace was deleted", d.Name)
		}
	}
	usages, err := s.svc.Usages("eastus")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range usages {
		if u.Current != 0 {
			t.Errorf("usage %s = %d, want 0", u.Name, u.Current)
		}
	}
}
