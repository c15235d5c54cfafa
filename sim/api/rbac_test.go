package api_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/rbac"
)

const (
	oidContrib = "22222222-2222-2222-2222-222222222222"
	oidReader  = "33333333-3333-3333-3333-333333333333"
	oidCustom  = "44444444-4444-4444-4444-444444444444"
	oidNobody  = "55555555-5555-5555-5555-555555555555"
	oidUnknown = "66666666-6666-6666-6666-666666666666"
	tenant     = "00000000-0000-0000-0000-0000000000aa"
	wsScope    = "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.MachineLearningServices/workspaces/" + ws
)

// instanceUser is the custom role of S10: the four actions a data
// scientist needs on an instance made for them, and reading it.
var instanceUser = rbac.Role{Name: "Compute Instance User", ID: "5f5a8f5e-0000-4000-8000-000000000001", Actions: []string{
	"Microsoft.MachineLearningServices/workspaces/computes/read",
	"Microsoft.MachineLearningServices/workspaces/computes/start/action",
	"Microsoft.MachineLearningServices/workspaces/computes/stop/action",
	"Microsoft.MachineLearningServices/workspaces/computes/restart/action",
	"Microsoft.MachineLearningServices/workspaces/computes/applicationaccess/action",
}}

func rbacEnv(t *testing.T) *env { return newEnv(t, rbacConfig) }

// rbacConfig adds a principal per kind of access: a workspace Contributor,
// a subscription Reader, a data scientist with instanceUser, and nobody.
func rbacConfig(c *sim.Config) {
	for _, oid := range []string{oidContrib, oidReader, oidCustom, oidNobody} {
		c.Principals = append(c.Principals, sim.PrincipalConfig{ObjectID: oid, TenantID: tenant, Name: "user-" + oid[:1]})
	}
	c.Roles = append(c.Roles, instanceUser)
	c.RoleAssignments = append(c.RoleAssignments,
		sim.RoleAssignmentConfig{Principal: oidContrib, Role: "Contributor", Scope: wsScope},
		sim.RoleAssignmentConfig{Principal: oidReader, Role: "Reader"},
		sim.RoleAssignmentConfig{Principal: oidCustom, Role: "Compute Instance User", Scope: wsScope})
}

