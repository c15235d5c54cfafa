package armtemplate

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTemplateLimits(t *testing.T) {
	members := func(n int, f func(i int) string) string {
		var parts []string
		for i := 0; i < n; i++ {
			parts = append(parts, f(i))
		}
		return strings.Join(parts, ",")
	}
	loop := func(name string, count int) string {
		return fmt.Sprintf(`{"type":"A.B/c","apiVersion":"1","name":"[concat('%s', copyIndex())]","copy":{"name":"%s","count":%d}}`, name, name, count)
	}
	tests := []struct {
		name, tmpl, want string
	}{
		{"resources", `{"resources":[` + loop("a", 800) + `,` + loop("b", 800) + `,` + loop("c", 800) + `]}`,
			"Deployment template validation failed: 'The number of template resources limit exceeded. Limit: '800' and actual: '2400'. Please see https://aka.ms/arm-template/#resources for usage details.'."},
		{"resources with children", `{"resources":[{"type":"A.B/c","apiVersion":"1","name":"[concat('p', copyIndex())]","copy":{"name":"p","count":400},
			"resources":[{"type":"d","apiVersion":"1","name":"x"}]},{"type":"A.B/e","apiVersion":"1","name":"one"}]}`, "Limit: '800' and actual: '801'"},
		{"copy count", `{"resources":[` + loop("a", 801) + `]}`, "has an invalid copy count. The copy count must be a positive integer value and cannot exceed '800'. Please see https://aka.ms/arm-copy for usage details."},
		{"negative copy count", `{"resources":[` + loop("a", -1) + `]}`, "has an invalid copy count"},
		{"parameters", `{"parameters":{` + members(257, func(i int) string { return fmt.Sprintf(`"p%d":{"type":"int","defaultValue":1}`, i) }) + `}}`, "Limit: '256' and actual: '257'"},
		{"variables", `{"variables":{` + members(257, func(i int) string { return fmt.Sprintf(`"v%d":1`, i) }) + `}}`, "Limit: '256' and actual: '257'"},
		{"outputs", `{"outputs":{` + members(65, func(i int) string { return fmt.Sprintf(`"o%d":{"type":"int","value":1}`, i) }) + `}}`, "Limit: '64' and actual: '65'"},
		{"expression length", `{"variables":{"v":"[concat('` + strings.Repeat("x", maxExprLength) + `')]"}}`, "the limit is 24576"},
	}
	for _, tt := range tests {
		err := planErr(t, tt.tmpl, nil)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != CodeInvalidTemplate || !strings.Contains(ae.Message, tt.want) {
			t.Errorf("%s: error %v, want InvalidTemplate containing %q", tt.name, err, tt.want)
		}
	}
	// At the limits, templates plan.
	mustPlan(t, `{"resources":[`+loop("a", 800)+`]}`, nil)
	mustPlan(t, `{"variables":{`+members(256, func(i int) string { return fmt.Sprintf(`"v%d":1`, i) })+`}}`, nil)
}

// Templates of a few KB that used to burn minutes of CPU must end fast,
// planned or refused. Measured on the code before the fix: one
// padLeft('x', 16384, 'é') took 0.8 s (800 copies: about 11 minutes); one
// union(range(0,10000), range(10000,10000)) took 10.8 s; a property copy
// of 100 around one of 800 took 0.22 s (800 resources of 800 by 800: about
// half an hour); three loops of 800 planned 2400 resources without error.
func TestPathologicalTemplatesEndFast(t *testing.T) {
	tests := []struct {
		name, tmpl string
		mustFail   bool // else a result or an error will do
	}{
		{"three loops of 800", `{"resources":[{"type":"A.B/c","apiVersion":"1","name":"[concat('a', copyIndex())]","copy":{"name":"a","count":800}},` +
			`{"type":"A.B/c","apiVersion":"1","name":"[concat('b', copyIndex())]","copy":{"name":"b","count":800}},` +
			`{"type":"A.B/c","apiVersion":"1","name":"[concat('c', copyIndex())]","copy":{"name":"c","count":800}}]}`, true},
		{"nested property copies", `{"resources":[{"type":"A.B/c","apiVersion":"1","name":"[concat('r', copyIndex())]","copy":{"name":"r","count":800},
			"properties":{"copy":[{"name":"p","count":800,"input":{"copy":[{"name":"q","count":800,"input":"[copyIndex('q')]"}]}}]}}]}`, true},
		{"union of ranges", `{"variables":{"u":"[union(range(0,10000), range(10000,10000))]"},"resources":[{"type":"A.B/c","apiVersion":"1","name":"[concat('r', copyIndex())]","copy":{"name":"r","count":800},
			"properties":{"n":"[length(union(range(0,10000), range(10000,10000)))]"}}]}`, true},
		{"padLeft in a copy", `{"resources":[{"type":"A.B/c","apiVersion":"1","name":"[concat('r', copyIndex())]","copy":{"name":"r","count":800},
			"properties":{"s":"[padLeft('x', 16384, 'é')]"}}]}`, false},
		{"400 dependsOn on a loop of 400", `{"resources":[{"type":"A.B/c","apiVersion":"1","name":"[concat('a', copyIndex())]","copy":{"name":"a","count":400}},
			{"type":"A.B/d","apiVersion":"1","name":"[concat('b', copyIndex())]","copy":{"name":"b","count":400},"dependsOn":["a"]}]}`, false},
	}
	for _, tt := range tests {
		start := time.Now()
		err := planErr(t, tt.tmpl, nil)
		if err == nil {
			// Plan succeeded: the bodies must be cheap too, or refused.
			tpl, _ := Parse([]byte(tt.tmpl))
			pl, _ := tpl.Plan(nil, testScope())
			for _, r := range pl.Resources {
				if _, err = pl.Body(r, nil); err != nil {
					break
				}
			}
		}
		elapsed := time.Since(start)
		if elapsed > 700*time.Millisecond {
			t.Errorf("%s: took %v, want well under a second", tt.name, elapsed)
		}
		t.Logf("%s: %v, error %v", tt.name, elapsed, err)
		if tt.mustFail && err == nil {
			t.Errorf("%s: no error, want one", tt.name)
		}
		if err != nil && !strings.Contains(err.Error(), "InvalidTemplate") {
			t.Errorf("%s: error %v, want InvalidTemplate", tt.name, err)
		}
	}
}
