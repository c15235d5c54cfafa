package api_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	armmachinelearning "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/sim/api"
	"github.com/amlsim/amlsim/sim/pki"
)

// readmeClients is the README's Go sample: its body, from "pool :=" to the
// return, is the README's code block word for word (the test checks), with
// the endpoint and home the README hard-codes passed in instead.
func readmeClients(endpoint, home string, tokenCredential azcore.TokenCredential) (*armmachinelearning.ClientFactory, error) {
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(home, "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool.AppendCertsFromPEM(caPEM)
	opts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: "https://login.microsoftonline.com/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: endpoint, Audience: "https://management.azure.com"},
			},
		},
		Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}}
	return armmachinelearning.NewClientFactory("00000000-0000-0000-0000-000000000000", tokenCredential, opts)
}

func TestREADMESDKSample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(readme)
	if block == nil {
		t.Fatal("README has no Go sample")
	}
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile(`(?s)tokenCredential azcore.TokenCredential\) \(\*armmachinelearning.ClientFactory, error\) \{\n(.*?)\n\}\n`).FindSubmatch(src)
	sample := strings.SplitN(string(block[1]), "\n", 2)[1] // without the endpoint/home line
	if got := strings.ReplaceAll(string(body[1]), "\n\t", "\n"); strings.TrimPrefix(got, "\t") != strings.TrimSpace(sample) {
		t.Errorf("the README's Go sample and readmeClients differ:\nREADME:\n%s\ntest:\n%s", sample, got)
	}

	// And it works: against a server with amlsim's own CA and certificate.
	e := newEnv(t)
	home := t.TempDir()
	cfg, err := pki.ServerTLS(home)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(api.New(e.svc, e.tokens))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	clients, err := readmeClients(srv.URL, home, staticToken(e.token))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clients.NewVirtualMachineSizesClient().List(ctx(t), "eastus", nil); err != nil {
		t.Errorf("the README's clients: %v", err)
	}
}
