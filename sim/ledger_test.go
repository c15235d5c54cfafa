package sim

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/amlsim/amlsim/sim/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), Buckets()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The ledger counts from the records in the transaction: whatever an
// instance's state, it holds its vCPUs and ports until its record goes.
func TestLedgerCountsTheRecords(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Local.PortRange = [2]int{40100, 40109}
	l := ledger{cfg: cfg, catalog: NewCatalog(defaultSizes)}
	st := openStore(t)
	d3, _ := l.catalog.Lookup("Standard_D3_v2")
	err := st.Update(func(tx *store.Tx) error {
		for i, s := range []State{StateRunning, StateStopped, StateCreating} {
			inst := Instance{Name: "ci-" + string(s), Location: "eastus", Size: d3, State: s, SSHPort: 40100 + 2*i, AppPort: 40101 + 2*i}
			if err := putInstance(tx, inst); err != nil {
				return err
			}
		}
		return putInstance(tx, Instance{Name: "ci-west", Location: "westeurope", Size: d3, SSHPort: 40106, AppPort: 40107})
	})
	if err != nil {
		t.Fatal(err)
	}
	// Something else on the host holds the next port of the range.
	busy, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(40108))
	if err != nil {
		t.Skipf("port 40108 is taken on this host: %v", err)
	}
	defer busy.Close()
	err = st.View(func(tx *store.Tx) error {
		total, byFamily, err := usedVCPUs(tx, "eastus", "")
		if err != nil {
			return err
		}
		if total != 3*d3.VCPUs || byFamily[d3.Family] != 3*d3.VCPUs {
			t.Errorf("eastus vCPUs = %d (%s %d), want %d", total, d3.Family, byFamily[d3.Family], 3*d3.VCPUs)
		}
		ports, err := l.allocatePorts(tx, 1)
		if err != nil || len(ports) != 1 || ports[0] != 40109 {
			t.Errorf("allocatePorts = %v, %v; want [40109]: the only port neither held by an instance nor busy", ports, err)
		}
		if _, err := l.allocatePorts(tx, 2); !IsKind(err, KindInternal) {
			t.Errorf("allocatePorts of more than are free = %v, want NoFreePort", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// While a resize runs the instance holds both sizes: the larger within a
// family, both across families; so neither its failure nor a delete that
// cuts in can leave the region over its limits.
func TestLedgerHoldsBothSizesDuringAResize(t *testing.T) {
	cfg := DefaultConfig()
	l := ledger{cfg: cfg, catalog: NewCatalog(defaultSizes)}
	st := openStore(t)
	size := func(n string) VMSize { z, _ := l.catalog.Lookup(n); return z }
	d4, d1, ds3 := size("Standard_D4_v2"), size("Standard_D1_v2"), size("Standard_DS3_v2")
	err := st.Update(func(tx *store.Tx) error {
		if err := putInstance(tx, Instance{Name: "ci-down", Location: "eastus", Size: d4, Resize: &Resize{Size: d1}}); err != nil {
			return err
		}
		return putInstance(tx, Instance{Name: "ci-across", Location: "eastus", Size: d1, Resize: &Resize{Size: ds3}})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.View(func(tx *store.Tx) error {
		total, byFamily, err := usedVCPUs(tx, "eastus", "")
		if err != nil {
			return err
		}
		// ci-down: max(8, 1) Dv2; ci-across: 1 Dv2 and 4 DSv2.
		if byFamily[d4.Family] != 9 || byFamily[ds3.Family] != 4 || total != 13 {
			t.Errorf("held during resizes: total %d, Dv2 %d, DSv2 %d; want 13, 9, 4", total, byFamily[d4.Family], byFamily[ds3.Family])
		}
		// A third instance's resize to D4_v2 (8) with 24 Dv2: 9 held
		// elsewhere plus 8 fits; to two D4_v2s' worth it would not.
		inst := Instance{Name: "ci-new", Location: "eastus", Size: d1, Resize: &Resize{Size: d4}}
		if err := l.checkQuota(tx, inst, d4); err != nil {
			t.Errorf("resize to D4_v2 with 9 of 24 Dv2 held elsewhere: %v", err)
		}
		cfg.Regions[0].FamilyVCPUs = map[string]int{d4.Family: 16}
		l.cfg = cfg
		if err := l.checkQuota(tx, inst, d4); !IsKind(err, KindQuota) {
			t.Errorf("resize to D4_v2 with 9 of 16 Dv2 held elsewhere = %v, want QuotaExceeded", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
