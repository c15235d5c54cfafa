package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkServeMemoryAtRest starts `amlsim serve --driver fake`, creates
// 100 instances through the API, waits for them to run, and reports the
// server process's resident memory at rest.
func BenchmarkServeMemoryAtRest(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "amlsim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	home := filepath.Join(dir, "home")
	cfg := filepath.Join(dir, "amlsim.toml")
	os.WriteFile(cfg, []byte("[[regions]]\nname = \"eastus\"\ntotal_vcpus = 1000\ndefault_family_vcpus = 1000\n[fake]\ndelay = \"10ms\"\n"), 0o600)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve", "--home", home, "--driver", "fake", "--listen", addr, "--config", cfg)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if !bufio.NewScanner(stdout).Scan() {
		b.Fatal("server did not start")
	}
	tok, err := exec.Command(bin, "token", "--home", home).Output()
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	base := "https://" + addr + "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local/providers/Microsoft.MachineLearningServices/workspaces/ws-local/computes/"
	do := func(method, url, body string) int {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		if body != "" {
			req.Header.Set("Content-Type", "application/json") // else 415, as ARM answers
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 100 {
		body := `{"location":"eastus","properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2"}}}`
		if st := do("PUT", fmt.Sprintf("%sci-mem%03dx?api-version=2024-04-01", base, i), body); st != 201 {
			b.Fatalf("create %d: status %d", i, st)
		}
	}
	time.Sleep(2 * time.Second) // let every create finish; then the server is at rest
	for range b.N {
		do("GET", base+"ci-mem050x?api-version=2024-04-01", "")
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		b.Skipf("no /proc to read the server's memory from: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			b.ReportMetric(float64(kb)/1024, "rss-MiB")
		}
	}
}
