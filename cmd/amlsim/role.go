package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/google/uuid"
	"github.com/spf13/cobra"
)

// newRoleCommand is `amlsim role`: role assignments through the ARM
// authorization API (the SDK's armauthorization), as `az role assignment`
// manages them.
func newRoleCommand(g *globals) *cobra.Command {
	cmd := newGroupCommand("role", "Assign, list and remove roles (Owner, Contributor, Reader, custom)")
	clientFlags(cmd, cmd.PersistentFlags(), g)
	cmd.AddCommand(newRoleAssignCommand(g), newRoleListCommand(g), newRoleRemoveCommand(g))
	return cmd
}

// roleAssignment is a role assignment as the CLI shows it.
type roleAssignment struct {
	Name      string `json:"name"`
	Principal string `json:"principalId"`
	Role      string `json:"role"`
	RoleID    string `json:"roleDefinitionId"`
	Scope     string `json:"scope"`
}

// scopeFlag declares --scope, defaulting to the subscription.
func scopeFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("scope", "", "ARM `SCOPE` such as /subscriptions/…/resourceGroups/rg-local (default: the subscription)")
}

func (c *client) scope(s string) string {
	if s == "" {
		return "/subscriptions/" + c.sub
	}
	return "/" + strings.Trim(s, "/")
}

// roleDefinitions maps role definition IDs to role names and back (keys
// in lower case).
func (c *client) roleDefinitions(ctx context.Context, scope string) (byID, byName map[string]string, err error) {
	byID, byName = map[string]string{}, map[string]string{}
	pager := c.authz.NewRoleDefinitionsClient().NewListPager(scope, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, nil, c.failure(ctx, err)
		}
		for _, d := range page.Value {
			if d.ID == nil || d.Properties == nil {
				continue
			}
			byID[strings.ToLower(*d.ID)] = deref(d.Properties.RoleName)
			byName[strings.ToLower(deref(d.Properties.RoleName))] = *d.ID
		}
	}
	return byID, byName, nil
}

func assignmentOf(a *armauthorization.RoleAssignment, byID map[string]string) roleAssignment {
	r := roleAssignment{Name: deref(a.Name)}
	if p := a.Properties; p != nil {
		r.Principal, r.RoleID, r.Scope = deref(p.PrincipalID), deref(p.RoleDefinitionID), deref(p.Scope)
		r.Role = byID[strings.ToLower(r.RoleID)]
	}
	return r
}

func printAssignments(w io.Writer, output string, list []roleAssignment) error {
	return render(w, output, list, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPRINCIPAL\tROLE\tSCOPE")
		for _, a := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, a.Principal, a.Role, a.Scope)
		}
		return tw.Flush()
	})
}

func newRoleAssignCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "assign --principal OBJECT_ID --role ROLE [--scope SCOPE]",
		Short: "Give a principal a role at a scope",
		Long: `Give a principal a role at a scope.

ROLE is Owner, Contributor, Reader or a custom role of the config, by name.
The principal must be one the server's config lists.`,
		Args: exactArgs(),
	}
	principal := cmd.Flags().String("principal", "", "object `ID` of the principal")
	roleName := cmd.Flags().String("role", "", "role `NAME`")
	scopeArg := scopeFlag(cmd)
	cmd.RegisterFlagCompletionFunc("principal", completePrincipals(g))
	cmd.RegisterFlagCompletionFunc("role", completeRoles(g))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		if *principal == "" || *roleName == "" {
			return usageErrorf("--principal and --role are required")
		}
		cl, err := newClient(g)
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
		r, err := cl.authz.NewRoleAssignmentsClient().Create(ctx, scope, uuid.NewString(), armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{RoleDefinitionID: &defID, PrincipalID: principal},
		}, nil)
		if err != nil {
			return cl.failure(ctx, err)
		}
		return printAssignments(cmd.OutOrStdout(), g.output, []roleAssignment{assignmentOf(&r.RoleAssignment, byID)})
	}
	return cmd
}

func newRoleListCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--scope SCOPE] [--principal OBJECT_ID]",
		Short: "List role assignments at a scope and below it",
		Args:  exactArgs(),
	}
	principal := cmd.Flags().String("principal", "", "only the assignments of the principal with object `ID`")
	scopeArg := scopeFlag(cmd)
	cmd.RegisterFlagCompletionFunc("principal", completePrincipals(g))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		scope := cl.scope(*scopeArg)
		byID, _, err := cl.roleDefinitions(ctx, scope)
		if err != nil {
			return err
		}
		opts := &armauthorization.RoleAssignmentsClientListForScopeOptions{}
		if *principal != "" {
			opts.Filter = to("principalId eq '" + *principal + "'")
		}
		list := []roleAssignment{}
		pager := cl.authz.NewRoleAssignmentsClient().NewListForScopePager(scope, opts)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return cl.failure(ctx, err)
			}
			for _, a := range page.Value {
				list = append(list, assignmentOf(a, byID))
			}
		}
		return printAssignments(cmd.OutOrStdout(), g.output, list)
	}
	return cmd
}

func newRoleRemoveCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove NAME [--scope SCOPE]",
		Short: "Remove a role assignment",
		Long: `Remove the role assignment NAME (a GUID, as 'amlsim role list' shows)
at its scope. Assignments from the server's config cannot be removed.`,
		Args: exactArgs("NAME"),
	}
	scopeArg := scopeFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		scope := cl.scope(*scopeArg)
		var resp *http.Response
		if _, err := cl.authz.NewRoleAssignmentsClient().Delete(runtime.WithCaptureResponse(ctx, &resp), scope, args[0], nil); err != nil {
			return cl.failure(ctx, err)
		}
		if resp.StatusCode == http.StatusNoContent {
			return &cliError{Status: exitNotFound, Code: "RoleAssignmentNotFound", Message: fmt.Sprintf("no role assignment %s at %s", args[0], scope)}
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "removed role assignment %s\n", args[0])
		return nil
	}
	return cmd
}
