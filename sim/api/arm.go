package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/amlsim/amlsim/sim"
)

// The ARM basics clients call before anything else: cloud metadata, the
// subscription and tenant lists, resource providers and resource groups
// (Microsoft.Resources). Shapes follow the examples of
// Azure/azure-rest-api-specs specification/resources/resource-manager/
// Microsoft.Resources/stable/2022-12-01 (GetSubscriptions.json,
// GetTenants.json) and stable/2022-09-01 (resource groups, providers).

// RBAC actions of Microsoft.Resources, as Azure names them.
const (
	ActGroupRead          = "Microsoft.Resources/subscriptions/resourceGroups/read"
	ActGroupWrite         = "Microsoft.Resources/subscriptions/resourceGroups/write"
	ActGroupDelete        = "Microsoft.Resources/subscriptions/resourceGroups/delete"
	ActGroupResourcesRead = "Microsoft.Resources/subscriptions/resourceGroups/resources/read"
	ActProviderRead       = "Microsoft.Resources/subscriptions/providers/read"
	ActProviderRegister   = "Microsoft.MachineLearningServices/register/action"
	ActLocationsRead      = "Microsoft.Resources/subscriptions/locations/read"
	ActDeploymentRead     = "Microsoft.Resources/deployments/read"
	ActDeploymentWrite    = "Microsoft.Resources/deployments/write"
	ActDeploymentDelete   = "Microsoft.Resources/deployments/delete"
	ActDeploymentCancel   = "Microsoft.Resources/deployments/cancel/action"
	ActDeploymentValid    = "Microsoft.Resources/deployments/validate/action"
	ActDeploymentWhatIf   = "Microsoft.Resources/deployments/whatIf/action"
	ActDeploymentOpsRead  = "Microsoft.Resources/deployments/operations/read"
)

// metadataEndpoints serves GET /metadata/endpoints, which needs no token
// on Azure either. Three formats, by api-version:
//   - 2015-01-01 (and none): Azure Stack's object of galleryEndpoint,
//     graphEndpoint, portalEndpoint and authentication. Debian's az 2.45
//     registers a cloud with it (`az cloud register
//     --endpoint-resource-manager URL`: msrestazure azure_cloud.py,
//     _populate_from_metadata_endpoint, METADATA_ENDPOINT_SUFFIX).
//   - 2019-05-01 and 2020-06-01: a list of clouds, the format
//     ARM_CLOUD_METADATA_URL readers take.
//   - 2022-09-01 and later: one cloud, what newer azure-cli reads
//     (azure-cli, command_modules/cloud/custom.py; it needs name,
//     authentication.loginEndpoint, authentication.audiences, suffixes).
//
// The login endpoint and every service endpoint are amlsim itself.
func (s *Server) metadataEndpoints(w http.ResponseWriter, hr *http.Request) error {
	base := "https://" + hr.Host + "/"
	audiences := []string{"https://management.core.windows.net/", "https://management.azure.com/"}
	authentication := map[string]any{"loginEndpoint": base, "audiences": audiences, "tenant": "common", "identityProvider": "AAD"}
	cloud := map[string]any{
		"name":                     "amlsim",
		"portal":                   base,
		"resourceManager":          base,
		"authentication":           authentication,
		"graph":                    base,
		"graphAudience":            base,
		"microsoftGraphResourceId": base,
		"sqlManagement":            base,
		"batch":                    base,
		"gallery":                  base,
		"media":                    base,
		"activeDirectoryDataLake":  base,
		"suffixes": map[string]any{
			"storage": "core.windows.net", "keyVaultDns": "vault.azure.net", "acrLoginServer": "azurecr.io",
			"sqlServerHostname": "database.windows.net",
		},
	}
	switch hr.URL.Query().Get("api-version") {
	case "", "2015-01-01":
		writeJSON(w, http.StatusOK, map[string]any{
			"galleryEndpoint": base, "graphEndpoint": base, "portalEndpoint": base,
			"authentication": map[string]any{"loginEndpoint": base, "audiences": audiences},
		})
	case "2019-05-01", "2020-06-01":
		writeJSON(w, http.StatusOK, []any{cloud})
	default:
		writeJSON(w, http.StatusOK, cloud)
	}
	return nil
}

type subscriptionView struct {
	ID                   string            `json:"id"`
	SubscriptionID       string            `json:"subscriptionId"`
	TenantID             string            `json:"tenantId"`
	DisplayName          string            `json:"displayName"`
	State                string            `json:"state"`
	SubscriptionPolicies map[string]string `json:"subscriptionPolicies"`
	AuthorizationSource  string            `json:"authorizationSource"`
	ManagedByTenants     []any             `json:"managedByTenants"`
}

