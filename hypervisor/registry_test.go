package hypervisor

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// errOpened tells which registration's Open ran.
type errOpened struct{ name, uri string }

func (e errOpened) Error() string { return e.name + " opened " + e.uri }

func testRegistration(name string) Registration {
	return Registration{
		Name: name,
		Open: func(ctx context.Context, opts Options) (Driver, error) {
			return nil, errOpened{name, opts.URI}
		},
		Check: func(ctx context.Context, opts Options) []Check {
			return []Check{{Name: name, Status: CheckOK, Detail: opts.StateDir}}
		},
	}
}

func TestRegistryLookup(t *testing.T) {
	var r registry
	if got := r.names(); len(got) != 0 {
		t.Errorf("names of an empty registry = %q, want none", got)
	}
	for _, name := range []string{"zeta", "alpha", "mid"} {
		r.register(testRegistration(name))
	}
	if got, want := r.names(), []string{"alpha", "mid", "zeta"}; !slices.Equal(got, want) {
		t.Errorf("names = %q, want %q", got, want)
	}
	reg, ok := r.lookup("mid")
	if !ok {
		t.Fatal(`lookup("mid") found nothing`)
	}
	_, err := reg.Open(context.Background(), Options{URI: "test:///x"})
	if want := (errOpened{"mid", "test:///x"}); !errors.Is(err, want) {
		t.Errorf("Open of mid = %v, want %v", err, want)
	}
	if got := reg.Check(context.Background(), Options{StateDir: "/s"}); len(got) != 1 || got[0].Name != "mid" || got[0].Detail != "/s" {
		t.Errorf("Check of mid = %+v, want one check named mid with detail /s", got)
	}
	if _, ok := r.lookup("missing"); ok {
		t.Error(`lookup("missing") found a driver, want none`)
	}
}

func TestRegisterRefusesMistakes(t *testing.T) {
	noOpen := testRegistration("no-open")
	noOpen.Open = nil
	cases := map[string]Registration{
		"no name":   testRegistration(""),
		"no open":   noOpen,
		"duplicate": testRegistration("taken"),
	}
	for name, reg := range cases {
		t.Run(name, func(t *testing.T) {
			var r registry
			r.register(testRegistration("taken"))
			defer func() {
				if recover() == nil {
					t.Errorf("register(%+v) did not panic", reg)
				}
				if got := r.names(); !slices.Equal(got, []string{"taken"}) {
					t.Errorf("names after the refused register = %q, want [taken]", got)
				}
			}()
			r.register(reg)
		})
	}
}

// The package-level functions work on the binary's registry: what a
// driver package's init registers, amlsim finds.
func TestRegisterPackageLevel(t *testing.T) {
	const name = "registry-test"
	Register(testRegistration(name))
	t.Cleanup(func() {
		drivers.mu.Lock()
		delete(drivers.m, name)
		drivers.mu.Unlock()
	})
	if _, ok := Lookup(name); !ok {
		t.Errorf("Lookup(%q) after Register found nothing", name)
	}
	if !slices.Contains(Names(), name) {
		t.Errorf("Names() = %q, want it to contain %q", Names(), name)
	}
}
