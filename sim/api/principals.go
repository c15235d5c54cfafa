package api

import (
	"net/http"

	"github.com/amlsim/amlsim/sim"
)

// PrincipalsPath lists the principals of the server's config, for
// clients to offer (the CLI's completion of --principal and
// --assigned-user):
//
//	GET /amlsim/principals → {"value": [{"objectId", "tenantId", "displayName"}]}
//
// Any principal of the config may read it, as any member of an Entra
// tenant may read the basic profile of the others (Microsoft Graph's
// default User.ReadBasic.All). Secrets are never listed.
const PrincipalsPath = "/amlsim/principals"

type principalView struct {
	ObjectID    string `json:"objectId"`
	TenantID    string `json:"tenantId"`
	DisplayName string `json:"displayName"`
}

func (s *Server) servePrincipals(w http.ResponseWriter, r *http.Request, who sim.Principal) error {
	if _, ok := s.svc.Principal(who.ObjectID); !ok {
		return sim.Errorf(sim.KindForbidden, "AuthorizationFailed",
			"The client '%s' is not a principal of this directory and cannot list its principals.", who.ObjectID)
	}
	if r.Method != http.MethodGet {
		return sim.Errorf(sim.KindMethod, "HttpMethodNotSupported", "The requested resource does not support http method '%s'.", r.Method)
	}
	list := []principalView{}
	for _, c := range s.svc.Config().Principals {
		p, _ := s.svc.Principal(c.ObjectID)
		list = append(list, principalView{ObjectID: p.ObjectID, TenantID: p.TenantID, DisplayName: p.Name})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": list})
	return nil
}
