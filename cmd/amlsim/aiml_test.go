package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireAzureAIML returns a python3 that imports Debian's azure-ai-ml
// (python3-azure) with testdata/aiml on its path, skipping t when there is
// none.
func requireAzureAIML(t *testing.T) string {
	t.Helper()
	// Debian's python3: python3-azure is installed for it, not for another
	// python3 earlier on PATH.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = "python3"
	}
	cmd := exec.Command(py, "-c", "import azure.ai.ml")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+aimlPath(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("AMLSIM_E2E_REQUIRED") != "" {
			t.Fatalf("azure-ai-ml not importable, and make test needs it: run fixtures/host/setup.sh (%v: %s)", err, out)
		}
		t.Skipf("azure-ai-ml not importable: run fixtures/host/setup.sh (%v: %s)", err, out)
	}
	return py
}

func aimlPath(t *testing.T) string {
	p, err := filepath.Abs(filepath.Join("testdata", "aiml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAzureAIMLJobs drives azure-ai-ml 1.4.0 against amlsim as a user's
// script would (testdata/aiml/jobs.py): jobs.create_or_update of a
// command(), jobs.stream through the workspace's discovery URL, run
// history and the log's signed URL; a failing job's stream raising with
// the service's error; jobs.begin_cancel to Canceled.
func TestAzureAIMLJobs(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("imports azure-ai-ml (seconds) and streams three jobs: skipped under -short")
	}
	py := requireAzureAIML(t)
	e := newCLIEnv(t)
	e.ok("compute", "create", "ci-py", "--size", "Standard_DS2_v2")
	token := strings.TrimSpace(e.ok("token").stdout)
	cmd := exec.Command(py, filepath.Join(aimlPath(t), "jobs.py"))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+aimlPath(t), "AZUREML_DEV_URL_MFE="+e.endpoint,
		"REQUESTS_CA_BUNDLE="+filepath.Join(e.home, "ca.pem"), "AMLSIM_TOKEN="+token, "AMLSIM_COMPUTE=ci-py")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("jobs.py ran over 3 minutes:\n%s", out)
	}
	if err != nil {
		t.Fatalf("jobs.py: %v\n%s", err, out)
	}
	for _, want := range []string{
		"created py-train NotStarted",
		"RunId: py-train",
		"Streaming user_logs/std_log.txt",
		"python train.py --lr 0.01",
		"epoch 1: loss 0.5",
		"amlsim runs the command as a plain process", // RunDetails' warning
		"final Completed",
		"failed: ", "User process 'python' exited with status code 3",
		"canceled Canceled",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("jobs.py's output lacks %q:\n%s", want, out)
		}
	}
}
