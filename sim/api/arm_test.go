package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
)

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", resp.Request.URL.Path, err)
	}
}

// az cloud register reads the cloud's metadata with no token; api-version
// 2022-09-01 gets one object with what azure-cli's _arm_to_cli_mapper
// needs.
func TestMetadataEndpointsNeedNoToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp := e.raw("GET", "/metadata/endpoints?api-version=2022-09-01", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var m struct {
		Name            string
		ResourceManager string
		Authentication  struct {
			LoginEndpoint string
			Audiences     []string
		}
		Suffixes map[string]string
	}
	decodeJSON(t, resp, &m)
	if m.Name == "" || m.ResourceManager != e.srv.URL+"/" || m.Authentication.LoginEndpoint == "" || len(m.Authentication.Audiences) == 0 || m.Suffixes == nil {
		t.Errorf("metadata = %+v", m)
	}
	var list []map[string]any
	decodeJSON(t, e.raw("GET", "/metadata/endpoints?api-version=2019-05-01", "", ""), &list)
	if len(list) != 1 {
		t.Errorf("2019-05-01 gave %d clouds, want a list of one", len(list))
	}
	// What Debian's az 2.45 reads (msrestazure azure_cloud.py).
	var stack struct {
		GalleryEndpoint, GraphEndpoint string
		Authentication                 struct {
			LoginEndpoint string
			Audiences     []string
		}
	}
	decodeJSON(t, e.raw("GET", "/metadata/endpoints?api-version=2015-01-01", "", ""), &stack)
	if stack.GalleryEndpoint == "" || stack.Authentication.LoginEndpoint == "" || len(stack.Authentication.Audiences) == 0 {
		t.Errorf("2015-01-01 metadata = %+v", stack)
	}
}

func TestSubscriptionsTenantsAndProviders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var subs struct{ Value []map[string]any }
	decodeJSON(t, e.raw("GET", "/subscriptions?api-version=2022-12-01", e.token, ""), &subs)
	if len(subs.Value) != 1 || subs.Value[0]["subscriptionId"] != sub || subs.Value[0]["state"] != "Enabled" || subs.Value[0]["tenantId"] != sim.DefaultOwner.TenantID {
		t.Errorf("subscriptions = %v", subs.Value)
	}
	if resp := e.raw("GET", "/subscriptions/"+sub+"?api-version=2022-12-01", e.token, ""); resp.StatusCode != 200 {
		t.Errorf("GET subscription: %d", resp.StatusCode)
	}
	// A principal with no role sees no subscription.
	stranger := sim.PrincipalConfig{ObjectID: "5d5d5d5d-0000-0000-0000-000000000001", TenantID: sim.DefaultOwner.TenantID, Name: "stranger"}
	e2 := newEnv(t, func(c *sim.Config) { c.Principals = append(c.Principals, stranger) })
	tok, _ := e2.tokens.Mint(stranger.ObjectID, stranger.TenantID, stranger.Name, 3600e9)
	decodeJSON(t, e2.raw("GET", "/subscriptions?api-version=2022-12-01", tok, ""), &subs)
	if len(subs.Value) != 0 {
		t.Errorf("a principal with no role lists %d subscriptions", len(subs.Value))
	}

	var tenants struct{ Value []map[string]any }
	decodeJSON(t, e.raw("GET", "/tenants?api-version=2022-12-01", e.token, ""), &tenants)
	if len(tenants.Value) != 1 || tenants.Value[0]["tenantId"] != sim.DefaultOwner.TenantID {
		t.Errorf("tenants = %v", tenants.Value)
	}

	p, err := e.resources().NewProvidersClient().Get(ctx(t), api.Provider, nil)
	if err != nil {
		t.Fatal(err)
	}
	var computes *armresources.ProviderResourceType
	for _, rt := range p.ResourceTypes {
		if *rt.ResourceType == "workspaces/computes" {
			computes = rt
		}
	}
	if *p.RegistrationState != "Registered" || computes == nil || len(computes.APIVersions) == 0 || *computes.APIVersions[0] < "2024-04-01" {
		t.Errorf("provider %s: %s, computes %+v", *p.Namespace, *p.RegistrationState, computes)
	}
	_, err = e.resources().NewProvidersClient().Get(ctx(t), "Microsoft.Nothing", nil)
	if code := errCode(err); code != "InvalidResourceNamespace" {
		t.Errorf("unknown namespace: %v", err)
	}
}

func errCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// A resource group's life through the Go SDK; deleting it deletes the
// workspaces and compute instances inside, quota included, as Azure does.
func TestResourceGroupLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gc := e.resources().NewResourceGroupsClient()
	created, err := gc.CreateOrUpdate(ctx(t), "rg-team", armresources.ResourceGroup{Location: to("East US"), Tags: map[string]*string{"team": to("a")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *created.Location != "eastus" || *created.Properties.ProvisioningState != "Succeeded" || *created.ID != "/subscriptions/"+sub+"/resourceGroups/rg-team" {
		t.Errorf("created %+v", created.ResourceGroup)
	}
	if _, err := gc.CreateOrUpdate(ctx(t), "rg-team", armresources.ResourceGroup{Location: to("westeurope")}, nil); errCode(err) != "InvalidResourceGroupLocation" {
		t.Errorf("moving a group: %v", err)
	}
	if ok, err := gc.CheckExistence(ctx(t), "rg-team", nil); err != nil || !ok.Success {
		t.Errorf("CheckExistence(rg-team) = %v, %v", ok.Success, err)
	}
	if ok, err := gc.CheckExistence(ctx(t), "rg-none", nil); err != nil || ok.Success {
		t.Errorf("CheckExistence(rg-none) = %v, %v", ok.Success, err)
	}
	names := map[string]bool{}
	for pager := gc.NewListPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range page.Value {
			names[*g.Name] = true
		}
	}
	if !names["rg-team"] || !names[rg] {
		t.Errorf("groups listed: %v", names)
	}

	// Nothing can be created in a group that does not exist.
	wc := e.factory.NewWorkspacesClient()
	if _, err := wc.BeginCreateOrUpdate(ctx(t), "rg-none", "ws-x", ml.Workspace{Location: to("eastus")}, nil); errCode(err) != "ResourceGroupNotFound" {
		t.Errorf("workspace in a missing group: %v", err)
	}
	if _, err := e.computes().Get(ctx(t), "rg-none", ws, "ci-x", nil); errCode(err) != "ResourceGroupNotFound" {
		t.Errorf("compute in a missing group: %v", err)
	}

	wp, err := wc.BeginCreateOrUpdate(ctx(t), "rg-team", "ws-team", ml.Workspace{Location: to("eastus")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wp.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	cp, err := e.computes().BeginCreateOrUpdate(ctx(t), "rg-team", "ws-team", "ci-team", instanceBody("Standard_DS3_v2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	if used := vcpusUsed(t, e); used != 4 {
		t.Fatalf("%d vCPUs used after the create, want 4", used)
	}
	var inGroup []string
	for pager := e.resources().NewClient().NewListByResourceGroupPager("rg-team", nil); pager.More(); {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Value {
			inGroup = append(inGroup, *r.Type+" "+*r.Name)
		}
	}
	if want := "Microsoft.MachineLearningServices/workspaces ws-team,Microsoft.MachineLearningServices/workspaces/computes ws-team/ci-team"; strings.Join(inGroup, ",") != want {
		t.Errorf("resources in the group: %v", inGroup)
	}

	dp, err := gc.BeginDelete(ctx(t), "rg-team", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.Get(ctx(t), "rg-team", nil); errCode(err) != "ResourceGroupNotFound" {
		t.Errorf("GET of the deleted group: %v", err)
	}
	if _, err := e.svc.Compute(sim.WorkspaceRef{ResourceGroup: "rg-team", Name: "ws-team"}, "ci-team"); err == nil {
		t.Error("the instance outlived its group")
	}
	if used := vcpusUsed(t, e); used != 0 {
		t.Errorf("%d vCPUs used after the group's delete, want 0", used)
	}
	if doms, _ := e.drv.List(ctx(t)); len(doms) != 0 {
		t.Errorf("domains left: %v", doms)
	}
	if _, err := gc.BeginDelete(ctx(t), "rg-team", nil); errCode(err) != "ResourceGroupNotFound" {
		t.Errorf("deleting a missing group: %v", err)
	}
}

func vcpusUsed(t *testing.T, e *env) int {
	t.Helper()
	us, err := e.svc.Usages("eastus")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		if u.Kind == "total" {
			return u.Current
		}
	}
	t.Fatal("no total usage")
	return 0
}

// The managed identity endpoints give tokens that ARM accepts, to
// azidentity's ManagedIdentityCredential (IDENTITY_ENDPOINT and
// IDENTITY_HEADER, App Service's protocol) and to az's Cloud Shell style
// POST to MSI_ENDPOINT.
func TestManagedIdentityTokens(t *testing.T) {
	e := newEnv(t)
	secret := e.tokens.IdentitySecret(sim.DefaultOwner.ObjectID, sim.DefaultOwner.TenantID)
	t.Setenv("IDENTITY_ENDPOINT", api.IdentityEndpoint(e.srv.URL))
	t.Setenv("IDENTITY_HEADER", secret)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: policy.ClientOptions{Transport: e.srv.Client()},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ml.NewClientFactory(sub, cred, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.NewWorkspacesClient().Get(ctx(t), rg, ws, nil); err != nil {
		t.Fatalf("GET with a managed identity token: %v", err)
	}

	// az 2.45: POST MSI_ENDPOINT, form resource=, header Metadata: true.
	form := url.Values{"resource": {"https://management.core.windows.net/"}}
	req, _ := http.NewRequest("POST", api.MSIEndpoint(e.srv.URL, secret), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Metadata", "true")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresOn   string `json:"expires_on"`
	}
	decodeJSON(t, resp, &tok)
	if tok.TokenType != "Bearer" || tok.ExpiresOn == "" {
		t.Errorf("MSI token = %+v", tok)
	}
	if resp := e.raw("GET", "/subscriptions?api-version=2022-12-01", tok.AccessToken, ""); resp.StatusCode != 200 {
		t.Errorf("GET /subscriptions with the MSI token: %d", resp.StatusCode)
	}

	// A forged secret, and a resource that is not ARM, are refused.
	for _, c := range []struct{ secret, resource string }{
		{secret[:len(secret)-2] + "xx", "https://management.azure.com/"},
		{secret, "https://storage.azure.com/"},
	} {
		req, _ := http.NewRequest("GET", api.IdentityEndpoint(e.srv.URL)+"?api-version=2019-08-01&resource="+url.QueryEscape(c.resource), nil)
		req.Header.Set("X-IDENTITY-HEADER", c.secret)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 4 {
			t.Errorf("secret %q, resource %s: status %d", c.secret, c.resource, resp.StatusCode)
		}
	}
}

// A service principal of the config signs in with its client secret
// through azidentity's ClientSecretCredential (MSAL's OpenID
// configuration and client-credentials grant, against amlsim as the
// authority); its token carries its object ID, so RBAC applies to it.
func TestServicePrincipalClientSecret(t *testing.T) {
	t.Parallel()
	const (
		spID     = "33333333-3333-3333-3333-333333333333"
		clientID = "c1c1c1c1-0000-0000-0000-000000000001"
		secret   = "s3cret-value"
	)
	e := newEnv(t, func(c *sim.Config) {
		c.Principals = append(c.Principals, sim.PrincipalConfig{ObjectID: spID, TenantID: sim.DefaultOwner.TenantID, Name: "ci-pipeline", ClientID: clientID, ClientSecret: secret})
		c.RoleAssignments = append(c.RoleAssignments, sim.RoleAssignmentConfig{Principal: spID, Role: "Reader"})
	})
	opts := &azidentity.ClientSecretCredentialOptions{ClientOptions: policy.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.srv.URL + "/"},
		Transport: e.srv.Client(),
	}, DisableInstanceDiscovery: true}
	cred, err := azidentity.NewClientSecretCredential(sim.DefaultOwner.TenantID, clientID, secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ml.NewClientFactory(sub, cred, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.NewWorkspacesClient().Get(ctx(t), rg, ws, nil); err != nil {
		t.Fatalf("a Reader service principal reads the workspace: %v", err)
	}
	_, err = f.NewComputeClient().BeginCreateOrUpdate(ctx(t), rg, ws, "ci-sp", instanceBody("Standard_DS1_v2"), nil)
	if errCode(err) != "AuthorizationFailed" || !strings.Contains(err.Error(), spID) {
		t.Errorf("a Reader service principal creates: %v", err)
	}

	bad, err := azidentity.NewClientSecretCredential(sim.DefaultOwner.TenantID, clientID, "wrong", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.GetToken(ctx(t), policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}}); err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("a wrong secret: %v", err)
	}
}
