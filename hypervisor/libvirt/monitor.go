//go:build linux && cgo

package libvirt

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/digitalocean/go-qemu/qmp/raw"
	golibvirt "libvirt.org/go/libvirt"

	"github.com/amlsim/amlsim/hypervisor"
)

// domainMonitor is a qmp.Monitor that sends QMP through libvirt's own
// monitor connection (virDomainQemuMonitorCommand), so amlsim needs no
// access to QEMU's socket and works over remote libvirt URIs too.
type domainMonitor struct {
	dom *golibvirt.Domain
}

var _ qmp.Monitor = (*domainMonitor)(nil)

// Connect is a no-op: libvirt already holds the monitor connection.
func (m *domainMonitor) Connect() error { return nil }

// Disconnect is a no-op for the same reason.
func (m *domainMonitor) Disconnect() error { return nil }

// Run sends one QMP command and returns QEMU's reply.
func (m *domainMonitor) Run(command []byte) ([]byte, error) {
	out, err := m.dom.QemuMonitorCommand(string(command), golibvirt.DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT)
	if err != nil {
		return nil, translate(err)
	}
	return []byte(out), nil
}

// Events is not offered: libvirt reports domain events through its own API.
func (m *domainMonitor) Events(context.Context) (<-chan qmp.Event, error) {
	return nil, qmp.ErrEventsNotSupported
}

// addForward forwards 127.0.0.1:hostPort on the host to guestPort in the
// guest through SLIRP. libvirt 9.0 cannot declare forwards on a user-mode
// NIC, so the rule is added to the running QEMU; it lives as long as that
// process.
func addForward(dom *golibvirt.Domain, hostPort, guestPort int) error {
	mon := raw.NewMonitor(&domainMonitor{dom: dom})
	rule := fmt.Sprintf("tcp:127.0.0.1:%d-:%d", hostPort, guestPort)
	out, err := mon.HumanMonitorCommand("hostfwd_add "+netdevID+" "+rule, nil)
	if err != nil {
		return fmt.Errorf("add forward %s: %w", rule, err)
	}
	// HMP reports failures as text with a successful QMP reply.
	if out = strings.TrimSpace(out); out != "" {
		if !portFree(hostPort) {
			return fmt.Errorf("add forward %s: %w: %s", rule, hypervisor.ErrPortInUse, out)
		}
		return fmt.Errorf("add forward %s: %s", rule, out)
	}
	return nil
}

// removeForward drops the rule listening on 127.0.0.1:hostPort. HMP
// answers an unknown rule with a message, not an error: either way the
// rule is gone afterwards, so the message is not looked at.
func removeForward(dom *golibvirt.Domain, hostPort int) error {
	mon := raw.NewMonitor(&domainMonitor{dom: dom})
	rule := fmt.Sprintf("tcp:127.0.0.1:%d", hostPort)
	if _, err := mon.HumanMonitorCommand("hostfwd_remove "+netdevID+" "+rule, nil); err != nil {
		return fmt.Errorf("remove forward %s: %w", rule, err)
	}
	return nil
}

// portFree reports whether a TCP listener can be opened on 127.0.0.1:port.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
