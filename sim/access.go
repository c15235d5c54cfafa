package sim

import (
	"sort"
	"strings"

	"github.com/amlsim/amlsim/sim/rbac"
	"github.com/amlsim/amlsim/sim/store"
	"github.com/google/uuid"
)

// Actions of the Azure ML resource provider and of Microsoft.Authorization
// that the API checks.
const (
	ActComputeRead       = "Microsoft.MachineLearningServices/workspaces/computes/read"
	ActComputeWrite      = "Microsoft.MachineLearningServices/workspaces/computes/write"
	ActComputeDelete     = "Microsoft.MachineLearningServices/workspaces/computes/delete"
	ActComputeStart      = "Microsoft.MachineLearningServices/workspaces/computes/start/action"
	ActComputeStop       = "Microsoft.MachineLearningServices/workspaces/computes/stop/action"
	ActComputeRestart    = "Microsoft.MachineLearningServices/workspaces/computes/restart/action"
	ActComputeListNodes  = "Microsoft.MachineLearningServices/workspaces/computes/listNodes/action"
	ActComputeListKeys   = "Microsoft.MachineLearningServices/workspaces/computes/listKeys/action"
	ActApplicationAccess = "Microsoft.MachineLearningServices/workspaces/computes/applicationaccess/action"
	ActCheckName         = "Microsoft.MachineLearningServices/workspaces/checkComputeNameAvailability/action"
	ActWorkspaceRead     = "Microsoft.MachineLearningServices/workspaces/read"
	ActWorkspaceWrite    = "Microsoft.MachineLearningServices/workspaces/write"
	ActWorkspaceDelete   = "Microsoft.MachineLearningServices/workspaces/delete"
	ActUsagesRead        = "Microsoft.MachineLearningServices/locations/usages/read"
	ActVMSizesRead       = "Microsoft.MachineLearningServices/locations/vmsizes/read"
	ActQuotasRead        = "Microsoft.MachineLearningServices/locations/quotas/read"
	ActQuotasWrite       = "Microsoft.MachineLearningServices/locations/updateQuotas/action"
	ActAssignmentRead    = "Microsoft.Authorization/roleAssignments/read"
	ActAssignmentWrite   = "Microsoft.Authorization/roleAssignments/write"
	ActAssignmentDelete  = "Microsoft.Authorization/roleAssignments/delete"
	ActRoleRead          = "Microsoft.Authorization/roleDefinitions/read"
)

// SubscriptionScope is the scope of the whole subscription.
func (s *Service) SubscriptionScope() string { return "/subscriptions/" + s.cfg.Subscription }

// Principal returns the known principal with an object ID; one the config
// gives no tenant is in the subscription's tenant.
func (s *Service) Principal(objectID string) (Principal, bool) {
	for _, p := range s.cfg.Principals {
		if strings.EqualFold(p.ObjectID, objectID) {
			return s.principalOf(p), true
		}
	}
	return Principal{}, false
}

func (s *Service) principalOf(c PrincipalConfig) Principal {
	p := Principal{ObjectID: c.ObjectID, TenantID: c.TenantID, Name: c.Name}
	if p.TenantID == "" {
		p.TenantID = s.cfg.Tenant
	}
	return p
}

// ServicePrincipal returns the service principal with a client
// (application) ID and its secret; ok is false when the config has none.
func (s *Service) ServicePrincipal(clientID string) (p Principal, secret string, ok bool) {
	for _, c := range s.cfg.Principals {
		if c.ClientID != "" && strings.EqualFold(c.ClientID, clientID) {
			return s.principalOf(c), c.ClientSecret, true
		}
	}
	return Principal{}, "", false
}

// Roles lists the built-in and custom roles.
func (s *Service) Roles() []rbac.Role {
	roles := rbac.BuiltIns()
	for _, r := range s.cfg.Roles {
		if r.ID == "" {
			r.ID = uuid.NewSHA1(uuid.NameSpaceOID, []byte("amlsim-role:"+r.Name)).String()
		}
		roles = append(roles, r)
	}
	return roles
}

// Role finds a role by name or ID, ignoring case.
func (s *Service) Role(nameOrID string) (rbac.Role, bool) {
	id := nameOrID[strings.LastIndex(nameOrID, "/")+1:]
	for _, r := range s.Roles() {
		if strings.EqualFold(r.Name, nameOrID) || strings.EqualFold(r.ID, id) {
			return r, true
		}
	}
	return rbac.Role{}, false
}

// configAssignments are the config's assignments, with stable IDs.
func (s *Service) configAssignments() []rbac.Assignment {
	var out []rbac.Assignment
	for _, a := range s.cfg.RoleAssignments {
		role, ok := s.Role(a.Role)
		if !ok {
			continue // Validate refuses these
		}
		scope := a.Scope
		if scope == "" {
			scope = s.SubscriptionScope()
		}
		name := uuid.NewSHA1(uuid.NameSpaceOID, []byte(strings.ToLower(a.Principal+"|"+role.ID+"|"+scope))).String()
		out = append(out, rbac.Assignment{ID: scope + "/providers/Microsoft.Authorization/roleAssignments/" + name, Name: name, PrincipalID: a.Principal, RoleID: role.ID, Scope: scope})
	}
	return out
}

