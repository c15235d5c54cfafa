//go:build linux && cgo

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/sim"
)

// azSession runs Debian's azure-cli against one amlsim server as a user
// would after eval "$(amlsim env)": each call's environment comes from
// that eval in a real shell, and az keeps its clouds, profile and tokens
// in a config directory of the test's own.
type azSession struct {
	t        *testing.T
	endpoint string
	env      []string
}

// newAzSession returns an az session for the server at listen whose home
// is home, skipping (or failing, under AMLSIM_E2E_REQUIRED) when az is
// not installed.
func newAzSession(t *testing.T, home, listen string) *azSession {
	t.Helper()
	bin, err := exec.LookPath("az")
	if err != nil {
		skipOrFail(t, "azure-cli not installed: run fixtures/host/setup.sh (%v)", err)
	}
	a := &azSession{t: t, endpoint: "https://" + listen}
	// The environment of a shell with no Azure settings of its own.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "AZURE_"), strings.HasPrefix(name, "IDENTITY_"), strings.HasPrefix(name, "MSI_"),
			strings.HasPrefix(name, "AMLSIM_"), name == "SSL_CERT_FILE", name == "REQUESTS_CA_BUNDLE":
			continue
		}
		a.env = append(a.env, kv)
	}
	a.env = append(a.env, "AMLSIM_BIN="+amlsimBinary(t), "AZ_BIN="+bin, "AMLSIM_ENDPOINT="+a.endpoint, "AMLSIM_HOME="+home,
		"AZURE_CONFIG_DIR="+filepath.Join(t.TempDir(), "azure"), "AZURE_CORE_COLLECT_TELEMETRY=no",
		"AZURE_CORE_NO_COLOR=true", "AZURE_CORE_SURVEY_MESSAGE=false")
	return a
}

// run runs az with args, in a shell that has evaluated `amlsim env`, for
// at most timeout.
func (a *azSession) run(timeout time.Duration, args ...string) cliRun {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	script := `eval "$("$AMLSIM_BIN" env)" && exec "$AZ_BIN" "$@"`
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", script, "az"}, args...)...)
	cmd.Env = a.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		a.t.Fatalf("az %s: no answer in %s\nstderr:\n%s", strings.Join(args, " "), timeout, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		a.t.Fatalf("az %s: %v", strings.Join(args, " "), err)
	}
	a.t.Logf("az %s: exit %d in %s", strings.Join(args, " "), r.code, time.Since(start).Round(100*time.Millisecond))
	return r
}

