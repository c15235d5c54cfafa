package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/google/uuid"
)

// roleVerbs are the verbs of `amlsim role`: role assignments through the
// ARM authorization API, as `az role assignment` manages them.
func roleVerbs() []verb { return []verb{roleAssignVerb, roleListVerb, roleRemoveVerb} }

// role runs `amlsim role VERB …`.
func role(args []string) error { return dispatch("role", roleVerbs(), args) }

// roleAssignment is a role assignment as the CLI shows it.
type roleAssignment struct {
	Name      string `json:"name"`
	Principal string `json:"principalId"`
	Role      string `json:"role"`
	RoleID    string `json:"roleDefinitionId"`
	Scope     string `json:"scope"`
}

type armRoleAssignment struct {
	Name       string `json:"name"`
	Properties struct {
		RoleDefinitionID string `json:"roleDefinitionId"`
		PrincipalID      string `json:"principalId"`
		Scope            string `json:"scope"`
	} `json:"properties"`
}

type armRoleDefinition struct {
	ID         string `json:"id"`
	Properties struct {
		RoleName string `json:"roleName"`
	} `json:"properties"`
}

// scopeFlag declares --scope, defaulting to the subscription.
func (c *command) scopeFlag() *string {
	return c.fs.String("scope", "", "ARM `SCOPE` such as /subscriptions/…/resourceGroups/rg-local (default: the subscription)")
}

func (c *client) scope(s string) string {
	if s == "" {
		return "/subscriptions/" + c.sub
	}
	return "/" + strings.Trim(s, "/")
}

// roleDefinitions maps role definition IDs to role names and back.
func (c *client) roleDefinitions(ctx context.Context, scope string) (byID, byName map[string]string, err error) {
	var defs struct {
		Value []armRoleDefinition `json:"value"`
	}
	if err := c.getJSON(ctx, scope+"/providers/Microsoft.Authorization/roleDefinitions", nil, &defs); err != nil {
		return nil, nil, err
	}
	byID, byName = map[string]string{}, map[string]string{}
	for _, d := range defs.Value {
		byID[strings.ToLower(d.ID)] = d.Properties.RoleName
		byName[strings.ToLower(d.Properties.RoleName)] = d.ID
	}
	return byID, byName, nil
}

func printAssignments(c *command, list []roleAssignment) error {
	if c.g.output == outputJSON {
		return printJSON(c.stdout, list)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPRINCIPAL\tROLE\tSCOPE")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, a.Principal, a.Role, a.Scope)
	}
	return tw.Flush()
}

var roleAssignVerb = verb{
	name: "assign",
	args: "--principal OBJECT_ID --role ROLE [--scope SCOPE]",
	summary: `Give a principal a role at a scope.

ROLE is Owner, Contributor, Reader or a custom role of the config, by name.
The principal must be one the server's config lists.`,
	setup: func(c *command) runFunc {
		principal := c.fs.String("principal", "", "object `ID` of the principal")
		roleName := c.fs.String("role", "", "role `NAME`")
		scopeArg := c.scopeFlag()
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args); err != nil {
				return err
			}
			if *principal == "" || *roleName == "" {
				return usageErrorf("--principal and --role are required")
			}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			scope := cl.scope(*scopeArg)
			byID, byName, err := cl.roleDefinitions(ctx, scope)
			if err != nil {
				return err
			}
			defID, ok := byName[strings.ToLower(*roleName)]
			if !ok {
				return &cliError{Status: exitNotFound, Code: "RoleDefinitionDoesNotExist", Message: fmt.Sprintf("no role named %q (see 'amlsim role list')", *roleName)}
			}
			name := uuid.NewString()
			body := map[string]any{"properties": map[string]string{"roleDefinitionId": defID, "principalId": *principal}}
			resp, err := cl.do(ctx, http.MethodPut, scope+"/providers/Microsoft.Authorization/roleAssignments/"+name, nil, body)
			if err != nil {
				return err
			}
			a, err := decodeAssignment(resp.body, byID)
			if err != nil {
				return err
			}
			return printAssignments(c, []roleAssignment{a})
		}
	},
}

var roleListVerb = verb{
	name:    "list",
	args:    "[--scope SCOPE] [--principal OBJECT_ID]",
	summary: `List role assignments at a scope and below it.`,
	setup: func(c *command) runFunc {
		principal := c.fs.String("principal", "", "only the assignments of the principal with object `ID`")
		scopeArg := c.scopeFlag()
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args); err != nil {
				return err
			}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			scope := cl.scope(*scopeArg)
			byID, _, err := cl.roleDefinitions(ctx, scope)
			if err != nil {
				return err
			}
			q := url.Values{}
			if *principal != "" {
				q.Set("$filter", "principalId eq '"+*principal+"'")
			}
			var page struct {
				Value []armRoleAssignment `json:"value"`
			}
			if err := cl.getJSON(ctx, scope+"/providers/Microsoft.Authorization/roleAssignments", q, &page); err != nil {
				return err
			}
			list := []roleAssignment{}
			for _, a := range page.Value {
				list = append(list, assignmentOf(a, byID))
			}
			return printAssignments(c, list)
		}
	},
}

var roleRemoveVerb = verb{
	name: "remove",
	args: "NAME --scope SCOPE",
	summary: `Remove the role assignment NAME (a GUID, as 'amlsim role list' shows)
at its scope. Assignments from the server's config cannot be removed.`,
	setup: func(c *command) runFunc {
		scopeArg := c.scopeFlag()
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args, "NAME"); err != nil {
				return err
			}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			resp, err := cl.do(ctx, http.MethodDelete, cl.scope(*scopeArg)+"/providers/Microsoft.Authorization/roleAssignments/"+url.PathEscape(args[0]), nil, nil)
			if err != nil {
				return err
			}
			if resp.status == http.StatusNoContent {
				return &cliError{Status: exitNotFound, Code: "RoleAssignmentNotFound", Message: fmt.Sprintf("no role assignment %s at %s", args[0], cl.scope(*scopeArg))}
			}
			fmt.Fprintf(c.stderr, "removed role assignment %s\n", args[0])
			return nil
		}
	},
}

func assignmentOf(a armRoleAssignment, byID map[string]string) roleAssignment {
	return roleAssignment{Name: a.Name, Principal: a.Properties.PrincipalID, Role: byID[strings.ToLower(a.Properties.RoleDefinitionID)],
		RoleID: a.Properties.RoleDefinitionID, Scope: a.Properties.Scope}
}

func decodeAssignment(b []byte, byID map[string]string) (roleAssignment, error) {
	var a armRoleAssignment
	if err := json.Unmarshal(b, &a); err != nil {
		return roleAssignment{}, fmt.Errorf("decode role assignment: %w", err)
	}
	return assignmentOf(a, byID), nil
}
