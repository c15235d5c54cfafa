//go:build linux && cgo

package libvirt

import (
	"context"

	"github.com/amlsim/amlsim/hypervisor"
)

// Name is the driver's name in the hypervisor registry (amlsim serve
// --driver libvirt).
const Name = "libvirt"

func init() {
	hypervisor.Register(hypervisor.Registration{Name: Name, Open: open, Check: checkHost})
}

// open is New with the registry's options, and the defaults of Config
// for the rest (qemu-img and qemu-system-x86_64 from PATH).
func open(ctx context.Context, opts hypervisor.Options) (hypervisor.Driver, error) {
	d, err := New(ctx, Config{
		URI:          opts.URI,
		StateDir:     opts.StateDir,
		Image:        opts.Image,
		DomainType:   opts.DomainType,
		ProbeKernel:  opts.ProbeKernel,
		SnapshotRoot: opts.SnapshotRoot,
		Logger:       opts.Logger,
	})
	if err != nil {
		// Not d: a nil *Driver in an interface is not a nil Driver.
		return nil, err
	}
	return d, nil
}
