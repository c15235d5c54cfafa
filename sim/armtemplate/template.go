// Package armtemplate evaluates Azure Resource Manager (ARM) JSON templates
// (languageVersion 1.0) for the simulator's deployments endpoint: it parses
// the template text (comments and trailing commas allowed, as az sends the
// file as is), checks parameters, evaluates variables and expressions,
// expands copy loops and child resources, and orders the resources by
// their dependencies. It makes no HTTP calls: the server deploys the
// planned resources itself, asking Plan.Body for each request body once the
// resources it depends on exist, and Plan.Outputs at the end.
//
// Facts about ARM's behaviour come from MicrosoftDocs/azure-docs
// (template-syntax.md, template-expressions.md, template-functions-*.md)
// and from real ARM answers quoted in public issues; each is cited beside
// the code that relies on it, and what is cited nowhere is the
// simulator's own choice.
//
// Besides ARM's published limits (4 MB, 800 resources, 256 parameters and
// variables, 64 outputs, 24,576-character expressions), a plan has an
// evaluation budget of its own (maxEvalSteps) so that a small hostile
// template cannot hold the server's CPU: past it, evaluation fails with
// an InvalidTemplate error that wraps ErrUnsupported.
package armtemplate

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxRequestSize is the largest deployment request ARM accepts: 4 MB
// ("The request content size exceeds the maximum size of 4 MB.",
// Azure/bicep-registry-modules#2358). ARM counts the request content.
const MaxRequestSize = 4 << 20

// CheckRequestSize returns an *Error with code RequestContentTooLarge when a
// deployment request body of n bytes is over MaxRequestSize. ARM answers it
// with HTTP 413 (MicrosoftDocs/azure-docs#74251: "error 413 request entity
// too large").
func CheckRequestSize(n int64) error {
	if n > MaxRequestSize {
		return &Error{Code: CodeRequestContentTooLarge, Message: "The request content size exceeds the maximum size of 4 MB."}
	}
	return nil
}

// Template is a parsed template. It is immutable; Plan may be called on it
// any number of times, concurrently.
type Template struct {
	Schema         string
	ContentVersion string

	root      *node
	params    []*paramDecl
	variables *node
	resources []*node
	outputs   *node
}

type paramDecl struct {
	name string
	decl *node
}

// Parse reads a template: JSON with comments and trailing commas allowed.
// It returns an *Error: code InvalidRequestContent when the text is not
// JSON, InvalidTemplate when its shape is wrong or it uses what this engine
// does not support (then errors.Is(err, ErrUnsupported)), and
// RequestContentTooLarge when data is over MaxRequestSize.
func Parse(data []byte) (*Template, error) {
	if err := CheckRequestSize(int64(len(data))); err != nil {
		return nil, err
	}
	root, err := parseJSON(data)
	if err != nil {
		// ARM's answer to malformed JSON names the deserializer's complaint.
		return nil, &Error{Code: "InvalidRequestContent", Message: "The request content was invalid and could not be deserialized: '" + err.Error() + "'."}
	}
	if root.kind != 'o' {
		return nil, validationFailed(root.line, root.col, "The template must be a JSON object.")
	}
	t := &Template{root: root}
	if s := root.get("$schema"); s != nil && s.kind == 's' {
		t.Schema = s.str
	}
	if s := root.get("contentVersion"); s != nil && s.kind == 's' {
		t.ContentVersion = s.str
	}
	if lv := root.get("languageVersion"); lv != nil {
		v := fmt.Sprint(lv.plain())
		if v != "1.0" {
			e := unsupported("The template languageVersion '%s' is not supported by this simulator; only languageVersion 1.0 templates (resources as an array) are.", v)
			e.Line, e.Column = lv.line, lv.col
			return nil, e
		}
	}
	if f := root.get("functions"); f != nil && !(f.kind == 'a' && len(f.elems) == 0) && f.kind != 'z' {
		// User-defined functions (template-user-defined-functions.md).
		e := unsupported("The template defines user-defined functions ('functions'); this simulator does not support them.")
		e.Line, e.Column = f.line, f.col
		return nil, e
	}
	if err := checkLimits(root); err != nil {
		return nil, err
	}
	if p := root.get("parameters"); p != nil {
		if p.kind != 'o' {
			return nil, validationFailed(p.line, p.col, "The template 'parameters' property must be an object.")
		}
		for i, k := range p.keys {
			if p.vals[i].kind != 'o' {
				return nil, validationFailed(p.vals[i].line, p.vals[i].col, "The template parameter '%s' must be an object.", k)
			}
			t.params = append(t.params, &paramDecl{name: k, decl: p.vals[i]})
		}
	}
	if v := root.get("variables"); v != nil {
		if v.kind != 'o' {
			return nil, validationFailed(v.line, v.col, "The template 'variables' property must be an object.")
		}
		t.variables = v
	}
	if r := root.get("resources"); r != nil {
		switch r.kind {
		case 'a':
			for _, e := range r.elems {
				if e.kind != 'o' {
					return nil, validationFailed(e.line, e.col, "The template resource at line '%d' and column '%d' must be an object.", e.line, e.col)
				}
				t.resources = append(t.resources, e)
			}
		case 'o':
			e := unsupported("The template 'resources' property is an object (symbolic resource names); this simulator supports only languageVersion 1.0 templates with a resources array.")
			e.Line, e.Column = r.line, r.col
			return nil, e
		default:
			return nil, validationFailed(r.line, r.col, "The template 'resources' property must be an array.")
		}
	}
	if o := root.get("outputs"); o != nil {
		if o.kind != 'o' {
			return nil, validationFailed(o.line, o.col, "The template 'outputs' property must be an object.")
		}
		t.outputs = o
	}
	for _, r := range t.resources {
		// A nested deployment's inner template is not evaluated, not
		// even checked: it has its own parameters and functions.
		if n := findNestedDeployment(r); n != nil {
			return nil, nestedDeploymentUnsupported(n)
		}
		if _, err := checkExpressions(r); err != nil {
			return nil, wrapResourceError(declName(r), r, err)
		}
	}
	for _, section := range []*node{root.get("parameters"), t.variables, t.outputs} {
		if section == nil {
			continue
		}
		if at, err := checkExpressions(section); err != nil {
			return nil, asTemplateError(err, func(msg string) *Error {
				return validationFailed(at.line, at.col, "The template language expression '%s' at line '%d' and column '%d' is not valid: %s", at.str, at.line, at.col, msg)
			})
		}
	}
	return t, nil
}

