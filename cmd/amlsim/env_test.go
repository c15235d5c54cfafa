package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
)

// After eval "$(amlsim env)" in a real shell, a Go program with no custom
// code gets a token from DefaultAzureCredential and reaches amlsim over
// TLS with the CA bundle alone (the program is this test binary, run
// again as TestDefaultCredentialHelper).
func TestEnvGivesDefaultAzureCredentialAToken(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	out := e.ok("env")
	for _, v := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"} {
		if !strings.Contains(out.stdout, "export "+v+"=") {
			t.Errorf("amlsim env does not export %s:\n%s", v, out.stdout)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `eval "$("$AMLSIM_BIN" env)" && exec "$SELF" -test.run='^TestDefaultCredentialHelper$' -test.v`)
	// The environment of a shell with no Azure settings of its own.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "AZURE_") && !strings.HasPrefix(name, "IDENTITY_") && !strings.HasPrefix(name, "MSI_") && name != "SSL_CERT_FILE" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "AMLSIM_BIN="+e.bin, "SELF="+self, "AMLSIM_ENDPOINT="+e.endpoint, "AMLSIM_HOME="+e.home, "AMLSIM_CREDENTIAL_HELPER=1")
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "workspace ws-local in eastus") {
		t.Fatalf("the helper failed: %v\n%s", err, b)
	}
}

// TestDefaultCredentialHelper is the program TestEnvGivesDefaultAzureCredentialAToken
// runs; alone it has nothing to do.
func TestDefaultCredentialHelper(t *testing.T) {
	t.Parallel()
	if os.Getenv("AMLSIM_CREDENTIAL_HELPER") != "1" {
		t.Skip("run by TestEnvGivesDefaultAzureCredentialAToken")
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ml.NewClientFactory(os.Getenv("AZURE_SUBSCRIPTION_ID"), cred, &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: os.Getenv("AMLSIM_ENDPOINT") + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: os.Getenv("AMLSIM_ENDPOINT"), Audience: "https://management.azure.com"},
			},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := f.NewWorkspacesClient().Get(c, "rg-local", "ws-local", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("workspace %s in %s", *w.Name, *w.Location)
}