// Assignments lists the role assignments at scope or below it, or all of
// them when scope is empty.
func (s *Service) Assignments(scope string) ([]rbac.Assignment, error) {
	all := s.configAssignments()
	err := s.st.View(func(tx *store.Tx) error {
		stored, err := assignments(tx)
		all = append(all, stored...)
		return err
	})
	var out []rbac.Assignment
	for _, a := range all {
		if scope == "" || rbac.InScope(scope, a.Scope) || rbac.InScope(a.Scope, scope) {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// HasRole reports whether p holds a role anywhere in the subscription:
// such principals see it in their subscription list, as on Azure.
func (s *Service) HasRole(p Principal) bool {
	assignments, err := s.Assignments("")
	if err != nil {
		return false
	}
	for _, a := range assignments {
		if strings.EqualFold(a.PrincipalID, p.ObjectID) {
			return true
		}
	}
	return false
}

// Authorize checks that p may perform action over scope. An unknown
// principal is refused as unauthenticated; a known one without a role
// granting the action gets Azure's AuthorizationFailed.
func (s *Service) Authorize(p Principal, action, scope string) error {
	if _, ok := s.Principal(p.ObjectID); !ok {
		return Errorf(KindUnauthorized, "InvalidAuthenticationToken",
			"The access token is for principal '%s', which this simulator does not know. Add it to the config's principals.", p.ObjectID)
	}
	assignments, err := s.Assignments("")
	if err != nil {
		return err
	}
	for _, a := range assignments {
		if !strings.EqualFold(a.PrincipalID, p.ObjectID) || !rbac.InScope(a.Scope, scope) {
			continue
		}
		if role, ok := s.Role(a.RoleID); ok && role.Grants(action) {
			return nil
		}
	}
	return Errorf(KindForbidden, "AuthorizationFailed",
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
		p.ObjectID, p.ObjectID, action, scope)
}

// PutAssignment creates a role assignment named name (a GUID) at scope.
func (s *Service) PutAssignment(scope, name, principalID, roleDefinitionID string) (rbac.Assignment, bool, error) {
	if !guidRE.MatchString(name) {
		return rbac.Assignment{}, false, Errorf(KindBadRequest, "InvalidRoleAssignmentId", "The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", name)
	}
	if !rbac.InScope(s.SubscriptionScope(), scope) {
		return rbac.Assignment{}, false, Errorf(KindBadRequest, "InvalidScope", "The scope '%s' is not within subscription '%s'.", scope, s.cfg.Subscription)
	}
	if _, ok := s.Principal(principalID); !ok {
		return rbac.Assignment{}, false, Errorf(KindBadRequest, "PrincipalNotFound", "Principal %s does not exist in the directory %s.", strings.ReplaceAll(principalID, "-", ""), s.cfg.Tenant)
	}
	role, ok := s.Role(roleDefinitionID)
	if !ok {
		return rbac.Assignment{}, false, Errorf(KindBadRequest, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", roleDefinitionID)
	}
	a := rbac.Assignment{ID: scope + "/providers/Microsoft.Authorization/roleAssignments/" + name, Name: name, PrincipalID: principalID, RoleID: role.ID, Scope: scope}
	existing, err := s.Assignments("")
	if err != nil {
		return a, false, err
	}
	for _, e := range existing {
		same := strings.EqualFold(e.PrincipalID, principalID) && e.RoleID == role.ID && strings.EqualFold(e.Scope, scope)
		if strings.EqualFold(e.Name, name) {
			if same {
				return e, false, nil
			}
			return a, false, Errorf(KindConflict, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
		}
		if same {
			return a, false, Errorf(KindConflict, "RoleAssignmentExists", "The role assignment already exists.")
		}
	}
	err = s.st.Update(func(tx *store.Tx) error { return putAssignment(tx, name, a) })
	return a, true, err
}

// Assignment returns the role assignment named name at scope.
func (s *Service) Assignment(scope, name string) (rbac.Assignment, error) {
	all, err := s.Assignments("")
	if err != nil {
		return rbac.Assignment{}, err
	}
	for _, a := range all {
		if strings.EqualFold(a.Name, name) && strings.EqualFold(a.Scope, scope) {
			return a, nil
		}
	}
	return rbac.Assignment{}, Errorf(KindNotFound, "RoleAssignmentNotFound", "The role assignment '%s' is not found.", name)
}

// DeleteAssignment removes a role assignment made through the API; the
// config's cannot be removed. It reports whether one existed.
func (s *Service) DeleteAssignment(scope, name string) (rbac.Assignment, bool, error) {
	a, err := s.Assignment(scope, name)
	if err != nil {
		return a, false, nil
	}
	for _, c := range s.configAssignments() {
		if c.Name == a.Name {
			return a, false, Errorf(KindConflict, "RoleAssignmentFromConfig", "The role assignment '%s' comes from the simulator's config and cannot be deleted through the API.", name)
		}
	}
	err = s.st.Update(func(tx *store.Tx) error { return deleteAssignment(tx, name) })
	return a, true, err
}
