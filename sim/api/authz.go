package api

import (
	"net/http"
	"strings"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/rbac"
)

// The ARM authorization API (Microsoft.Authorization) at any scope:
// {scope}/providers/Microsoft.Authorization/roleAssignments[/{name}] and
// {scope}/providers/Microsoft.Authorization/roleDefinitions[/{id}], so
// clients' own role set-up code runs against the simulator too.

const authzProvider = "/providers/microsoft.authorization/"

// splitAuthz splits an authorization path into its scope and the rest
// ("roleAssignments/{name}", …).
func splitAuthz(path string) (scope, rest string, ok bool) {
	path = "/" + strings.TrimLeft(path, "/")
	i := strings.Index(strings.ToLower(path), authzProvider)
	if i < 0 {
		return "", "", false
	}
	return strings.TrimRight(path[:i], "/"), strings.Trim(path[i+len(authzProvider):], "/"), true
}

type roleAssignmentView struct {
	ID         string                  `json:"id"`
	Name       string                  `json:"name"`
	Type       string                  `json:"type"`
	Properties roleAssignmentPropsView `json:"properties"`
}

type roleAssignmentPropsView struct {
	RoleDefinitionID string `json:"roleDefinitionId"`
	PrincipalID      string `json:"principalId"`
	PrincipalType    string `json:"principalType"`
	Scope            string `json:"scope"`
}

type roleDefinitionView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		RoleName         string           `json:"roleName"`
		Description      string           `json:"description,omitempty"`
		Type             string           `json:"type"`
		Permissions      []permissionView `json:"permissions"`
		AssignableScopes []string         `json:"assignableScopes"`
	} `json:"properties"`
}

type permissionView struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

func (s *Server) roleDefinitionID(roleID string) string {
	return "/subscriptions/" + s.sub() + "/providers/Microsoft.Authorization/roleDefinitions/" + roleID
}

func (s *Server) assignmentView(a rbac.Assignment) roleAssignmentView {
	return roleAssignmentView{ID: a.ID, Name: a.Name, Type: "Microsoft.Authorization/roleAssignments",
		Properties: roleAssignmentPropsView{RoleDefinitionID: s.roleDefinitionID(a.RoleID), PrincipalID: a.PrincipalID, PrincipalType: "User", Scope: a.Scope}}
}

func (s *Server) roleView(r rbac.Role) roleDefinitionView {
	var v roleDefinitionView
	v.ID, v.Name, v.Type = s.roleDefinitionID(r.ID), r.ID, "Microsoft.Authorization/roleDefinitions"
	v.Properties.RoleName, v.Properties.Description = r.Name, r.Description
	v.Properties.Type = "CustomRole"
	if r.BuiltIn {
		v.Properties.Type = "BuiltInRole"
	}
	notActions := r.NotActions
	if notActions == nil {
		notActions = []string{}
	}
	v.Properties.Permissions = []permissionView{{Actions: r.Actions, NotActions: notActions, DataActions: []string{}, NotDataActions: []string{}}}
	v.Properties.AssignableScopes = []string{"/"}
	return v
}

// serveAuthorization answers an authorization API request; actions gets
// the RBAC action checked, for the audit log.
func (s *Server) serveAuthorization(w http.ResponseWriter, r *http.Request, who sim.Principal, scope, rest string, actions *[]string) error {
	if !strings.HasPrefix(strings.ToLower(scope+"/"), strings.ToLower(s.svc.SubscriptionScope()+"/")) {
		return sim.Errorf(sim.KindNotFound, "SubscriptionNotFound", "The scope '%s' is not in subscription '%s'.", scope, s.sub())
	}
	kind, name, _ := strings.Cut(rest, "/")
	var action string
	switch {
	case strings.EqualFold(kind, "roleDefinitions") && r.Method == http.MethodGet:
		action = sim.ActRoleRead
	case strings.EqualFold(kind, "roleAssignments") && r.Method == http.MethodGet:
		action = sim.ActAssignmentRead
	case strings.EqualFold(kind, "roleAssignments") && r.Method == http.MethodPut && name != "":
		action = sim.ActAssignmentWrite
	case strings.EqualFold(kind, "roleAssignments") && r.Method == http.MethodDelete && name != "":
		action = sim.ActAssignmentDelete
	case strings.EqualFold(kind, "roleAssignments") || strings.EqualFold(kind, "roleDefinitions"):
		return sim.Errorf(sim.KindMethod, "HttpMethodNotSupported", "The requested resource does not support http method '%s'.", r.Method)
	default:
		return sim.Errorf(sim.KindNotFound, "NotFound", "The requested path '%s' was not found.", r.URL.Path)
	}
	*actions = []string{action}
	if err := s.svc.Authorize(who, action, scope); err != nil {
		return err
	}
	if strings.EqualFold(kind, "roleDefinitions") {
		return s.roleDefinitions(w, name)
	}
	switch r.Method {
	case http.MethodGet:
		if name == "" {
			return s.listAssignments(w, r, scope)
		}
		a, err := s.svc.Assignment(scope, name)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, s.assignmentView(a))
	case http.MethodPut:
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		var body struct {
			Properties struct {
				RoleDefinitionID string `json:"roleDefinitionId"`
				PrincipalID      string `json:"principalId"`
			} `json:"properties"`
		}
		if err := decode(&request{Request: r}, &body); err != nil {
			return err
		}
		if body.Properties.RoleDefinitionID == "" || body.Properties.PrincipalID == "" {
			return sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "properties.roleDefinitionId and properties.principalId are required.")
		}
		a, created, err := s.svc.PutAssignment(scope, name, body.Properties.PrincipalID, body.Properties.RoleDefinitionID)
		if err != nil {
			return err
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, s.assignmentView(a))
	case http.MethodDelete:
		a, existed, err := s.svc.DeleteAssignment(scope, name)
		switch {
		case err != nil:
			return err
		case !existed:
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, http.StatusOK, s.assignmentView(a))
		}
	}
	return nil
}

func (s *Server) listAssignments(w http.ResponseWriter, r *http.Request, scope string) error {
	all, err := s.svc.Assignments(scope)
	if err != nil {
		return err
	}
	// $filter=principalId eq '…' is the filter clients use most.
	principal := ""
	if f := r.URL.Query().Get("$filter"); f != "" {
		if _, v, ok := strings.Cut(f, "principalId eq "); ok {
			principal = strings.Trim(strings.TrimSpace(v), "'")
		}
	}
	out := []roleAssignmentView{}
	for _, a := range all {
		if principal == "" || strings.EqualFold(a.PrincipalID, principal) {
			out = append(out, s.assignmentView(a))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Server) roleDefinitions(w http.ResponseWriter, id string) error {
	if id != "" {
		r, ok := s.svc.Role(id)
		if !ok {
			return sim.Errorf(sim.KindNotFound, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", id)
		}
		writeJSON(w, http.StatusOK, s.roleView(r))
		return nil
	}
	out := []roleDefinitionView{}
	for _, r := range s.svc.Roles() {
		out = append(out, s.roleView(r))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}
