package api_test

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
)

// benchEnv is a server holding 100 running instances on the fake driver,
// each with a stand-in notebook server.
func benchEnv(b *testing.B) *env {
	nb := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "notebook\n") })
	e := newEnvDriver(b, []fake.Option{fake.WithService(sim.JupyterGuestPort, nb)}, func(c *sim.Config) {
		c.Regions[0].DefaultVCPUs = 1000
		c.Regions[0].TotalVCPUs = 1000
		c.PageSize = 20
	})
	for i := range 100 {
		e.mustCreate(fmt.Sprintf("ci-bench%03dx", i), "Standard_D1_v2")
	}
	return e
}

// measure runs req b.N times and reports p50 and p99 latency and requests
// per second.
func measure(b *testing.B, e *env, path string) {
	client := e.srv.Client()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}

func BenchmarkGetCompute(b *testing.B) {
	e := benchEnv(b)
	measure(b, e, computesPath+"/ci-bench050x?api-version=2024-04-01")
}

func BenchmarkListComputes(b *testing.B) {
	e := benchEnv(b)
	measure(b, e, computesPath+"?api-version=2024-04-01")
}

// BenchmarkApplicationProxy is one request through the application proxy
// to an instance's (stand-in) notebook server: the proxy's own cost, on
// top of the guest's.
func BenchmarkApplicationProxy(b *testing.B) {
	e := benchEnv(b)
	measure(b, e, sim.AppBasePath("eastus", "ci-bench050x")+"tree")
}
