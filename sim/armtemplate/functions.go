package armtemplate

import (
	"encoding/base64"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// function is one template function: its arity, where it may appear, and
// its implementation over evaluated arguments (fn) or unevaluated ones
// (lazy, for if/and/or which evaluate only what they need).
type function struct {
	name     string
	min, max int  // max < 0: no limit
	phases   uint // bit set of allowed phases; 0: everywhere
	fn       func(c *evalCtx, args []any) (any, error)
	lazy     func(c *evalCtx, args []expr) (any, error)
}

func only(ps ...phase) uint {
	var m uint
	for _, p := range ps {
		m |= 1 << p
	}
	return m
}

// functions is the table of template functions, keyed by lowercase name
// (names are case-insensitive: template-expressions.md). Names, arities
// and behaviour are our reading of MicrosoftDocs/azure-docs
// template-functions-*.md; where a behaviour or a message comes from a
// more specific source (a real ARM answer, a doc sentence) it is cited
// beside the code, and what is cited nowhere is ours.
var functions = map[string]*function{}

func register(f *function) { functions[strings.ToLower(f.name)] = f }

func init() {
	for _, f := range []*function{
		// Deployment values (template-functions-deployment.md).
		{name: "parameters", min: 1, max: 1, fn: fnParameters},
		{name: "variables", min: 1, max: 1, phases: only(phaseVariables, phasePlan, phaseBody, phaseOutputs), fn: fnVariables},
		{name: "deployment", min: 0, max: 0, fn: func(c *evalCtx, _ []any) (any, error) { return c.p.deploymentObject(), nil }},
		{name: "environment", min: 0, max: 0, fn: func(c *evalCtx, _ []any) (any, error) { return c.p.environmentObject(), nil }},
		// Scope (template-functions-scope.md).
		{name: "resourceGroup", min: 0, max: 0, fn: func(c *evalCtx, _ []any) (any, error) { return c.p.resourceGroupObject(), nil }},
		{name: "subscription", min: 0, max: 0, fn: func(c *evalCtx, _ []any) (any, error) { return c.p.subscriptionObject(), nil }},
		{name: "tenant", min: 0, max: 0, fn: func(c *evalCtx, _ []any) (any, error) {
			return map[string]any{"tenantId": c.p.tenantID(), "id": "/tenants/" + c.p.tenantID()}, nil
		}},
		// Resource (template-functions-resource.md).
		{name: "resourceId", min: 1, max: -1, fn: fnResourceID},
		{name: "subscriptionResourceId", min: 1, max: -1, fn: fnSubscriptionResourceID},
		{name: "tenantResourceId", min: 1, max: -1, fn: fnTenantResourceID},
		{name: "extensionResourceId", min: 2, max: -1, fn: fnExtensionResourceID},
		{name: "reference", min: 1, max: 3, phases: only(phaseBody, phaseOutputs), fn: fnReference},
		{name: "copyIndex", min: 0, max: 2, fn: fnCopyIndex},
		// Logical (template-functions-logical.md).
		{name: "if", min: 3, max: 3, lazy: fnIf},
		{name: "and", min: 2, max: -1, lazy: fnAnd},
		{name: "or", min: 2, max: -1, lazy: fnOr},
		{name: "not", min: 1, max: 1, fn: func(_ *evalCtx, a []any) (any, error) {
			b, ok := a[0].(bool)
			if !ok {
				return nil, typeError("not", "Boolean", a[0])
			}
			return !b, nil
		}},
		{name: "true", min: 0, max: 0, fn: func(*evalCtx, []any) (any, error) { return true, nil }},
		{name: "false", min: 0, max: 0, fn: func(*evalCtx, []any) (any, error) { return false, nil }},
		{name: "bool", min: 1, max: 1, fn: fnBool},
		// Comparison (template-functions-comparison.md).
		{name: "equals", min: 2, max: 2, fn: func(_ *evalCtx, a []any) (any, error) { return deepEqual(a[0], a[1]), nil }},
		{name: "less", min: 2, max: 2, fn: compareFn("less", func(c int) bool { return c < 0 })},
		{name: "lessOrEquals", min: 2, max: 2, fn: compareFn("lessOrEquals", func(c int) bool { return c <= 0 })},
		{name: "greater", min: 2, max: 2, fn: compareFn("greater", func(c int) bool { return c > 0 })},
		{name: "greaterOrEquals", min: 2, max: 2, fn: compareFn("greaterOrEquals", func(c int) bool { return c >= 0 })},
		{name: "coalesce", min: 1, max: -1, fn: func(_ *evalCtx, a []any) (any, error) {
			for _, v := range a {
				if v != nil {
					return v, nil
				}
			}
			return nil, nil
		}},
		// String (template-functions-string.md).
		{name: "concat", min: 0, max: -1, fn: fnConcat},
		{name: "format", min: 1, max: -1, fn: fnFormat},
		{name: "base64", min: 1, max: 1, fn: stringFn("base64", func(s string) (any, error) { return base64.StdEncoding.EncodeToString([]byte(s)), nil })},
		{name: "base64ToString", min: 1, max: 1, fn: stringFn("base64ToString", func(s string) (any, error) {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, evalFailed("base64ToString", "the value '%s' is not a valid base64 string.", s)
			}
			return string(b), nil
		})},
		{name: "base64ToJson", min: 1, max: 1, fn: stringFn("base64ToJson", func(s string) (any, error) {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, evalFailed("base64ToJson", "the value '%s' is not a valid base64 string.", s)
			}
			return parseJSONValue("base64ToJson", string(b))
		})},
		{name: "dataUri", min: 1, max: 1, fn: func(_ *evalCtx, a []any) (any, error) {
			// Kingsland.ArmLinter's tests record dataUri('Hello') =
			// "data:text/plain;charset=utf8;base64,SGVsbG8=".
			s, ok := a[0].(string)
			if !ok {
				return "data:application/json;charset=utf8;base64," + base64.StdEncoding.EncodeToString([]byte(stringify(a[0]))), nil
			}
			return "data:text/plain;charset=utf8;base64," + base64.StdEncoding.EncodeToString([]byte(s)), nil
		}},
		{name: "dataUriToString", min: 1, max: 1, fn: stringFn("dataUriToString", func(s string) (any, error) {
			i := strings.Index(s, ",")
			if !strings.HasPrefix(s, "data:") || i < 0 {
				return nil, evalFailed("dataUriToString", "the value '%s' is not a valid data URI.", s)
			}
			if strings.HasSuffix(s[:i], ";base64") {
				b, err := base64.StdEncoding.DecodeString(s[i+1:])
				if err != nil {
					return nil, evalFailed("dataUriToString", "the value '%s' is not a valid data URI.", s)
				}
				return string(b), nil
			}
			u, err := url.PathUnescape(s[i+1:])
			if err != nil {
				return nil, evalFailed("dataUriToString", "the value '%s' is not a valid data URI.", s)
			}
			return u, nil
		})},
		{name: "toLower", min: 1, max: 1, fn: stringFn("toLower", func(s string) (any, error) { return strings.ToLower(s), nil })},
		{name: "toUpper", min: 1, max: 1, fn: stringFn("toUpper", func(s string) (any, error) { return strings.ToUpper(s), nil })},
		{name: "trim", min: 1, max: 1, fn: stringFn("trim", func(s string) (any, error) { return strings.TrimSpace(s), nil })},
		{name: "string", min: 1, max: 1, fn: func(_ *evalCtx, a []any) (any, error) { return stringify(a[0]), nil }},
		{name: "uri", min: 2, max: 2, fn: fnURI},
		{name: "uriComponent", min: 1, max: 1, fn: stringFn("uriComponent", func(s string) (any, error) { return escapeDataString(s), nil })},
		{name: "uriComponentToString", min: 1, max: 1, fn: stringFn("uriComponentToString", func(s string) (any, error) {
			// PathUnescape: '+' stays '+', as escapeDataString never
			// produces it for a space.
			u, err := url.PathUnescape(s)
			if err != nil {
				return nil, evalFailed("uriComponentToString", "the value '%s' is not a valid URI component.", s)
			}
			return u, nil
		})},
		{name: "replace", min: 3, max: 3, fn: fnReplace},
		{name: "split", min: 2, max: 2, fn: fnSplit},
		{name: "substring", min: 1, max: 3, fn: fnSubstring},
		{name: "startsWith", min: 2, max: 2, fn: twoStrings("startsWith", func(a, b string) any { return strings.HasPrefix(strings.ToLower(a), strings.ToLower(b)) })},
		{name: "endsWith", min: 2, max: 2, fn: twoStrings("endsWith", func(a, b string) any { return strings.HasSuffix(strings.ToLower(a), strings.ToLower(b)) })},
		{name: "indexOf", min: 2, max: 2, fn: twoStrings("indexOf", func(a, b string) any {
			return int64(runeIndex(strings.ToLower(a), strings.Index(strings.ToLower(a), strings.ToLower(b))))
		})},
		{name: "lastIndexOf", min: 2, max: 2, fn: twoStrings("lastIndexOf", func(a, b string) any {
			return int64(runeIndex(strings.ToLower(a), strings.LastIndex(strings.ToLower(a), strings.ToLower(b))))
		})},
		{name: "padLeft", min: 2, max: 3, fn: fnPadLeft},
		{name: "uniqueString", min: 1, max: -1, fn: fnUniqueString},
		{name: "guid", min: 1, max: -1, fn: fnGUID},
		{name: "newGuid", min: 0, max: 0, phases: only(phaseParameters), fn: func(c *evalCtx, _ []any) (any, error) { return c.p.newGUID(), nil }},
		{name: "utcNow", min: 0, max: 1, phases: only(phaseParameters), fn: fnUTCNow},
		// Object and array (template-functions-object.md, -array.md).
		{name: "json", min: 1, max: 1, fn: stringFn("json", func(s string) (any, error) { return parseJSONValue("json", s) })},
		{name: "null", min: 0, max: 0, fn: func(*evalCtx, []any) (any, error) { return nil, nil }},
		{name: "empty", min: 1, max: 1, fn: func(_ *evalCtx, a []any) (any, error) { return isEmpty(a[0]), nil }},
		{name: "contains", min: 2, max: 2, fn: fnContains},
		{name: "length", min: 1, max: 1, fn: fnLength},
		{name: "union", min: 1, max: -1, fn: fnUnion},
		{name: "intersection", min: 2, max: -1, fn: fnIntersection},
		{name: "createArray", min: 0, max: -1, fn: func(_ *evalCtx, a []any) (any, error) { return append([]any{}, a...), nil }},
		{name: "createObject", min: 0, max: -1, fn: fnCreateObject},
		{name: "array", min: 1, max: 1, fn: func(_ *evalCtx, a []any) (any, error) {
			if arr, ok := a[0].([]any); ok {
				return arr, nil
			}
			return []any{a[0]}, nil
		}},
		{name: "first", min: 1, max: 1, fn: func(_ *evalCtx, a []any) (any, error) { return firstLast("first", a[0], true) }},
		{name: "last", min: 1, max: 1, fn: func(_ *evalCtx, a []any) (any, error) { return firstLast("last", a[0], false) }},
		{name: "take", min: 2, max: 2, fn: func(_ *evalCtx, a []any) (any, error) { return takeSkip("take", a, true) }},
		{name: "skip", min: 2, max: 2, fn: func(_ *evalCtx, a []any) (any, error) { return takeSkip("skip", a, false) }},
		{name: "range", min: 2, max: 2, fn: fnRange},
		{name: "min", min: 1, max: -1, fn: func(_ *evalCtx, a []any) (any, error) { return minMax("min", a, true) }},
		{name: "max", min: 1, max: -1, fn: func(_ *evalCtx, a []any) (any, error) { return minMax("max", a, false) }},
		// Numeric (template-functions-numeric.md).
		{name: "int", min: 1, max: 1, fn: fnInt},
		{name: "add", min: 2, max: 2, fn: arith("add", func(a, b int64) (int64, string) {
			r := a + b
			if (r > a) != (b > 0) {
				return 0, overflow
			}
			return r, ""
		})},
		{name: "sub", min: 2, max: 2, fn: arith("sub", func(a, b int64) (int64, string) {
			r := a - b
			if (r < a) != (b > 0) {
				return 0, overflow
			}
			return r, ""
		})},
		{name: "mul", min: 2, max: 2, fn: arith("mul", func(a, b int64) (int64, string) {
			if a == 0 || b == 0 {
				return 0, ""
			}
			r := a * b
			if r/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
				return 0, overflow
			}
			return r, ""
		})},
		{name: "div", min: 2, max: 2, fn: arith("div", func(a, b int64) (int64, string) {
			if b == 0 {
				return 0, "the divisor is zero."
			}
			if a == math.MinInt64 && b == -1 {
				return 0, overflow
			}
			return a / b, ""
		})},
		{name: "mod", min: 2, max: 2, fn: arith("mod", func(a, b int64) (int64, string) {
			if b == 0 {
				return 0, "the divisor is zero."
			}
			if b == -1 {
				return 0, ""
			}
			return a % b, ""
		})},
	} {
		register(f)
	}
}

