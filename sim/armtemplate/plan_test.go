package armtemplate

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quickstartParams reads azuredeploy.parameters.json as the server gets
// it: {"p":{"value":…}} unwrapped into p → value.
func quickstartParams(t *testing.T) map[string]any {
	t.Helper()
	var f struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(readTestdata(t, "azuredeploy.parameters.json"), &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for k, v := range f.Parameters {
		out[k] = v.Value
	}
	out["workspaceName"] = "ws"
	out["computeName"] = "ci"
	return out
}

func mustPlan(t *testing.T, tmpl string, params map[string]any) *Plan {
	t.Helper()
	tpl, err := Parse([]byte(tmpl))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	pl, err := tpl.Plan(params, testScope())
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return pl
}

func TestQuickstartComputeInstance(t *testing.T) {
	tpl, err := Parse(readTestdata(t, "azuredeploy.json"))
	if err != nil {
		t.Fatal(err)
	}
	params := quickstartParams(t)
	pl, err := tpl.Plan(params, testScope())
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Resources) != 1 {
		t.Fatalf("resources = %d, want 1", len(pl.Resources))
	}
	r := pl.Resources[0]
	if r.Type != "Microsoft.MachineLearningServices/workspaces/computes" || r.Name != "ws/ci" || r.APIVersion != "2021-07-01" || !r.Condition {
		t.Errorf("resource = %s %s %s cond %v, want Microsoft.MachineLearningServices/workspaces/computes ws/ci 2021-07-01 cond true", r.Type, r.Name, r.APIVersion, r.Condition)
	}
	wantID := "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/computes/ci"
	if r.ID != wantID {
		t.Errorf("ID = %q, want %q", r.ID, wantID)
	}
	if r.Location != "westeurope" {
		t.Errorf("Location = %q, want the resource group's", r.Location)
	}
	body, err := pl.Body(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(body); err != nil {
		t.Fatalf("body does not marshal: %v", err)
	}
	props := body["properties"].(map[string]any)
	if props["computeType"] != "ComputeInstance" {
		t.Errorf("computeType = %v, want ComputeInstance", props["computeType"])
	}
	inner := props["properties"].(map[string]any)
	script := inner["setupScripts"].(map[string]any)["scripts"].(map[string]any)["creationScript"].(map[string]any)
	if want := base64.StdEncoding.EncodeToString([]byte("ls")); script["scriptData"] != want {
		t.Errorf("scriptData = %v, want %v", script["scriptData"], want)
	}
	if script["scriptArguments"] != "" {
		t.Errorf("scriptArguments = %v, want empty", script["scriptArguments"])
	}
	if v, ok := inner["subnet"]; !ok || v != nil {
		t.Errorf("subnet = %v (present %v), want null", v, ok)
	}
	if !reflect.DeepEqual(inner["schedules"], normalize(params["schedules"])) {
		t.Errorf("schedules = %v, want them passed through", inner["schedules"])
	}
	user := inner["personalComputeInstanceSettings"].(map[string]any)["assignedUser"].(map[string]any)
	if user["tenantId"] != "tid" || user["objectId"] != "GEN-AZUREAD-OBJECTID" {
		t.Errorf("assignedUser = %v, want tenantId tid and objectId GEN-AZUREAD-OBJECTID", user)
	}
	if body["location"] != "westeurope" || inner["vmSize"] != "Standard_DS3_v2" {
		t.Errorf("location %v vmSize %v, want westeurope Standard_DS3_v2", body["location"], inner["vmSize"])
	}
	if got := pl.Parameters["location"]; got.Type != "String" || got.Value != "westeurope" {
		t.Errorf("echoed location = %+v, want {String westeurope}", got)
	}

	// With a subnet the variable is used.
	params["vnetResourceGroupName"], params["vnetName"], params["subnetName"] = "netrg", "vn", "sn"
	pl, err = tpl.Plan(params, testScope())
	if err != nil {
		t.Fatal(err)
	}
	body, err = pl.Body(pl.Resources[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	subnet := body["properties"].(map[string]any)["properties"].(map[string]any)["subnet"]
	want := map[string]any{"id": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/netrg/providers/Microsoft.Network/virtualNetworks/vn/subnets/sn"}
	if !reflect.DeepEqual(subnet, want) {
		t.Errorf("subnet = %v, want %v", subnet, want)
	}
}

func TestQuickstartPrereqOrder(t *testing.T) {
	tpl, err := Parse(readTestdata(t, "prereq.azuredeploy.json"))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := tpl.Plan(map[string]any{"workspaceName": "ws"}, testScope())
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range pl.Resources {
		types = append(types, r.Type)
	}
	want := []string{"Microsoft.Storage/storageAccounts", "Microsoft.KeyVault/vaults", "Microsoft.Insights/components", "Microsoft.MachineLearningServices/workspaces"}
	if !reflect.DeepEqual(types, want) {
		t.Errorf("order = %v, want %v", types, want)
	}
	ws := pl.Resources[3]
	if len(ws.DependsOn) != 3 {
		t.Errorf("workspace DependsOn = %v, want 3", ws.DependsOn)
	}
	sa := "sa" + uniqueString("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg")
	if pl.Resources[0].Name != sa {
		t.Errorf("storage name = %q, want %q", pl.Resources[0].Name, sa)
	}
	out, err := pl.Outputs(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := out["workspaceName"]; got.Type != "String" || got.Value != "ws" {
		t.Errorf("output = %+v, want {String ws}", got)
	}
	body, err := pl.Body(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body["identity"].(map[string]any)["type"] != "systemAssigned" {
		t.Errorf("identity = %v, want type systemAssigned", body["identity"])
	}
	for _, k := range []string{"dependsOn", "type", "name", "apiVersion"} {
		if _, ok := body[k]; ok {
			t.Errorf("body has %q, want it left out", k)
		}
	}
}

// Templates as az sends them: comments and trailing commas.
const commentedTemplate = `{
  // a comment
  "resources": [
    /* block */
    {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2019-06-01", "name": "sa",},
  ],
}`

func TestParseAcceptsCommentsAndTrailingCommas(t *testing.T) {
	pl := mustPlan(t, commentedTemplate, nil)
	if len(pl.Resources) != 1 || pl.Resources[0].Line != 5 || pl.Resources[0].Column != 5 {
		t.Errorf("resources = %+v, want one at line 5 column 5", pl.Resources)
	}
}

func TestCopyLoopsAndDependencies(t *testing.T) {
	const tmpl = `{"resources":[
	{"type":"Microsoft.Network/networkInterfaces","apiVersion":"1","name":"[concat('nic', copyIndex(1))]","copy":{"name":"nics","count":3},
	 "properties":{"copy":[{"name":"ipConfigurations","count":2,"input":{"name":"[concat('ip', copyIndex('ipConfigurations'))]"}}]}},
	{"type":"Microsoft.Compute/virtualMachines","apiVersion":"1","name":"vm","dependsOn":["nics"]},
	{"type":"Microsoft.Web/sites","apiVersion":"1","name":"[concat('s', copyIndex())]","copy":{"name":"sites","count":4,"mode":"serial","batchSize":2}}
	]}`
	pl := mustPlan(t, tmpl, nil)
	var names []string
	for _, r := range pl.Resources {
		names = append(names, r.Name)
	}
	want := []string{"nic1", "nic2", "nic3", "vm", "s0", "s1", "s2", "s3"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("order = %v, want %v", names, want)
	}
	vm := pl.Resources[3]
	if len(vm.DependsOn) != 3 || !strings.HasSuffix(vm.DependsOn[2], "/networkInterfaces/nic3") {
		t.Errorf("vm DependsOn = %v, want the three nics", vm.DependsOn)
	}
	s2 := pl.Resources[6]
	if len(s2.DependsOn) != 2 || !strings.HasSuffix(s2.DependsOn[0], "/sites/s0") {
		t.Errorf("s2 DependsOn = %v, want the first batch", s2.DependsOn)
	}
	body, err := pl.Body(pl.Resources[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	ips := body["properties"].(map[string]any)["ipConfigurations"]
	if !reflect.DeepEqual(ips, []any{map[string]any{"name": "ip0"}, map[string]any{"name": "ip1"}}) {
		t.Errorf("ipConfigurations = %v, want ip0 and ip1", ips)
	}
}

func TestChildResourcesAndOrder(t *testing.T) {
	// The child comes first in template order but depends on later resources.
	const tmpl = `{"resources":[
	{"type":"Microsoft.Storage/storageAccounts/blobServices/containers","apiVersion":"1","name":"sa/default/c","dependsOn":["[resourceId('Microsoft.Storage/storageAccounts/blobServices','sa','default')]"]},
	{"type":"Microsoft.Storage/storageAccounts","apiVersion":"1","name":"sa","condition":"[equals(1,1)]",
	 "resources":[{"type":"blobServices","apiVersion":"1","name":"default"}]},
	{"type":"Microsoft.Web/sites","apiVersion":"1","name":"off","condition":false}
	]}`
	pl := mustPlan(t, tmpl, nil)
	var names []string
	for _, r := range pl.Resources {
		names = append(names, r.Type+" "+r.Name)
	}
	want := []string{"Microsoft.Storage/storageAccounts sa", "Microsoft.Storage/storageAccounts/blobServices sa/default", "Microsoft.Storage/storageAccounts/blobServices/containers sa/default/c", "Microsoft.Web/sites off"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("order = %v, want %v", names, want)
	}
	if pl.Resources[3].Condition {
		t.Errorf("Condition = true, want false for the resource with condition false")
	}
	if len(pl.Resources[1].DependsOn) != 1 || !strings.HasSuffix(pl.Resources[1].DependsOn[0], "storageAccounts/sa") {
		t.Errorf("child DependsOn = %v, want its parent", pl.Resources[1].DependsOn)
	}
}

type fakeRef map[string]any

func (f fakeRef) Reference(id, apiVersion string, full bool) (any, error) {
	v, ok := f[id]
	if !ok {
		return nil, errors.New("not found")
	}
	return v, nil
}

func TestReferenceInBodyAndOutputs(t *testing.T) {
	const tmpl = `{"resources":[
	{"type":"Microsoft.Storage/storageAccounts","apiVersion":"2019-06-01","name":"sa"},
	{"type":"Microsoft.Web/sites","apiVersion":"1","name":"site","properties":{"ep":"[reference('sa').primaryEndpoints.blob]"}}
	],"outputs":{"ep":{"type":"string","value":"[reference(resourceId('Microsoft.Storage/storageAccounts','sa'),'2019-06-01').primaryEndpoints.blob]"},
	"skipped":{"type":"string","condition":false,"value":"[reference('nope')]"},
	"list":{"type":"array","copy":{"count":2,"input":"[copyIndex()]"}}}}`
	pl := mustPlan(t, tmpl, nil)
	id := pl.Resources[0].ID
	// reference('sa') by name makes site depend on sa without dependsOn.
	if !reflect.DeepEqual(pl.Resources[1].DependsOn, []string{id}) {
		t.Errorf("site DependsOn = %v, want [%s]", pl.Resources[1].DependsOn, id)
	}
	ref := fakeRef{id: map[string]any{"primaryEndpoints": map[string]any{"blob": "https://sa.blob/"}}}
	body, err := pl.Body(pl.Resources[1], ref)
	if err != nil {
		t.Fatal(err)
	}
	if body["properties"].(map[string]any)["ep"] != "https://sa.blob/" {
		t.Errorf("body = %v, want properties.ep https://sa.blob/", body)
	}
	out, err := pl.Outputs(ref)
	if err != nil {
		t.Fatal(err)
	}
	if out["ep"].Value != "https://sa.blob/" || out["ep"].Type != "String" {
		t.Errorf("ep = %+v, want {String https://sa.blob/}", out["ep"])
	}
	if _, ok := out["skipped"]; ok {
		t.Errorf("output skipped = %+v, want it left out (condition false)", out["skipped"])
	}
	if !reflect.DeepEqual(out["list"].Value, []any{int64(0), int64(1)}) {
		t.Errorf("list = %+v, want [0 1]", out["list"])
	}
}

func TestPlanErrors(t *testing.T) {
	const p = `"parameters":{"s":{"type":"string","allowedValues":["a","b"]},"i":{"type":"int","minValue":1,"maxValue":3,"defaultValue":2},"n":{"type":"string","minLength":2,"defaultValue":"xx"}}`
	res := func(extra string) string {
		return `{` + p + `,"resources":[{"type":"Microsoft.Web/sites","apiVersion":"1","name":"a"` + extra + `}]}`
	}
	tests := []struct {
		name   string
		tmpl   string
		params map[string]any
		want   string
		line   int
	}{
		{"missing", res(""), nil, "Deployment template validation failed: 'The value for the template parameter 's' at line '1' and column '20' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details.'.", 1},
		{"not allowed", res(""), map[string]any{"s": "c"}, "'The provided value 'c' for the template parameter 's' at line '1' and column '20' is not valid. The parameter value is not part of the allowed value(s): 'a,b'.'", 1},
		{"wrong type", res(""), map[string]any{"s": "a", "i": "2"}, "Template parameter JToken type is not valid. Expected 'Integer'. Actual 'String'.", 1},
		{"below min", res(""), map[string]any{"s": "a", "i": 0.0}, "is less than the minimum value '1'", 1},
		{"above max", res(""), map[string]any{"s": "a", "i": json.Number("4")}, "is greater than the maximum value '3'", 1},
		{"too short", res(""), map[string]any{"s": "a", "n": "x"}, "is less than the minimum length '2'", 1},
		{"unknown", res(""), map[string]any{"s": "a", "zz": 1}, "The template parameters 'zz' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are 's, i, n'.", 0},
		{"circular", `{"resources":[{"type":"A.B/c","apiVersion":"1","name":"x","dependsOn":["y"]},{"type":"A.B/c","apiVersion":"1","name":"y","dependsOn":["[resourceId('A.B/c','x')]"]}]}`, nil, "Deployment template validation failed: 'Circular dependency detected on resource: '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/A.B/c/x'. Please see https://aka.ms/arm-syntax-resources for usage details.'.", 1},
		{"undefined id", res(`,"dependsOn":["[resourceId('Microsoft.Compute/virtualMachines','vm')]"]`), map[string]any{"s": "a"}, "The resource 'Microsoft.Compute/virtualMachines/vm' is not defined in the template. Please see https://aka.ms/arm-template for usage details.", 1},
		{"undefined name", res(`,"dependsOn":["appServicePlan"]`), map[string]any{"s": "a"}, "The template reference 'appServicePlan' is not valid: could not find template resource or resource copy with this name.", 1},
		{"bad name expression", res(`,"properties":{}},{"type":"A.B/c","apiVersion":"1","name":"[foo(]"`), map[string]any{"s": "a"}, "The template resource '[foo(]' at line '1' and column '", 1},
		{"segments", res(`},{"type":"A.B/c/d","apiVersion":"1","name":"x"`), map[string]any{"s": "a"}, "has incorrect segment lengths", 1},
	}
	for _, tt := range tests {
		// Expressions are checked by Parse, the rest by Plan.
		tpl, err := Parse([]byte(tt.tmpl))
		if err == nil {
			_, err = tpl.Plan(tt.params, testScope())
		}
		var ae *Error
		if !errors.As(err, &ae) {
			t.Errorf("%s: error %v, want *Error", tt.name, err)
			continue
		}
		if ae.Code != CodeInvalidTemplate || !strings.Contains(ae.Message, tt.want) || ae.Line != tt.line {
			t.Errorf("%s: error %q %q line %d, want %q line %d", tt.name, ae.Code, ae.Message, ae.Line, tt.want, tt.line)
		}
	}
}

// An unknown function anywhere fails Parse, as ARM's template validation
// does, naming the resource it is in (its message has the doubled usage
// link ARM gives: microsoft/vscode-azurearmtools, armsnippets tests).
func TestUnknownFunctionFailsValidation(t *testing.T) {
	_, err := Parse([]byte("{\"resources\":[\n  {\"type\":\"A.B/c\",\"apiVersion\":\"1\",\"name\":\"x\",\"location\":\"[foo()]\"}]}"))
	want := "Deployment template validation failed: 'The template resource 'x' at line '2' and column '3' is not valid: The template function 'foo' is not valid. Please see https://aka.ms/arm-template-expressions for usage details.. Please see https://aka.ms/arm-template-expressions for usage details.'."
	var ae *Error
	if !errors.As(err, &ae) || ae.Message != want || ae.Line != 2 || ae.Column != 3 {
		t.Errorf("error = %v, want %q at 2:3", err, want)
	}
	_, err = Parse([]byte(`{"outputs":{"o":{"type":"string","value":"[concat('a']"}}}`))
	if !errors.As(err, &ae) || ae.Code != CodeInvalidTemplate || !strings.Contains(ae.Message, "concat('a'") {
		t.Errorf("syntax error in an output: %v, want InvalidTemplate naming concat('a'", err)
	}
}

func TestSecureParametersNotEchoed(t *testing.T) {
	pl := mustPlan(t, `{"parameters":{"pw":{"type":"securestring"},"n":{"type":"int","defaultValue":"[add(1,2)]"}}}`, map[string]any{"pw": "secret"})
	if v := pl.Parameters["pw"]; v.Type != "SecureString" || v.Value != nil {
		t.Errorf("pw = %+v, want type only", v)
	}
	if v := pl.Parameters["n"]; v.Type != "Int" || v.Value != int64(3) {
		t.Errorf("n = %+v, want {Int 3}", v)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, code, want string
		unsupported    bool
	}{
		{`{"languageVersion":"2.0","resources":{}}`, CodeInvalidTemplate, "languageVersion '2.0' is not supported", true},
		{`{"resources":{"a":{}}}`, CodeInvalidTemplate, "symbolic resource names", true},
		{`{"resources":[`, "InvalidRequestContent", "could not be deserialized", false},
		{`[]`, CodeInvalidTemplate, "must be a JSON object", false},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in))
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != tt.code || !strings.Contains(ae.Message, tt.want) || errors.Is(err, ErrUnsupported) != tt.unsupported {
			t.Errorf("Parse(%s) = %v, want %s %q (unsupported %v)", tt.in, err, tt.code, tt.want, tt.unsupported)
		}
	}
}

func TestRequestSize(t *testing.T) {
	if err := CheckRequestSize(MaxRequestSize); err != nil {
		t.Errorf("CheckRequestSize(max) = %v, want nil", err)
	}
	err := CheckRequestSize(MaxRequestSize + 1)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeRequestContentTooLarge || ae.Message != "The request content size exceeds the maximum size of 4 MB." {
		t.Errorf("CheckRequestSize(max+1) = %v, want RequestContentTooLarge", err)
	}
}
