//go:build linux && cgo

package libvirt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// kvmProbeTimeout bounds the probe boot. A kernel reaches its root-mount
// panic in well under a second with working KVM and in ~5 s under TCG; a
// guest that hangs (a paravirtualised host's /dev/kvm) never gets there.
const kvmProbeTimeout = 20 * time.Second

// probeVerdict is what StateDir/kvm-probe caches.
type probeVerdict struct {
	Kernel  string    `json:"kernel"`
	ModTime time.Time `json:"mtime"`
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
}

// kvmBoots reports whether a guest kernel really boots under KVM on this
// host. /dev/kvm alone proves nothing: on a paravirtual (PVM) host it exists
// but a stock guest kernel hangs. So the probe boots the image's kernel with
// no root disk and waits for the panic that proves it ran.
func kvmBoots(ctx context.Context, qemu, kernel string, timeout time.Duration) (bool, string) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return false, "no /dev/kvm"
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "kvm", "-cpu", "host", "-m", "256", "-smp", "1",
		"-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio", "-monitor", "none",
		"-kernel", kernel, "-append", "console=ttyS0 panic=-1 loglevel=4")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return false, err.Error()
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Kill the whole group: whatever QEMU (or a wrapper script) forked
	// must not keep the output pipe open and stall Wait.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return false, fmt.Sprintf("start %s: %v", qemu, err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "Kernel panic") || strings.Contains(line, "VFS:") {
				found <- true
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if ok {
			return true, "guest kernel reached its root-mount panic under KVM"
		}
		_ = cmd.Wait()
		return false, fmt.Sprintf("qemu exited before the kernel ran: %s", strings.TrimSpace(stderr.String()))
	case <-ctx.Done():
		return false, fmt.Sprintf("guest kernel showed no sign of life under KVM within %s", timeout)
	}
}

// probeDomainType decides between "kvm" and "qemu" for kernel, reusing a
// verdict cached in dir when the kernel has not changed since.
func probeDomainType(ctx context.Context, dir, qemu, kernel string, timeout time.Duration) (typ, reason string, err error) {
	fi, err := os.Stat(kernel)
	if err != nil {
		return "", "", fmt.Errorf("probe kernel %q: %w", kernel, err)
	}
	cache := filepath.Join(dir, kvmProbeFile)
	if b, err := os.ReadFile(cache); err == nil {
		var v probeVerdict
		if json.Unmarshal(b, &v) == nil && v.Kernel == kernel && v.ModTime.Equal(fi.ModTime()) && v.Type != "" {
			return v.Type, v.Reason + " (cached)", nil
		}
	}
	ok, reason := kvmBoots(ctx, qemu, kernel, timeout)
	if ctx.Err() != nil {
		return "", "", fmt.Errorf("probe kvm: %w", ctx.Err())
	}
	v := probeVerdict{Kernel: kernel, ModTime: fi.ModTime(), Type: "qemu", Reason: reason}
	if ok {
		v.Type = "kvm"
	}
	// A verdict that cannot be cached is still right; it is just probed again
	// next time.
	if b, err := json.Marshal(v); err == nil {
		_ = os.WriteFile(cache, b, 0o644)
	}
	return v.Type, v.Reason, nil
}
