package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
)

// Templater is implemented by guests that can prepare a template guest
// for fast create: the guest a snapshot is taken of, once per VM shape,
// and that every new instance of that shape then starts from.
type Templater interface {
	// TemplateVersion changes whenever the template guest would come out
	// different (its seed, its programs), so that old snapshots are not used.
	TemplateVersion() string
	// TemplateSeed renders the seed of the template guest of domain name.
	TemplateSeed(name string) ([]byte, error)
	// TemplateReady returns once the template guest that answers SSH on
	// 127.0.0.1:sshPort is ready to be saved.
	TemplateReady(ctx context.Context, sshPort int) error
}

// snapshotRetry is how long a failed snapshot of one shape is not tried
// again; creates of that shape boot meanwhile.
const snapshotRetry = 30 * time.Minute

// snapshots finds, or takes once, the snapshot new instances of a VM shape
// start from. Taking one boots a template guest (as long as a cold create)
// in the background of the server, so a create that finds it under way
// waits for it rather than booting beside it on the same CPUs.
type snapshots struct {
	drv   hypervisor.Snapshotter
	guest Templater
	log   *slog.Logger
	// diskGB is the virtual size of instances' disks, which the template
	// guest's root file system is grown to.
	diskGB int
	// ctx bounds snapshots being taken: the server's life, not a request's.
	ctx context.Context

	mu     sync.Mutex
	taking map[string]*taking
	failed map[string]time.Time
}

type taking struct {
	done chan struct{}
	err  error
}

// forShape returns the directory of a complete snapshot for res, taking
// it first if there is none; "" when there is none to be had (a failure is
// logged, and the instance boots).
func (s *snapshots) forShape(ctx context.Context, res LocalResource, report func(string)) string {
	dir, complete := s.dir(res)
	if complete {
		return dir
	}
	t := s.take(dir, res)
	if t == nil {
		return ""
	}
	report(fmt.Sprintf("waiting for the snapshot of a booted %d-vCPU, %d MiB guest (taken once per VM shape)", res.VCPUs, res.MemoryMiB))
	select {
	case <-t.done:
	case <-ctx.Done():
		return ""
	}
	if t.err != nil {
		return ""
	}
	return dir
}

// take starts taking the snapshot into dir unless that is under way, or
// failed lately (nil then).
func (s *snapshots) take(dir string, res LocalResource) *taking {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.taking[dir]; t != nil {
		return t
	}
	if at, ok := s.failed[dir]; ok && time.Since(at) < snapshotRetry {
		return nil
	}
	t := &taking{done: make(chan struct{})}
	s.taking[dir] = t
	go func() {
		begin := time.Now()
		t.err = s.takeNow(dir, res)
		s.mu.Lock()
		delete(s.taking, dir)
		if t.err != nil {
			s.failed[dir] = time.Now()
		}
		s.mu.Unlock()
		if t.err != nil {
			s.log.Warn("fast create: taking the snapshot failed; instances of this shape boot instead", "snapshot", dir, "err", t.err)
		} else {
			s.log.Info("fast create: snapshot taken", "snapshot", dir, "took", time.Since(begin).Round(time.Second))
		}
		close(t.done)
	}()
	return t
}

func (s *snapshots) takeNow(dir string, res LocalResource) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	name := "amlsim-template-" + filepath.Base(dir)
	seed, err := s.guest.TemplateSeed(name)
	if err != nil {
		return err
	}
	spec := hypervisor.Spec{
		Name: name, VCPUs: res.VCPUs, MemoryMiB: res.MemoryMiB, DiskSizeGB: s.diskGB,
		Seed: seed, SSHPort: port,
		Labels: map[string]string{templateLabel: dir},
	}
	return s.drv.TakeSnapshot(s.ctx, dir, spec, func(ctx context.Context) error {
		return s.guest.TemplateReady(ctx, port)
	})
}

// templateLabel is the domain label of template guests: the snapshot
// directory they are taken into.
const templateLabel = "template"

// clearDebris removes template domains left by a server that stopped while
// taking a snapshot. (A second server on the same libvirt and image, taking
// the same snapshot at the same moment, would lose its template: it then
// fails that snapshot and its instances boot.)
func (s *snapshots) clearDebris(ctx context.Context, drv hypervisor.Driver) {
	doms, err := drv.List(ctx)
	if err != nil {
		return
	}
	for _, d := range doms {
		dir := d.Labels[templateLabel]
		if dir == "" {
			continue
		}
		s.mu.Lock()
		busy := s.taking[dir] != nil
		s.mu.Unlock()
		if busy {
			continue
		}
		if err := drv.Undefine(ctx, d.Name); err != nil {
			s.log.Warn("fast create: could not remove a left-over template guest", "domain", d.Name, "err", err)
		}
	}
}

// warm takes the snapshot for res in the background if it is missing.
func (s *snapshots) warm(res LocalResource) {
	if dir, complete := s.dir(res); !complete {
		s.take(dir, res)
	}
}

// dir is where the snapshot for res is, and whether it is complete.
func (s *snapshots) dir(res LocalResource) (string, bool) {
	return s.drv.SnapshotDir(res.VCPUs, res.MemoryMiB, fmt.Sprintf("%s disk %dG", s.guest.TemplateVersion(), s.diskGB))
}

// freePort asks the kernel for a free TCP port on 127.0.0.1, outside the
// range instances' ports come from.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, errors.Join(errors.New("find a port for the template guest"), err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
