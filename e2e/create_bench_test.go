//go:build linux && cgo

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/amlsim/amlsim/hypervisor/guestssh"
)

// TestCreateTimeFastVersusBoot measures, through the Go SDK, create →
// Running from the snapshot (fast create) and booted (fast_create = false)
// side by side, then start and restart (both boot), the RSS of the idle
// VMs and the disk each instance takes. Each operation starts on a quiet
// host: the guests of the operations before it have finished what they do
// after Running (cloud-init's last stages, Jupyter), which under TCG would
// otherwise take the CPU from the one measured. It runs only with
// AMLSIM_E2E_BENCH set (the number of rounds, at least 3 for medians);
// `make bench` sets it. It reports; it asserts nothing about the times.
func TestCreateTimeFastVersusBoot(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	if os.Getenv("AMLSIM_E2E_BENCH") == "" {
		t.Skip("set AMLSIM_E2E_BENCH=ROUNDS to measure create times (two creates per round)")
	}
	rounds, err := strconv.Atoi(os.Getenv("AMLSIM_E2E_BENCH"))
	if err != nil || rounds < 1 {
		rounds = 3
	}
	key, err := guestssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	type server struct {
		label    string
		home     string
		stateDir string
		computes *ml.ComputeClient
		times    map[string][]time.Duration
		names    []string
	}
	var servers []*server
	for i, driver := range []string{"", "fast_create = false\n"} {
		home, config, stateDir := simHomeDriver(t, 29022+i*500, driver, "")
		listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		startSim(t, home, config, listen)
		label := map[int]string{0: "fast create", 1: "boot"}[i]
		servers = append(servers, &server{label: label, home: home, stateDir: stateDir,
			computes: sdkClients(t, home, listen).NewComputeClient(), times: map[string][]time.Duration{}})
	}
	ctx := context.Background()
	timed := func(s *server, op string, f func() error) {
		t.Helper()
		settle(t)
		begin := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s, %s: %v", s.label, op, err)
		}
		s.times[op] = append(s.times[op], time.Since(begin))
		t.Logf("%s: %s %.1fs", s.label, op, time.Since(begin).Seconds())
	}
	// A first create takes the snapshot (minutes, once per VM shape) and
	// is not timed.
	warm := fmt.Sprintf("benchwarm%x", time.Now().UnixNano()%0xfff)
	removeOnCleanup(t, domainOf(servers[0].home, warm))
	p, err := servers[0].computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, warm, sshInstance("STANDARD_D3_V2", key, nil), nil)
	pollDone(t, "create "+warm+" (takes the snapshot)", p, err)
	dp, err := servers[0].computes.BeginDelete(ctx, rgLocal, wsLocal, warm, ml.UnderlyingResourceActionDelete, nil)
	pollDone(t, "delete "+warm, dp, err)
	for r := range rounds {
		order := servers
		if r%2 == 1 {
			order = []*server{servers[1], servers[0]}
		}
		for _, s := range order {
			name := fmt.Sprintf("bench%d%x", r, time.Now().UnixNano()%0xfff)
			removeOnCleanup(t, domainOf(s.home, name))
			s.names = append(s.names, name)
			timed(s, "create", func() error {
				p, err := s.computes.BeginCreateOrUpdate(ctx, rgLocal, wsLocal, name, sshInstance("STANDARD_D3_V2", key, nil), nil)
				if err == nil {
					_, err = p.PollUntilDone(ctx, nil)
				}
				return err
			})
		}
	}
	// Start and restart boot in both modes: measured once per server's
	// first instance.
	for _, s := range servers {
		name := s.names[0]
		sp, err := s.computes.BeginStop(ctx, rgLocal, wsLocal, name, nil)
		pollDone(t, "stop", sp, err)
		timed(s, "start", func() error {
			p, err := s.computes.BeginStart(ctx, rgLocal, wsLocal, name, nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx, nil)
			}
			return err
		})
		timed(s, "restart", func() error {
			p, err := s.computes.BeginRestart(ctx, rgLocal, wsLocal, name, nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx, nil)
			}
			return err
		})
	}
	time.Sleep(30 * time.Second) // let the guests settle before RSS
	for _, s := range servers {
		var rss, disk []int64
		for _, name := range s.names {
			dom := domainOf(s.home, name)
			rss = append(rss, qemuRSS(t, dom))
			disk = append(disk, duBytes(t, filepath.Join(s.stateDir, dom)))
		}
		t.Logf("%s, %d rounds: create median %s %v; start %v; restart %v; idle RSS per VM %v MiB; disk per instance %v MB",
			s.label, rounds, median(s.times["create"]).Round(100*time.Millisecond), round(s.times["create"]),
			round(s.times["start"]), round(s.times["restart"]), mib(rss, 20), mib(disk, 20))
	}
}

// settle waits, up to 4 min, until the QEMU processes on this host use
// less than a tenth of a core over two seconds.
func settle(t *testing.T) {
	t.Helper()
	begin := time.Now()
	for time.Since(begin) < 4*time.Minute {
		before := qemuCPU()
		time.Sleep(2 * time.Second)
		if used := qemuCPU() - before; used < 200*time.Millisecond {
			t.Logf("host quiet after %.0fs", time.Since(begin).Seconds())
			return
		}
	}
	t.Logf("host still busy after 4 min: measuring anyway")
}

// qemuCPU is the CPU time all QEMU processes on the host have used.
func qemuCPU() time.Duration {
	out, _ := exec.Command("pgrep", "-f", "^/usr/bin/qemu-system").Output()
	var ticks int64
	for _, pid := range strings.Fields(string(out)) {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: utime and
		// stime are the 12th and 13th (proc(5): fields 14 and 15).
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func round(ds []time.Duration) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Round(100*time.Millisecond).String())
	}
	return out
}

func mib(bs []int64, shift uint) []int64 {
	var out []int64
	for _, b := range bs {
		out = append(out, b>>shift)
	}
	return out
}

// qemuRSS is the resident memory of the QEMU process of domain, in bytes.
func qemuRSS(t *testing.T, domain string) int64 {
	out, err := exec.Command("pgrep", "-f", "guest="+domain+",").Output()
	if err != nil {
		return 0
	}
	pid := strings.Fields(string(out))[0]
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// duBytes is the disk space the files under dir take (not their sizes: the
// disks are sparse).
func duBytes(t *testing.T, dir string) int64 {
	out, err := exec.Command("du", "-sk", dir).Output()
	if err != nil {
		return 0
	}
	kb, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	return kb << 10
}
