package api

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/auth"
)

// amlsim is also the Entra ID authority of its cloud (the cloud metadata's
// loginEndpoint), for the service principals of its config: the OAuth2
// client-credentials grant as MSAL drives it, which is what
// ClientSecretCredential, EnvironmentCredential (AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET, AZURE_TENANT_ID, AZURE_AUTHORITY_HOST) and
// DefaultAzureCredential use:
//
//   - GET /{tenant}/v2.0/.well-known/openid-configuration: the tenant's
//     endpoints;
//   - POST /{tenant}/oauth2/v2.0/token (scope=…/.default) and the v1
//     /{tenant}/oauth2/token (resource=…): the token.
//
// Errors are Entra ID's: an OAuth error with an AADSTS code.
//
// MSAL first asks login.microsoftonline.com to discover an authority host
// it does not know (AzureAD/microsoft-authentication-library-for-go,
// apps/internal/oauth/ops/authority, AADInstanceDiscovery), which fails
// offline: clients turn that off, as for any private cloud
// (DisableInstanceDiscovery in azidentity's options).

// TokenTTL is how long a client-credentials token is valid: Entra ID's
// default, about an hour.
const TokenTTL = time.Hour

// oauthPath reports whether a request is for the authority's endpoints.
func oauthPath(path string) bool {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segs) == 4 && segs[1] == "v2.0" && segs[2] == ".well-known" && segs[3] == "openid-configuration":
		return true
	case len(segs) == 3 && segs[1] == "oauth2" && segs[2] == "token",
		len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token":
		return true
	}
	return false
}

func (s *Server) serveOAuth(w http.ResponseWriter, hr *http.Request, who *sim.Principal) error {
	base := "https://" + hr.Host
	segs := strings.Split(strings.Trim(hr.URL.Path, "/"), "/")
	switch {
	case segs[1] == "v2.0":
		t := base + "/" + segs[0]
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                t + "/v2.0",
			"authorization_endpoint":                t + "/oauth2/v2.0/authorize",
			"token_endpoint":                        t + "/oauth2/v2.0/token",
			"device_authorization_endpoint":         t + "/oauth2/v2.0/devicecode",
			"jwks_uri":                              base + "/common/discovery/v2.0/keys",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post"},
			"response_types_supported":              []string{"code", "id_token", "token"},
			"tenant_region_scope":                   "NA",
		})
		return nil
	}
	if hr.Method != http.MethodPost {
		return sim.Errorf(sim.KindMethod, "HttpMethodNotSupported", "The requested resource does not support http method '%s'.", hr.Method)
	}
	hr.Body = http.MaxBytesReader(w, hr.Body, 64<<10)
	if err := hr.ParseForm(); err != nil {
		return oauthError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain a form.")
	}
	tenant := segs[0]
	f := hr.PostForm
	if g := f.Get("grant_type"); g != "client_credentials" {
		return oauthError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '"+g+"'. amlsim's authority serves the client credentials grant of its service principals.")
	}
	p, secret, ok := s.svc.ServicePrincipal(f.Get("client_id"))
	if !ok {
		// Entra ID's answer for an unknown application
		// (MicrosoftDocs/azure-docs#21690; 400 as in diffblue/gitlab's
		// recorded response).
		return oauthError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			"Application with identifier '"+f.Get("client_id")+"' was not found in the directory '"+tenant+"'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.")
	}
	if subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), []byte(secret)) != 1 {
		// 401 (OfficeDev/microsoft-365-agents-toolkit#8621).
		return oauthError(w, http.StatusUnauthorized, "invalid_client", 7000215,
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+f.Get("client_id")+"'.")
	}
	if tenant != "common" && tenant != "organizations" && !strings.EqualFold(tenant, p.TenantID) {
		return oauthError(w, http.StatusBadRequest, "invalid_request", 90002, "Tenant '"+tenant+"' not found: the service principal is in tenant '"+p.TenantID+"'.")
	}
	*who = p
	resource := f.Get("resource") // v1
	if scopes := strings.Fields(f.Get("scope")); len(scopes) > 0 {
		resource = strings.TrimSuffix(scopes[0], ".default")
	}
	if !slices.Contains(auth.Audiences, resource) {
		return oauthError(w, http.StatusBadRequest, "invalid_resource", 500011, strings.TrimPrefix(unknownResource(resource, p.TenantID), "AADSTS500011: "))
	}
	tok, err := s.tokens.MintFor(resource, p.ObjectID, p.TenantID, p.Name, TokenTTL)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(TokenTTL.Seconds()), "ext_expires_in": int(TokenTTL.Seconds()),
		"access_token": tok,
	})
	return nil
}

// oauthError writes Entra ID's error body: error, error_description
// starting with the AADSTS code, error_codes.
func oauthError(w http.ResponseWriter, status int, code string, aadsts int, text string) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(map[string]any{
		"error":             code,
		"error_description": "AADSTS" + strconv.Itoa(aadsts) + ": " + text,
		"error_codes":       []int{aadsts},
		"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
	})
}

// unknownResource is Entra ID's AADSTS500011 for a token asked for a
// resource it does not know (rootinc/laravel-azure-middleware#51,
// Azure/azure-cli#29113), with what amlsim serves; its status is not seen
// in the sources (400 here).
func unknownResource(resource, tenant string) string {
	return "AADSTS500011: The resource principal named " + resource + " was not found in the tenant named " + tenant +
		". This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant. amlsim serves tokens for Azure Resource Manager only."
}