// as returns clients acting as principal oid.
func (e *env) as(oid string) (*ml.ClientFactory, *armauthorization.ClientFactory) {
	e.t.Helper()
	tok, err := e.tokens.Mint(oid, tenant, "", time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	f, err := ml.NewClientFactory(sub, staticToken(tok), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := armauthorization.NewClientFactory(sub, staticToken(tok), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return f, a
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	if err != nil {
		return -1
	}
	return http.StatusOK
}

func TestRBACMatrix(t *testing.T) {
	t.Parallel()
	e := rbacEnv(t)
	e.mustCreate("ci-target", "Standard_D1_v2")
	type call func(f *ml.ClientFactory) error
	ops := map[string]call{
		"read": func(f *ml.ClientFactory) error {
			_, err := f.NewComputeClient().Get(ctx(t), rg, ws, "ci-target", nil)
			return err
		},
		"list": func(f *ml.ClientFactory) error {
			_, err := f.NewComputeClient().NewListPager(rg, ws, nil).NextPage(ctx(t))
			return err
		},
		"create": func(f *ml.ClientFactory) error {
			_, err := f.NewComputeClient().BeginCreateOrUpdate(ctx(t), rg, ws, "ci-new", instanceBody("Standard_D1_v2"), nil)
			return err
		},
		"stop": func(f *ml.ClientFactory) error {
			_, err := f.NewComputeClient().BeginStop(ctx(t), rg, ws, "ci-target", nil)
			return err
		},
		"start": func(f *ml.ClientFactory) error {
			_, err := f.NewComputeClient().BeginStart(ctx(t), rg, ws, "ci-target", nil)
			return err
		},
		"restart": func(f *ml.ClientFactory) error {
			_, err := f.NewComputeClient().BeginRestart(ctx(t), rg, ws, "ci-target", nil)
			return err
		},
		"delete": func(f *ml.ClientFactory) error {
			_, err := f.NewComputeClient().BeginDelete(ctx(t), rg, ws, "ci-target", ml.UnderlyingResourceActionDelete, nil)
			return err
		},
		"usages": func(f *ml.ClientFactory) error {
			_, err := f.NewUsagesClient().NewListPager("eastus", nil).NextPage(ctx(t))
			return err
		},
		"updateQuotas": func(f *ml.ClientFactory) error {
			_, err := f.NewQuotasClient().Update(ctx(t), "eastus", ml.QuotaUpdateParameters{Value: []*ml.QuotaBaseProperties{}}, nil)
			return err
		},
	}
	// allowed[principal] lists the operations it may do; all others get 403.
	allowed := map[string]map[string]bool{
		oidContrib: {"read": true, "list": true, "create": true, "stop": true, "start": true, "restart": true, "delete": true},
		oidReader:  {"read": true, "list": true, "usages": true},
		oidCustom:  {"read": true, "list": true, "stop": true, "start": true, "restart": true},
		oidNobody:  {},
	}
	for oid, may := range allowed {
		f, _ := e.as(oid)
		for name, op := range ops {
			if name == "delete" && may[name] {
				continue // keep the target; Owner deletes below
			}
			before := e.state("ci-target")
			st := statusOf(op(f))
			switch {
			case may[name] && (st == 401 || st == 403):
				t.Errorf("%s %s: status %d, want allowed", oid[:1], name, st)
			case !may[name] && st != 403:
				t.Errorf("%s %s: status %d, want 403", oid[:1], name, st)
			case !may[name]:
				if after := e.state("ci-target"); after != before {
					t.Errorf("%s %s was refused but moved the instance from %s to %s", oid[:1], name, before, after)
				}
			}
			// Let a transition started by an allowed call settle.
			for i := 0; i < 100 && sim.Transitional(sim.State(e.state("ci-target"))); i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	if _, err := e.computes().Get(ctx(t), rg, ws, "ci-new", nil); statusOf(err) != 200 {
		t.Errorf("ci-new (created by the Contributor) missing: %v", err)
	}

	// The refusal carries Azure's message.
	f, _ := e.as(oidReader)
	_, err := f.NewComputeClient().BeginStop(ctx(t), rg, ws, "ci-target", nil)
	re := armErr(t, err, 403, "AuthorizationFailed")
	want := "The client '" + oidReader + "' with object id '" + oidReader + "' does not have authorization to perform action 'Microsoft.MachineLearningServices/workspaces/computes/stop/action' over scope '" + wsScope + "/computes/ci-target' or the scope is invalid."
	if got := re.Error(); !strings.Contains(got, want) {
		t.Errorf("message = %s\nwant it to contain %s", got, want)
	}

	// A principal the simulator does not know is refused outright.
	uf, _ := e.as(oidUnknown)
	_, err = uf.NewComputeClient().Get(ctx(t), rg, ws, "ci-target", nil)
	armErr(t, err, 401, "InvalidAuthenticationToken")
}

func TestRoleAssignmentsAPI(t *testing.T) {
	t.Parallel()
	e := rbacEnv(t)
	e.mustCreate("ci-target", "Standard_D1_v2")
	_, ownerAuthz := e.as(sim.DefaultOwner.ObjectID)
	nobody, _ := e.as(oidNobody)
	_, contribAuthz := e.as(oidContrib)
	read := func() int {
		_, err := nobody.NewComputeClient().Get(ctx(t), rg, ws, "ci-target", nil)
		return statusOf(err)
	}
	if st := read(); st != 403 {
		t.Fatalf("nobody reads before the assignment: %d, want 403", st)
	}

	// Role definitions list the built-ins and the custom role.
	defs := map[string]string{}
	pager := ownerAuthz.NewRoleDefinitionsClient().NewListPager(wsScope, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Value {
			defs[*d.Properties.RoleName] = *d.ID
		}
	}
	for _, n := range []string{"Owner", "Contributor", "Reader", "Compute Instance User"} {
		if defs[n] == "" {
			t.Errorf("role definitions lack %s: %v", n, defs)
		}
	}

	const name = "7d9e2b1c-0000-4000-8000-0000000000a1"
	params := armauthorization.RoleAssignmentCreateParameters{Properties: &armauthorization.RoleAssignmentProperties{
		RoleDefinitionID: to(defs["Reader"]), PrincipalID: to(oidNobody),
	}}
	// A Contributor may not assign roles.
	_, err := contribAuthz.NewRoleAssignmentsClient().Create(ctx(t), wsScope, name, params, nil)
	armErr(t, err, 403, "AuthorizationFailed")
	if st := read(); st != 403 {
		t.Errorf("a refused assignment took effect: %d", st)
	}

	ra, err := ownerAuthz.NewRoleAssignmentsClient().Create(ctx(t), wsScope, name, params, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *ra.Properties.Scope != wsScope || *ra.Properties.PrincipalID != oidNobody {
		t.Errorf("assignment = %+v", ra.Properties)
	}
	if st := read(); st != 200 {
		t.Errorf("nobody reads after a Reader assignment: %d, want 200", st)
	}
	_, err = ownerAuthz.NewRoleAssignmentsClient().Create(ctx(t), wsScope, "7d9e2b1c-0000-4000-8000-0000000000a2", params, nil)
	armErr(t, err, 409, "RoleAssignmentExists")

	// Bad assignments change nothing.
	bad := []struct {
		name   string
		params armauthorization.RoleAssignmentCreateParameters
		scope  string
		code   string
	}{
		{"unknown role", armauthorization.RoleAssignmentCreateParameters{Properties: &armauthorization.RoleAssignmentProperties{RoleDefinitionID: to("/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-0000-0000-00000000dead"), PrincipalID: to(oidNobody)}}, wsScope, "RoleDefinitionDoesNotExist"},
		{"unknown principal", armauthorization.RoleAssignmentCreateParameters{Properties: &armauthorization.RoleAssignmentProperties{RoleDefinitionID: to(defs["Owner"]), PrincipalID: to(oidUnknown)}}, wsScope, "PrincipalNotFound"},
	}
	for _, b := range bad {
		_, err := ownerAuthz.NewRoleAssignmentsClient().Create(ctx(t), b.scope, "7d9e2b1c-0000-4000-8000-0000000000b1", b.params, nil)
		armErr(t, err, 400, b.code)
	}
	if _, err := ownerAuthz.NewRoleAssignmentsClient().Create(ctx(t), "/subscriptions/99999999-0000-0000-0000-000000000000", "7d9e2b1c-0000-4000-8000-0000000000b2", params, nil); statusOf(err) != 404 {
		t.Errorf("assignment in another subscription: %v, want 404", err)
	}

	if _, err := ownerAuthz.NewRoleAssignmentsClient().Delete(ctx(t), wsScope, name, nil); err != nil {
		t.Fatal(err)
	}
	if st := read(); st != 403 {
		t.Errorf("nobody reads after the assignment is deleted: %d, want 403", st)
	}
}

// TestCreateOnBehalfOf: an admin creates an instance for a data scientist
// (S9), who then operates it with the four permissions of S10 alone.
func TestCreateOnBehalfOf(t *testing.T) {
	t.Parallel()
	e := rbacEnv(t)
	body := instanceBody("Standard_D1_v2")
	body.Properties.(*ml.ComputeInstance).Properties.PersonalComputeInstanceSettings = &ml.PersonalComputeInstanceSettings{
		AssignedUser: &ml.AssignedUser{ObjectID: to(oidCustom), TenantID: to(tenant)},
	}
	if _, err := e.create("ci-for-ds", body); err != nil {
		t.Fatal(err)
	}
	ci := e.get("ci-for-ds")
	if *ci.Properties.CreatedBy.UserID != sim.DefaultOwner.ObjectID {
		t.Errorf("createdBy = %s, want the admin", *ci.Properties.CreatedBy.UserID)
	}
	if u := ci.Properties.PersonalComputeInstanceSettings.AssignedUser; u == nil || *u.ObjectID != oidCustom {
		t.Errorf("assignedUser = %+v, want the data scientist", u)
	}
	inst, err := e.svc.Compute(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "ci-for-ds")
	if err != nil || inst.Owner.ObjectID != oidCustom {
		t.Errorf("owner = %+v, %v; want the data scientist", inst.Owner, err)
	}
	ds, _ := e.as(oidCustom)
	p, err := ds.NewComputeClient().BeginStop(ctx(t), rg, ws, "ci-for-ds", nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx(t), fastPoll)
	}
	if err != nil {
		t.Errorf("the assigned user stops the instance: %v", err)
	}

	for name, u := range map[string]*ml.AssignedUser{
		"malformed object id": {ObjectID: to("not-a-guid"), TenantID: to(tenant)},
		"unknown user":        {ObjectID: to(oidUnknown), TenantID: to(tenant)},
	} {
		b := instanceBody("Standard_D1_v2")
		b.Properties.(*ml.ComputeInstance).Properties.PersonalComputeInstanceSettings = &ml.PersonalComputeInstanceSettings{AssignedUser: u}
		if _, err := e.create("ci-bad-owner", b); statusOf(err) != 400 {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
	if _, err := e.computes().Get(ctx(t), rg, ws, "ci-bad-owner", nil); statusOf(err) != 404 {
		t.Errorf("a refused create left an instance: %v", err)
	}
}
