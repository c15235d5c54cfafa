package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/amlsim/amlsim/fixtures"
	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/pki"
	"github.com/spf13/cobra"
)

// Statuses of a doctor check. Only "fail" makes doctor exit non-zero: a
// warning is something that works, slower or later.
const (
	checkOK   = hypervisor.CheckOK
	checkWarn = hypervisor.CheckWarn
	checkFail = hypervisor.CheckFail
)

// check is one line of `amlsim doctor` (the drivers' checks and amlsim's
// own); Fix is a one-line remedy when the status is not ok.
type check = hypervisor.Check

// doctorReport is what `amlsim doctor --output json` prints.
type doctorReport struct {
	OK     bool    `json:"ok"`
	Checks []check `json:"checks"`
}

const doctorSummary = `Check that this machine can run amlsim, with a one-line fix for each problem.

Checks libvirtd, QEMU, KVM (or why TCG), the guest image, the CA in the
home, the server at the endpoint and its port. Exits 1 when a check fails;
warnings (TCG, server not started yet) do not fail.`

func newDoctorCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor [--config FILE]",
		Short: "Check that this machine can run amlsim, with a one-line fix for each problem",
		Long:  doctorSummary,
		Args:  exactArgs(),
	}
	clientFlags(cmd, cmd.Flags(), g)
	configPath := cmd.Flags().String("config", "", "TOML config `FILE` the server uses (for the libvirt URI, state and image dirs)")
	cmd.MarkFlagFilename("config", "toml")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		cfg, err := sim.LoadConfig(*configPath)
		if err != nil {
			return usageErrorf("--config: %v", err)
		}
		checks := append(driverChecks(ctx, cfg),
			checkImage(cfg),
			checkFastCreate(cfg),
			checkBinary("ssh", "apt-get install -y openssh-client (needed by 'amlsim compute ssh' only)"),
			checkCA(g.home),
		)
		checks = append(checks, checkServer(ctx, g)...)
		rep := doctorReport{OK: true, Checks: checks}
		for _, ch := range checks {
			rep.OK = rep.OK && ch.Status != checkFail
		}
		err = render(cmd.OutOrStdout(), g.output, rep, func(w io.Writer) error {
			printChecks(w, checks)
			return nil
		})
		if err != nil {
			return err
		}
		if !rep.OK {
			return &cliError{Status: exitFailed, Code: "DoctorFoundProblems", Message: "some checks failed; see their fixes above"}
		}
		return nil
	}
	return cmd
}

func printChecks(w io.Writer, checks []check) {
	for _, ch := range checks {
		fmt.Fprintf(w, "%-6s %-20s %s\n", "["+ch.Status+"]", ch.Name, ch.Detail)
		if ch.Fix != "" {
			fmt.Fprintf(w, "%-6s %-20s fix: %s\n", "", "", ch.Fix)
		}
	}
}

// checkBinary looks for a program in PATH.
func checkBinary(name, fix string) check {
	ch := check{Name: name}
	p, err := exec.LookPath(name)
	if err != nil {
		ch.Status, ch.Detail, ch.Fix = checkFail, "not found in PATH", fix
		if name == "ssh" {
			ch.Status = checkWarn
		}
		return ch
	}
	ch.Status, ch.Detail = checkOK, p
	return ch
}

// checkImage checks the guest image the server would boot.
func checkImage(cfg sim.Config) check {
	ch := check{Name: "guest image"}
	if cfg.Driver.CloudImage != "" {
		if _, err := os.Stat(cfg.Driver.CloudImage); err != nil {
			ch.Status, ch.Detail, ch.Fix = checkFail, fmt.Sprintf("cloud image: %v", err), "fix driver.cloud_image in the config"
			return ch
		}
		ch.Status, ch.Detail = checkOK, "cloud image "+cfg.Driver.CloudImage
		return ch
	}
	dir := cfg.Driver.ImageDir
	if dir == "" {
		dir = fixtures.DefaultImageDir(fixtures.DefaultImageCache())
	}
	img, err := fixtures.LoadImage(dir)
	if err != nil {
		ch.Status, ch.Detail = checkFail, firstLine(err.Error())
		ch.Fix = "build it once (about two minutes): amlsim image build"
		return ch
	}
	ch.Status, ch.Detail = checkOK, "built in "+img.Dir
	return ch
}