// fnParameters and fnVariables return copies of the cached values, so
// that what Body returns shares no map or slice with the plan.
func fnParameters(c *evalCtx, a []any) (any, error) {
	name, ok := a[0].(string)
	if !ok {
		return nil, typeError("parameters", "String", a[0])
	}
	v, err := c.p.parameter(name)
	return deepCopy(v), err
}

func fnVariables(c *evalCtx, a []any) (any, error) {
	name, ok := a[0].(string)
	if !ok {
		return nil, typeError("variables", "String", a[0])
	}
	v, err := c.p.variable(name)
	return deepCopy(v), err
}

func fnIf(c *evalCtx, args []expr) (any, error) {
	cond, err := c.eval(args[0])
	if err != nil {
		return nil, err
	}
	b, ok := cond.(bool)
	if !ok {
		return nil, typeError("if", "Boolean", cond)
	}
	// Only the chosen branch is evaluated (template-functions-logical.md:
	// "only the true value is evaluated" and vice versa), so the quickstart's
	// if(..., variables('subnet'), json('null')) works with empty names.
	if b {
		return c.eval(args[1])
	}
	return c.eval(args[2])
}

func fnAnd(c *evalCtx, args []expr) (any, error) { return shortCircuit(c, "and", args, false) }
func fnOr(c *evalCtx, args []expr) (any, error)  { return shortCircuit(c, "or", args, true) }

