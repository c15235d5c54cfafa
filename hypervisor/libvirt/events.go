//go:build linux && cgo

package libvirt

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	golibvirt "libvirt.org/go/libvirt"
)

var _ hypervisor.Watcher = (*Driver)(nil)

var (
	eventLoopOnce sync.Once
	eventLoopErr  error
)

// startEventLoop registers libvirt's default event loop and runs it for
// the life of the process. libvirt wants it registered before a
// connection that receives events is opened (EventRegisterDefaultImpl's
// documentation), so New starts it before connecting.
func startEventLoop() error {
	eventLoopOnce.Do(func() {
		if eventLoopErr = golibvirt.EventRegisterDefaultImpl(); eventLoopErr != nil {
			return
		}
		go func() {
			for {
				if err := golibvirt.EventRunDefaultImpl(); err != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	})
	return eventLoopErr
}

// Watch implements hypervisor.Watcher with libvirt's domain lifecycle
// callbacks, on a connection of its own. Only the driver's own domains
// are reported: those carrying amlsim's metadata, and the undefinition of
// those it has seen. If libvirtd goes away the events stop; callers
// re-check with List from time to time (see hypervisor.Watcher).
func (d *Driver) Watch(ctx context.Context) (<-chan hypervisor.Event, error) {
	if err := startEventLoop(); err != nil {
		return nil, fmt.Errorf("libvirt event loop: %w", err)
	}
	conn, err := connect(d.cfg.URI)
	if err != nil {
		return nil, err
	}
	w := &watch{ch: make(chan hypervisor.Event, 256), known: map[string]bool{}}
	doms, err := d.List(ctx)
	if err != nil {
		conn.Close()
		return nil, err
	}
	for _, dom := range doms {
		w.known[dom.Name] = true
	}
	id, err := conn.DomainEventLifecycleRegister(nil, w.lifecycle)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("register for domain events: %w", translate(err))
	}
	go func() {
		<-ctx.Done()
		conn.DomainEventDeregister(id)
		conn.Close()
		w.close()
	}()
	return w.ch, nil
}

// watch is one Watch call's state, used from libvirt's event loop.
type watch struct {
	mu     sync.Mutex
	ch     chan hypervisor.Event
	closed bool
	// known are the names of our domains, so that the undefinition of
	// one (whose metadata can no longer be read) is reported.
	known map[string]bool
}

func (w *watch) lifecycle(_ *golibvirt.Connect, dom *golibvirt.Domain, ev *golibvirt.DomainEventLifecycle) {
	name, err := dom.GetName()
	if err != nil {
		return
	}
	e := hypervisor.Event{Domain: name, Reason: reason(ev)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	switch ev.Event {
	case golibvirt.DOMAIN_EVENT_UNDEFINED:
		if !w.known[name] {
			return
		}
		delete(w.known, name)
		e.Gone, e.State = true, hypervisor.StateShutoff
	default:
		// The callback's domain is borrowed: read it, never Free it.
		if _, err := readMeta(dom); err != nil {
			return
		}
		w.known[name] = true
		if e.State, err = domainState(dom); err != nil {
			e.State = hypervisor.StateUnknown
		}
	}
	select {
	case w.ch <- e:
	default: // a reader that does not keep up misses events
	}
}

func (w *watch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	close(w.ch)
}

// reason renders a lifecycle event as libvirt names it: "stopped:
// destroyed", "started: booted", "undefined: removed".
func reason(ev *golibvirt.DomainEventLifecycle) string {
	s := ev.String() // Domain event="stopped" detail="destroyed"
	var kind, detail string
	if _, rest, ok := strings.Cut(s, `event="`); ok {
		kind, _, _ = strings.Cut(rest, `"`)
	}
	if _, rest, ok := strings.Cut(s, `detail="`); ok {
		detail, _, _ = strings.Cut(rest, `"`)
	}
	if kind == "" {
		return s
	}
	if detail == "" {
		return kind
	}
	return kind + ": " + detail
}
