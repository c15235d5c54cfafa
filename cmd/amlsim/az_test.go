package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// az runs Debian's azure-cli against a cliEnv's server as a user would
// after eval "$(amlsim env)": the environment comes from that eval in a
// real shell, and az keeps its clouds, profile and tokens in a config
// directory of this test's own (never the user's ~/.azure).
type az struct {
	t   *testing.T
	bin string
	env []string
}

// requireAz returns the path of az, skipping t when it is not installed.
func requireAz(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("az")
	if err != nil {
		if os.Getenv("AMLSIM_E2E_REQUIRED") != "" {
			t.Fatalf("azure-cli not installed, and make test needs it: run fixtures/host/setup.sh (%v)", err)
		}
		t.Skipf("azure-cli not installed: run fixtures/host/setup.sh (%v)", err)
	}
	return bin
}

// newAz returns az (at bin) for e's server, with a fresh config directory.
func newAz(t *testing.T, bin string, e *cliEnv) *az {
	t.Helper()
	a := &az{t: t, bin: bin}
	// The environment of a shell with no Azure settings of its own.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "AZURE_"), strings.HasPrefix(name, "IDENTITY_"), strings.HasPrefix(name, "MSI_"),
			strings.HasPrefix(name, "AMLSIM_"), name == "SSL_CERT_FILE", name == "REQUESTS_CA_BUNDLE", name == "HOME":
			continue
		}
		a.env = append(a.env, kv)
	}
	a.env = append(a.env,
		"AMLSIM_BIN="+e.bin, "AZ_BIN="+bin, "AMLSIM_ENDPOINT="+e.endpoint, "AMLSIM_HOME="+e.home, "HOME="+e.userHome,
		"AZURE_CONFIG_DIR="+filepath.Join(t.TempDir(), "azure"), "AZURE_CORE_COLLECT_TELEMETRY=no",
		"AZURE_CORE_NO_COLOR=true", "AZURE_CORE_SURVEY_MESSAGE=false")
	return a
}

// run runs az with args in a shell that has evaluated `amlsim env`.
func (a *az) run(args ...string) result {
	a.t.Helper()
	script := `eval "$("$AMLSIM_BIN" env)" && exec "$AZ_BIN" "$@"`
	cmd := exec.Command("sh", append([]string{"-c", script, "az"}, args...)...)
	cmd.Env = a.env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		a.t.Fatalf("run az %v: %v", args, err)
	}
	a.t.Logf("az %s: exit %d in %s", strings.Join(args, " "), r.code, time.Since(start).Round(10*time.Millisecond))
	return r
}

