package armtemplate

import (
	"fmt"
	"strings"
)

// phase is where in the template an expression sits; some functions are
// allowed only in some places, as in ARM.
type phase int

const (
	phaseParameters phase = iota // parameter defaultValue
	phaseVariables               // variables
	phasePlan                    // resource names, types, conditions, copy counts, dependsOn
	phaseBody                    // resource declarations at deployment time
	phaseOutputs                 // outputs
)

// copyFrame is one active copy loop: its name and current index.
// isProperty marks property and variable iterations, where copyIndex()
// must name its loop (copy-properties.md: "when using copyIndex inside a
// property iteration, you must provide the name of the iteration";
// copy-variables.md says the same of variable iterations); an unnamed
// copyIndex() there refers to the enclosing resource loop.
type copyFrame struct {
	name       string
	index      int
	isProperty bool
}

// evalCtx holds what an expression can see.
type evalCtx struct {
	p     *planner
	phase phase
	loops []copyFrame // innermost last
	ref   Referencer
}

func (c *evalCtx) withLoop(name string, index int, isProperty bool) *evalCtx {
	n := *c
	n.loops = append(append([]copyFrame(nil), c.loops...), copyFrame{name: name, index: index, isProperty: isProperty})
	return &n
}

// evalString evaluates a JSON string of the template: an expression when
// bracketed, else the literal text.
func (c *evalCtx) evalString(s string) (any, error) {
	text, isExpr := splitExpression(s)
	if !isExpr {
		return text, nil
	}
	e, err := c.p.parsed(text)
	if err != nil {
		return nil, err
	}
	return c.eval(e)
}

