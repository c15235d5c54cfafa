package sim

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim/clock"
	"github.com/amlsim/amlsim/sim/store"
)

// The scheduler remembers how far it looked: a firing missed while amlsim
// was down happens at the next look, one that happened before the first
// schedule existed never does, and none happens twice.
func TestSchedulerLooksBackToWhereItWas(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Local.PortRange = [2]int{34022, 34999}
	svc, err := New(cfg, openStore(t), fake.New(), readyGuest{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	ref := WorkspaceRef{ResourceGroup: "rg-local", Name: "ws-local"}
	wait := func(name string, want State) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if inst, _ := svc.Compute(ref, name); inst.State == want && inst.Operation == "" {
				return
			}
			if time.Now().After(deadline) {
				inst, _ := svc.Compute(ref, name)
				t.Fatalf("%s: %s, want %s", name, inst.State, want)
			}
		}
	}
	stored := func() (from time.Time) {
		svc.st.View(func(tx *store.Tx) error { _, err := tx.Get(bucketMeta, metaScheduled, &from); return err })
		return from
	}
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }

	if _, _, err := svc.CreateOrUpdate(DefaultOwner, ref, "ci-a", CreateRequest{Size: "Standard_D1_v2"}); err != nil {
		t.Fatal(err)
	}
	wait("ci-a", StateRunning)
	svc.scheduler.tick(at("2026-12-01T17:00:00Z"))
	if !stored().IsZero() {
		t.Errorf("with no schedules the scheduler wrote %v", stored())
	}
	// A schedule added at 19:00: its 18:00 is before it existed.
	stop := json.RawMessage(`{"computeStartStop":[{"action":"Stop","cron":{"expression":"0 18 * * *"}}]}`)
	if _, _, err := svc.CreateOrUpdate(DefaultOwner, ref, "ci-a", CreateRequest{Size: "Standard_D1_v2", Schedules: stop}); err != nil {
		t.Fatal(err)
	}
	svc.scheduler.tick(at("2026-12-01T19:00:00Z"))
	svc.scheduler.tick(at("2026-12-01T19:00:01Z"))
	if inst, _ := svc.Compute(ref, "ci-a"); inst.State != StateRunning {
		t.Fatalf("the 18:00 before the schedule existed fired: %s", inst.State)
	}
	// Down from 17:30 to 18:30 the next day: the missed 18:00 fires once.
	svc.scheduler.tick(at("2026-12-02T17:30:00Z"))
	svc.scheduler.tick(at("2026-12-02T18:30:00Z"))
	wait("ci-a", StateStopped)
	if inst, _ := svc.Compute(ref, "ci-a"); inst.LastOperation.Trigger != string(TriggerSchedule) {
		t.Errorf("lastOperation = %+v, want a Stop by Schedule", inst.LastOperation)
	}
	if _, err := svc.Begin(DefaultOwner, ref, "ci-a", ActionStart); err != nil {
		t.Fatal(err)
	}
	wait("ci-a", StateRunning)
	svc.scheduler.tick(at("2026-12-02T18:31:00Z"))
	time.Sleep(50 * time.Millisecond)
	if inst, _ := svc.Compute(ref, "ci-a"); inst.State != StateRunning {
		t.Errorf("the 18:00 fired twice: %s", inst.State)
	}
}

// The test clock outlives a restart: a server that moved it ahead and
// restarts on the same home starts where it was.
func TestTestClockOutlivesARestart(t *testing.T) {
	cfg := DefaultConfig()
	st := openStore(t)
	ahead := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	first := clock.NewTest()
	svc, err := New(cfg, st, fake.New(), readyGuest{}, WithClock(first))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Set(ahead); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var was time.Time
		svc.st.View(func(tx *store.Tx) error { _, err := tx.Get(bucketMeta, metaTestClock, &was); return err })
		if !was.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the jump was never stored")
		}
	}
	svc.Close()

	second := clock.NewTest()
	svc, err = New(cfg, st, fake.New(), readyGuest{}, WithClock(second))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if err := svc.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if now := second.Now(); now.Before(ahead) {
		t.Errorf("test clock after a restart = %v, want at least %v", now, ahead)
	}
}
