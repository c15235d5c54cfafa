package armtemplate

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func planErr(t *testing.T, tmpl string, params map[string]any) error {
	t.Helper()
	tpl, err := Parse([]byte(tmpl))
	if err != nil {
		return err
	}
	_, err = tpl.Plan(params, testScope())
	return err
}

// An unnamed copyIndex() inside a property iteration is the resource
// loop's index (copy-properties.md); without a resource loop it fails.
func TestCopyIndexUnnamedSkipsPropertyLoops(t *testing.T) {
	const tmpl = `{"resources":[{"type":"A.B/c","apiVersion":"1","name":"[concat('r', copyIndex())]","copy":{"name":"rl","count":2},
	"properties":{"copy":[{"name":"items","count":3,"input":{"res":"[copyIndex()]","own":"[copyIndex('items')]"}}]}}]}`
	pl := mustPlan(t, tmpl, nil)
	body, err := pl.Body(pl.Resources[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	items := body["properties"].(map[string]any)["items"].([]any)
	want := []any{
		map[string]any{"res": int64(1), "own": int64(0)},
		map[string]any{"res": int64(1), "own": int64(1)},
		map[string]any{"res": int64(1), "own": int64(2)},
	}
	if !reflect.DeepEqual(items, want) {
		t.Errorf("items = %v, want %v", items, want)
	}
	// No resource loop: the unnamed copyIndex() has nothing to refer to.
	pl = mustPlan(t, `{"resources":[{"type":"A.B/c","apiVersion":"1","name":"x",
	"properties":{"copy":[{"name":"items","count":1,"input":"[copyIndex()]"}]}}]}`, nil)
	if _, err := pl.Body(pl.Resources[0], nil); err == nil || !strings.Contains(err.Error(), "copyIndex") {
		t.Errorf("unnamed copyIndex in a property loop without a resource loop: error %v, want a copyIndex error", err)
	}
}

// reference() and list*() with a name computed from parameters,
// variables or copyIndex make an implicit dependency; with a resource ID
// they make none (resource-dependency.md).
func TestImplicitDependencyComputedNames(t *testing.T) {
	const tmpl = `{"parameters":{"sa":{"type":"string","defaultValue":"store"}},"variables":{"kv":"vault"},"resources":[
	{"type":"Microsoft.Web/sites","apiVersion":"1","name":"[concat('site', copyIndex())]","copy":{"name":"sites","count":2},"properties":{
		"a":"[reference(parameters('sa')).x]",
		"b":"[listKeys(concat('st', copyIndex()), '1').keys]",
		"c":"[reference(format('{0}', variables('kv')))]",
		"d":"[reference(resourceId('Microsoft.Web/serverfarms', 'plan'))]"}},
	{"type":"Microsoft.Storage/storageAccounts","apiVersion":"1","name":"store"},
	{"type":"Microsoft.Storage/storageAccounts","apiVersion":"1","name":"[concat('st', copyIndex())]","copy":{"name":"sts","count":2}},
	{"type":"Microsoft.KeyVault/vaults","apiVersion":"1","name":"vault"},
	{"type":"Microsoft.Web/serverfarms","apiVersion":"1","name":"plan"}
	]}`
	pl := mustPlan(t, tmpl, nil)
	byName := map[string]*Resource{}
	for _, r := range pl.Resources {
		byName[r.Name] = r
	}
	short := func(r *Resource) []string {
		var out []string
		for _, d := range r.DependsOn {
			out = append(out, d[strings.LastIndex(d, "/")+1:])
		}
		return out
	}
	if got, want := short(byName["site0"]), []string{"store", "st0", "vault"}; !reflect.DeepEqual(got, want) {
		t.Errorf("site0 DependsOn = %v, want %v", got, want)
	}
	if got, want := short(byName["site1"]), []string{"store", "st1", "vault"}; !reflect.DeepEqual(got, want) {
		t.Errorf("site1 DependsOn = %v, want %v", got, want)
	}
}

// Two instances with one resource ID fail, even when one has condition
// false (Azure/bicep#6516, #9457).
func TestDuplicateResourcesRejected(t *testing.T) {
	tests := []struct{ name, tmpl, want string }{
		{"plain", `{"resources":[{"type":"Microsoft.Web/sites","apiVersion":"1","name":"a"},
{"type":"Microsoft.Web/sites","apiVersion":"1","name":"A"}]}`,
			"Deployment template validation failed: 'The resource 'Microsoft.Web/sites/A' at line '2' and column '1' is defined multiple times in a template. Please see https://aka.ms/arm-template/#resources for usage details.'."},
		{"condition false", `{"resources":[{"type":"Microsoft.Web/sites","apiVersion":"1","name":"a"},
{"type":"Microsoft.Web/sites","apiVersion":"1","name":"a","condition":false}]}`, "is defined multiple times in a template"},
		{"child", `{"resources":[{"type":"Microsoft.ApiManagement/service","apiVersion":"1","name":"s","resources":[{"type":"users","apiVersion":"1","name":"u"}]},
{"type":"Microsoft.ApiManagement/service/users","apiVersion":"1","name":"s/u"}]}`, "The resource 'Microsoft.ApiManagement/service/s/users/u' at line '2'"},
		{"copy", `{"resources":[{"type":"Microsoft.Web/sites","apiVersion":"1","name":"same","copy":{"name":"l","count":2}}]}`, "is defined multiple times in a template"},
	}
	for _, tt := range tests {
		err := planErr(t, tt.tmpl, nil)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != CodeInvalidTemplate || !strings.Contains(ae.Message, tt.want) {
			t.Errorf("%s: error %v, want InvalidTemplate containing %q", tt.name, err, tt.want)
		}
	}
}

func TestUserFunctionsAndNestedDeploymentsUnsupported(t *testing.T) {
	tests := []struct{ name, tmpl string }{
		{"functions", `{"functions":[{"namespace":"c","members":{"f":{"output":{"type":"string","value":"x"}}}}],"resources":[]}`},
		{"nested deployment", `{"resources":[{"type":"Microsoft.Resources/deployments","apiVersion":"2021-04-01","name":"inner",
			"properties":{"mode":"Incremental","template":{"resources":[{"type":"A.B/c","apiVersion":"1","name":"[unknownFn()]"}]}}}]}`},
		{"computed type", `{"variables":{"t":"Microsoft.Resources/deployments"},"resources":[{"type":"[variables('t')]","apiVersion":"1","name":"inner"}]}`},
	}
	for _, tt := range tests {
		err := planErr(t, tt.tmpl, nil)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: error %v, want ErrUnsupported", tt.name, err)
		}
	}
	// An empty functions section is fine.
	mustPlan(t, `{"functions":[],"resources":[]}`, nil)
}

// A parent's condition does not pass to its children
// (conditional-resource-deployment.md).
func TestConditionDoesNotCascade(t *testing.T) {
	pl := mustPlan(t, `{"resources":[{"type":"Microsoft.Storage/storageAccounts","apiVersion":"1","name":"sa","condition":false,
	"resources":[{"type":"blobServices","apiVersion":"1","name":"default"}]}]}`, nil)
	if len(pl.Resources) != 2 {
		t.Fatalf("resources = %d, want 2", len(pl.Resources))
	}
	if pl.Resources[0].Condition || !pl.Resources[1].Condition {
		t.Errorf("conditions = %v, %v; want false for the parent, true for the child", pl.Resources[0].Condition, pl.Resources[1].Condition)
	}
}

// allowedValues compares strings case-insensitively (Azure/bicep#2489).
func TestAllowedValuesIgnoreCase(t *testing.T) {
	const tmpl = `{"parameters":{"loc":{"type":"string","allowedValues":["EastUS","WestUS"]},"locs":{"type":"array","allowedValues":["EastUS","WestUS"],"defaultValue":["westus"]}}}`
	pl := mustPlan(t, tmpl, map[string]any{"loc": "eastus"})
	if got := pl.Parameters["loc"].Value; got != "eastus" {
		t.Errorf("loc = %v, want the value as given, eastus", got)
	}
	if err := planErr(t, tmpl, map[string]any{"loc": "north"}); err == nil || !strings.Contains(err.Error(), "is not part of the allowed value(s)") {
		t.Errorf("loc north: error %v, want not allowed", err)
	}
}

func TestOutputChecks(t *testing.T) {
	tests := []struct{ name, outputs, want string }{
		{"condition not bool", `"o":{"type":"string","condition":"yes","value":"x"}`, "The output condition must be a boolean"},
		{"string for int", `"o":{"type":"int","value":"1"}`, "does not match the declared type 'Int'"},
		{"int for string", `"o":{"type":"string","value":1}`, "does not match the declared type 'String'"},
		{"array for object", `"o":{"type":"object","value":[1]}`, "does not match the declared type 'Object'"},
		{"json out of range", `"o":{"type":"int","value":"[json('1e400')]"}`, "not valid JSON"},
		{"unknown type", `"o":{"type":"float","value":1}`, "The output type 'float' is not valid"},
	}
	for _, tt := range tests {
		pl := mustPlan(t, `{"outputs":{`+tt.outputs+`}}`, nil)
		_, err := pl.Outputs(nil)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != CodeOutputEvaluationFailed || !strings.Contains(ae.Message, tt.want) {
			t.Errorf("%s: error %v, want %s containing %q", tt.name, err, CodeOutputEvaluationFailed, tt.want)
		}
	}
	pl := mustPlan(t, `{"outputs":{"s":{"type":"securestring","value":"x"},"o":{"type":"secureObject","value":{}},"b":{"type":"bool","value":true}}}`, nil)
	out, err := pl.Outputs(nil)
	if err != nil || out["s"].Type != "SecureString" || out["o"].Type != "SecureObject" || out["b"].Value != true {
		t.Errorf("outputs = %+v, %v; want SecureString, SecureObject and a true Bool", out, err)
	}
}

// Bodies share no map with the plan's cached variables: changing one body
// changes neither the next body nor the variable.
func TestBodiesDoNotShareVariables(t *testing.T) {
	pl := mustPlan(t, `{"variables":{"tags":{"a":"b"}},"resources":[
	{"type":"A.B/c","apiVersion":"1","name":"x","tags":"[variables('tags')]"},
	{"type":"A.B/c","apiVersion":"1","name":"y","tags":"[variables('tags')]"}]}`, nil)
	b1, err := pl.Body(pl.Resources[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	b1["tags"].(map[string]any)["a"] = "changed"
	b2, err := pl.Body(pl.Resources[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := b2["tags"].(map[string]any)["a"]; got != "b" {
		t.Errorf("second body tag = %v, want b", got)
	}
}
