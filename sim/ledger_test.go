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
		total, byFamily, err := usedVCPUs(tx, "eastus")
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
