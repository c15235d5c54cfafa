package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/pki"
	"github.com/spf13/cobra"
)

// CABundleFile is the CA bundle `amlsim env` writes in the home: the
// system's CAs and amlsim's, so clients that replace their trust store
// with it (SSL_CERT_FILE, REQUESTS_CA_BUNDLE) still reach Azure and the
// internet.
const CABundleFile = "ca-bundle.pem"

// systemBundles are where Linux distributions and macOS keep the system's
// CA bundle (the places Go's crypto/x509 looks in first).
var systemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
	"/etc/ssl/ca-bundle.pem",             // openSUSE
	"/etc/ssl/cert.pem",                  // macOS, Alpine
}

// envCmd prints the shell lines after which the credentials every Azure
// SDK and az already have get tokens from amlsim: a managed identity for
// the principal (IDENTITY_ENDPOINT and IDENTITY_HEADER for the SDKs'
// DefaultAzureCredential and ManagedIdentityCredential, MSI_ENDPOINT for
// `az login --identity`), and a CA bundle they trust.
func newEnvCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Print shell exports after which Azure SDKs and az get tokens from amlsim",
		Long: `Print export lines for a POSIX shell, to use as
    eval "$(amlsim env)"
after which DefaultAzureCredential (Go, Python, .NET, JS, Java) and
'az login --identity' get tokens from amlsim for --user (default: the
built-in owner; another principal must be in the server's config), and
SSL_CERT_FILE and REQUESTS_CA_BUNDLE name a CA bundle with the system's
CAs and amlsim's. For az, register amlsim as a cloud once:
    az cloud register -n amlsim --endpoint-resource-manager "$AMLSIM_ENDPOINT"
    az cloud set -n amlsim && az login --identity`,
		Args: exactArgs(),
	}
	p := principalFlags(cmd, "the identity speaks for")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return printEnv(cmd.OutOrStdout(), p.home, p.endpoint, p.user, p.tenant)
	}
	return cmd
}

// principalOptions are the flags of the verbs that hand a principal's
// credentials to something else (env, studio).
type principalOptions struct{ home, endpoint, user, tenant string }

// principalFlags declares --home, --endpoint, --user (the principal
// who, for what) and --tenant on cmd.
func principalFlags(cmd *cobra.Command, who string) *principalOptions {
	p := &principalOptions{}
	f := cmd.Flags()
	f.StringVar(&p.home, "home", defaultHome(), "simulator state `DIR` ($AMLSIM_HOME)")
	f.StringVar(&p.endpoint, "endpoint", envOr("AMLSIM_ENDPOINT", defaultEndpoint), "`URL` of the amlsim server ($AMLSIM_ENDPOINT)")
	f.StringVar(&p.user, "user", sim.DefaultOwner.ObjectID, "object `ID` of the principal "+who)
	f.StringVar(&p.tenant, "tenant", sim.DefaultOwner.TenantID, "tenant `ID` of the principal")
	cmd.MarkFlagDirname("home")
	return p
}

// printEnv writes the export lines of `amlsim env`.
func printEnv(w io.Writer, home, endpoint, user, tenant string) error {
	base := strings.TrimRight(endpoint, "/")
	signer, err := auth.LoadOrCreate(home)
	if err != nil {
		return err
	}
	bundle, err := writeCABundle(home)
	if err != nil {
		return err
	}
	secret := signer.IdentitySecret(user, tenant)
	abs, err := filepath.Abs(home)
	if err != nil {
		return err
	}
	lines := [][2]string{
		{"AMLSIM_ENDPOINT", base},
		{"AMLSIM_HOME", abs},
		{"AZURE_SUBSCRIPTION_ID", subscriptionOf(base, home, signer, user, tenant)},
		{"AZURE_TENANT_ID", tenant},
		// The authority for service principals of the config
		// (ClientSecretCredential, with DisableInstanceDiscovery).
		{"AZURE_AUTHORITY_HOST", base + "/"},
		{"IDENTITY_ENDPOINT", api.IdentityEndpoint(base)},
		{"IDENTITY_HEADER", secret},
		{"MSI_ENDPOINT", api.MSIEndpoint(base, secret)},
		{"SSL_CERT_FILE", bundle},
		{"REQUESTS_CA_BUNDLE", bundle},
		{"NODE_EXTRA_CA_CERTS", filepath.Join(abs, pki.CAFile)},
	}
	for _, l := range lines {
		fmt.Fprintf(w, "export %s=%s\n", l[0], shellQuote(l[1]))
	}
	return nil
}

// subscriptionOf asks the server for the principal's subscription (a
// config may name another than the default); a server that does not
// answer within two seconds leaves the default, with a note.
func subscriptionOf(base, home string, signer *auth.Signer, user, tenant string) string {
	def := sim.DefaultConfig().Subscription
	pool, err := pki.Pool(home)
	if err != nil {
		return def
	}
	tok, err := signer.Mint(user, tenant, "", time.Minute)
	if err != nil {
		return def
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest("GET", base+"/subscriptions?api-version=2022-12-01", nil)
	if err != nil {
		return def
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "amlsim env: %s does not answer; AZURE_SUBSCRIPTION_ID is the default subscription\n", base)
		return def
	}
	defer resp.Body.Close()
	var list struct {
		Value []struct {
			SubscriptionID string `json:"subscriptionId"`
		} `json:"value"`
	}
	if json.NewDecoder(resp.Body).Decode(&list) != nil || len(list.Value) == 0 {
		return def
	}
	return list.Value[0].SubscriptionID
}

// writeCABundle writes HOME/ca-bundle.pem: the system's CA bundle (the
// one $SSL_CERT_FILE names, else the first of systemBundles) followed by
// amlsim's CA. It returns the bundle's absolute path.
func writeCABundle(home string) (string, error) {
	ca, err := os.ReadFile(filepath.Join(home, pki.CAFile))
	if err != nil {
		return "", fmt.Errorf("amlsim's CA: %w (has 'amlsim serve' run with this home?)", err)
	}
	out, err := filepath.Abs(filepath.Join(home, CABundleFile))
	if err != nil {
		return "", err
	}
	candidates := systemBundles
	// A bundle of ours named by SSL_CERT_FILE (a second eval) is not the
	// system's.
	if f := os.Getenv("SSL_CERT_FILE"); f != "" && f != out {
		candidates = append([]string{f}, candidates...)
	}
	var system []byte
	for _, f := range candidates {
		if system, err = os.ReadFile(f); err == nil {
			break
		}
	}
	if system == nil {
		fmt.Fprintln(os.Stderr, "amlsim env: no system CA bundle found; the bundle trusts amlsim's CA only")
	}
	tmp, err := os.CreateTemp(home, CABundleFile+".*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if len(system) > 0 && system[len(system)-1] != '\n' {
		system = append(system, '\n')
	}
	if _, err := io.WriteString(tmp, string(system)+"# amlsim\n"+string(ca)); err != nil {
		tmp.Close()
		return "", err
	}
	if err := errors.Join(tmp.Chmod(0o644), tmp.Close()); err != nil {
		return "", err
	}
	return out, os.Rename(tmp.Name(), out)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