// checkFastCreate reports the snapshots new instances start from (fast
// create): those beside the default image, by VM shape.
func checkFastCreate(cfg sim.Config) check {
	ch := check{Name: "fast create"}
	switch {
	case !cfg.Driver.FastCreate:
		ch.Status, ch.Detail = checkOK, "off in the config ([driver] fast_create = false): instances boot"
		return ch
	case cfg.Driver.CloudImage != "":
		ch.Status, ch.Detail = checkOK, "off with a cloud image: instances boot"
		return ch
	}
	dir := cfg.Driver.ImageDir
	if dir == "" {
		dir = fixtures.DefaultImageDir(fixtures.DefaultImageCache())
	}
	root := filepath.Join(dir, "snapshots")
	entries, _ := os.ReadDir(root)
	var ready []string
	defaultShape := false
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		var size int64
		for _, f := range []string{"state.save", "disk.qcow2"} {
			if fi, err := os.Stat(filepath.Join(root, e.Name(), f)); err == nil {
				size += fi.Size()
			}
		}
		ready = append(ready, fmt.Sprintf("%s (%d MB)", e.Name(), size>>20))
		defaultShape = defaultShape || strings.Contains(e.Name(), fmt.Sprintf("-%dcpu-%dmib-", cfg.Local.VCPUs, cfg.Local.MemoryMiB))
	}
	if !defaultShape {
		ch.Status = checkWarn
		ch.Detail = fmt.Sprintf("no snapshot of the default %d-vCPU, %d MiB guest in %s yet: instances boot until the server has taken it", cfg.Local.VCPUs, cfg.Local.MemoryMiB, root)
		ch.Fix = "start 'amlsim serve': it takes the snapshot in the background (a few minutes under TCG)"
		return ch
	}
	ch.Status, ch.Detail = checkOK, fmt.Sprintf("snapshots in %s: %s (one per VM shape; replaced when the image, QEMU or template changes)", root, strings.Join(ready, ", "))
	return ch
}

// checkCA checks the home holds the CA clients must trust.
func checkCA(home string) check {
	ch := check{Name: "CA"}
	if _, err := pki.Pool(home); err != nil {
		ch.Status, ch.Detail = checkWarn, fmt.Sprintf("no CA in %s: %s", home, firstLine(err.Error()))
		ch.Fix = fmt.Sprintf("the first 'amlsim serve --home %s' creates it", home)
		return ch
	}
	ch.Status, ch.Detail = checkOK, filepath.Join(home, pki.CAFile)
	return ch
}

// checkServer checks the server answers at the endpoint, and that its port
// is free or held by amlsim.
func checkServer(ctx context.Context, g *globals) []check {
	srv := check{Name: "server"}
	port := check{Name: "port"}
	u, err := url.Parse(g.endpoint)
	if err != nil || u.Host == "" {
		srv.Status, srv.Detail, srv.Fix = checkFail, fmt.Sprintf("endpoint %q is not a URL", g.endpoint), "set --endpoint or AMLSIM_ENDPOINT to https://HOST:PORT"
		return []check{srv}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	cl, err := newClient(g)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var n int
		if n, err = cl.countWorkspaces(ctx); err == nil {
			srv.Status, srv.Detail = checkOK, fmt.Sprintf("amlsim answers at %s (workspaces: %d)", g.endpoint, n)
			port.Status, port.Detail = checkOK, host+" is in use by amlsim"
			return []check{srv, port}
		}
	}
	msg := err.Error()
	var ce *cliError
	if errors.As(err, &ce) {
		msg = ce.Code + ": " + ce.Message
	}
	srv.Status, srv.Detail = checkWarn, "not answering at "+g.endpoint+": "+oneLine(msg)
	srv.Fix = "start it: amlsim serve (or make run)"
	if ce != nil && ce.Status == exitAuth {
		srv.Status, srv.Fix = checkFail, "point --home (AMLSIM_HOME) at the home the server was started with"
	}
	ln, lerr := net.Listen("tcp", host)
	if lerr != nil {
		port.Status, port.Detail = checkFail, fmt.Sprintf("%s is in use by another program: %v", host, lerr)
		port.Fix = "stop that program, or serve elsewhere: amlsim serve --listen 127.0.0.1:PORT and set AMLSIM_ENDPOINT"
		if strings.Contains(lerr.Error(), "cannot assign") {
			port.Detail = fmt.Sprintf("%s cannot be served on this machine: %v", host, lerr)
		}
		return []check{srv, port}
	}
	ln.Close()
	port.Status, port.Detail = checkOK, host+" is free"
	return []check{srv, port}
}

// countWorkspaces counts the subscription's workspaces.
func (c *client) countWorkspaces(ctx context.Context) (int, error) {
	n := 0
	pager := c.ml.NewWorkspacesClient().NewListBySubscriptionPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return 0, c.failure(ctx, err)
		}
		n += len(page.Value)
	}
	return n, nil
}
