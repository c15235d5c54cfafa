package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/sim"
)

// quickstart is the unmodified quickstart template of Azure/azure-quickstart-templates
// (machine-learning-compute-create-computeinstance) and its parameters.
func quickstart(t *testing.T) (template map[string]any, params map[string]any) {
	t.Helper()
	read := func(name string, v any) {
		b, err := os.ReadFile("../armtemplate/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	var file struct{ Parameters map[string]any }
	read("azuredeploy.json", &template)
	read("azuredeploy.parameters.json", &file)
	return template, file.Parameters
}

func deploymentBody(template, params map[string]any) armresources.Deployment {
	return armresources.Deployment{Properties: &armresources.DeploymentProperties{
		Mode: to(armresources.DeploymentModeIncremental), Template: template, Parameters: params,
	}}
}

// The seed's quickstart, deployed with the Go SDK's deployments client:
// the instance is created for the objectId given, with its inline
// creation script and its three schedules, and the deployment reports its
// operation and the resource it deployed.
func TestDeployQuickstartTemplate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *sim.Config) {
		c.Principals = append(c.Principals, sim.PrincipalConfig{ObjectID: "22222222-2222-2222-2222-222222222222", TenantID: sim.DefaultOwner.TenantID, Name: "data scientist"})
	})
	template, params := quickstart(t)
	params["workspaceName"] = map[string]any{"value": ws}
	params["computeName"] = map[string]any{"value": "ci-arm"}
	params["objectId"] = map[string]any{"value": "22222222-2222-2222-2222-222222222222"}
	params["inlineCommand"] = map[string]any{"value": "echo hello > /tmp/hello"}
	dc := e.resources().NewDeploymentsClient()
	p, err := dc.BeginCreateOrUpdate(ctx(t), rg, "quickstart", deploymentBody(template, params), nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := p.PollUntilDone(ctx(t), fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	props := done.Properties
	if *props.ProvisioningState != armresources.ProvisioningStateSucceeded || len(props.OutputResources) != 1 ||
		!strings.HasSuffix(*props.OutputResources[0].ID, "/workspaces/"+ws+"/computes/ci-arm") {
		t.Fatalf("deployment: %s, resources %v", *props.ProvisioningState, props.OutputResources)
	}

	ci := e.get("ci-arm")
	pr := ci.Properties
	if *pr.State != ml.ComputeInstanceStateRunning || *pr.VMSize != "Standard_DS3_v2" {
		t.Errorf("instance %s, size %s", *pr.State, *pr.VMSize)
	}
	if u := pr.PersonalComputeInstanceSettings; u == nil || *u.AssignedUser.ObjectID != "22222222-2222-2222-2222-222222222222" {
		t.Errorf("assigned user: %+v", u)
	}
	if n := len(pr.Schedules.ComputeStartStop); n != 3 {
		t.Errorf("%d schedules, want 3", n)
	}
	script := pr.SetupScripts.Scripts.CreationScript
	if want := base64.StdEncoding.EncodeToString([]byte("echo hello > /tmp/hello")); *script.ScriptSource != "inline" || *script.ScriptData != want {
		t.Errorf("creation script %s %q, want inline %q", *script.ScriptSource, *script.ScriptData, want)
	}

	var ops []*armresources.DeploymentOperation
	for pager := e.resources().NewDeploymentOperationsClient().NewListPager(rg, "quickstart", nil); pager.More(); {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, page.Value...)
	}
	if len(ops) != 1 || *ops[0].Properties.ProvisioningState != "Succeeded" || *ops[0].Properties.TargetResource.ResourceName != ws+"/ci-arm" {
		t.Errorf("operations: %+v", ops)
	}
	list := 0
	for pager := dc.NewListByResourceGroupPager(rg, nil); pager.More(); {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		list += len(page.Value)
	}
	if list != 1 {
		t.Errorf("%d deployments listed, want 1", list)
	}
	// The record goes; what it deployed stays, as on ARM.
	dp, err := dc.BeginDelete(ctx(t), rg, "quickstart", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx(t), fastPoll); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.Get(ctx(t), rg, "quickstart", nil); errCode(err) != "DeploymentNotFound" {
		t.Errorf("GET of the deleted deployment: %v", err)
	}
	e.get("ci-arm")
}

