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
type copyFrame struct {
	name  string
	index int
}

// evalCtx holds what an expression can see.
type evalCtx struct {
	p     *planner
	phase phase
	loops []copyFrame // innermost last
	ref   Referencer
	self  *Resource // resource whose body is evaluated, or nil
}

func (c *evalCtx) withLoop(name string, index int) *evalCtx {
	n := *c
	n.loops = append(append([]copyFrame(nil), c.loops...), copyFrame{name: name, index: index})
	return &n
}

// evalString evaluates a JSON string of the template: an expression when
// bracketed, else the literal text.
func (c *evalCtx) evalString(s string) (any, error) {
	text, isExpr := splitExpression(s)
	if !isExpr {
		return text, nil
	}
	e, err := parseExpression(text)
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
		count, err := c.copyCount(el.get("count"))
		if err != nil {
			return err
		}
		items := make([]any, 0, count)
		for i := 0; i < count; i++ {
			v, err := c.withLoop(nameStr, i).evalNode(el.get("input"), true)
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
// template-syntax.md / copy-resources.md).
const maxCopyCount = 800

func (c *evalCtx) copyCount(n *node) (int, error) {
	if n == nil {
		return 0, exprErrorf("The copy 'count' property is missing.")
	}
	v, err := c.evalNode(n, false)
	if err != nil {
		return 0, err
	}
	i, ok := v.(int64)
	if !ok {
		return 0, exprErrorf("The copy count must be an integer. The provided value is of type '%s'.", typeName(v))
	}
	if i < 0 || i > maxCopyCount {
		return 0, exprErrorf("The copy count '%d' is not valid: it must be between 0 and %d.", i, maxCopyCount)
	}
	return int(i), nil
}

func (c *evalCtx) eval(e expr) (any, error) {
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
	if !ok && len(t.name) > 4 && strings.EqualFold(t.name[:4], "list") {
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
	return f.fn(c, args)
}

// arityError is ARM's message for a wrong number of arguments (real
// answers recorded in Kingsland.ArmLinter's ArmExpressionEvaluatorTests_String.cs:
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
// (Kingsland.ArmLinter: "The template language function 'base64' expects
// its parameter to be of type 'String'. The provided value is of type
// 'Integer'.").
func typeError(fn, want string, got any) error {
	return exprErrorf("The template language function '%s' expects its parameter to be of type '%s'. The provided value is of type '%s'.%s", fn, want, typeName(got), usageSuffix)
}

func evalFailed(fn, format string, args ...any) error {
	return exprErrorf("Unable to evaluate template language function '%s': %s%s", fn, fmt.Sprintf(format, args...), usageSuffix)
}
