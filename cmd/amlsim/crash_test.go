package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/server"
)

// TestCrashSafety kills `amlsim serve --driver fake` with SIGKILL at random
// points of random lifecycle requests (and, in some cycles, while it is
// still recovering from the previous kill), starts it again on the same
// home, and at the end checks what amlsim promises CI suites:
//   - every acknowledged operation ends: Succeeded, Failed or Canceled;
//   - no instance stays in a transitional state;
//   - no acknowledged instance is lost or duplicated: an instance whose
//     create was acknowledged exists unless a delete of it was acknowledged;
//   - usage equals the sum of the instances' vCPUs, per family and in total;
//   - the VMs are what the instances say: a domain for each instance that
//     has one, running exactly when the instance promises a running VM, and
//     no domain of a deleted instance.
//
// The fake driver keeps its domains in the home, so they outlive the
// server as libvirt's do. AMLSIM_CRASH_SEED replays a run, and
// AMLSIM_CRASH_CYCLES changes the number of kills (default 40).
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("AMLSIM_CRASH_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	cycles := 40
	if v := os.Getenv("AMLSIM_CRASH_CYCLES"); v != "" {
		cycles, _ = strconv.Atoi(v)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with AMLSIM_CRASH_SEED=%d AMLSIM_CRASH_CYCLES=%d", seed, cycles)
		}
	})
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := newCrashHarness(t)

	var acked []string // status URLs of acknowledged operations
	// The order of acknowledgements, not the cycle, decides: a delete and a
	// new create of one name can both be acknowledged in one cycle.
	seq := 0
	created := map[string]int{} // name → sequence number of its last acknowledged create
	deleted := map[string]int{} // name → sequence number of its last acknowledged delete
	names := []string{"ci-a", "ci-b", "ci-c", "ci-d"}
	for cycle := 0; cycle < cycles; cycle++ {
		srv := c.start()
		if rng.IntN(5) == 0 {
			// Kill it again while it resumes what the last kill cut short.
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
			srv.kill()
			continue
		}
		for n := 1 + rng.IntN(3); n > 0; n-- {
			name := names[rng.IntN(len(names))]
			var status int
			var hdr http.Header
			// Mostly a request the instance's state allows, so that most
			// kills land inside operations; sometimes any request.
			choice := rng.IntN(6)
			if opts := likely[c.state(name)]; rng.IntN(5) > 0 && len(opts) > 0 {
				// One read of the state: it moves while the test runs.
				choice = opts[rng.IntN(len(opts))]
			}
			switch choice {
			case 0:
				status, hdr = c.do("PUT", c.compute(name), `{"properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2"}}}`)
				if status == http.StatusCreated {
					seq++
					created[name] = seq
				}
			case 1:
				status, hdr = c.do("DELETE", c.compute(name)+"&underlyingResourceAction=Delete", "")
				if status == http.StatusAccepted {
					seq++
					deleted[name] = seq
				}
			case 5:
				size := []string{"Standard_D1_v2", "Standard_D2_v2"}[rng.IntN(2)]
				u := strings.Replace(c.compute(name), crashAPI, "/resize?api-version=2026-09-15-preview", 1)
				status, hdr = c.do("POST", u, `{"targetVMSize":"`+size+`"}`)
			default:
				status, hdr = c.doAction(name, []string{"start", "stop", "restart"}[choice-2])
			}
			if u := hdr.Get("Azure-AsyncOperation"); u != "" && status < 300 {
				acked = append(acked, u)
			}
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		srv.kill()
	}

	srv := c.start()
	defer srv.kill()
	deadline := time.Now().Add(30 * time.Second)
	for _, u := range acked {
		for {
			var op struct {
				Status string `json:"status"`
			}
			c.getJSON(u, &op)
			if op.Status == "Succeeded" || op.Status == "Failed" || op.Status == "Canceled" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("operation %s still %q 30 s after the last restart", u, op.Status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var insts []crashInstance
	for {
		insts = c.instances()
		busy := ""
		for _, in := range insts {
			if sim.Transitional(in.State) {
				busy = in.Name + " " + string(in.State)
			}
		}
		if busy == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s still transitional 30 s after the last restart", busy)
		}
		time.Sleep(50 * time.Millisecond)
	}

	byName := map[string]crashInstance{}
	for _, in := range insts {
		if _, dup := byName[in.Name]; dup {
			t.Errorf("instance %s listed twice", in.Name)
		}
		byName[in.Name] = in
	}
	for name, n := range created {
		if d, ok := deleted[name]; ok && d > n {
			continue
		}
		if _, ok := byName[name]; !ok {
			t.Errorf("instance %s, whose create was acknowledged (#%d), is lost", name, n)
		}
	}
	for name, n := range deleted {
		if cr, ok := created[name]; ok && cr > n {
			continue
		}
		if in, ok := byName[name]; ok {
			t.Errorf("instance %s, whose delete was acknowledged (#%d), is still there: %s", name, n, in.State)
		}
	}
	c.checkUsage(insts)
	c.checkDomains(insts)
	t.Logf("seed %d: %d cycles, %d acknowledged operations, %d instances at the end", seed, cycles, len(acked), len(insts))
}

// likely are the requests each state allows, as choices of the cycle's
// switch: 0 create, 1 delete, 2 start, 3 stop, 4 restart, 5 resize. ""
// is no instance.
var likely = map[sim.State][]int{
	"":                    {0},
	sim.StateRunning:      {1, 3, 3, 4},
	sim.StateStopped:      {1, 2, 2, 5},
	sim.StateResizing:     {1},
	sim.StateCreating:     {1},
	sim.StateStarting:     {1},
	sim.StateStopping:     {1},
	sim.StateRestarting:   {1},
	sim.StateDeleting:     {0},
	sim.StateSetupFailed:  {1, 3, 4},
	sim.StateCreateFailed: {1},
	sim.StateUnusable:     {1},
}

// state is the instance's state, "" when there is none or the server
// does not answer.
func (c *crashHarness) state(name string) sim.State {
	req, _ := http.NewRequest("GET", "https://"+c.addr+c.compute(name), nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var v struct {
		Properties struct {
			Properties struct {
				State sim.State `json:"state"`
			} `json:"properties"`
		} `json:"properties"`
	}
	json.NewDecoder(resp.Body).Decode(&v)
	return v.Properties.Properties.State
}

type crashHarness struct {
	t      *testing.T
	bin    string
	home   string
	config string
	addr   string
	client *http.Client
	token  string
}

func newCrashHarness(t *testing.T) *crashHarness {
	c := &crashHarness{t: t, bin: cliBinary(t), home: filepath.Join(t.TempDir(), "home")}
	c.config = filepath.Join(t.TempDir(), "amlsim.toml")
	// Delays long enough for kills to land inside operations; a quota
	// that never refuses the four instances.
	// Ports of their own, apart from other tests' servers.
	cfg := "[fake]\ndelay = \"100ms\"\n\n[timeouts]\nshutdown_grace = \"1s\"\n\n[local]\nport_range = [46000, 46999]\n"
	if err := os.WriteFile(c.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = l.Addr().String()
	l.Close()
	return c
}

type crashServer struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

// start runs the server and waits until it serves.
func (c *crashHarness) start() *crashServer {
	c.t.Helper()
	s := &crashServer{log: &bytes.Buffer{}}
	s.cmd = startServe(c.t, s.log, c.bin, "serve", "--driver", "fake", "--home", c.home, "--listen", c.addr, "--config", c.config)
	if c.client == nil {
		c.connect()
	}
	return s
}

// kill ends the server with SIGKILL, as kill -9 does.
func (s *crashServer) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

func (c *crashHarness) connect() {
	ca, err := os.ReadFile(filepath.Join(c.home, "ca.pem"))
	if err != nil {
		c.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	out, err := exec.Command(c.bin, "token", "--home", c.home).Output()
	if err != nil {
		c.t.Fatalf("amlsim token: %v", err)
	}
	c.token = strings.TrimSpace(string(out))
}

const crashAPI = "?api-version=2024-10-01"

func (c *crashHarness) compute(name string) string {
	return "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local/providers/Microsoft.MachineLearningServices/workspaces/ws-local/computes/" + name + crashAPI
}

func (c *crashHarness) doAction(name, action string) (int, http.Header) {
	u := strings.Replace(c.compute(name), crashAPI, "/"+action+crashAPI, 1)
	return c.do("POST", u, "")
}

// do sends a request; a connection cut by a kill counts as not
// acknowledged (status 0).
func (c *crashHarness) do(method, path, body string) (int, http.Header) {
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = "https://" + c.addr + path
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, http.Header{}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

func (c *crashHarness) getJSON(u string, v any) {
	c.t.Helper()
	if !strings.HasPrefix(u, "https://") {
		u = "https://" + c.addr + u
	}
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("GET %s: %s\n%s", u, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
}

type crashInstance struct {
	Name   string
	State  sim.State
	VMSize string
}

func (c *crashHarness) instances() []crashInstance {
	var list struct {
		Value []struct {
			Name       string `json:"name"`
			Properties struct {
				Properties struct {
					State  sim.State `json:"state"`
					VMSize string    `json:"vmSize"`
				} `json:"properties"`
			} `json:"properties"`
		} `json:"value"`
	}
	c.getJSON(strings.Replace(c.compute(""), "computes/?", "computes?", 1), &list)
	var out []crashInstance
	for _, v := range list.Value {
		out = append(out, crashInstance{Name: v.Name, State: v.Properties.Properties.State, VMSize: v.Properties.Properties.VMSize})
	}
	return out
}

// checkUsage compares the region's usages with the instances: every
// instance holds its size's vCPUs (Standard_D1_v2: 1, Standard_D2_v2: 2,
// both of the Dv2 family) until it is deleted.
func (c *crashHarness) checkUsage(insts []crashInstance) {
	var usages struct {
		Value []struct {
			CurrentValue int `json:"currentValue"`
			Name         struct {
				Value string `json:"value"`
			} `json:"name"`
		} `json:"value"`
	}
	c.getJSON("/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.MachineLearningServices/locations/eastus/usages"+crashAPI, &usages)
	vcpus := 0
	for _, in := range insts {
		vcpus += map[string]int{"Standard_D1_v2": 1, "Standard_D2_v2": 2}[in.VMSize]
	}
	for _, u := range usages.Value {
		want := -1
		switch u.Name.Value {
		case "Total Regional vCPUs", "standardDv2Family":
			want = vcpus
		}
		if want >= 0 && u.CurrentValue != want {
			c.t.Errorf("usage %s = %d, want %d (the vCPUs of the sizes of %d instances)", u.Name.Value, u.CurrentValue, want, len(insts))
		}
	}
}

// checkDomains compares the fake driver's domains, as it keeps them in
// the home, with the instances.
func (c *crashHarness) checkDomains(insts []crashInstance) {
	raw, err := os.ReadFile(filepath.Join(c.home, server.FakeDomainsFile))
	if err != nil {
		c.t.Fatal(err)
	}
	var domains map[string]struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(raw, &domains); err != nil {
		c.t.Fatal(err)
	}
	prefix := sim.HomeDomainPrefix(c.home)
	want := map[string]bool{}
	for _, in := range insts {
		name := prefix + "eastus-" + in.Name
		want[name] = true
		d, ok := domains[name]
		switch {
		case !ok && in.State != sim.StateCreateFailed && in.State != sim.StateUnusable:
			c.t.Errorf("instance %s is %s without a VM", in.Name, in.State)
		case ok && in.State.VMUp() && d.State != "running":
			c.t.Errorf("instance %s is %s but its VM is %s", in.Name, in.State, d.State)
		case ok && in.State == sim.StateStopped && d.State != "shutoff":
			c.t.Errorf("instance %s is Stopped but its VM is %s", in.Name, d.State)
		}
	}
	for name := range domains {
		if !want[name] {
			c.t.Errorf("domain %s is left for a deleted instance", name)
		}
	}
}