// Template limits (best-practices.md, "Template limits": "256
// parameters, 256 variables, 800 resources (including copy count), 64
// output values, 24,576 characters in a template expression"; the
// learn.microsoft.com page of today lists 512 variables, the
// MicrosoftDocs/azure-docs copy read here 256). The messages are ours: no
// ARM answer for these four was found.
const (
	maxParameters = 256
	maxVariables  = 256
	maxOutputs    = 64
	maxExprLength = 24576
)

func checkLimits(root *node) error {
	for _, l := range []struct {
		section string
		max     int
	}{{"parameters", maxParameters}, {"variables", maxVariables}, {"outputs", maxOutputs}} {
		n := root.get(l.section)
		if n == nil || n.kind != 'o' {
			continue
		}
		count := len(n.keys)
		if l.section == "variables" {
			// Variables built by a top-level copy count one each.
			count = 0
			for i, k := range n.keys {
				if strings.EqualFold(k, "copy") && n.vals[i].kind == 'a' {
					count += len(n.vals[i].elems)
				} else {
					count++
				}
			}
		}
		if count > l.max {
			return validationFailed(n.line, n.col, "The number of template %s limit exceeded. Limit: '%d' and actual: '%d'.", l.section, l.max, count)
		}
	}
	return nil
}

// findNestedDeployment returns the first declaration of type
// Microsoft.Resources/deployments among n and its nested children whose
// type is a literal (computed types are caught when planned).
func findNestedDeployment(n *node) *node {
	if t := n.get("type"); t != nil && t.kind == 's' && strings.EqualFold(t.str, nestedDeploymentType) {
		return n
	}
	if kids := n.get("resources"); kids != nil && kids.kind == 'a' {
		for _, k := range kids.elems {
			if k.kind == 'o' {
				if d := findNestedDeployment(k); d != nil {
					return d
				}
			}
		}
	}
	return nil
}

// ParameterNames lists the declared parameters in template order.
func (t *Template) ParameterNames() []string {
	out := make([]string, len(t.params))
	for i, p := range t.params {
		out[i] = p.name
	}
	return out
}

func (t *Template) param(name string) *paramDecl {
	for _, p := range t.params {
		if strings.EqualFold(p.name, name) {
			return p
		}
	}
	return nil
}

// checkExpressions parses every expression under n and checks that the
// functions it calls exist, as ARM does when it validates a template:
// a syntax error or an unknown function anywhere fails the deployment
// before anything is deployed, not when its resource's turn comes.
func checkExpressions(n *node) (*node, error) {
	switch n.kind {
	case 's':
		text, isExpr := splitExpression(n.str)
		if !isExpr {
			return nil, nil
		}
		if l := utf8.RuneCountInString(n.str); l > maxExprLength {
			return n, exprErrorf("The template language expression is %d characters long; the limit is %d", l, maxExprLength)
		}
		e, err := parseExpression(text)
		if err == nil {
			err = checkCalls(e)
		}
		if err != nil {
			return n, err
		}
	case 'o':
		for _, v := range n.vals {
			if at, err := checkExpressions(v); err != nil {
				return at, err
			}
		}
	case 'a':
		for _, v := range n.elems {
			if at, err := checkExpressions(v); err != nil {
				return at, err
			}
		}
	}
	return nil, nil
}

func checkCalls(e expr) error {
	switch e := e.(type) {
	case call:
		if _, ok := functions[strings.ToLower(e.name)]; !ok && !isListFunction(e.name) {
			return exprErrorf("The template function '%s' is not valid.%s", e.name, usageSuffix)
		}
		for _, a := range e.args {
			if err := checkCalls(a); err != nil {
				return err
			}
		}
	case propAccess:
		return checkCalls(e.target)
	case indexAccess:
		if err := checkCalls(e.target); err != nil {
			return err
		}
		return checkCalls(e.index)
	}
	return nil
}
