package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/amlsim/amlsim/fixtures"
	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/guest"
)

// Drivers a server can run on. The fake is opened directly (its guest
// stand-in needs the concrete driver); the others through the hypervisor
// registry, which holds libvirt only in a build with cgo on Linux
// (driver_libvirt.go).
const (
	FakeDriver    = "fake"
	LibvirtDriver = "libvirt"
)

// ErrNoDriver is returned by Start when this build has no driver of the
// name asked for: an unknown name, or libvirt in a build without cgo.
var ErrNoDriver = errors.New("no such driver in this build")

// DriverNames returns the drivers a server can run on in this build: the
// registered ones, sorted (libvirt in a cgo build on Linux), then the
// fake.
func DriverNames() []string {
	return append(hypervisor.Names(), FakeDriver)
}

// noDriver is the ErrNoDriver for name, saying what this build has.
func noDriver(name string) error {
	have := strings.Join(DriverNames(), ", ")
	if name == LibvirtDriver {
		return fmt.Errorf("%w: %q needs cgo and Linux, and this build has: %s", ErrNoDriver, name, have)
	}
	return fmt.Errorf("%w: %q (this build has: %s)", ErrNoDriver, name, have)
}

// openDriver opens the hypervisor driver called name and the matching
// guest setup: the fake directly, any other driver through the hypervisor
// registry, with SSH into its guests. The func closes the driver.
func openDriver(ctx context.Context, name, home string, cfg sim.Config, log *slog.Logger, fakeOpts []fake.Option) (hypervisor.Driver, sim.Guest, func(), error) {
	if name == FakeDriver {
		d := cfg.Fake.Delay.Duration
		opts := append([]fake.Option{
			fake.WithDelays(fake.Delays{Define: d, Start: d, Shutdown: d, Reboot: d, Destroy: d, Undefine: d}),
			fake.WithService(sim.JupyterGuestPort, fakeNotebook),
		}, fakeOpts...)
		drv, err := fake.Open(filepath.Join(home, FakeDomainsFile), opts...)
		if err != nil {
			return nil, nil, nil, err
		}
		return drv, guest.Fake{Driver: drv, Active: &guest.FakeActivity{}}, func() { drv.Close() }, nil
	}
	reg, ok := hypervisor.Lookup(name)
	if !ok {
		return nil, nil, nil, noDriver(name)
	}
	base, err := baseImage(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := guestssh.LoadOrCreateKey(filepath.Join(home, ManagementKeyFile))
	if err != nil {
		return nil, nil, nil, err
	}
	probe := ""
	if base.Kernel == "" {
		// A cloud image has no kernel to probe KVM with: use the
		// default image's when it is built.
		if img, err := fixtures.LoadImage(fixtures.DefaultImageDir(fixtures.DefaultImageCache())); err == nil {
			probe = img.Kernel
		}
	}
	// Snapshots (fast create) live beside the image they are made of.
	snapshots := filepath.Join(filepath.Dir(base.Disk), "snapshots")
	drv, err := reg.Open(ctx, hypervisor.Options{
		URI:          cfg.Driver.URI,
		StateDir:     cfg.Driver.StateDir,
		Image:        base,
		DomainType:   cfg.Driver.DomainType,
		ProbeKernel:  probe,
		SnapshotRoot: snapshots,
		Logger:       log,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	closeDrv := func() {
		if c, ok := drv.(io.Closer); ok {
			c.Close()
		}
	}
	g := &guest.SSH{Key: key, Subscription: cfg.Subscription, Restored: func(ctx context.Context, name string) bool {
		d, err := drv.Lookup(ctx, name)
		return err == nil && d.Restored
	}}
	if sl, ok := drv.(hypervisor.SerialLogger); ok {
		g.SerialLog = sl.SerialLog
	}
	if cfg.Driver.FastCreate {
		if err := os.MkdirAll(snapshots, 0o755); err != nil {
			closeDrv()
			return nil, nil, nil, fmt.Errorf("snapshot directory: %w", err)
		}
		if g.Template, err = guest.LoadTemplateKeys(snapshots); err != nil {
			closeDrv()
			return nil, nil, nil, fmt.Errorf("template keys: %w", err)
		}
	}
	return drv, g, closeDrv, nil
}

// imageVersion names the guest image new instances boot, for their
// osImageMetadata: the default image by its recipe hash, another by its
// file or directory name.
func imageVersion(cfg sim.Config, driver string) string {
	switch {
	case driver != LibvirtDriver:
		return driver
	case cfg.Driver.CloudImage != "":
		return filepath.Base(cfg.Driver.CloudImage)
	case cfg.Driver.ImageDir != "":
		return filepath.Base(cfg.Driver.ImageDir)
	}
	return "amlsim-" + fixtures.ImageHash()
}

// baseImage is the image instances boot: a configured cloud image through
// the BIOS, or the default image with direct kernel boot.
func baseImage(cfg sim.Config) (hypervisor.BaseImage, error) {
	if cfg.Driver.CloudImage != "" {
		if _, err := os.Stat(cfg.Driver.CloudImage); err != nil {
			return hypervisor.BaseImage{}, fmt.Errorf("cloud image: %w", err)
		}
		return hypervisor.BaseImage{Disk: cfg.Driver.CloudImage}, nil
	}
	dir := cfg.Driver.ImageDir
	if dir == "" {
		dir = fixtures.DefaultImageDir(fixtures.DefaultImageCache())
	}
	img, err := fixtures.LoadImage(dir)
	if err != nil {
		return hypervisor.BaseImage{}, err
	}
	return hypervisor.BaseImage{Disk: img.Disk, Kernel: img.Kernel, Initrd: img.Initrd, Cmdline: img.Cmdline}, nil
}

// fakeNotebook stands in for an instance's Jupyter under the fake driver,
// so the applications' addresses, the sign-in and the owner-only rule can
// be tried without a VM.
var fakeNotebook = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "amlsim fake driver: the Jupyter notebook server of this compute instance would answer %s here.\n"+
		"Run 'amlsim serve --driver libvirt' for instances with a real notebook server.\n", r.URL.Path)
})
