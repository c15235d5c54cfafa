package hypervisortest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/hypervisor/hypervisortest"
)

// The suite is only worth something if a wrong driver fails it. Each mutant
// below is the fake with one mistake a real driver could make, and the
// subtests that must catch it.
type mutant struct {
	wrap     func(*fake.Driver) hypervisor.Driver
	mustFail []string
}

var mutants = map[string]mutant{
	"destroy-off-is-error": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return destroyOffIsError{d} },
		mustFail: []string{"DestroyIdempotent"},
	},
	"lists-foreign": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return listsForeign{d} },
		mustFail: []string{"ListOwnOnly", "Foreign", "DefineLookupList"},
	},
	"ignores-cancel": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return ignoresCancel{d} },
		mustFail: []string{"CancelledContext"},
	},
	"start-twice-ok": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return startTwiceOK{d} },
		mustFail: []string{"StartTwice"},
	},
	"define-replaces": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return defineReplaces{d} },
		mustFail: []string{"DefineClash"},
	},
	"shutdown-returns-early": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return shutdownEarly{d} },
		mustFail: []string{"Shutdown", "RestartAfterShutdown"},
	},
	"loses-labels": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return losesLabels{d} },
		mustFail: []string{"DefineLookupList", "DefineCopiesSpec"},
	},
	"undefine-running-refused": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return undefineRunningRefused{d} },
		mustFail: []string{"UndefineRunning"},
	},
	"not-found-untyped": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return notFoundUntyped{d} },
		mustFail: []string{"NotFound"},
	},
	"reboot-powers-off": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return rebootPowersOff{d} },
		mustFail: []string{"Reboot"},
	},
	"drops-forwards": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return dropsForwards{d} },
		mustFail: []string{"DefineLookupList", "StartRunning", "RestartAfterShutdown", "RedefineAfterUndefine"},
	},
	"watch-misses-undefine": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return watchMissesUndefine{d} },
		mustFail: []string{"Events"},
	},
	"resources-ignored": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return resourcesIgnored{d} },
		mustFail: []string{"SetResources"},
	},
	"forward-port-unchecked": {
		wrap:     func(d *fake.Driver) hypervisor.Driver { return forwardPortUnchecked{d} },
		mustFail: []string{"ForwardPortInUse"},
	},
}

// TestFakePasses is the control: the suite passes a correct driver, so the
// failures TestSuiteCatchesMutants sees come from the mistakes alone.
func TestFakePasses(t *testing.T) {
	hypervisortest.Run(t, func(t *testing.T) hypervisor.Driver {
		return fake.New(fake.WithForeign("test"))
	}, hypervisortest.Options{Foreign: []string{"test"}})
}

// TestMutant runs the suite against the mutant named by $HVT_MUTANT; it is
// run in a child process by TestSuiteCatchesMutants, whose failures must
// not fail this process.
func TestMutant(t *testing.T) {
	name := os.Getenv("HVT_MUTANT")
	if name == "" {
		t.Skip("runs only as a child of TestSuiteCatchesMutants")
	}
	m := mutants[name]
	hypervisortest.Run(t, func(t *testing.T) hypervisor.Driver {
		return m.wrap(fake.New(fake.WithForeign("test")))
	}, hypervisortest.Options{Foreign: []string{"test"}, Timeout: 5 * time.Second})
}

func TestSuiteCatchesMutants(t *testing.T) {
	for name, m := range mutants {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "HVT_MUTANT="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a driver with mistake %q:\n%s", name, out)
			}
			for _, sub := range m.mustFail {
				if !strings.Contains(string(out), fmt.Sprintf("--- FAIL: TestMutant/%s ", sub)) {
					t.Errorf("subtest %s did not catch mistake %q:\n%s", sub, name, out)
				}
			}
		})
	}
}

type destroyOffIsError struct{ *fake.Driver }

func (d destroyOffIsError) Destroy(ctx context.Context, name string) error {
	if dom, err := d.Lookup(ctx, name); err == nil && dom.State == hypervisor.StateShutoff {
		return hypervisor.ErrInvalidState
	}
	return d.Driver.Destroy(ctx, name)
}

type listsForeign struct{ *fake.Driver }

func (d listsForeign) List(ctx context.Context) ([]hypervisor.Domain, error) {
	doms, err := d.Driver.List(ctx)
	return append(doms, hypervisor.Domain{Name: "test", State: hypervisor.StateRunning}), err
}

type ignoresCancel struct{ *fake.Driver }

func (d ignoresCancel) Start(_ context.Context, name string) error {
	return d.Driver.Start(context.Background(), name)
}

