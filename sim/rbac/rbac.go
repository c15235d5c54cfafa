// Package rbac decides who may do what, the way Azure role-based access
// control does: roles are lists of actions (with * wildcards), role
// assignments give a principal a role at a scope, and a request is allowed
// when an assignment at the request's scope or above grants its action.
package rbac

import (
	"strings"
)

// Role is a role definition.
type Role struct {
	// ID is the role definition's GUID (built-in roles have Azure's).
	ID          string   `json:"id" toml:"id"`
	Name        string   `json:"name" toml:"name"`
	Description string   `json:"description,omitempty" toml:"description"`
	Actions     []string `json:"actions" toml:"actions"`
	NotActions  []string `json:"notActions,omitempty" toml:"not_actions"`
	// BuiltIn is true for Owner, Contributor and Reader.
	BuiltIn bool `json:"builtIn,omitempty" toml:"-"`
}

// Assignment gives a principal a role at a scope.
type Assignment struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	PrincipalID string `json:"principalId"`
	RoleID      string `json:"roleDefinitionId"`
	Scope       string `json:"scope"`
}

// Built-in roles, with Azure's IDs.
var (
	Owner = Role{ID: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", Name: "Owner", BuiltIn: true,
		Description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Actions:     []string{"*"}}
	Contributor = Role{ID: "b24988ac-6180-42a0-ab88-20f7382dd24c", Name: "Contributor", BuiltIn: true,
		Description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
		Actions:     []string{"*"},
		NotActions:  []string{"Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write", "Microsoft.Authorization/elevateAccess/Action"}}
	Reader = Role{ID: "acdd72a7-3385-48ef-bd42-f606fba81ae7", Name: "Reader", BuiltIn: true,
		Description: "View all resources, but does not allow you to make any changes.",
		Actions:     []string{"*/read"}}
)

// BuiltIns lists the built-in roles.
func BuiltIns() []Role { return []Role{Owner, Contributor, Reader} }

// Grants reports whether the role allows action.
func (r Role) Grants(action string) bool {
	allowed := false
	for _, a := range r.Actions {
		if Match(a, action) {
			allowed = true
			break
		}
	}
	if !allowed {
		return false
	}
	for _, na := range r.NotActions {
		if Match(na, action) {
			return false
		}
	}
	return true
}

// Match reports whether an action pattern, where * stands for any run of
// characters, matches action. Azure compares actions case-insensitively.
func Match(pattern, action string) bool {
	p, a := strings.ToLower(pattern), strings.ToLower(action)
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == a
	}
	if !strings.HasPrefix(a, parts[0]) {
		return false
	}
	a = a[len(parts[0]):]
	for i, part := range parts[1:] {
		last := i == len(parts)-2
		if last {
			return strings.HasSuffix(a, part)
		}
		j := strings.Index(a, part)
		if j < 0 {
			return false
		}
		a = a[j+len(part):]
	}
	return true
}

// InScope reports whether an assignment at scope covers resource: scope is
// resource itself or one of its ancestors, compared segment by segment and
// ignoring case.
func InScope(scope, resource string) bool {
	s := strings.ToLower(strings.TrimRight(scope, "/"))
	r := strings.ToLower(strings.TrimRight(resource, "/"))
	return s == "" || s == r || strings.HasPrefix(r, s+"/")
}
