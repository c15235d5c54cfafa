package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/auth"
)

// IdentityPathPrefix is where amlsim serves managed identity tokens, so
// the credentials every Azure SDK and az already have get tokens from it
// with no custom code (`amlsim env` prints the variables):
//
//   - IDENTITY_ENDPOINT = https://ADDR/amlsim/identity/token and
//     IDENTITY_HEADER = the identity's secret: App Service's protocol,
//     which azidentity (Go, Python, .NET, JS, Java) picks when both are
//     set: GET ?api-version=2019-08-01&resource=R with the header
//     X-IDENTITY-HEADER (Azure/azure-sdk-for-go, sdk/azidentity/
//     managed_identity_client.go). The 2017-09-01 form (header "secret",
//     MSI_SECRET) is answered too.
//   - MSI_ENDPOINT = https://ADDR/amlsim/identity/SECRET/token: Cloud
//     Shell's protocol, which Debian's az 2.45 uses for `az login
//     --identity` when MSI_ENDPOINT is set: POST form resource=R with the
//     header Metadata: true and no secret (msrestazure
//     azure_active_directory.py, get_msi_token), so the secret is in the
//     path.
//
// A token is valid for an hour and carries the identity's principal.
const IdentityPathPrefix = "/amlsim/identity/"

// IdentityTokenTTL is how long a managed identity token is valid.
const IdentityTokenTTL = time.Hour

// IdentityEndpoint returns the IDENTITY_ENDPOINT of a server at base
// (https://ADDR).
func IdentityEndpoint(base string) string { return base + IdentityPathPrefix + "token" }

// MSIEndpoint returns the MSI_ENDPOINT of a server at base for the
// identity with that secret.
func MSIEndpoint(base, secret string) string { return base + IdentityPathPrefix + secret + "/token" }

// identityError is how the identity endpoints refuse a request: an OAuth
// error body, as Entra ID's and App Service's endpoints give.
type identityError struct {
	status int
	Code   string `json:"error"`
	Text   string `json:"error_description"`
}

func (e *identityError) Error() string { return e.Code + ": " + e.Text }

func (s *Server) serveIdentity(w http.ResponseWriter, hr *http.Request, who *sim.Principal) error {
	err := s.identityToken(w, hr, who)
	if ie, ok := err.(*identityError); ok {
		writeJSON(w, ie.status, ie)
		return nil
	}
	return err
}

func (s *Server) identityToken(w http.ResponseWriter, hr *http.Request, who *sim.Principal) error {
	rest := strings.TrimPrefix(hr.URL.Path, IdentityPathPrefix)
	var secret string
	switch parts := strings.Split(rest, "/"); {
	case rest == "token" && hr.Method == http.MethodGet:
		secret = hr.Header.Get("X-IDENTITY-HEADER")
		if secret == "" {
			secret = hr.Header.Get("secret")
		}
	case len(parts) == 2 && parts[1] == "token" && (hr.Method == http.MethodPost || hr.Method == http.MethodGet):
		secret = parts[0]
	default:
		return sim.Errorf(sim.KindNotFound, "NotFound", "The requested path '%s' was not found.", hr.URL.Path)
	}
	if secret == "" {
		return &identityError{http.StatusBadRequest, "invalid_request", "The request has no X-IDENTITY-HEADER header."}
	}
	oid, tid, err := s.tokens.IdentityOf(secret)
	if err != nil {
		return &identityError{http.StatusUnauthorized, "invalid_client", "The identity secret is not valid for this amlsim (was its home's token key replaced?)."}
	}
	p, known := s.svc.Principal(oid)
	if !known {
		return &identityError{http.StatusBadRequest, "invalid_client", "The identity's principal '" + oid + "' is not in amlsim's config."}
	}
	*who = p
	hr.Body = http.MaxBytesReader(w, hr.Body, 64<<10)
	if err := hr.ParseForm(); err != nil {
		return &identityError{http.StatusBadRequest, "invalid_request", "The request body is not a form."}
	}
	resource := hr.Form.Get("resource")
	if resource == "" {
		return &identityError{http.StatusBadRequest, "invalid_request", "The request has no resource parameter."}
	}
	if !slices.Contains(auth.Audiences, resource) {
		return &identityError{http.StatusBadRequest, "invalid_resource", unknownResource(resource, tid)}
	}
	tok, err := s.tokens.MintFor(resource, oid, tid, p.Name, IdentityTokenTTL)
	if err != nil {
		return err
	}
	now := s.svc.Now()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(map[string]string{
		"access_token": tok,
		"token_type":   "Bearer",
		"resource":     resource,
		"client_id":    oid,
		"expires_in":   strconv.Itoa(int(IdentityTokenTTL.Seconds())),
		"expires_on":   strconv.FormatInt(now.Add(IdentityTokenTTL).Unix(), 10),
		"not_before":   strconv.FormatInt(now.Unix(), 10),
	})
}