// ok runs az and fails the test unless it exits 0.
func (a *az) ok(args ...string) result {
	a.t.Helper()
	r := a.run(args...)
	if r.code != 0 {
		a.t.Fatalf("az %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// json runs az and decodes its standard output into v.
func (a *az) json(v any, args ...string) {
	a.t.Helper()
	r := a.ok(append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		a.t.Fatalf("az %s: output is not the JSON expected: %v\n%s", strings.Join(args, " "), err, r)
	}
}

// login registers the server as az's cloud and logs in with the managed
// identity `amlsim env` provides, as the README tells a user to.
func (a *az) login() {
	a.t.Helper()
	a.ok("cloud", "register", "--name", "amlsim", "--endpoint-resource-manager", a.endpoint())
	a.ok("cloud", "set", "--name", "amlsim")
	var subs []struct {
		ID        string `json:"id"`
		IsDefault bool   `json:"isDefault"`
	}
	a.json(&subs, "login", "--identity")
	const want = "00000000-0000-0000-0000-000000000000"
	if len(subs) != 1 || subs[0].ID != want || !subs[0].IsDefault {
		a.t.Fatalf("az login --identity: subscriptions %+v, want %s alone, the default", subs, want)
	}
}

func (a *az) endpoint() string {
	for _, kv := range a.env {
		if v, ok := strings.CutPrefix(kv, "AMLSIM_ENDPOINT="); ok {
			return v
		}
	}
	a.t.Fatal("no AMLSIM_ENDPOINT in az's environment")
	return ""
}

// quickstart is Azure/azure-quickstart-templates'
// machine-learning-compute-create-computeinstance, unmodified.
const quickstart = "../../sim/armtemplate/testdata"

// TestAzDeploysTheQuickstartTemplate runs the README's az session against
// `amlsim serve --driver fake`: az login --identity, the quickstart
// template deployed with az deployment group create, the instance it made
// as the template asked for it, the deployment's operations, a resource
// group created and deleted, and a template az is told is invalid.
func TestAzDeploysTheQuickstartTemplate(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs az a dozen times, over a second each (25 s): skipped under -short")
	}
	bin := requireAz(t)
	a := newAz(t, bin, newCLIEnv(t))
	a.login()

	var group struct {
		Name       string `json:"name"`
		Location   string `json:"location"`
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	a.json(&group, "group", "show", "--resource-group", "rg-local")
	if group.Name != "rg-local" || group.Location != "eastus" || group.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("az group show -g rg-local: %+v, want rg-local in eastus, Succeeded", group)
	}

	const objectID = "11111111-1111-1111-1111-111111111111"
	var deployment struct {
		Name       string `json:"name"`
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
			OutputResources   []struct {
				ID string `json:"id"`
			} `json:"outputResources"`
		} `json:"properties"`
	}
	a.json(&deployment, "deployment", "group", "create", "--resource-group", "rg-local",
		"--template-file", filepath.Join(quickstart, "azuredeploy.json"),
		"--parameters", "@"+filepath.Join(quickstart, "azuredeploy.parameters.json"),
		"workspaceName=ws-local", "computeName=ci-arm", "objectId="+objectID)
	instanceID := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local/providers/Microsoft.MachineLearningServices/workspaces/ws-local/computes/ci-arm"
	if p := deployment.Properties; deployment.Name != "azuredeploy" || p.ProvisioningState != "Succeeded" ||
		len(p.OutputResources) != 1 || !strings.EqualFold(p.OutputResources[0].ID, instanceID) {
		t.Errorf("deployment = %+v, want azuredeploy Succeeded with output resource %s", deployment, instanceID)
	}

	var compute struct {
		Name       string `json:"name"`
		Properties struct {
			ComputeType string `json:"computeType"`
			Properties  struct {
				State                           string `json:"state"`
				VMSize                          string `json:"vmSize"`
				PersonalComputeInstanceSettings struct {
					AssignedUser struct {
						ObjectID string `json:"objectId"`
					} `json:"assignedUser"`
				} `json:"personalComputeInstanceSettings"`
				Schedules struct {
					ComputeStartStop []map[string]any `json:"computeStartStop"`
				} `json:"schedules"`
				SetupScripts struct {
					Scripts struct {
						CreationScript struct {
							ScriptSource string `json:"scriptSource"`
							ScriptData   string `json:"scriptData"`
						} `json:"creationScript"`
					} `json:"scripts"`
				} `json:"setupScripts"`
			} `json:"properties"`
		} `json:"properties"`
	}
	a.json(&compute, "rest", "--method", "get", "--url", a.endpoint()+instanceID+"?api-version=2024-04-01")
	ci := compute.Properties.Properties
	if compute.Name != "ci-arm" || compute.Properties.ComputeType != "ComputeInstance" || ci.State != "Running" || ci.VMSize != "Standard_DS3_v2" {
		t.Errorf("instance: name %q type %q state %q size %q, want ci-arm, a Running ComputeInstance of the template's Standard_DS3_v2",
			compute.Name, compute.Properties.ComputeType, ci.State, ci.VMSize)
	}
	if got := ci.PersonalComputeInstanceSettings.AssignedUser.ObjectID; got != objectID {
		t.Errorf("assignedUser.objectId = %q, want %q", got, objectID)
	}
	if s := ci.SetupScripts.Scripts.CreationScript; s.ScriptSource != "inline" || s.ScriptData != base64.StdEncoding.EncodeToString([]byte("ls")) {
		t.Errorf("creation script = %+v, want inline base64 of the default inlineCommand \"ls\" (%q)", s, base64.StdEncoding.EncodeToString([]byte("ls")))
	}
	// The schedules of the parameters file, each as given (the server adds
	// an id and a provisioning status).
	var params struct {
		Parameters struct {
			Schedules struct {
				Value struct {
					ComputeStartStop []map[string]any `json:"computeStartStop"`
				} `json:"value"`
			} `json:"schedules"`
		} `json:"parameters"`
	}
	b, err := os.ReadFile(filepath.Join(quickstart, "azuredeploy.parameters.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &params); err != nil {
		t.Fatal(err)
	}
	want := params.Parameters.Schedules.Value.ComputeStartStop
	got := ci.Schedules.ComputeStartStop
	if len(want) != 3 || len(got) != len(want) {
		t.Fatalf("schedules.computeStartStop: %d schedules, want the parameters file's %d (3):\n%v", len(got), len(want), got)
	}
	for i := range want {
		given := map[string]any{}
		for k := range want[i] {
			given[k] = got[i][k]
		}
		if !reflect.DeepEqual(given, want[i]) {
			t.Errorf("schedule %d = %v, want %v", i, got[i], want[i])
		}
	}

	var ops []struct {
		Properties struct {
			ProvisioningOperation string `json:"provisioningOperation"`
			ProvisioningState     string `json:"provisioningState"`
			TargetResource        struct {
				ID string `json:"id"`
			} `json:"targetResource"`
		} `json:"properties"`
	}
	a.json(&ops, "deployment", "operation", "group", "list", "--resource-group", "rg-local", "--name", "azuredeploy")
	if len(ops) != 1 || ops[0].Properties.ProvisioningState != "Succeeded" || !strings.EqualFold(ops[0].Properties.TargetResource.ID, instanceID) {
		t.Errorf("deployment operations = %+v, want one, Succeeded, on %s", ops, instanceID)
	}

	a.json(&group, "group", "create", "--name", "rg-tmp", "--location", "eastus")
	if group.Name != "rg-tmp" || group.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("az group create -n rg-tmp: %+v, want rg-tmp Succeeded", group)
	}
	if got := strings.TrimSpace(a.ok("group", "exists", "--name", "rg-tmp").stdout); got != "true" {
		t.Errorf("az group exists -n rg-tmp after its create = %q, want true", got)
	}
	a.ok("group", "delete", "--name", "rg-tmp", "--yes")
	if got := strings.TrimSpace(a.ok("group", "exists", "--name", "rg-tmp").stdout); got != "false" {
		t.Errorf("az group exists -n rg-tmp after its delete = %q, want false", got)
	}

	// An expression with a syntax error: az says why and exits non-zero.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {"x": {"type": "string", "defaultValue": "a"}},
  "resources": [],
  "outputs": {"y": {"type": "string", "value": "[concat(parameters('x')]"}}
}`), 0o644)
	r := a.run("deployment", "group", "create", "--resource-group", "rg-local", "--name", "bad", "--template-file", bad)
	if r.code == 0 || !strings.Contains(r.stderr, "InvalidTemplate") {
		t.Errorf("az deployment group create of a template with a syntax error: %s\nwant a non-zero exit and InvalidTemplate", r)
	}
}