// A resource that fails fails the deployment with one detail per failed
// resource; what was created before stays (Incremental), and a resource
// depending on the failed one is not attempted.
func TestDeploymentFailurePerResource(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	compute := func(name, size string, dependsOn ...string) map[string]any {
		return map[string]any{
			"type": "Microsoft.MachineLearningServices/workspaces/computes", "apiVersion": "2024-04-01",
			"name": ws + "/" + name, "location": "eastus", "dependsOn": dependsOn,
			"properties": map[string]any{"computeType": "ComputeInstance", "properties": map[string]any{"vmSize": size}},
		}
	}
	template := map[string]any{
		"$schema":        "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
		"contentVersion": "1.0.0.0",
		"resources": []any{
			compute("ci-good", "Standard_DS1_v2"),
			compute("ci-bad", "Standard_Nope"),
			compute("ci-after", "Standard_DS1_v2", "[resourceId('Microsoft.MachineLearningServices/workspaces/computes', '"+ws+"', 'ci-bad')]"),
			// No closing bracket: a literal name, spaces and all, which
			// the resource provider refuses (it once crashed the server).
			map[string]any{"type": "Microsoft.MachineLearningServices/workspaces/computes", "apiVersion": "2024-04-01",
				"name": "[concat('" + ws + "/', parameters('x')", "properties": map[string]any{}},
		},
		"outputs": map[string]any{"id": map[string]any{"type": "string", "value": "[resourceId('Microsoft.MachineLearningServices/workspaces/computes', '" + ws + "', 'ci-good')]"}},
	}
	dc := e.resources().NewDeploymentsClient()
	p, err := dc.BeginCreateOrUpdate(ctx(t), rg, "partial", deploymentBody(template, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.PollUntilDone(ctx(t), fastPoll)
	if errCode(err) != "DeploymentFailed" {
		t.Fatalf("deployment: %v", err)
	}
	got, err := dc.Get(ctx(t), rg, "partial", nil)
	if err != nil {
		t.Fatal(err)
	}
	de := got.Properties.Error
	if *got.Properties.ProvisioningState != "Failed" || de == nil || len(de.Details) != 2 || *de.Details[0].Code == "" {
		t.Fatalf("deployment %s, error %+v", *got.Properties.ProvisioningState, de)
	}
	e.get("ci-good")
	for _, name := range []string{"ci-bad", "ci-after"} {
		if _, err := e.svc.Compute(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, name); err == nil {
			t.Errorf("%s exists", name)
		}
	}
}

// Bad deployments are answered at once, as ARM validates before it
// accepts, and change nothing: no deployment record, no instance.
func TestBadTemplatesAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	path := "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.Resources/deployments/bad?api-version=2022-09-01"
	template, params := quickstart(t)
	params["workspaceName"] = map[string]any{"value": ws}
	params["computeName"] = map[string]any{"value": "ci-bad"}
	params["objectId"] = map[string]any{"value": sim.DefaultOwner.ObjectID}
	body := func(tmpl any, params any) string {
		b, _ := json.Marshal(map[string]any{"properties": map[string]any{"mode": "Incremental", "template": tmpl, "parameters": params}})
		return string(b)
	}
	withResource := func(mutate func(r map[string]any)) map[string]any {
		var copyT map[string]any
		b, _ := json.Marshal(template)
		json.Unmarshal(b, &copyT)
		mutate(copyT["resources"].([]any)[0].(map[string]any))
		return copyT
	}
	missing := map[string]any{}
	for k, v := range params {
		if k != "objectId" {
			missing[k] = v
		}
	}
	cases := []struct {
		name, body string
		status     int
		code, text string
	}{
		{"broken JSON", `{"properties": {"mode": "Incremental", "template": {"resources": [}}}`, 400, "InvalidRequestContent", ""},
		{"expression syntax", body(withResource(func(r map[string]any) { r["name"] = "[concat(parameters('workspaceName'), '/']" }), params), 400, "InvalidTemplate", "concat(parameters('workspaceName'), '/'"},
		{"unknown function", body(withResource(func(r map[string]any) { r["location"] = "[nosuch()]" }), params), 400, "InvalidTemplate", "nosuch"},
		{"circular dependsOn", body(map[string]any{
			"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "contentVersion": "1.0.0.0",
			"resources": []any{
				map[string]any{"type": "Microsoft.MachineLearningServices/workspaces/computes", "apiVersion": "2024-04-01", "name": ws + "/ci-a", "dependsOn": []any{"[resourceId('Microsoft.MachineLearningServices/workspaces/computes', '" + ws + "', 'ci-b')]"}, "properties": map[string]any{}},
				map[string]any{"type": "Microsoft.MachineLearningServices/workspaces/computes", "apiVersion": "2024-04-01", "name": ws + "/ci-b", "dependsOn": []any{"[resourceId('Microsoft.MachineLearningServices/workspaces/computes', '" + ws + "', 'ci-a')]"}, "properties": map[string]any{}},
			}}, nil), 400, "InvalidTemplate", "Circular dependency"},
		{"missing parameter", body(template, missing), 400, "InvalidTemplate", "objectId"},
		{"unsupported type", body(withResource(func(r map[string]any) { r["type"] = "Microsoft.Storage/storageAccounts"; r["name"] = "sa1" }), params), 400, "InvalidTemplate", "storageAccounts"},
		{"over 4 MB", body(withResource(func(r map[string]any) { r["tags"] = map[string]any{"pad": strings.Repeat("x", 4<<20)} }), params), 413, "RequestContentTooLarge", ""},
	}
	for _, c := range cases {
		resp := e.raw("PUT", path, e.token, c.body)
		var got struct {
			Error struct{ Code, Message string }
		}
		json.NewDecoder(resp.Body).Decode(&got)
		if resp.StatusCode != c.status || got.Error.Code != c.code || !strings.Contains(got.Error.Message, c.text) {
			t.Errorf("%s: %d %s %q, want %d %s containing %q", c.name, resp.StatusCode, got.Error.Code, got.Error.Message, c.status, c.code, c.text)
		}
	}
	if resp := e.raw("GET", path, e.token, ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a refused deployment left a record: %d", resp.StatusCode)
	}
	if _, err := e.svc.Compute(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "ci-bad"); err == nil {
		t.Error("a refused deployment created its instance")
	}
}

// The body az 2.45 sends: the template file's text spliced in after an
// unquoted key, comments and all (azure-cli JsonCTemplatePolicy); ARM's
// Json.NET reads it, and so does amlsim.
func TestDeploymentBodyAsAzSendsIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	path := "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.Resources/deployments/jsonc?api-version=2021-04-01"
	body := `{"properties": {"parameters": {"n": {"value": "ci-jsonc"}}, "mode": "Incremental", template:{
  // a comment, as template files may have
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {"n": {"type": "string"}},
  "resources": [
    {
      "type": "Microsoft.MachineLearningServices/workspaces/computes", "apiVersion": "2021-07-01",
      "name": "[concat('` + ws + `', '/', parameters('n'))]", "location": "[resourceGroup().location]",
      /* block comment */
      "properties": {"computeType": "ComputeInstance", "properties": {"vmSize": "Standard_DS1_v2"}},
    },
  ],
  "outputs": {"name": {"type": "string", "value": "[parameters('n')]"}}
}}}`
	resp := e.raw("PUT", path, e.token, body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for range 100 {
		d, err := e.resources().NewDeploymentsClient().Get(ctx(t), rg, "jsonc", nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := *d.Properties.ProvisioningState; st == "Succeeded" {
			out := d.Properties.Outputs.(map[string]any)["name"].(map[string]any)
			if out["value"] != "ci-jsonc" {
				t.Errorf("outputs: %v", d.Properties.Outputs)
			}
			e.get("ci-jsonc")
			return
		} else if st == "Failed" {
			t.Fatalf("deployment failed: %+v", d.Properties.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the deployment did not end")
}

// What-if tells Create, NoChange and Modify apart, deploying nothing;
// reference() reads a resource the deployment created, through the API.
func TestWhatIfAndReference(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	template := func(description string) map[string]any {
		return map[string]any{
			"$schema":        "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
			"contentVersion": "1.0.0.0",
			"resources": []any{map[string]any{
				"type": "Microsoft.MachineLearningServices/workspaces/computes", "apiVersion": "2024-04-01",
				"name": ws + "/ci-whatif", "location": "eastus",
				"properties": map[string]any{"computeType": "ComputeInstance", "description": description,
					"properties": map[string]any{"vmSize": "Standard_DS1_v2"}},
			}},
			"outputs": map[string]any{"state": map[string]any{"type": "string",
				"value": "[reference(resourceId('Microsoft.MachineLearningServices/workspaces/computes', '" + ws + "', 'ci-whatif'), '2024-04-01').properties.state]"}},
		}
	}
	dc := e.resources().NewDeploymentsClient()
	whatIf := func(description string) *armresources.WhatIfChange {
		t.Helper()
		p, err := dc.BeginWhatIf(ctx(t), rg, "wi", armresources.DeploymentWhatIf{Properties: &armresources.DeploymentWhatIfProperties{
			Mode: to(armresources.DeploymentModeIncremental), Template: template(description)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.PollUntilDone(ctx(t), fastPoll)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Properties.Changes) != 1 {
			t.Fatalf("%d changes", len(res.Properties.Changes))
		}
		return res.Properties.Changes[0]
	}
	if c := whatIf("first"); *c.ChangeType != armresources.ChangeTypeCreate {
		t.Errorf("before the deployment: %s", *c.ChangeType)
	}
	if _, err := e.svc.Compute(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "ci-whatif"); err == nil {
		t.Fatal("what-if created the instance")
	}
	p, err := dc.BeginCreateOrUpdate(ctx(t), rg, "wi", deploymentBody(template("first"), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := p.PollUntilDone(ctx(t), fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	if out := done.Properties.Outputs.(map[string]any)["state"].(map[string]any); out["value"] != "Running" {
		t.Errorf("output state = %v, want Running (from reference())", out)
	}
	if c := whatIf("first"); *c.ChangeType != armresources.ChangeTypeNoChange {
		t.Errorf("the same template again: %s %+v", *c.ChangeType, c.Delta)
	}
	c := whatIf("second")
	if *c.ChangeType != armresources.ChangeTypeModify || len(c.Delta) != 1 || *c.Delta[0].Path != "properties.description" {
		t.Errorf("a new description: %s %+v", *c.ChangeType, c.Delta)
	}
}

// A running deployment can be canceled: it ends Canceled before its next
// resource; canceling it again is ARM's 409.
func TestCancelDeployment(t *testing.T) {
	t.Parallel()
	e := newEnvDriver(t, []fake.Option{fake.WithDelays(fake.Delays{Start: time.Second})})
	resource := func(name string) map[string]any {
		return map[string]any{
			"type": "Microsoft.MachineLearningServices/workspaces/computes", "apiVersion": "2024-04-01",
			"name": ws + "/" + name, "location": "eastus",
			"properties": map[string]any{"computeType": "ComputeInstance", "properties": map[string]any{"vmSize": "Standard_DS1_v2"}},
		}
	}
	template := map[string]any{"resources": []any{resource("ci-c1"), resource("ci-c2")}}
	dc := e.resources().NewDeploymentsClient()
	if _, err := dc.BeginCreateOrUpdate(ctx(t), rg, "slow", deploymentBody(template, nil), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // ci-c1 is starting
	if _, err := dc.Cancel(ctx(t), rg, "slow", nil); err != nil {
		t.Fatal(err)
	}
	var d armresources.DeploymentsClientGetResponse
	for range 100 {
		var err error
		if d, err = dc.Get(ctx(t), rg, "slow", nil); err != nil {
			t.Fatal(err)
		}
		if *d.Properties.ProvisioningState != "Running" && *d.Properties.ProvisioningState != "Accepted" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := *d.Properties.ProvisioningState; st != "Canceled" {
		t.Fatalf("state after cancel: %s", st)
	}
	if _, err := e.svc.Compute(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, "ci-c2"); err == nil {
		t.Error("a canceled deployment went on to its next resource")
	}
	if _, err := dc.Cancel(ctx(t), rg, "slow", nil); errCode(err) != "DeploymentCannotBeCancelled" {
		t.Errorf("second cancel: %v", err)
	}
}
