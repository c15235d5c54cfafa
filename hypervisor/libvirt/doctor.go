//go:build linux && cgo

package libvirt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	golibvirt "libvirt.org/go/libvirt"

	"github.com/amlsim/amlsim/hypervisor"
)

// doctorTimeout bounds doctor's connection attempt to libvirtd: a stuck
// daemon accepts the connection and never answers.
const doctorTimeout = 5 * time.Second

// checkHost judges whether this host can run the driver with opts, for
// `amlsim doctor`: checks named "libvirtd" (reachable at opts.URI),
// "qemu-system-x86_64" and "qemu-img" (in PATH) and "kvm" (the domain
// type guests will get). It changes nothing and returns within
// doctorTimeout.
func checkHost(ctx context.Context, opts hypervisor.Options) []hypervisor.Check {
	uri := opts.URI
	if uri == "" {
		uri = defaultURI
	}
	return []hypervisor.Check{
		checkLibvirt(ctx, uri),
		checkBinary("qemu-system-x86_64", "apt-get install -y qemu-system-x86"),
		checkBinary("qemu-img", "apt-get install -y qemu-utils"),
		checkKVM(opts),
	}
}

// checkLibvirt connects to libvirtd and asks its version.
func checkLibvirt(ctx context.Context, uri string) hypervisor.Check {
	ch := hypervisor.Check{Name: "libvirtd"}
	type answer struct {
		version uint32
		err     error
	}
	done := make(chan answer, 1)
	go func() {
		conn, err := golibvirt.NewConnect(uri)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer conn.Close()
		v, err := conn.GetLibVersion()
		done <- answer{version: v, err: err}
	}()
	select {
	case a := <-done:
		if a.err != nil {
			ch.Status, ch.Detail = hypervisor.CheckFail, fmt.Sprintf("cannot connect to %s: %s", uri, firstLine(libvirtMessage(a.err)))
			ch.Fix = "start it: virtlogd -d; libvirtd -d (install: apt-get install -y libvirt-daemon-system)"
			return ch
		}
		ch.Status = hypervisor.CheckOK
		ch.Detail = fmt.Sprintf("reachable at %s (libvirt %d.%d.%d)", uri, a.version/1000000, a.version/1000%1000, a.version%1000)
	case <-time.After(doctorTimeout):
		ch.Status, ch.Detail = hypervisor.CheckFail, fmt.Sprintf("no answer from %s within %s", uri, doctorTimeout)
		ch.Fix = "restart it: kill the stuck libvirtd, then virtlogd -d; libvirtd -d"
	case <-ctx.Done():
		ch.Status, ch.Detail = hypervisor.CheckFail, "interrupted"
	}
	return ch
}

// libvirtMessage is libvirt's own message in err, without the binding's
// "virError(Code=…)" dump.
func libvirtMessage(err error) string {
	var le golibvirt.Error
	if errors.As(err, &le) {
		return le.Message
	}
	return err.Error()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// checkBinary looks for a program in PATH.
func checkBinary(name, fix string) hypervisor.Check {
	ch := hypervisor.Check{Name: name}
	p, err := exec.LookPath(name)
	if err != nil {
		ch.Status, ch.Detail, ch.Fix = hypervisor.CheckFail, "not found in PATH", fix
		return ch
	}
	ch.Status, ch.Detail = hypervisor.CheckOK, p
	return ch
}

// checkKVM reports the driver's cached KVM verdict (see probeDomainType),
// or what will happen at the first start of a driver.
func checkKVM(opts hypervisor.Options) hypervisor.Check {
	ch := hypervisor.Check{Name: "kvm"}
	switch opts.DomainType {
	case "kvm", "qemu":
		ch.Status, ch.Detail = hypervisor.CheckOK, fmt.Sprintf("domain type %q set in the configuration", opts.DomainType)
		return ch
	}
	dir := opts.StateDir
	if dir == "" {
		dir = DefaultStateDir()
	}
	if b, err := os.ReadFile(filepath.Join(dir, kvmProbeFile)); err == nil {
		var v probeVerdict
		if json.Unmarshal(b, &v) == nil && v.Type != "" {
			if v.Type == "kvm" {
				ch.Status, ch.Detail = hypervisor.CheckOK, "KVM works: "+v.Reason
			} else {
				ch.Status, ch.Detail = hypervisor.CheckWarn, "TCG (software emulation, boots take ~45 s): "+v.Reason
				ch.Fix = "run on a host with working KVM (nested virtualisation enabled) for boots of a few seconds"
			}
			return ch
		}
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		ch.Status, ch.Detail = hypervisor.CheckWarn, "no /dev/kvm: VMs will run under TCG (software emulation, boots take ~45 s)"
		ch.Fix = "load kvm (modprobe kvm_intel or kvm_amd) or enable nested virtualisation; TCG works meanwhile"
		return ch
	}
	ch.Status, ch.Detail = hypervisor.CheckOK, "/dev/kvm present; whether guests really boot under KVM is probed at the first 'amlsim serve'"
	return ch
}