func shortCircuit(c *evalCtx, name string, args []expr, stopOn bool) (any, error) {
	for _, a := range args {
		v, err := c.eval(a)
		if err != nil {
			return nil, err
		}
		b, ok := v.(bool)
		if !ok {
			return nil, typeError(name, "Boolean", v)
		}
		if b == stopOn {
			return stopOn, nil
		}
	}
	return !stopOn, nil
}

func fnBool(_ *evalCtx, a []any) (any, error) {
	switch t := a[0].(type) {
	case bool:
		return t, nil
	case int64:
		return t != 0, nil
	case string:
		switch strings.ToLower(t) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, evalFailed("bool", "the string '%s' is not a valid boolean.", t)
	}
	return nil, typeError("bool", "Boolean", a[0])
}

func fnInt(_ *evalCtx, a []any) (any, error) {
	switch t := a[0].(type) {
	case int64:
		return t, nil
	case float64:
		return int64(t), nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		if err != nil {
			return nil, evalFailed("int", "the string '%s' is not a valid integer.", t)
		}
		return i, nil
	}
	return nil, typeError("int", "Integer", a[0])
}

func compareFn(name string, ok func(int) bool) func(*evalCtx, []any) (any, error) {
	return func(_ *evalCtx, a []any) (any, error) {
		switch x := a[0].(type) {
		case int64:
			y, isInt := a[1].(int64)
			if !isInt {
				return nil, typeError(name, "Integer", a[1])
			}
			return ok(cmpInt(x, y)), nil
		case string:
			y, isStr := a[1].(string)
			if !isStr {
				return nil, typeError(name, "String", a[1])
			}
			return ok(strings.Compare(x, y)), nil
		}
		return nil, typeError(name, "Integer", a[0])
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// overflow is our message for integer results outside ARM's 64-bit range
// (the wording is ours: no ARM answer was found).
const overflow = "the result is out of the range of a 64-bit integer."

func arith(name string, op func(a, b int64) (int64, string)) func(*evalCtx, []any) (any, error) {
	return func(_ *evalCtx, a []any) (any, error) {
		x, ok := a[0].(int64)
		if !ok {
			return nil, typeError(name, "Integer", a[0])
		}
		y, ok := a[1].(int64)
		if !ok {
			return nil, typeError(name, "Integer", a[1])
		}
		r, problem := op(x, y)
		if problem != "" {
			return nil, evalFailed(name, "%s", problem)
		}
		return r, nil
	}
}

func stringFn(name string, f func(string) (any, error)) func(*evalCtx, []any) (any, error) {
	return func(_ *evalCtx, a []any) (any, error) {
		s, ok := a[0].(string)
		if !ok {
			return nil, typeError(name, "String", a[0])
		}
		return f(s)
	}
}

func twoStrings(name string, f func(a, b string) any) func(*evalCtx, []any) (any, error) {
	return func(_ *evalCtx, a []any) (any, error) {
		x, ok1 := a[0].(string)
		y, ok2 := a[1].(string)
		if !ok1 || !ok2 {
			// Kingsland.ArmLinter's tests: "The template language function 'endsWith'
			// expects its parameters to be of type string and string. The
			// provided value is of type 'Integer' and 'Integer'."
			return nil, exprErrorf("The template language function '%s' expects its parameters to be of type string and string. The provided value is of type '%s' and '%s'.%s", name, typeName(a[0]), typeName(a[1]), usageSuffix)
		}
		return f(x, y), nil
	}
}

// runeIndex converts a byte offset into a character offset (-1 stays -1).
func runeIndex(s string, byteOff int) int {
	if byteOff < 0 {
		return -1
	}
	return utf8.RuneCountInString(s[:byteOff])
}

func parseJSONValue(fn, s string) (any, error) {
	n, err := parseJSON([]byte(s))
	if err != nil {
		return nil, evalFailed(fn, "the value '%s' is not valid JSON.", s)
	}
	return n.plain(), nil
}

func fnConcat(_ *evalCtx, a []any) (any, error) {
	if len(a) == 0 {
		// Kingsland.ArmLinter's tests: "Unable to evaluate template language
		// function 'concat'. At least one parameter should be provided."
		return nil, exprErrorf("Unable to evaluate template language function 'concat'. At least one parameter should be provided.%s", usageSuffix)
	}
	if _, isArr := a[0].([]any); isArr {
		out := []any{}
		for _, v := range a {
			arr, ok := v.([]any)
			if !ok {
				return nil, typeError("concat", "Array", v)
			}
			out = append(out, arr...)
		}
		return out, nil
	}
	var b strings.Builder
	for _, v := range a {
		if _, isArr := v.([]any); isArr {
			return nil, typeError("concat", "String", v)
		}
		b.WriteString(stringify(v))
	}
	return b.String(), nil
}

// fnFormat implements .NET composite formatting as far as templates use
// it: {n}, {n,width}, {n:D<digits>}, {n:X}, {n:N0} and {{ }} escapes.
func fnFormat(_ *evalCtx, a []any) (any, error) {
	f, ok := a[0].(string)
	if !ok {
		return nil, typeError("format", "String", a[0])
	}
	args := a[1:]
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		ch := f[i]
		if ch == '}' {
			if i+1 < len(f) && f[i+1] == '}' {
				i++
			}
			b.WriteByte('}')
			continue
		}
		if ch != '{' {
			b.WriteByte(ch)
			continue
		}
		if i+1 < len(f) && f[i+1] == '{' {
			b.WriteByte('{')
			i++
			continue
		}
		end := strings.IndexByte(f[i:], '}')
		if end < 0 {
			return nil, evalFailed("format", "the format string '%s' is not valid.", f)
		}
		spec := f[i+1 : i+end]
		i += end
		var width, verb string
		if j := strings.IndexByte(spec, ':'); j >= 0 {
			spec, verb = spec[:j], spec[j+1:]
		}
		if j := strings.IndexByte(spec, ','); j >= 0 {
			spec, width = spec[:j], strings.TrimSpace(spec[j+1:])
		}
		n, err := strconv.Atoi(strings.TrimSpace(spec))
		if err != nil || n < 0 || n >= len(args) {
			return nil, evalFailed("format", "the format item '{%s}' refers to no argument.", spec)
		}
		s := formatItem(args[n], verb)
		if width != "" {
			if w, err := strconv.Atoi(width); err == nil && w < 4096 && w > -4096 {
				if pad := abs(w) - utf8.RuneCountInString(s); pad > 0 {
					if w > 0 {
						s = strings.Repeat(" ", pad) + s
					} else {
						s += strings.Repeat(" ", pad)
					}
				}
			}
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

func formatItem(v any, verb string) string {
	i, isInt := v.(int64)
	if !isInt || verb == "" {
		return stringify(v)
	}
	digits := 0
	if len(verb) > 1 {
		digits, _ = strconv.Atoi(verb[1:])
		digits = min(max(digits, 0), 64)
	}
	switch verb[0] {
	case 'D', 'd':
		s := strconv.FormatInt(abs64(i), 10)
		for len(s) < digits {
			s = "0" + s
		}
		if i < 0 {
			s = "-" + s
		}
		return s
	case 'X', 'x':
		s := strconv.FormatUint(uint64(i), 16)
		if verb[0] == 'X' {
			s = strings.ToUpper(s)
		}
		for len(s) < digits {
			s = "0" + s
		}
		return s
	case 'N', 'n':
		s := strconv.FormatInt(abs64(i), 10)
		var out []byte
		for k := range len(s) {
			if k > 0 && (len(s)-k)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[k])
		}
		r := string(out)
		if len(verb) == 1 {
			digits = 2
		}
		if digits > 0 {
			r += "." + strings.Repeat("0", digits)
		}
		if i < 0 {
			r = "-" + r
		}
		return r
	}
	return stringify(v)
}

func abs64(i int64) int64 {
	if i < 0 {
		return -i
	}
	return i
}

func fnURI(_ *evalCtx, a []any) (any, error) {
	base, ok1 := a[0].(string)
	rel, ok2 := a[1].(string)
	if !ok1 || !ok2 {
		return nil, exprErrorf("The template language function 'uri' expects its parameters to be of type string and string. The provided value is of type '%s' and '%s'.%s", typeName(a[0]), typeName(a[1]), usageSuffix)
	}
	b, err := url.Parse(base)
	if err != nil || !b.IsAbs() {
		return nil, evalFailed("uri", "the base URI '%s' is not valid.", base)
	}
	r, err := url.Parse(rel)
	if err != nil {
		return nil, evalFailed("uri", "the relative URI '%s' is not valid.", rel)
	}
	return b.ResolveReference(r).String(), nil
}

func fnReplace(_ *evalCtx, a []any) (any, error) {
	for _, v := range a {
		if _, ok := v.(string); !ok {
			return nil, typeError("replace", "String", v)
		}
	}
	old := a[1].(string)
	if old == "" {
		return a[0], nil
	}
	return strings.ReplaceAll(a[0].(string), old, a[2].(string)), nil
}

func fnSplit(_ *evalCtx, a []any) (any, error) {
	s, ok := a[0].(string)
	if !ok {
		return nil, typeError("split", "String", a[0])
	}
	var seps []string
	switch d := a[1].(type) {
	case string:
		seps = []string{d}
	case []any:
		for _, e := range d {
			es, ok := e.(string)
			if !ok {
				return nil, typeError("split", "String", e)
			}
			seps = append(seps, es)
		}
	default:
		return nil, typeError("split", "String", a[1])
	}
	parts := []string{s}
	for _, sep := range seps {
		if sep == "" {
			continue
		}
		var next []string
		for _, p := range parts {
			next = append(next, strings.Split(p, sep)...)
		}
		parts = next
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

func fnSubstring(_ *evalCtx, a []any) (any, error) {
	s, ok := a[0].(string)
	if !ok {
		return nil, typeError("substring", "String", a[0])
	}
	r := []rune(s)
	start, length := int64(0), int64(-1)
	if len(a) > 1 {
		if start, ok = a[1].(int64); !ok {
			return nil, typeError("substring", "Integer", a[1])
		}
	}
	if len(a) > 2 {
		if length, ok = a[2].(int64); !ok {
			return nil, typeError("substring", "Integer", a[2])
		}
	}
	if start < 0 || start > int64(len(r)) {
		return nil, evalFailed("substring", "the start index '%d' is out of range for a string of length '%d'.", start, len(r))
	}
	if length < 0 {
		if len(a) > 2 {
			return nil, evalFailed("substring", "the length '%d' must not be negative.", length)
		}
		length = int64(len(r)) - start
	}
	if start+length > int64(len(r)) {
		// ARM: "The index and length parameters must refer to a location
		// within the string." (template-functions-string.md, substring).
		return nil, evalFailed("substring", "The index and length parameters must refer to a location within the string. The index parameter: '%d', the length parameter: '%d', the length of the string parameter: '%d'.", start, length, len(r))
	}
	return string(r[start : start+length]), nil
}

// maxPadWidth caps padLeft's totalLength. ARM documents no cap; this one
// is the simulator's, so that one call builds at most 64 KB.
const maxPadWidth = 16 * 1024

func fnPadLeft(_ *evalCtx, a []any) (any, error) {
	s := stringify(a[0])
	w, ok := a[1].(int64)
	if !ok {
		return nil, typeError("padLeft", "Integer", a[1])
	}
	if w > maxPadWidth {
		return nil, evalFailed("padLeft", "the total width '%d' is over the simulator's limit of %d.", w, maxPadWidth)
	}
	pad := " "
	if len(a) > 2 {
		p, ok := a[2].(string)
		if !ok || utf8.RuneCountInString(p) != 1 {
			return nil, evalFailed("padLeft", "the padding character must be a single character.")
		}
		pad = p
	}
	if n := w - int64(utf8.RuneCountInString(s)); n > 0 {
		s = strings.Repeat(pad, int(n)) + s
	}
	return s, nil
}

func stringArgs(name string, a []any) ([]string, error) {
	out := make([]string, len(a))
	for i, v := range a {
		s, ok := v.(string)
		if !ok {
			return nil, typeError(name, "String", v)
		}
		out[i] = s
	}
	return out, nil
}

func fnUniqueString(_ *evalCtx, a []any) (any, error) {
	s, err := stringArgs("uniqueString", a)
	if err != nil {
		return nil, err
	}
	return uniqueString(s...), nil
}

func fnGUID(_ *evalCtx, a []any) (any, error) {
	s, err := stringArgs("guid", a)
	if err != nil {
		return nil, err
	}
	return armGUID(s...), nil
}

func fnContains(_ *evalCtx, a []any) (any, error) {
	switch c := a[0].(type) {
	case string:
		return strings.Contains(c, stringify(a[1])), nil
	case []any:
		for _, e := range c {
			if deepEqual(e, a[1]) {
				return true, nil
			}
		}
		return false, nil
	case map[string]any:
		k, ok := a[1].(string)
		if !ok {
			return false, nil
		}
		_, found := lookup(c, k)
		return found, nil
	}
	return nil, typeError("contains", "Array", a[0])
}

func fnLength(_ *evalCtx, a []any) (any, error) {
	switch c := a[0].(type) {
	case string:
		return int64(utf8.RuneCountInString(c)), nil
	case []any:
		return int64(len(c)), nil
	case map[string]any:
		return int64(len(c)), nil
	}
	return nil, typeError("length", "Array", a[0])
}

// fnUnion merges arrays (duplicates dropped, first placement kept) or
// objects. Objects merge recursively (template-functions-object.md,
// union: "The union function not only merges the top-level elements but
// also recursively merges any nested objects within them. Nested array
// values aren't merged."): a later non-object value replaces the earlier
// one.
func fnUnion(c *evalCtx, a []any) (any, error) {
	switch a[0].(type) {
	case []any:
		out := []any{}
		seen := map[string]bool{}
		for _, v := range a {
			arr, ok := v.([]any)
			if !ok {
				return nil, typeError("union", "Array", v)
			}
			if err := c.p.spend(len(arr)); err != nil {
				return nil, err
			}
			for _, e := range arr {
				if k := canonical(e); !seen[k] {
					seen[k] = true
					out = append(out, e)
				}
			}
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		for _, v := range a {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, typeError("union", "Object", v)
			}
			mergeObject(out, m)
		}
		return out, nil
	}
	return nil, typeError("union", "Array", a[0])
}

// mergeObject merges src into dst, recursing where both hold objects.
func mergeObject(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merged := make(map[string]any, len(dm)+len(sm))
				mergeObject(merged, dm)
				mergeObject(merged, sm)
				dst[k] = merged
				continue
			}
		}
		dst[k] = v
	}
}

// canonical is a key for set membership under equals(): compact JSON
// with object keys sorted (encoding/json sorts them), over normalized
// values so that 1 and 1.0 from different sources agree.
func canonical(v any) string {
	switch t := v.(type) {
	case string:
		return "s" + t
	case int64:
		return "i" + strconv.FormatInt(t, 10)
	case bool:
		return "b" + strconv.FormatBool(t)
	case nil:
		return "z"
	}
	return "j" + compactJSON(normalize(v))
}

func fnIntersection(c *evalCtx, a []any) (any, error) {
	switch first := a[0].(type) {
	case []any:
		sets := make([]map[string]bool, 0, len(a)-1)
		for _, v := range a[1:] {
			arr, ok := v.([]any)
			if !ok {
				return nil, typeError("intersection", "Array", v)
			}
			if err := c.p.spend(len(arr)); err != nil {
				return nil, err
			}
			set := make(map[string]bool, len(arr))
			for _, o := range arr {
				set[canonical(o)] = true
			}
			sets = append(sets, set)
		}
		out := []any{}
		for _, e := range first {
			k := canonical(e)
			inAll := true
			for _, set := range sets {
				inAll = inAll && set[k]
			}
			if inAll {
				out = append(out, e)
			}
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		for k, e := range first {
			inAll := true
			for _, v := range a[1:] {
				m, ok := v.(map[string]any)
				if !ok {
					return nil, typeError("intersection", "Object", v)
				}
				o, found := m[k]
				inAll = inAll && found && deepEqual(o, e)
			}
			if inAll {
				out[k] = e
			}
		}
		return out, nil
	}
	return nil, typeError("intersection", "Array", a[0])
}

func fnCreateObject(_ *evalCtx, a []any) (any, error) {
	if len(a)%2 != 0 {
		return nil, evalFailed("createObject", "the function requires an even number of arguments (key and value pairs).")
	}
	out := make(map[string]any, len(a)/2)
	for i := 0; i < len(a); i += 2 {
		k, ok := a[i].(string)
		if !ok {
			return nil, typeError("createObject", "String", a[i])
		}
		out[k] = a[i+1]
	}
	return out, nil
}

func firstLast(name string, v any, first bool) (any, error) {
	switch c := v.(type) {
	case string:
		r := []rune(c)
		if len(r) == 0 {
			return "", nil
		}
		if first {
			return string(r[0]), nil
		}
		return string(r[len(r)-1]), nil
	case []any:
		if len(c) == 0 {
			return nil, nil
		}
		if first {
			return c[0], nil
		}
		return c[len(c)-1], nil
	}
	// Kingsland.ArmLinter's tests: "The template language function 'first' expects
	// its parameter be an array or a string. The provided value is of type
	// 'Integer'."
	return nil, exprErrorf("The template language function '%s' expects its parameter be an array or a string. The provided value is of type '%s'.%s", name, typeName(v), usageSuffix)
}

func takeSkip(name string, a []any, take bool) (any, error) {
	n, ok := a[1].(int64)
	if !ok {
		return nil, typeError(name, "Integer", a[1])
	}
	cut := func(l int) (int, int) {
		k := int(min(max(n, 0), int64(l)))
		if take {
			return 0, k
		}
		return k, l
	}
	switch c := a[0].(type) {
	case string:
		r := []rune(c)
		i, j := cut(len(r))
		return string(r[i:j]), nil
	case []any:
		i, j := cut(len(c))
		return append([]any{}, c[i:j]...), nil
	}
	return nil, typeError(name, "Array", a[0])
}

// fnRange is range(startIndex, count). template-functions-array.md,
// range: "The sum of startIndex and count must be no greater than
// 2147483647" and count "Must be non-negative integer up to 10000". The
// messages are ours.
func fnRange(_ *evalCtx, a []any) (any, error) {
	start, ok := a[0].(int64)
	if !ok {
		return nil, typeError("range", "Integer", a[0])
	}
	count, ok := a[1].(int64)
	if !ok {
		return nil, typeError("range", "Integer", a[1])
	}
	if count < 0 || count > 10000 {
		return nil, evalFailed("range", "the count '%d' must be between 0 and 10000.", count)
	}
	if start > math.MaxInt32-count {
		return nil, evalFailed("range", "the sum of the start index '%d' and the count '%d' must be no greater than 2147483647.", start, count)
	}
	out := make([]any, count)
	for i := range out {
		out[i] = start + int64(i)
	}
	return out, nil
}

func minMax(name string, a []any, isMin bool) (any, error) {
	vals := a
	if len(a) == 1 {
		arr, ok := a[0].([]any)
		if !ok {
			if _, isInt := a[0].(int64); isInt {
				return a[0], nil
			}
			return nil, typeError(name, "Array", a[0])
		}
		vals = arr
	}
	if len(vals) == 0 {
		return nil, evalFailed(name, "the array is empty.")
	}
	ints := make([]int64, len(vals))
	for i, v := range vals {
		n, ok := v.(int64)
		if !ok {
			return nil, typeError(name, "Integer", v)
		}
		ints[i] = n
	}
	sort.Slice(ints, func(i, j int) bool { return ints[i] < ints[j] })
	if isMin {
		return ints[0], nil
	}
	return ints[len(ints)-1], nil
}

func fnCopyIndex(c *evalCtx, a []any) (any, error) {
	var name string
	var offset int64
	for _, v := range a {
		switch t := v.(type) {
		case string:
			name = t
		case int64:
			offset = t
		default:
			return nil, typeError("copyIndex", "Integer", v)
		}
	}
	for i := len(c.loops) - 1; i >= 0; i-- {
		l := c.loops[i]
		if name == "" && !l.isProperty || name != "" && strings.EqualFold(l.name, name) {
			return int64(l.index) + offset, nil
		}
	}
	if name != "" {
		return nil, exprErrorf("The template function 'copyIndex' has an invalid copy loop name. The provided copy loop name '%s' could not be found.%s", name, usageSuffix)
	}
	return nil, exprErrorf("The template function 'copyIndex' is not expected at this location. The function can only be used in a resource with copy specified.%s", usageSuffix)
}

// escapeDataString is uriComponent(): every byte of the UTF-8 text
// percent-encoded except RFC 3986's unreserved characters (ALPHA, DIGIT,
// "-", ".", "_", "~"), so a space is "%20" and "+" is "%2B". No source
// stating ARM's exact escaping was found; following RFC 3986's
// unreserved set is our assumption.
func escapeDataString(s string) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdig[c>>4])
		b.WriteByte(hexdig[c&0xf])
	}
	return b.String()
}