// evalNode evaluates a JSON value, expressions inside it included.
// Objects that hold a property "copy" array expand it (property
// iteration, template-syntax.md / copy-properties.md) when copyProps is set.
func (c *evalCtx) evalNode(n *node, copyProps bool) (any, error) {
	if n == nil {
		return nil, nil
	}
	if err := c.p.spend(1); err != nil {
		return nil, err
	}
	switch n.kind {
	case 's':
		return c.evalString(n.str)
	case 'a':
		out := make([]any, 0, len(n.elems))
		for _, e := range n.elems {
			v, err := c.evalNode(e, copyProps)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case 'o':
		out := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			if copyProps && strings.EqualFold(k, "copy") && n.vals[i].kind == 'a' {
				if err := c.expandPropertyCopy(n.vals[i], out); err != nil {
					return nil, err
				}
				continue
			}
			v, err := c.evalNode(n.vals[i], copyProps)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	}
	return n.plain(), nil
}

// expandPropertyCopy fills out[name] with count evaluations of input, for
// each element {name, count, input} of a property copy array.
func (c *evalCtx) expandPropertyCopy(arr *node, out map[string]any) error {
	for _, el := range arr.elems {
		name, err := c.evalNode(el.get("name"), false)
		if err != nil {
			return err
		}
		nameStr, ok := name.(string)
		if !ok || nameStr == "" {
			return exprErrorf("The copy property name must be a non-empty string.")
		}
		count, err := c.copyCount(el)
		if err != nil {
			return err
		}
		items := make([]any, 0, count)
		// One frame for the whole loop, its index moved on: nothing
		// evaluated in a property iteration keeps the context.
		lc := c.withLoop(nameStr, 0, true)
		frame := &lc.loops[len(lc.loops)-1]
		for i := 0; i < count; i++ {
			frame.index = i
			v, err := lc.evalNode(el.get("input"), true)
			if err != nil {
				return err
			}
			items = append(items, v)
		}
		out[nameStr] = items
	}
	return nil
}

// maxCopyCount is ARM's limit on copy loops ("count can't exceed 800",
// copy-resources.md).
const maxCopyCount = 800

// copyCount evaluates the count of the copy definition cp. A count out of
// range is ARM's "The template 'copy' definition at line '153' and column
// '21' has an invalid copy count. The copy count must be a positive
// integer value and cannot exceed '800'. Please see https://aka.ms/arm-copy
// for usage details." (Azure/azure-quickstart-templates#6459,
// MicrosoftDocs/azure-docs#60638). 0 is allowed despite "positive"
// (copy-resources.md, "Copy limits": "The count can't be a negative
// number. It can be zero if you deploy … with REST API version
// 2019-05-10 or later").
func (c *evalCtx) copyCount(cp *node) (int, error) {
	n := cp.get("count")
	if n == nil {
		return 0, exprErrorf("The copy 'count' property is missing.")
	}
	v, err := c.evalNode(n, false)
	if err != nil {
		return 0, err
	}
	i, ok := v.(int64)
	if !ok || i < 0 || i > maxCopyCount {
		return 0, validationFailed(cp.line, cp.col, "The template 'copy' definition at line '%d' and column '%d' has an invalid copy count. The copy count must be a positive integer value and cannot exceed '%d'. Please see https://aka.ms/arm-copy for usage details.", cp.line, cp.col, maxCopyCount)
	}
	return int(i), nil
}

func (c *evalCtx) eval(e expr) (any, error) {
	if err := c.p.spend(1); err != nil {
		return nil, err
	}
	switch t := e.(type) {
	case strLit:
		return t.val, nil
	case intLit:
		return t.val, nil
	case call:
		return c.call(t)
	case propAccess:
		target, err := c.eval(t.target)
		if err != nil {
			return nil, err
		}
		return property(target, t.name)
	case indexAccess:
		target, err := c.eval(t.target)
		if err != nil {
			return nil, err
		}
		idx, err := c.eval(t.index)
		if err != nil {
			return nil, err
		}
		switch i := idx.(type) {
		case string:
			return property(target, i)
		case int64:
			arr, ok := target.([]any)
			if !ok {
				return nil, exprErrorf("The language expression property array index '%d' cannot be applied to a value of type '%s'.", i, typeName(target))
			}
			if i < 0 || i >= int64(len(arr)) {
				return nil, exprErrorf("The language expression property array index '%d' is out of bounds.", i)
			}
			return arr[i], nil
		}
		return nil, exprErrorf("The language expression property index must be a string or an integer. The provided value is of type '%s'.", typeName(idx))
	}
	return nil, exprErrorf("unknown expression")
}

// property reads a property of an object, case-insensitively.
func property(target any, name string) (any, error) {
	m, ok := target.(map[string]any)
	if !ok {
		return nil, exprErrorf("The language expression property '%s' can't be evaluated, property name must be a string.", name)
	}
	v, ok := lookup(m, name)
	if !ok {
		return nil, exprErrorf("The language expression property '%s' doesn't exist, available properties are '%s'.", name, strings.Join(sortedKeys(m), ", "))
	}
	return v, nil
}

func (c *evalCtx) call(t call) (any, error) {
	f, ok := functions[strings.ToLower(t.name)]
	if !ok && isListFunction(t.name) {
		return c.callList(t.name, t.args)
	}
	if !ok {
		// microsoft/vscode-azurearmtools#531 quotes ARM: "The template
		// function 'environment' is not valid. Please see
		// https://aka.ms/arm-template-expressions for usage details."
		return nil, exprErrorf("The template function '%s' is not valid.%s", t.name, usageSuffix)
	}
	if f.phases != 0 && f.phases&(1<<c.phase) == 0 {
		return nil, exprErrorf("The template function '%s' is not expected at this location.%s", t.name, usageSuffix)
	}
	if len(t.args) < f.min || f.max >= 0 && len(t.args) > f.max {
		return nil, arityError(f, t.name, len(t.args))
	}
	if f.lazy != nil {
		return f.lazy(c, t.args)
	}
	args := make([]any, len(t.args))
	for i, a := range t.args {
		v, err := c.eval(a)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	v, err := f.fn(c, args)
	if err != nil {
		return nil, err
	}
	// Charge what the result costs to build, so that functions making
	// large values (range, padLeft, union…) count against the budget.
	if err := c.p.spend(valueCost(v)); err != nil {
		return nil, err
	}
	return v, nil
}

// isListFunction tells the list* functions (listKeys, listSecrets…): any
// name that starts with "list" and is not a function of the table
// (template-functions-resource.md, list*).
func isListFunction(name string) bool {
	return len(name) > 4 && strings.EqualFold(name[:4], "list")
}

// valueCost is the budget charge for producing v: one step per element of
// an array or object and one per 16 bytes of a string, at the top level
// only (nested values were charged when they were built).
func valueCost(v any) int {
	switch t := v.(type) {
	case string:
		return len(t) / 16
	case []any:
		return len(t)
	case map[string]any:
		return len(t)
	}
	return 0
}

// arityError is ARM's message for a wrong number of arguments (as
// recorded in the tests of Kingsland.ArmLinter, a third-party linter whose
// tests hold outputs its authors got from ARM, in
// ArmExpressionEvaluatorTests_String.cs:
// "Unable to evaluate template language function 'endsWith': function
// requires 2 argument(s) while 0 were provided. Please see
// https://aka.ms/arm-template-expressions/#endsWith for usage details.").
func arityError(f *function, name string, n int) error {
	var want string
	switch {
	case f.min == f.max:
		want = fmt.Sprintf("%d", f.min)
	case f.max < 0:
		want = fmt.Sprintf("at least %d", f.min)
	default:
		want = fmt.Sprintf("between %d and %d", f.min, f.max)
	}
	return exprErrorf("Unable to evaluate template language function '%s': function requires %s argument(s) while %d were provided. Please see https://aka.ms/arm-template-expressions/#%s for usage details.", f.name, want, n, f.name)
}

// typeError is ARM's message for an argument of the wrong type
// (Kingsland.ArmLinter's tests: "The template language function 'base64' expects
// its parameter to be of type 'String'. The provided value is of type
// 'Integer'.").
func typeError(fn, want string, got any) error {
	return exprErrorf("The template language function '%s' expects its parameter to be of type '%s'. The provided value is of type '%s'.%s", fn, want, typeName(got), usageSuffix)
}

func evalFailed(fn, format string, args ...any) error {
	return exprErrorf("Unable to evaluate template language function '%s': %s%s", fn, fmt.Sprintf(format, args...), usageSuffix)
}