type startTwiceOK struct{ *fake.Driver }

func (d startTwiceOK) Start(ctx context.Context, name string) error {
	if err := d.Driver.Start(ctx, name); !errors.Is(err, hypervisor.ErrInvalidState) {
		return err
	}
	return nil
}

type defineReplaces struct{ *fake.Driver }

func (d defineReplaces) Define(ctx context.Context, spec hypervisor.Spec) error {
	if err := d.Driver.Define(ctx, spec); !errors.Is(err, hypervisor.ErrExists) {
		return err
	}
	if err := d.Driver.Undefine(ctx, spec.Name); err != nil {
		return err
	}
	return d.Driver.Define(ctx, spec)
}

type shutdownEarly struct{ *fake.Driver }

func (d shutdownEarly) Shutdown(ctx context.Context, name string, _ time.Duration) error {
	_, err := d.Lookup(ctx, name)
	return err
}

type losesLabels struct{ *fake.Driver }

func (d losesLabels) Lookup(ctx context.Context, name string) (hypervisor.Domain, error) {
	dom, err := d.Driver.Lookup(ctx, name)
	if len(dom.Labels) > 0 {
		for k := range dom.Labels {
			delete(dom.Labels, k)
			break
		}
	}
	return dom, err
}

func (d losesLabels) List(ctx context.Context) ([]hypervisor.Domain, error) {
	doms, err := d.Driver.List(ctx)
	for i := range doms {
		doms[i].Labels = nil
	}
	return doms, err
}

type undefineRunningRefused struct{ *fake.Driver }

func (d undefineRunningRefused) Undefine(ctx context.Context, name string) error {
	if dom, err := d.Lookup(ctx, name); err == nil && dom.State == hypervisor.StateRunning {
		return hypervisor.ErrInvalidState
	}
	return d.Driver.Undefine(ctx, name)
}

// resourcesIgnored changes a running domain's definition too, and only
// ever grows it, as a driver that set the maximum alone would.
type resourcesIgnored struct{ *fake.Driver }

func (d resourcesIgnored) SetResources(ctx context.Context, name string, vcpus, memoryMiB int) error {
	dom, err := d.Lookup(ctx, name)
	if err != nil {
		return err
	}
	if dom.State == hypervisor.StateRunning {
		return nil
	}
	return d.Driver.SetResources(ctx, name, max(vcpus, dom.VCPUs), max(memoryMiB, dom.MemoryMiB))
}

type notFoundUntyped struct{ *fake.Driver }

func (d notFoundUntyped) Reboot(ctx context.Context, name string) error {
	if err := d.Driver.Reboot(ctx, name); errors.Is(err, hypervisor.ErrNotFound) {
		return fmt.Errorf("virDomainLookupByName: no domain with matching name '%s'", name)
	} else {
		return err
	}
}

type rebootPowersOff struct{ *fake.Driver }

func (d rebootPowersOff) Reboot(ctx context.Context, name string) error {
	if err := d.Driver.Reboot(ctx, name); err != nil {
		return err
	}
	return d.PowerOff(name)
}

type dropsForwards struct{ *fake.Driver }

func (d dropsForwards) Lookup(ctx context.Context, name string) (hypervisor.Domain, error) {
	dom, err := d.Driver.Lookup(ctx, name)
	dom.Forwards = nil
	return dom, err
}

func (d dropsForwards) List(ctx context.Context) ([]hypervisor.Domain, error) {
	doms, err := d.Driver.List(ctx)
	for i := range doms {
		doms[i].Forwards = nil
	}
	return doms, err
}

// forwardPortUnchecked starts a domain whatever its host ports, as a
// driver that checks SSHPort and forgets the other forwards would.
type forwardPortUnchecked struct{ *fake.Driver }

func (d forwardPortUnchecked) Start(ctx context.Context, name string) error {
	if err := d.Driver.Start(ctx, name); !errors.Is(err, hypervisor.ErrPortInUse) {
		return err
	}
	return d.SetState(name, hypervisor.StateRunning)
}

// watchMissesUndefine reports every domain event but the undefinition, as
// a watcher that reads the metadata of a domain that is already gone would.
type watchMissesUndefine struct{ *fake.Driver }

func (d watchMissesUndefine) Watch(ctx context.Context) (<-chan hypervisor.Event, error) {
	in, err := d.Driver.Watch(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan hypervisor.Event, cap(in))
	go func() {
		defer close(out)
		for ev := range in {
			if !ev.Gone {
				out <- ev
			}
		}
	}()
	return out, nil
}
