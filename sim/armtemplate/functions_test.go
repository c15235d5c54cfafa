package armtemplate

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// evalIn evaluates one expression string against a small template.
func evalIn(t *testing.T, ph phase, s string) (any, error) {
	t.Helper()
	tpl, err := Parse([]byte(`{"parameters":{"p":{"type":"string","defaultValue":"pv"},"o":{"type":"object","defaultValue":{"Key":"v","n":{"x":1}}}},
	"variables":{"v1":"[concat(parameters('p'),'!')]","arr":[1,2,3],"copy":[{"name":"vc","count":2,"input":"[concat('i',string(copyIndex('vc')))]"}]},
	"resources":[{"type":"Microsoft.Storage/storageAccounts","apiVersion":"2019-06-01","name":"sa1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := tpl.Plan(nil, testScope(), WithClock(func() time.Time { return time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC) }), WithNewGUID(func() string { return "g" }))
	if err != nil {
		t.Fatal(err)
	}
	c := &evalCtx{p: pl.p, phase: ph}
	return c.evalString(s)
}

func testScope() Scope {
	return Scope{
		Subscription:  Subscription{SubscriptionID: "00000000-0000-0000-0000-000000000001", TenantID: "tid", DisplayName: "sub"},
		ResourceGroup: ResourceGroup{Name: "rg", Location: "westeurope", Tags: map[string]string{"a": "b"}},
		Deployment:    Deployment{Name: "dep"},
	}
}

func TestFunctions(t *testing.T) {
	tests := []struct {
		expr string
		want any
	}{
		{"plain", "plain"},
		{"[[escaped]", "[escaped]"},
		{"['it''s']", "it's"},
		{"[-5]", int64(-5)},
		{"[parameters('p')]", "pv"},
		{"[parameters('P')]", "pv"},
		{"[parameters('o').key]", "v"},
		{"[parameters('o')['KEY']]", "v"},
		{"[parameters('o').n.x]", int64(1)},
		{"[variables('v1')]", "pv!"},
		{"[variables('arr')[1]]", int64(2)},
		{"[variables('vc')]", []any{"i0", "i1"}},
		{"[concat('a', 1, true())]", "a1True"},
		{"[concat(createArray(1), createArray(2, 3))]", []any{int64(1), int64(2), int64(3)}},
		{"[format('{0}-{1:D3}-{{x}}', 'a', 7)]", "a-007-{x}"},
		{"[format('{0,4}|{1:N0}', 'ab', 12345)]", "  ab|12,345"},
		{"[base64('one, two, three')]", "b25lLCB0d28sIHRocmVl"}, // Kingsland.ArmLinter's tests (third-party, outputs its authors took from ARM)
		{"[base64ToString('b25lLCB0d28sIHRocmVl')]", "one, two, three"},
		{"[dataUri('Hello')]", "data:text/plain;charset=utf8;base64,SGVsbG8="}, // Kingsland.ArmLinter's tests
		{"[dataUriToString('data:text/plain;charset=utf8;base64,SGVsbG8=')]", "Hello"},
		{"[resourceId('Microsoft.Storage/storageAccounts', 'sa')]", "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa"},
		{"[resourceId('other', 'Microsoft.Network/virtualNetworks/subnets', 'vn', 'sn')]", "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/other/providers/Microsoft.Network/virtualNetworks/vn/subnets/sn"},
		{"[resourceId('s2', 'r2', 'Microsoft.Network/virtualNetworks', 'vn')]", "/subscriptions/s2/resourceGroups/r2/providers/Microsoft.Network/virtualNetworks/vn"},
		{"[resourceId('Microsoft.MachineLearningServices/workspaces/computes', 'ws/ci')]", "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/computes/ci"},
		{"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'r')]", "/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.Authorization/roleDefinitions/r"},
		{"[tenantResourceId('Microsoft.Management/managementGroups', 'm')]", "/providers/Microsoft.Management/managementGroups/m"},
		{"[extensionResourceId('/subscriptions/s/resourceGroups/r', 'Microsoft.Authorization/locks', 'l')]", "/subscriptions/s/resourceGroups/r/providers/Microsoft.Authorization/locks/l"},
		{"[resourceGroup().location]", "westeurope"},
		{"[resourceGroup().id]", "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"},
		{"[resourceGroup().tags.a]", "b"},
		{"[subscription().tenantId]", "tid"},
		{"[subscription().id]", "/subscriptions/00000000-0000-0000-0000-000000000001"},
		{"[tenant().tenantId]", "tid"},
		{"[deployment().name]", "dep"},
		{"[deployment().properties.mode]", "Incremental"},
		{"[if(true(), 'a', 'b')]", "a"},
		{"[if(false(), variables('missing'), 'b')]", "b"}, // only the chosen branch is evaluated
		{"[and(true(), false())]", false},
		{"[or(false(), true())]", true},
		{"[not(true())]", false},
		{"[equals(1, 1)]", true},
		{"[equals('a', 'A')]", false},
		{"[equals(createArray(1,'a'), createArray(1,'a'))]", true},
		{"[less(1, 2)]", true},
		{"[greater('b', 'a')]", true},
		{"[lessOrEquals(2, 2)]", true},
		{"[greaterOrEquals(1, 2)]", false},
		{"[empty('')]", true},
		{"[empty(createArray())]", true},
		{"[empty(json('{}'))]", true},
		{"[empty(json('null'))]", true},
		{"[empty('x')]", false},
		{"[coalesce(null(), null(), 'c')]", "c"},
		{"[contains('abc', 'b')]", true},
		{"[contains(createArray(1, 2), 3)]", false},
		{"[contains(parameters('o'), 'KEY')]", true},
		{"[json('{\"a\":[1,2]}').a[1]]", int64(2)},
		{"[json('null')]", nil},
		{"[string(json('{\"a\":1}'))]", `{"a":1}`},
		{"[string(5)]", "5"},
		{"[int('42')]", int64(42)},
		{"[bool('true')]", true},
		{"[bool(0)]", false},
		{"[toLower('AbC')]", "abc"},
		{"[toUpper('AbC')]", "ABC"},
		{"[replace('a-b-c', '-', '')]", "abc"},
		{"[length('héllo')]", int64(5)},
		{"[length(createArray(1,2))]", int64(2)},
		{"[length(json('{\"a\":1}'))]", int64(1)},
		{"[split('a,b;c', createArray(',', ';'))]", []any{"a", "b", "c"}},
		{"[split('a/b', '/')[1]]", "b"},
		{"[substring('hello', 1, 3)]", "ell"},
		{"[substring('hello', 2)]", "llo"},
		{"[trim('  x ')]", "x"},
		{"[startsWith('Hello', 'he')]", true},
		{"[endsWith('Hello', 'LO')]", true},
		{"[indexOf('abcdef', 'CD')]", int64(2)}, // Kingsland.ArmLinter's tests: indexOf is case-insensitive
		{"[indexOf('abc', 'z')]", int64(-1)},
		{"[lastIndexOf('abcabc', 'b')]", int64(4)},
		{"[padLeft('7', 3, '0')]", "007"},
		{"[uniqueString('aaa')]", "zavj67f3en4hc"},
		{"[uniqueString('xxx', 'yyy', 'zzz')]", "lghi7k5js7itq"},
		{"[guid('a', 'b', 'c')]", "a98fa280-e03f-5afa-8d8e-92d0a9c201e8"},
		{"[union(createArray(1,2), createArray(2,3))]", []any{int64(1), int64(2), int64(3)}},
		{"[union(json('{\"a\":1}'), json('{\"b\":2}'))]", map[string]any{"a": int64(1), "b": int64(2)}},
		{"[intersection(createArray(1,2,3), createArray(2,3,4))]", []any{int64(2), int64(3)}},
		{"[createObject('a', 1, 'b', 'x')]", map[string]any{"a": int64(1), "b": "x"}},
		{"[array('x')]", []any{"x"}},
		{"[first(createArray('a','b'))]", "a"},
		{"[first('One')]", "O"},
		{"[last(createArray('a','b'))]", "b"},
		{"[take(createArray(1,2,3), 2)]", []any{int64(1), int64(2)}},
		{"[skip('hello', 3)]", "lo"},
		{"[take('ab', 5)]", "ab"},
		{"[range(5, 3)]", []any{int64(5), int64(6), int64(7)}},
		{"[min(3, 1, 2)]", int64(1)},
		{"[max(createArray(3, 9, 2))]", int64(9)},
		{"[add(1, 2)]", int64(3)},
		{"[sub(1, 2)]", int64(-1)},
		{"[mul(3, 4)]", int64(12)},
		{"[div(7, 2)]", int64(3)},
		{"[mod(7, 2)]", int64(1)},
		{"[null()]", nil},
		{"[uri('http://contoso.org/firstpath', 'myscript.sh')]", "http://contoso.org/myscript.sh"},
		// Space as %20 and '+' escaped: RFC 3986's unreserved set (see
		// escapeDataString); QueryEscape's "a+b" was wrong.
		{"[uriComponent('a b&c+d')]", "a%20b%26c%2Bd"},
		{"[uriComponentToString('a%20b+c')]", "a b+c"},
		{"[CONCAT('case', 'insensitive')]", "caseinsensitive"},
		{"[ concat( 'sp' , 'aces' ) ]", "spaces"},
	}
	for _, tt := range tests {
		got, err := evalIn(t, phaseBody, tt.expr)
		if err != nil {
			t.Errorf("%s: error %v", tt.expr, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.expr, got, tt.want)
		}
	}
}

func TestUTCNowAndNewGUIDOnlyInParameterDefaults(t *testing.T) {
	got, err := evalIn(t, phaseParameters, "[utcNow()]")
	if err != nil || got != "20240506T070809Z" {
		t.Errorf("utcNow() = %v, %v; want 20240506T070809Z", got, err)
	}
	got, err = evalIn(t, phaseParameters, "[utcNow('yyyy-MM-dd HH:mm:ss.fff')]")
	if err != nil || got != "2024-05-06 07:08:09.000" {
		t.Errorf("utcNow(custom) = %v, %v; want 2024-05-06 07:08:09.000", got, err)
	}
	got, err = evalIn(t, phaseParameters, "[newGuid()]")
	if err != nil || got != "g" {
		t.Errorf("newGuid() = %v, %v", got, err)
	}
	for _, e := range []string{"[utcNow()]", "[newGuid()]"} {
		if _, err := evalIn(t, phaseBody, e); err == nil || !strings.Contains(err.Error(), "is not expected at this location") {
			t.Errorf("%s in a resource: error %v, want 'not expected at this location'", e, err)
		}
	}
}

func TestFunctionErrors(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		{"[concat(]", "Unable to parse language expression 'concat(': expected token 'RightParenthesis' and actual 'EndOfData'."},
		{"[concat('a'))]", "Unable to parse language expression 'concat('a'))': expected token 'EndOfData' and actual 'RightParenthesis'."},
		{"[concat('a']", "Unable to parse language expression 'concat('a'': expected token 'RightParenthesis' and actual 'EndOfData'."},
		{"['abc]", "is not terminated"},
		{"[concat", "" /* not an expression: no closing bracket */},
		{"[]", "the expression is empty"},
		{"[parameters]", "expected token 'LeftParenthesis' and actual 'EndOfData'"},
		{"[foo()]", "The template function 'foo' is not valid. Please see https://aka.ms/arm-template-expressions for usage details."},
		{"[base64ToString()]", "Unable to evaluate template language function 'base64ToString': function requires 1 argument(s) while 0 were provided. Please see https://aka.ms/arm-template-expressions/#base64ToString for usage details."},
		{"[endsWith()]", "function requires 2 argument(s) while 0 were provided"},
		{"[concat()]", "Unable to evaluate template language function 'concat'. At least one parameter should be provided."},
		{"[base64(100)]", "The template language function 'base64' expects its parameter to be of type 'String'. The provided value is of type 'Integer'."},
		{"[endsWith(1, 2)]", "expects its parameters to be of type string and string. The provided value is of type 'Integer' and 'Integer'."},
		{"[first(1)]", "The template language function 'first' expects its parameter be an array or a string. The provided value is of type 'Integer'."},
		{"[parameters('nope')]", "The template parameter 'nope' is not found."},
		{"[variables('nope')]", "The template variable 'nope' is not found."},
		{"[parameters('o').missing]", "The language expression property 'missing' doesn't exist, available properties are 'Key, n'."},
		{"[createArray(1)[5]]", "The language expression property array index '5' is out of bounds."},
		{"[resourceId('Microsoft.Storage/storageAccounts')]", "the type 'Microsoft.Storage/storageAccounts' requires '1' resource name argument(s)"},
		{"[div(1, 0)]", "the divisor is zero"},
		{"[substring('abc', 2, 5)]", "The index and length parameters must refer to a location within the string."},
		{"[copyIndex()]", "The template function 'copyIndex' is not expected at this location."},
		{"[reference('sa1')]", "cannot be referenced here"},
		{"[listKeys('sa1', '2019-06-01')]", "does not support the action"},
		{"[if(1, 'a', 'b')]", "expects its parameter to be of type 'Boolean'"},
	}
	for _, tt := range tests {
		_, err := evalIn(t, phaseBody, tt.expr)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: error %v, want none", tt.expr, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", tt.expr, err, tt.want)
		}
	}
	if _, err := evalIn(t, phaseVariables, "[reference('sa1')]"); err == nil || !strings.Contains(err.Error(), "is not expected at this location") {
		t.Errorf("reference in variables: error %v, want 'is not expected at this location'", err)
	}
}