func (s *Server) subscriptionView() subscriptionView {
	cfg := s.svc.Config()
	return subscriptionView{
		ID: "/subscriptions/" + cfg.Subscription, SubscriptionID: cfg.Subscription, TenantID: cfg.Tenant,
		DisplayName: "amlsim", State: "Enabled",
		SubscriptionPolicies: map[string]string{"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
		AuthorizationSource:  "RoleBased", ManagedByTenants: []any{},
	}
}

// listSubscriptions lists the subscriptions the caller has a role in: the
// simulated one, or none (`az login` then says no subscriptions were
// found, as on Azure).
func (s *Server) listSubscriptions(w http.ResponseWriter, r *request) error {
	out := []subscriptionView{}
	if s.svc.HasRole(r.principal) {
		out = append(out, s.subscriptionView())
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Server) getSubscription(w http.ResponseWriter, r *request) error {
	if !s.svc.HasRole(r.principal) {
		return sim.Errorf(sim.KindNotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", r.vars["sub"])
	}
	writeJSON(w, http.StatusOK, s.subscriptionView())
	return nil
}

func (s *Server) listTenants(w http.ResponseWriter, r *request) error {
	tid := s.svc.Config().Tenant
	writeJSON(w, http.StatusOK, map[string]any{"value": []any{map[string]any{
		"id": "/tenants/" + tid, "tenantId": tid, "tenantCategory": "Home", "displayName": "amlsim",
		"defaultDomain": "amlsim.onmicrosoft.com", "domains": []string{"amlsim.onmicrosoft.com"},
		"tenantType": "AAD", "countryCode": "US",
	}}})
	return nil
}

// listLocations serves GET /subscriptions/{id}/locations: the regions of
// the config.
func (s *Server) listLocations(w http.ResponseWriter, r *request) error {
	out := []any{}
	for _, reg := range s.svc.Config().Regions {
		out = append(out, map[string]any{
			"id": "/subscriptions/" + s.sub() + "/locations/" + reg.Name, "name": reg.Name, "type": "Region",
			"displayName": sim.RegionDisplayName(reg.Name), "regionalDisplayName": sim.RegionDisplayName(reg.Name),
			"metadata": map[string]any{"regionType": "Physical", "regionCategory": "Recommended"},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

// providers are the resource providers served: their resource types and
// api-versions, newest first as ARM lists them.
func (s *Server) providers() []map[string]any {
	var locations []string
	for _, reg := range s.svc.Config().Regions {
		locations = append(locations, sim.RegionDisplayName(reg.Name))
	}
	ml := slices.Clone(publishedVersions)
	slices.Reverse(ml)
	types := func(versions []string, names ...string) []map[string]any {
		var out []map[string]any
		for _, n := range names {
			out = append(out, map[string]any{"resourceType": n, "locations": locations, "apiVersions": versions})
		}
		return out
	}
	sub := "/subscriptions/" + s.sub() + "/providers/"
	return []map[string]any{
		{
			"id": sub + Provider, "namespace": Provider, "registrationState": "Registered", "registrationPolicy": "RegistrationRequired",
			"resourceTypes": types(ml, "workspaces", "workspaces/computes", "locations", "locations/computeOperationsStatus",
				"locations/computeOperationsResults", "locations/workspaceOperationsStatus", "locations/workspaceOperationsResults",
				"locations/usages", "locations/vmsizes", "locations/quotas", "locations/updateQuotas"),
		},
		{
			"id": sub + "Microsoft.Resources", "namespace": "Microsoft.Resources", "registrationState": "Registered", "registrationPolicy": "RegistrationFree",
			"resourceTypes": types(resourcesVersions, "resourceGroups", "deployments", "deployments/operations", "subscriptions", "tenants", "operationresults"),
		},
	}
}

// resourcesVersions are api-versions of Microsoft.Resources that clients
// use (azure-cli 2.45, the Go SDK's armresources); any well-formed
// version is answered.
var resourcesVersions = []string{"2022-12-01", "2022-09-01", "2021-04-01", "2021-01-01", "2020-06-01", "2019-11-01", "2019-10-01", "2019-05-10"}

func (s *Server) listProviders(w http.ResponseWriter, r *request) error {
	writeJSON(w, http.StatusOK, map[string]any{"value": s.providers()})
	return nil
}

func (s *Server) getProvider(w http.ResponseWriter, r *request) error {
	for _, p := range s.providers() {
		if strings.EqualFold(p["namespace"].(string), r.vars["ns"]) {
			writeJSON(w, http.StatusOK, p)
			return nil
		}
	}
	// What ARM says of a namespace it does not know
	// (Azure/aci-connector-k8s#13; the status, 404, is assumed).
	return sim.Errorf(sim.KindNotFound, "InvalidResourceNamespace", "The resource namespace '%s' is invalid.", r.vars["ns"])
}

// --- resource groups ---

type groupView struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	ManagedBy  string            `json:"managedBy,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties map[string]string `json:"properties"`
}

func (s *Server) groupView(g sim.ResourceGroup) groupView {
	return groupView{
		ID: "/subscriptions/" + s.sub() + "/resourceGroups/" + g.Name, Name: g.Name, Type: "Microsoft.Resources/resourceGroups",
		Location: g.Location, ManagedBy: g.ManagedBy, Tags: g.Tags,
		Properties: map[string]string{"provisioningState": g.ProvisioningState()},
	}
}

func (s *Server) listGroups(w http.ResponseWriter, r *request) error {
	list, err := s.svc.ResourceGroups()
	if err != nil {
		return err
	}
	out := []groupView{}
	for _, g := range list {
		// The list holds the groups the caller may read.
		if s.svc.Authorize(r.principal, ActGroupRead, "/subscriptions/"+s.sub()+"/resourceGroups/"+g.Name) == nil {
			out = append(out, s.groupView(g))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Server) getGroup(w http.ResponseWriter, r *request) error {
	g, err := s.svc.ResourceGroup(r.vars["rg"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.groupView(g))
	return nil
}

// headGroup is ResourceGroups_CheckExistence: 204 or 404, no body.
func (s *Server) headGroup(w http.ResponseWriter, r *request) error {
	_, err := s.svc.ResourceGroup(r.vars["rg"])
	return writeExistence(w, err)
}

// writeExistence answers a CheckExistence (HEAD) from the lookup's error:
// 204 when found, 404 with no body when not.
func writeExistence(w http.ResponseWriter, err error) error {
	switch {
	case sim.IsKind(err, sim.KindNotFound):
		w.WriteHeader(http.StatusNotFound)
	case err != nil:
		return err
	default:
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// putGroup is ResourceGroups_CreateOrUpdate: 201 on create, 200 on
// update.
func (s *Server) putGroup(w http.ResponseWriter, r *request) error {
	var body struct {
		Location  string            `json:"location"`
		Tags      map[string]string `json:"tags"`
		ManagedBy string            `json:"managedBy"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if body.Location == "" {
		return sim.Errorf(sim.KindBadRequest, "LocationRequired", "The location property is required for this definition.")
	}
	if err := checkTags(body.Tags); err != nil {
		return err
	}
	g, created, err := s.svc.PutResourceGroup(r.vars["rg"], body.Location, body.Tags, body.ManagedBy)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, s.groupView(g))
	return nil
}

// patchGroup is ResourceGroups_Update: tags and managedBy.
func (s *Server) patchGroup(w http.ResponseWriter, r *request) error {
	g, err := s.svc.ResourceGroup(r.vars["rg"])
	if err != nil {
		return err
	}
	body := struct {
		Tags      map[string]string `json:"tags"`
		ManagedBy string            `json:"managedBy"`
	}{g.Tags, g.ManagedBy}
	if err := decode(r, &body); err != nil {
		return err
	}
	if err := checkTags(body.Tags); err != nil {
		return err
	}
	g, _, err = s.svc.PutResourceGroup(g.Name, g.Location, body.Tags, body.ManagedBy)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.groupView(g))
	return nil
}

// deleteGroup is ResourceGroups_Delete: 202 and a Location to poll until
// everything in the group is gone; a missing group is 404, as ARM answers
// `az group delete` of one.
func (s *Server) deleteGroup(w http.ResponseWriter, r *request) error {
	// The group's deployments stop first: what they created goes with it.
	s.deploys.cancelGroup(r.vars["rg"])
	op, err := s.svc.DeleteResourceGroup(r.principal, r.vars["rg"])
	if err != nil {
		return err
	}
	if op == nil {
		return sim.ResourceGroupNotFound(r.vars["rg"])
	}
	w.Header().Set("Location", r.baseURL()+"/subscriptions/"+s.sub()+"/operationresults/"+op.ID+"?api-version="+r.version)
	s.setRetryAfter(w)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// groupDeleteResult is the Location of a resource group's delete (202
// while it runs, 200 once done), for those who may read the group.
func (s *Server) groupDeleteResult(w http.ResponseWriter, r *request) error {
	op, err := s.svc.Operation("", r.vars["op"])
	if err != nil || op.ResourceGroup == "" {
		return sim.Errorf(sim.KindNotFound, "OperationNotFound", "Operation '%s' was not found.", r.vars["op"])
	}
	if err := s.svc.Authorize(r.principal, ActGroupRead, "/subscriptions/"+s.sub()+"/resourceGroups/"+op.ResourceGroup); err != nil {
		return err
	}
	return s.writeOperationResult(w, r, op)
}

// listGroupResources is Resources_ListByResourceGroup (`az resource list
// -g`): the group's workspaces and compute instances.
func (s *Server) listGroupResources(w http.ResponseWriter, r *request) error {
	list, err := s.svc.Workspaces(r.vars["rg"])
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, ws := range list {
		v := workspaceView(s.sub(), r.baseURL(), ws)
		out = append(out, map[string]any{"id": v.ID, "name": v.Name, "type": v.Type, "location": v.Location, "tags": ws.Tags})
		for skip := 0; ; {
			page, more, err := s.svc.Computes(ws.Ref(), skip)
			if err != nil {
				return err
			}
			for _, inst := range page {
				out = append(out, map[string]any{"id": inst.ResourceID(s.sub()), "name": ws.Name + "/" + inst.Name,
					"type": Provider + "/workspaces/computes", "location": inst.Location, "tags": inst.Tags})
			}
			if !more {
				break
			}
			skip += len(page)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}