// ok runs az and fails the test unless it exits 0.
func (a *azSession) ok(timeout time.Duration, args ...string) cliRun {
	a.t.Helper()
	r := a.run(timeout, args...)
	if r.code != 0 {
		a.t.Fatalf("az %s: exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// json runs az with --output json and decodes what it prints into v.
func (a *azSession) json(timeout time.Duration, v any, args ...string) {
	a.t.Helper()
	r := a.ok(timeout, append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		a.t.Fatalf("az %s: output is not the JSON expected: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

// TestTemplateDeploymentOnRealVM deploys Azure's quickstart template for
// a compute instance with az, into a resource group and workspace made
// with az, on a real VM: the deployment succeeds once the instance runs,
// its creation script (the template's inlineCommand) ran in the guest,
// and `az group delete` takes the VM with the group.
func TestTemplateDeploymentOnRealVM(t *testing.T) {
	requireVMs(t)
	requireImage(t)
	home, config, _ := simHome(t, 32022, "")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startSim(t, home, config, listen)
	a := newAzSession(t, home, listen)

	a.ok(time.Minute, "cloud", "register", "--name", "amlsim", "--endpoint-resource-manager", a.endpoint)
	a.ok(time.Minute, "cloud", "set", "--name", "amlsim")
	var subs []struct {
		ID string `json:"id"`
	}
	a.json(time.Minute, &subs, "login", "--identity")
	if len(subs) != 1 || subs[0].ID != subscription {
		t.Fatalf("az login --identity: subscriptions %+v, want %s alone", subs, subscription)
	}

	suffix := fmt.Sprintf("%x", time.Now().UnixNano()%0xfffff)
	rg, ws, name := "rg-arm-"+suffix, "ws-arm", "ci-arm-vm"+suffix
	domain := domainOf(home, name)
	removeOnCleanup(t, domain)
	a.ok(time.Minute, "group", "create", "--name", rg, "--location", "eastus")
	wsURL := fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.MachineLearningServices/workspaces/%s", a.endpoint, subscription, rg, ws)
	a.ok(time.Minute, "rest", "--method", "put", "--url", wsURL+"?api-version=2024-04-01", "--body", `{"location": "eastus"}`)

	// The creation script runs as root in the guest, with the instance's
	// CI_ variables, and writes into the workspace share the host sees.
	const trace = "/home/azureuser/cloudfiles/code/Users/arm-trace"
	inline := `echo "deployed-by-arm $CI_NAME $(whoami)" | tee ` + trace
	testdata := "../sim/armtemplate/testdata"
	start := time.Now()
	var deployment struct {
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
			OutputResources   []struct {
				ID string `json:"id"`
			} `json:"outputResources"`
		} `json:"properties"`
	}
	a.json(snapshotWait+10*time.Minute, &deployment, "deployment", "group", "create", "--resource-group", rg,
		"--template-file", filepath.Join(testdata, "azuredeploy.json"),
		"--parameters", "@"+filepath.Join(testdata, "azuredeploy.parameters.json"),
		"workspaceName="+ws, "computeName="+name, "objectId="+sim.DefaultOwner.ObjectID, "inlineCommand="+inline)
	t.Logf("deployment of %s on a real VM: %s", name, time.Since(start).Round(100*time.Millisecond))
	instanceID := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.MachineLearningServices/workspaces/%s/computes/%s", subscription, rg, ws, name)
	if p := deployment.Properties; p.ProvisioningState != "Succeeded" || len(p.OutputResources) != 1 || !strings.EqualFold(p.OutputResources[0].ID, instanceID) {
		t.Fatalf("deployment = %+v, want Succeeded with output resource %s", p, instanceID)
	}

	var compute struct {
		Properties struct {
			Properties struct {
				State string `json:"state"`
			} `json:"properties"`
		} `json:"properties"`
	}
	a.json(time.Minute, &compute, "rest", "--method", "get", "--url", a.endpoint+instanceID+"?api-version=2024-04-01")
	if got := compute.Properties.Properties.State; got != "Running" {
		t.Errorf("instance state = %q, want Running", got)
	}
	if got := domState(t, domain); got != "running" {
		t.Errorf("domain %s is %q, want running", domain, got)
	}
	want := "deployed-by-arm " + name + " root"
	share := filepath.Join(home, "shares", rg, ws)
	if b, err := os.ReadFile(filepath.Join(share, "Users", "arm-trace")); err != nil || strings.TrimSpace(string(b)) != want {
		t.Errorf("trace the creation script left in the workspace share: %q (%v), want %q", b, err, want)
	}
	logs := exec.Command(amlsimBinary(t), "compute", "logs", name, "--setup", "--resource-group", rg, "--workspace", ws)
	logs.Env = append(os.Environ(), "AMLSIM_ENDPOINT="+a.endpoint, "AMLSIM_HOME="+home)
	if out, err := logs.CombinedOutput(); err != nil || !strings.Contains(string(out), want) {
		t.Errorf("amlsim compute logs %s --setup: %v\n%s\nwant the creation script's output %q", name, err, out, want)
	}

	// The group goes with its workspace and the instance's VM.
	start = time.Now()
	a.ok(10*time.Minute, "group", "delete", "--name", rg, "--yes")
	t.Logf("az group delete: %s", time.Since(start).Round(100*time.Millisecond))
	if got := strings.TrimSpace(a.ok(time.Minute, "group", "exists", "--name", rg).stdout); got != "false" {
		t.Errorf("az group exists -n %s after its delete = %q, want false", rg, got)
	}
	if virshHas(t, domain) {
		t.Errorf("domain %s still defined after az group delete", domain)
	}
	if r := a.run(time.Minute, "rest", "--method", "get", "--url", a.endpoint+instanceID+"?api-version=2024-04-01"); r.code == 0 {
		t.Errorf("the instance is still there after az group delete:\n%s", r.stdout)
	}
}
