package armtemplate

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Scope is where a deployment runs: what resourceGroup(), subscription(),
// deployment() and tenant() return, and what resourceId() fills in.
type Scope struct {
	Subscription  Subscription
	ResourceGroup ResourceGroup
	Deployment    Deployment
	Tenant        string // tenant ID; Subscription.TenantID when empty
}

// Subscription is what subscription() returns.
type Subscription struct {
	ID             string // "/subscriptions/<id>"; derived from SubscriptionID when empty
	SubscriptionID string
	TenantID       string
	DisplayName    string
}

// ResourceGroup is what resourceGroup() returns.
type ResourceGroup struct {
	ID       string // derived from the subscription and Name when empty
	Name     string
	Location string
	Tags     map[string]string
}

// Deployment names the deployment for deployment().
type Deployment struct {
	Name         string
	Mode         string // "Incremental" when empty
	TemplateLink string // URI of a linked template, or ""
}

// Option changes how Plan evaluates; the options are test seams.
type Option func(*options)

type options struct {
	now     func() time.Time
	newGUID func() string
}

// WithClock sets the clock utcNow() reads.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithNewGUID sets the source of newGuid() values.
func WithNewGUID(f func() string) Option { return func(o *options) { o.newGUID = f } }

// Value is a typed value as ARM echoes parameters and outputs in a
// deployment's properties: {"type":"String","value":"x"}.
type Value struct {
	Type  string `json:"type"`
	Value any    `json:"value,omitempty"`
}

// Referencer gives reference() its values: the runtime state of a deployed
// resource. full asks for the whole resource (reference(x, v, 'Full'));
// otherwise only its properties. apiVersion may be empty.
type Referencer interface {
	Reference(id, apiVersion string, full bool) (any, error)
}

// Lister is an optional extra of a Referencer that serves list*()
// functions (listKeys, listSecrets…): POST {id}/{action}.
type Lister interface {
	List(id, apiVersion, action string, body any) (any, error)
}

// Resource is one resource instance to deploy, copy loops expanded.
type Resource struct {
	ID         string // full resource ID
	Type       string // full type, e.g. "Microsoft.MachineLearningServices/workspaces/computes"
	Name       string // full name, e.g. "ws/ci"
	APIVersion string
	Location   string   // evaluated location, "" when none or when it needs reference()
	DependsOn  []string // resource IDs of resources of this template, in template order
	Condition  bool     // false: ARM skips the resource
	CopyName   string   // the copy loop, or ""
	CopyIndex  int      // index within the copy loop (0 when none)
	Line       int      // position of the resource's declaration
	Column     int

	decl  *node
	loops []copyFrame
	deps  []string // dependsOn as written, evaluated
}

// Plan is a template evaluated against parameters and a scope, ready to
// deploy. A Plan is not safe for concurrent use: Body and Outputs fill
// the plan's cache of variables and draw on its evaluation budget, so
// calls on one Plan must not overlap (the Template it came from may be
// planned concurrently).
type Plan struct {
	// Resources in an order that respects every dependency; where the order
	// is free, template order.
	Resources []*Resource
	// Parameters are the evaluated parameters as ARM echoes them in the
	// deployment's properties.parameters; secure values carry no value.
	Parameters map[string]Value

	p *planner
}

type planner struct {
	t      *Template
	sc     Scope
	opts   options
	given  map[string]any
	params map[string]any // by lowercase name
	pstate map[string]int // 1 evaluating, 2 done
	vars   map[string]any
	vstate map[string]int
	res    []*Resource
	exprs  map[string]expr // parsed expressions by text
	steps  int             // evaluation steps spent, see maxEvalSteps

	// Indexes of res, built once expansion is done.
	index  map[*Resource]int
	byID   map[string][]*Resource // lowercase ID
	byName map[string][]*Resource // lowercase name
	byCopy map[string][]*Resource // lowercase copy loop name
}

// maxEvalSteps bounds the work of one plan (Plan, and every Body and
// Outputs call on it): one step per expression node and JSON value
// evaluated, plus the size of every value a function builds. ARM has
// limits of its own (template size, 800 resources, 24,576-character
// expressions) but publishes no evaluation budget; this one is the
// simulator's, sized so that a plan stays well under a second of CPU
// while real templates (a few thousand steps) never meet it.
const maxEvalSteps = 1_000_000

// spend charges n steps to the plan's budget.
func (p *planner) spend(n int) error {
	p.steps += n
	if p.steps > maxEvalSteps {
		return &Error{Code: CodeInvalidTemplate, Message: fmt.Sprintf("The template needs more than %d evaluation steps to evaluate; the simulator stops there. This is a limit of the simulator, not of ARM.", maxEvalSteps), cause: ErrUnsupported}
	}
	return nil
}

// parsed parses an expression once per plan.
func (p *planner) parsed(text string) (expr, error) {
	if e, ok := p.exprs[text]; ok {
		return e, nil
	}
	e, err := parseExpression(text)
	if err != nil {
		return nil, err
	}
	p.exprs[text] = e
	return e, nil
}

// Plan checks params (values as encoding/json decodes them: map[string]any,
// []any, string, float64 or json.Number, bool, nil), applies defaults,
// expands copy loops and child resources, resolves dependsOn and orders the
// resources. Errors are *Error with code InvalidTemplate, with ARM's
// message and the template position.
func (t *Template) Plan(params map[string]any, sc Scope, opts ...Option) (*Plan, error) {
	p := &planner{t: t, sc: sc, given: map[string]any{}, params: map[string]any{}, pstate: map[string]int{}, vars: map[string]any{}, vstate: map[string]int{}, exprs: map[string]expr{}}
	p.opts = options{now: time.Now, newGUID: randomGUID}
	for _, o := range opts {
		o(&p.opts)
	}
	for k, v := range params {
		p.given[k] = normalize(v)
	}
	if err := p.checkUnknownParameters(); err != nil {
		return nil, err
	}
	for _, d := range t.params {
		if _, err := p.parameter(d.name); err != nil {
			return nil, err
		}
	}
	if err := p.expandResources(); err != nil {
		return nil, err
	}
	if err := p.resolveDependencies(); err != nil {
		return nil, err
	}
	ordered, err := order(p.res)
	if err != nil {
		return nil, err
	}
	plan := &Plan{Resources: ordered, Parameters: map[string]Value{}, p: p}
	for _, d := range t.params {
		typ := paramType(d)
		v := Value{Type: echoType(typ)}
		if !strings.HasPrefix(typ, "secure") {
			v.Value = deepCopy(p.params[strings.ToLower(d.name)])
		}
		plan.Parameters[d.name] = v
	}
	return plan, nil
}

func randomGUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return formatUUID(u)
}

// echoType is the type name ARM echoes for a parameter or output type
// ("String", "SecureString", "Int", "Bool", "Object", "SecureObject",
// "Array", as in a deployment's properties.parameters).
func echoType(t string) string {
	switch strings.ToLower(t) {
	case "string":
		return "String"
	case "securestring":
		return "SecureString"
	case "int":
		return "Int"
	case "bool":
		return "Bool"
	case "object":
		return "Object"
	case "secureobject":
		return "SecureObject"
	case "array":
		return "Array"
	}
	return t
}

func paramType(d *paramDecl) string {
	if n := d.decl.get("type"); n != nil && n.kind == 's' {
		return strings.ToLower(n.str)
	}
	return ""
}

func (p *planner) ctx(ph phase) *evalCtx { return &evalCtx{p: p, phase: ph} }

// checkUnknownParameters rejects values for parameters the template does
// not declare, with ARM's message (quoted in the Azure Data Factory CI/CD
// docs: "The template parameters 'a, b' in the parameters file are not
// valid; they are not present in the original template and can therefore
// not be provided at deployment time. The only supported parameters for
// this template are '…'."; the ending link is from
// microsoft/vscode-azurearmtools' test expectations).
func (p *planner) checkUnknownParameters() error {
	var unknown []string
	for k := range p.given {
		if p.t.param(k) == nil {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return validationFailed(0, 0, "The template parameters '%s' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are '%s'. Please see https://aka.ms/arm-deploy/#parameter-file for usage details.",
		strings.Join(unknown, ", "), strings.Join(p.t.ParameterNames(), ", "))
}

// parameter returns the value of a parameter, evaluating its default on
// first use (defaults may refer to other parameters).
func (p *planner) parameter(name string) (any, error) {
	d := p.t.param(name)
	if d == nil {
		return nil, exprErrorf("The template parameter '%s' is not found. Please see https://aka.ms/arm-syntax-parameters for usage details.", name)
	}
	key := strings.ToLower(d.name)
	switch p.pstate[key] {
	case 2:
		return p.params[key], nil
	case 1:
		return nil, exprErrorf("The template parameter '%s' has a circular reference in its default value.", d.name)
	}
	p.pstate[key] = 1
	v, err := p.evalParameter(d)
	if err != nil {
		delete(p.pstate, key)
		return nil, err
	}
	p.params[key] = v
	p.pstate[key] = 2
	return v, nil
}

func (p *planner) givenValue(name string) (any, bool) {
	for k, v := range p.given {
		if strings.EqualFold(k, name) {
			return v, v != nil
		}
	}
	return nil, false
}

func (p *planner) evalParameter(d *paramDecl) (any, error) {
	typ := paramType(d)
	if !validParamType(typ) {
		return nil, validationFailed(d.decl.line, d.decl.col, "The template parameter '%s' at line '%d' and column '%d' has an invalid type '%s'. The supported types are 'string, securestring, int, bool, object, secureobject, array'.", d.name, d.decl.line, d.decl.col, typ)
	}
	v, ok := p.givenValue(d.name)
	if !ok {
		def := d.decl.get("defaultValue")
		if def == nil {
			// Real ARM answer (Azure Local docs, troubleshooting machine
			// provisioning): "The value for the template parameter
			// 'hciRPServiceprincipalID' at line '1' and column '10174' is not
			// provided. Please see https://aka.ms/arm-create-parameter-file for
			// usage details."
			return nil, validationFailed(d.decl.line, d.decl.col, "The value for the template parameter '%s' at line '%d' and column '%d' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details.", d.name, d.decl.line, d.decl.col)
		}
		var err error
		v, err = p.ctx(phaseParameters).evalNode(def, false)
		if err != nil {
			return nil, asTemplateError(err, func(msg string) *Error {
				return validationFailed(def.line, def.col, "The template parameter '%s' at line '%d' and column '%d' is not valid: %s. Please see https://aka.ms/arm-template-expressions for usage details.", d.name, def.line, def.col, msg)
			})
		}
	}
	if !typeMatches(typ, v) {
		// Real ARM answer: "Template parameter JToken type is not valid.
		// Expected 'Integer'. Actual 'String'. Please see
		// https://aka.ms/resource-manager-parameter-files for usage details."
		// (quoted in public scripts; "Expected 'String, Uri'" for strings).
		// ARM does not coerce "1" to 1: az converts on the client side.
		return nil, validationFailed(d.decl.line, d.decl.col, "Template parameter JToken type is not valid. Expected '%s'. Actual '%s'. Please see https://aka.ms/resource-manager-parameter-files for usage details.", expectedJToken(typ), typeName(v))
	}
	return v, p.checkConstraints(d, typ, v)
}

func validParamType(t string) bool {
	switch t {
	case "string", "securestring", "int", "bool", "object", "secureobject", "array":
		return true
	}
	return false
}

func typeMatches(typ string, v any) bool {
	switch typ {
	case "string", "securestring":
		_, ok := v.(string)
		return ok
	case "int":
		_, ok := v.(int64)
		return ok
	case "bool":
		_, ok := v.(bool)
		return ok
	case "object", "secureobject":
		_, ok := v.(map[string]any)
		return ok || v == nil
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return false
}

func expectedJToken(typ string) string {
	switch typ {
	case "string", "securestring":
		return "String, Uri"
	case "int":
		return "Integer"
	case "bool":
		return "Boolean"
	case "object", "secureobject":
		return "Object"
	case "array":
		return "Array"
	}
	return typ
}

// checkConstraints applies allowedValues, minValue/maxValue and
// minLength/maxLength.
func (p *planner) checkConstraints(d *paramDecl, typ string, v any) error {
	line, col := d.decl.line, d.decl.col
	if av := d.decl.get("allowedValues"); av != nil && av.kind == 'a' {
		allowed := av.plain().([]any)
		check := []any{v}
		if arr, ok := v.([]any); ok && typ == "array" {
			check = arr
		}
		for _, c := range check {
			found := false
			for _, a := range allowed {
				if allowedEqual(a, c) {
					found = true
					break
				}
			}
			if !found {
				names := make([]string, len(allowed))
				for i, a := range allowed {
					names[i] = stringify(a)
				}
				// Real ARM answer (azure-docs, template tutorial on
				// validation): "The provided value 'badSku' for the template
				// parameter 'storageAccountType' at line '15' and column '24'
				// is not valid. The parameter value is not part of the
				// allowed value(s): 'Standard_LRS,Standard_ZRS,…'."
				return validationFailed(line, col, "The provided value '%s' for the template parameter '%s' at line '%d' and column '%d' is not valid. The parameter value is not part of the allowed value(s): '%s'.", stringify(c), d.name, line, col, strings.Join(names, ","))
			}
		}
	}
	// The wording of the following four is ours; ARM's exact text was not
	// found in the searched material.
	if i, ok := v.(int64); ok {
		if mn := d.decl.get("minValue"); mn != nil && mn.kind == 'n' {
			if m, ok := mn.num.(int64); ok && i < m {
				return validationFailed(line, col, "The provided value '%d' for the template parameter '%s' at line '%d' and column '%d' is not valid. The parameter value is less than the minimum value '%d'.", i, d.name, line, col, m)
			}
		}
		if mx := d.decl.get("maxValue"); mx != nil && mx.kind == 'n' {
			if m, ok := mx.num.(int64); ok && i > m {
				return validationFailed(line, col, "The provided value '%d' for the template parameter '%s' at line '%d' and column '%d' is not valid. The parameter value is greater than the maximum value '%d'.", i, d.name, line, col, m)
			}
		}
	}
	var n int64 = -1
	switch t := v.(type) {
	case string:
		n = int64(len([]rune(t)))
	case []any:
		n = int64(len(t))
	}
	if n >= 0 {
		shown := stringify(v)
		if strings.HasPrefix(typ, "secure") {
			shown = "***"
		}
		if mn := d.decl.get("minLength"); mn != nil && mn.kind == 'n' {
			if m, ok := mn.num.(int64); ok && n < m {
				return validationFailed(line, col, "The provided value '%s' for the template parameter '%s' at line '%d' and column '%d' is not valid. The length of the value is less than the minimum length '%d'.", shown, d.name, line, col, m)
			}
		}
		if mx := d.decl.get("maxLength"); mx != nil && mx.kind == 'n' {
			if m, ok := mx.num.(int64); ok && n > m {
				return validationFailed(line, col, "The provided value '%s' for the template parameter '%s' at line '%d' and column '%d' is not valid. The length of the value is greater than the maximum length '%d'.", shown, d.name, line, col, m)
			}
		}
	}
	return nil
}

// allowedEqual compares a value with one of a parameter's allowedValues:
// strings case-insensitively, as ARM does (Azure/bicep#2489: "@allowed
// decorator forces case sensitivity even though ARM doesn't require it";
// its report passes "eastus" to ARM for an allowed "EastUS"), the rest as
// equals() does.
func allowedEqual(allowed, v any) bool {
	a, ok1 := allowed.(string)
	b, ok2 := v.(string)
	if ok1 && ok2 {
		return strings.EqualFold(a, b)
	}
	return deepEqual(allowed, v)
}

// variable evaluates a variable on first use. "copy" in variables declares
// array variables built by a loop (copy-variables.md).
func (p *planner) variable(name string) (any, error) {
	key := strings.ToLower(name)
	switch p.vstate[key] {
	case 2:
		return p.vars[key], nil
	case 1:
		return nil, exprErrorf("The template variable '%s' has a circular reference.", name)
	}
	n, copyEl := p.findVariable(name)
	if n == nil && copyEl == nil {
		return nil, exprErrorf("The template variable '%s' is not found. Please see https://aka.ms/arm-syntax-variables for usage details.", name)
	}
	p.vstate[key] = 1
	c := p.ctx(phaseVariables)
	var v any
	var err error
	if copyEl != nil {
		var count int
		count, err = c.copyCount(copyEl)
		items := []any{}
		for i := 0; err == nil && i < count; i++ {
			var item any
			item, err = c.withLoop(name, i, true).evalNode(copyEl.get("input"), true)
			items = append(items, item)
		}
		v = items
	} else {
		v, err = c.evalNode(n, true)
	}
	if err != nil {
		delete(p.vstate, key)
		at := n
		if at == nil {
			at = copyEl
		}
		return nil, asTemplateError(err, func(msg string) *Error {
			return validationFailed(at.line, at.col, "The template variable '%s' is not valid: %s. Please see https://aka.ms/arm-template-expressions for usage details.", name, msg)
		})
	}
	p.vars[key] = v
	p.vstate[key] = 2
	return v, nil
}

func (p *planner) findVariable(name string) (val, copyEl *node) {
	vs := p.t.variables
	if vs == nil {
		return nil, nil
	}
	for i, k := range vs.keys {
		if strings.EqualFold(k, "copy") && vs.vals[i].kind == 'a' {
			for _, el := range vs.vals[i].elems {
				if nm := el.get("name"); nm != nil && nm.kind == 's' && strings.EqualFold(nm.str, name) {
					copyEl = el
				}
			}
			continue
		}
		if strings.EqualFold(k, name) {
			val = vs.vals[i]
		}
	}
	return val, copyEl
}

func (p *planner) subscriptionID() string {
	if p.sc.Subscription.SubscriptionID != "" {
		return p.sc.Subscription.SubscriptionID
	}
	return strings.TrimPrefix(p.sc.Subscription.ID, "/subscriptions/")
}

func (p *planner) tenantID() string {
	if p.sc.Tenant != "" {
		return p.sc.Tenant
	}
	return p.sc.Subscription.TenantID
}

func (p *planner) subscriptionObject() map[string]any {
	id := p.sc.Subscription.ID
	if id == "" {
		id = "/subscriptions/" + p.subscriptionID()
	}
	return map[string]any{
		"id":             id,
		"subscriptionId": p.subscriptionID(),
		"tenantId":       p.tenantID(),
		"displayName":    p.sc.Subscription.DisplayName,
	}
}

func (p *planner) resourceGroupID() string {
	if p.sc.ResourceGroup.ID != "" {
		return p.sc.ResourceGroup.ID
	}
	return "/subscriptions/" + p.subscriptionID() + "/resourceGroups/" + p.sc.ResourceGroup.Name
}

// resourceGroupObject is resourceGroup() (template-functions-scope.md: id,
// name, type, location, managedBy, tags, properties.provisioningState).
func (p *planner) resourceGroupObject() map[string]any {
	tags := map[string]any{}
	for k, v := range p.sc.ResourceGroup.Tags {
		tags[k] = v
	}
	return map[string]any{
		"id":         p.resourceGroupID(),
		"name":       p.sc.ResourceGroup.Name,
		"type":       "Microsoft.Resources/resourceGroups",
		"location":   p.sc.ResourceGroup.Location,
		"tags":       tags,
		"properties": map[string]any{"provisioningState": "Succeeded"},
	}
}

// deploymentObject is deployment() (template-functions-deployment.md).
func (p *planner) deploymentObject() map[string]any {
	mode := p.sc.Deployment.Mode
	if mode == "" {
		mode = "Incremental"
	}
	given := map[string]any{}
	for k, v := range p.given {
		given[k] = map[string]any{"value": v}
	}
	props := map[string]any{
		"template":          p.t.root.plain(),
		"templateHash":      uniqueString(compactJSON(p.t.root.plain())),
		"parameters":        given,
		"mode":              mode,
		"provisioningState": "Accepted",
	}
	if p.sc.Deployment.TemplateLink != "" {
		props["templateLink"] = map[string]any{"uri": p.sc.Deployment.TemplateLink}
	}
	return map[string]any{
		"name":       p.sc.Deployment.Name,
		"properties": props,
	}
}

// environmentObject is environment() for the public cloud (the parts
// templates commonly read).
func (p *planner) environmentObject() map[string]any {
	return map[string]any{
		"name":            "AzureCloud",
		"gallery":         "https://gallery.azure.com/",
		"graph":           "https://graph.windows.net/",
		"portal":          "https://portal.azure.com",
		"resourceManager": "https://management.azure.com/",
		"authentication": map[string]any{
			"loginEndpoint": "https://login.microsoftonline.com/",
			"audiences":     []any{"https://management.core.windows.net/", "https://management.azure.com/"},
			"tenant":        "common",
		},
		"suffixes": map[string]any{
			"storage":        "core.windows.net",
			"keyvaultDns":    ".vault.azure.net",
			"acrLoginServer": ".azurecr.io",
		},
	}
}

func (p *planner) newGUID() string { return p.opts.newGUID() }

func (p *planner) now() time.Time { return p.opts.now().UTC() }

// wrapResourceError reports a failure in a resource the way ARM does
// (microsoft/vscode-azurearmtools#531 quotes: "The template resource 'p1'
// at line '5' and column '15' is not valid: The template function
// 'environment' is not valid. Please see … for usage details.. Please see
// https://aka.ms/arm-template-expressions for usage details.").
func wrapResourceError(name string, n *node, err error) error {
	return asTemplateError(err, func(msg string) *Error {
		return validationFailed(n.line, n.col, "The template resource '%s' at line '%d' and column '%d' is not valid: %s. Please see https://aka.ms/arm-template-expressions for usage details.", name, n.line, n.col, msg)
	})
}

// asTemplateError returns err itself when it is already an *Error (it
// carries its own code and position), else the *Error wrap makes of its
// message.
func asTemplateError(err error, wrap func(msg string) *Error) error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	return wrap(err.Error())
}

func declName(n *node) string {
	if nm := n.get("name"); nm != nil && nm.kind == 's' {
		return nm.str
	}
	return ""
}

// maxResources is ARM's limit on resources, copies expanded
// (best-practices.md, "Template limits": "800 resources (including copy
// count)").
const maxResources = 800

// expandResources turns the resource declarations into instances: copy
// loops expanded, child resources flattened with full types and names.
func (p *planner) expandResources() error {
	if n, ok := p.countInstances(); ok && n > maxResources {
		return tooManyResources(n)
	}
	for _, n := range p.t.resources {
		if err := p.expand(n, nil, nil); err != nil {
			return err
		}
		if len(p.res) > maxResources {
			return tooManyResources(len(p.res))
		}
	}
	p.buildIndexes()
	return p.checkDuplicates()
}

// tooManyResources is ARM's answer to a template over maxResources
// ("Deployment template validation failed: 'The number of template
// resources limit exceeded. Limit: '800' and actual: '1279'", quoted in
// Azure/azure-api-management-devops-resource-kit#360; the same message
// quoted whole, ending "Please see https://aka.ms/arm-template/#resources
// for usage details.'." with lineNumber 0, in a public write-up found by
// exact-string search whose repository the search tool did not name).
func tooManyResources(n int) error {
	return validationFailed(0, 0, "The number of template resources limit exceeded. Limit: '%d' and actual: '%d'. Please see https://aka.ms/arm-template/#resources for usage details.", maxResources, n)
}

// countInstances counts the instances the template declares without
// evaluating them: each top-level declaration times its copy count, its
// nested children included (children cannot have copy). ok is false when
// a copy count cannot be evaluated; expansion then reports why.
func (p *planner) countInstances() (int, bool) {
	total := 0
	for _, n := range p.t.resources {
		count := 1
		if cp := n.get("copy"); cp != nil {
			c, err := p.ctx(phasePlan).copyCount(cp)
			if err != nil {
				return 0, false
			}
			count = c
		}
		total += count * declarations(n)
	}
	return total, true
}

// declarations counts n and its nested child declarations.
func declarations(n *node) int {
	total := 1
	if kids := n.get("resources"); kids != nil && kids.kind == 'a' {
		for _, k := range kids.elems {
			if k.kind == 'o' {
				total += declarations(k)
			}
		}
	}
	return total
}

func (p *planner) expand(n *node, parent *Resource, loops []copyFrame) error {
	c := &evalCtx{p: p, phase: phasePlan, loops: loops}
	cp := n.get("copy")
	if cp == nil {
		return p.instance(c, n, parent, "", 0)
	}
	if parent != nil {
		return wrapResourceError(declName(n), n, exprErrorf("The copy property is not allowed on a nested child resource."))
	}
	nameV, err := c.evalNode(cp.get("name"), false)
	if err != nil {
		return wrapResourceError(declName(n), n, err)
	}
	loopName, ok := nameV.(string)
	if !ok || loopName == "" {
		return wrapResourceError(declName(n), n, exprErrorf("The copy 'name' property must be a non-empty string."))
	}
	count, err := c.copyCount(cp)
	if err != nil {
		return wrapResourceError(declName(n), n, err)
	}
	serial := false
	if m := cp.get("mode"); m != nil && m.kind == 's' && strings.EqualFold(m.str, "serial") {
		serial = true
	}
	batch := 1
	if b := cp.get("batchSize"); b != nil && b.kind == 'n' {
		if i, ok := b.num.(int64); ok && i > 0 {
			batch = int(min(i, maxCopyCount))
		}
	}
	var instances []*Resource
	for i := 0; i < count; i++ {
		start := len(p.res)
		if err := p.instance(c.withLoop(loopName, i, false), n, parent, loopName, i); err != nil {
			return err
		}
		r := p.res[start]
		// Serial copies deploy batchSize at a time (copy-resources.md):
		// each instance waits for the whole previous batch.
		if serial && i >= batch {
			first := (i/batch - 1) * batch
			for _, prev := range instances[first : first+batch] {
				r.deps = append(r.deps, prev.ID)
			}
		}
		instances = append(instances, r)
	}
	return nil
}

// instance evaluates one resource instance and its children. A parent's
// condition does not pass to its children (conditional-resource-deployment.md:
// "Conditional deployment doesn't cascade to child resources. If you want
// to conditionally deploy a resource and its child resources, you must
// apply the same condition to each resource type.").
func (p *planner) instance(c *evalCtx, n *node, parent *Resource, loopName string, index int) error {
	r := &Resource{decl: n, loops: c.loops, Line: n.line, Column: n.col, CopyName: loopName, CopyIndex: index, Condition: true}
	label, err := p.identify(c, r, parent)
	if err != nil {
		return wrapResourceError(label, n, err)
	}
	if cond := n.get("condition"); cond != nil {
		v, err := c.evalNode(cond, false)
		if err != nil {
			return wrapResourceError(label, n, err)
		}
		b, ok := v.(bool)
		if !ok {
			return wrapResourceError(label, n, exprErrorf("The template resource condition must be a boolean. The provided value is of type '%s'.", typeName(v)))
		}
		r.Condition = b
	}
	if loc := n.get("location"); loc != nil {
		// A location that needs reference() is left to Body.
		if v, err := c.evalNode(loc, false); err == nil {
			r.Location, _ = v.(string)
		} else if errors.Is(err, ErrUnsupported) {
			return err
		}
	}
	if err := p.locate(c, r, label); err != nil {
		return err
	}
	if err := p.explicitDependencies(c, r, label); err != nil {
		return err
	}
	if parent != nil {
		// A child depends on its parent implicitly when both are in the
		// template (child-resource-name-type.md).
		r.deps = append(r.deps, parent.ID)
	}
	p.res = append(p.res, r)
	if kids := n.get("resources"); kids != nil && kids.kind == 'a' {
		for _, k := range kids.elems {
			if k.kind != 'o' {
				continue
			}
			if err := p.expand(k, r, c.loops); err != nil {
				return err
			}
		}
	}
	return nil
}

// resourceString evaluates the string property key of a resource
// declaration; "" when absent and not required.
func resourceString(c *evalCtx, n *node, key string, required bool) (string, error) {
	m := n.get(key)
	if m == nil {
		if required {
			return "", exprErrorf("The resource property '%s' is missing.", key)
		}
		return "", nil
	}
	v, err := c.evalNode(m, false)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", exprErrorf("The resource property '%s' must be a string. The provided value is of type '%s'.", key, typeName(v))
	}
	return s, nil
}

// identify fills r's type, name and API version; label is what errors
// name the resource by.
func (p *planner) identify(c *evalCtx, r *Resource, parent *Resource) (label string, err error) {
	n := r.decl
	label = declName(n)
	typ, err := resourceString(c, n, "type", true)
	if err != nil {
		return label, err
	}
	name, err := resourceString(c, n, "name", true)
	if err != nil {
		return label, err
	}
	label = name
	if r.APIVersion, err = resourceString(c, n, "apiVersion", true); err != nil {
		return label, err
	}
	if parent != nil {
		// Child resources take their parent's type and name as prefix
		// unless they spell out the full type (child-resource-name-type.md).
		if !strings.Contains(typ, "/") {
			typ = parent.Type + "/" + typ
			name = parent.Name + "/" + name
		} else if !strings.Contains(name, "/") {
			name = parent.Name + "/" + name
		}
	}
	if strings.EqualFold(typ, nestedDeploymentType) {
		return label, nestedDeploymentUnsupported(n)
	}
	r.Type, r.Name = typ, name
	return label, nil
}

// locate fills r.ID from the scope properties and the type and name.
func (p *planner) locate(c *evalCtx, r *Resource, label string) error {
	n := r.decl
	sub, rg := p.subscriptionID(), p.sc.ResourceGroup.Name
	if s, err := resourceString(c, n, "subscriptionId", false); err != nil {
		return wrapResourceError(label, n, err)
	} else if s != "" {
		sub = s
	}
	if s, err := resourceString(c, n, "resourceGroup", false); err != nil {
		return wrapResourceError(label, n, err)
	} else if s != "" {
		rg = s
	}
	if n.get("scope") != nil {
		e := unsupported("The template resource '%s' uses 'scope' (extension resource); this simulator does not support it.", label)
		e.Line, e.Column = n.line, n.col
		return e
	}
	path, err := providerPath(r.Type, strings.Split(r.Name, "/"))
	if err != nil {
		// error-invalid-template.md, "incorrect segment lengths".
		return validationFailed(n.line, n.col, "The template resource '%s' for type '%s' at line '%d' and column '%d' has incorrect segment lengths. A nested resource type must have identical number of segments as its resource name. A root resource type must have segment length one greater than its resource name. Please see https://aka.ms/arm-syntax-resources for usage details.", r.Name, r.Type, n.line, n.col)
	}
	r.ID = "/subscriptions/" + sub + "/resourceGroups/" + rg + path
	return nil
}

// explicitDependencies evaluates dependsOn into r.deps.
func (p *planner) explicitDependencies(c *evalCtx, r *Resource, label string) error {
	n := r.decl
	dn := n.get("dependsOn")
	if dn == nil {
		return nil
	}
	v, err := c.evalNode(dn, false)
	if err != nil {
		return wrapResourceError(label, n, err)
	}
	arr, ok := v.([]any)
	if !ok && v != nil { // null reads as absent, as Json.NET reads it
		return wrapResourceError(label, n, exprErrorf("The 'dependsOn' property must be an array."))
	}
	for _, d := range arr {
		s, ok := d.(string)
		if !ok {
			return wrapResourceError(label, n, exprErrorf("The 'dependsOn' entries must be strings. The provided value is of type '%s'.", typeName(d)))
		}
		if s != "" {
			r.deps = append(r.deps, s)
		}
	}
	return nil
}

// nestedDeploymentType is the type of nested and linked deployments.
const nestedDeploymentType = "Microsoft.Resources/deployments"

func nestedDeploymentUnsupported(n *node) *Error {
	e := unsupported("The template resource '%s' is a nested deployment (%s); this simulator does not deploy inner or linked templates.", declName(n), nestedDeploymentType)
	e.Line, e.Column = n.line, n.col
	return e
}

// buildIndexes indexes the expanded resources by position, ID, name and
// copy loop.
func (p *planner) buildIndexes() {
	p.index = make(map[*Resource]int, len(p.res))
	p.byID = map[string][]*Resource{}
	p.byName = map[string][]*Resource{}
	p.byCopy = map[string][]*Resource{}
	for i, r := range p.res {
		p.index[r] = i
		id := strings.ToLower(r.ID)
		p.byID[id] = append(p.byID[id], r)
		name := strings.ToLower(r.Name)
		p.byName[name] = append(p.byName[name], r)
		if r.CopyName != "" {
			cn := strings.ToLower(r.CopyName)
			p.byCopy[cn] = append(p.byCopy[cn], r)
		}
	}
}

// checkDuplicates rejects two instances with the same resource ID, their
// conditions whatever they are. ARM's message names the type and name
// with the name segments between the type segments ("The resource
// 'Microsoft.ApiManagement/service/apiservicey27itmeb4cf7q/users/exampleUser1'
// at line '86' and column '5' is defined multiple times in a template.
// Please see https://aka.ms/arm-template/#resources for usage details.",
// Azure/bicep#6516; the same wording in Azure/bicep#9457 and
// Azure/azure-quickstart-templates#1241). Which of the two declarations
// ARM's position names is not known; this names the later one.
func (p *planner) checkDuplicates() error {
	for _, r := range p.res {
		same := p.byID[strings.ToLower(r.ID)]
		if len(same) < 2 || same[0] == r {
			continue
		}
		path, _ := providerPath(r.Type, strings.Split(r.Name, "/"))
		return validationFailed(r.Line, r.Column, "The resource '%s' at line '%d' and column '%d' is defined multiple times in a template. Please see https://aka.ms/arm-template/#resources for usage details.", strings.TrimPrefix(path, "/providers/"), r.Line, r.Column)
	}
	return nil
}

// providerPath builds "/providers/<ns>/<t1>/<n1>/<t2>/<n2>…" from a full
// type and the name segments; the type needs one segment more than the
// name.
func providerPath(typ string, names []string) (string, error) {
	ts := strings.Split(typ, "/")
	if len(ts) < 2 || len(ts)-1 != len(names) {
		return "", fmt.Errorf("type %q needs %d name segments, got %d", typ, len(ts)-1, len(names))
	}
	var b strings.Builder
	b.WriteString("/providers/")
	b.WriteString(ts[0])
	for i, n := range names {
		b.WriteString("/" + ts[i+1] + "/" + n)
	}
	return b.String(), nil
}

// resolveDependencies turns dependsOn entries (resource IDs, "type/name",
// bare names, copy loop names) and the implicit dependencies of
// reference() and list*() into resource IDs of this template.
func (p *planner) resolveDependencies() error {
	for _, r := range p.res {
		seen := map[*Resource]bool{r: true}
		var deps []*Resource
		add := func(ms []*Resource) {
			for _, m := range ms {
				if !seen[m] {
					seen[m] = true
					deps = append(deps, m)
				}
			}
		}
		names, err := p.implicitReferences(r)
		if err != nil {
			return err
		}
		for _, name := range names {
			add(p.byName[strings.ToLower(name)])
		}
		for _, d := range r.deps {
			matches, err := p.match(d)
			if err != nil {
				return validationFailed(r.Line, r.Column, "%s", err.Error())
			}
			add(matches)
		}
		sort.SliceStable(deps, func(i, j int) bool { return p.index[deps[i]] < p.index[deps[j]] })
		for _, d := range deps {
			r.DependsOn = append(r.DependsOn, d.ID)
		}
	}
	return nil
}

func (p *planner) match(dep string) ([]*Resource, error) {
	if strings.HasPrefix(dep, "/") {
		if out := p.byID[strings.ToLower(dep)]; len(out) > 0 {
			return out, nil
		}
		// microsoft/vscode-azurearmtools#493 quotes ARM: "The resource
		// 'Microsoft.Compute/virtualMachines/windowsvm' is not defined in
		// the template. Please see https://aka.ms/arm-template for usage
		// details."
		return nil, fmt.Errorf("The resource '%s' is not defined in the template. Please see https://aka.ms/arm-template for usage details.", typeAndName(dep))
	}
	if out := p.byCopy[strings.ToLower(dep)]; len(out) > 0 {
		return out, nil
	}
	if strings.Contains(dep, "/") {
		var out []*Resource
		// "type/name": the type has one segment more than the name, so
		// the name starts after the first len/2+1 segments.
		segs := strings.Split(dep, "/")
		if len(segs)%2 == 1 {
			name := strings.Join(segs[len(segs)/2+1:], "/")
			for _, r := range p.byName[strings.ToLower(name)] {
				if strings.EqualFold(r.Type+"/"+r.Name, dep) {
					out = append(out, r)
				}
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("The resource '%s' is not defined in the template. Please see https://aka.ms/arm-template for usage details.", dep)
		}
		return out, nil
	}
	if out := p.byName[strings.ToLower(dep)]; len(out) > 0 {
		return out, nil
	}
	// MicrosoftDocs/azure-docs#112757 quotes ARM: "The template reference
	// 'appServicePlan' is not valid: could not find template resource or
	// resource copy with this name. Please see
	// https://aka.ms/arm-function-reference for usage details."
	return nil, fmt.Errorf("The template reference '%s' is not valid: could not find template resource or resource copy with this name. Please see https://aka.ms/arm-function-reference for usage details.", dep)
}

// typeAndName turns a resource ID into the "type/name" form ARM names
// undefined dependencies with.
func typeAndName(id string) string {
	i := strings.Index(strings.ToLower(id), "/providers/")
	if i < 0 {
		return id
	}
	segs := strings.Split(strings.Trim(id[i+len("/providers/"):], "/"), "/")
	if len(segs) < 3 {
		return id
	}
	types := []string{segs[0]}
	var names []string
	for j := 1; j+1 < len(segs); j += 2 {
		types = append(types, segs[j])
		names = append(names, segs[j+1])
	}
	return strings.Join(types, "/") + "/" + strings.Join(names, "/")
}

// order sorts resources so that each comes after what it depends on,
// keeping template order where free. A cycle is ARM's "Circular dependency
// detected on resource: '<id>'. Please see https://aka.ms/arm-syntax-resources
// for usage details." (akshata29/entaoai#15, polymind-inc/acmebot#1089).
func order(res []*Resource) ([]*Resource, error) {
	// DependsOn holds the IDs of res exactly as they are (IDs are unique
	// case-insensitively, checkDuplicates), so exact lookups do.
	byID := make(map[string]int, len(res))
	for i, r := range res {
		byID[r.ID] = i
	}
	pending := make([]int, len(res))
	users := make([][]int, len(res))
	for i, r := range res {
		for _, d := range r.DependsOn {
			j := byID[d]
			pending[i]++
			users[j] = append(users[j], i)
		}
	}
	done := make([]bool, len(res))
	out := make([]*Resource, 0, len(res))
	for len(out) < len(res) {
		next := -1
		for i := range res {
			if !done[i] && pending[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			for i := range res {
				if !done[i] {
					return nil, validationFailed(res[i].Line, res[i].Column, "Circular dependency detected on resource: '%s'. Please see https://aka.ms/arm-syntax-resources for usage details.", res[i].ID)
				}
			}
		}
		done[next] = true
		out = append(out, res[next])
		for _, u := range users[next] {
			pending[u]--
		}
	}
	return out, nil
}

// bodyExcluded are the declaration properties that steer the deployment
// rather than form the resource's PUT body.
var bodyExcluded = map[string]bool{
	"type": true, "name": true, "apiversion": true, "dependson": true, "copy": true,
	"condition": true, "comments": true, "resources": true, "metadata": true,
	"scope": true, "subscriptionid": true, "resourcegroup": true,
}

// Body evaluates the declaration of r (a Resource of this plan) into the
// JSON body to PUT: {"location":…, "tags":…, "sku":…, "kind":…,
// "identity":…, "properties":…}, ready for json.Marshal. reference() and
// list*() ask ref, which may be nil when the template uses neither. Errors
// are *Error with code InvalidTemplate naming the resource and its
// position.
func (pl *Plan) Body(r *Resource, ref Referencer) (map[string]any, error) {
	c := &evalCtx{p: pl.p, phase: phaseBody, loops: r.loops, ref: ref}
	out := map[string]any{}
	n := r.decl
	for i, k := range n.keys {
		if bodyExcluded[strings.ToLower(k)] {
			continue
		}
		v, err := c.evalNode(n.vals[i], strings.EqualFold(k, "properties"))
		if err != nil {
			return nil, wrapResourceError(r.Name, n, err)
		}
		out[k] = v
	}
	return out, nil
}

// Outputs evaluates the template's outputs: name → {type, value}. Outputs
// whose condition is false are left out. Errors are *Error with code
// DeploymentOutputEvaluationFailed (the message form "The template output
// 'test-output' is not valid: <reason>." is recorded in the tests of
// Kingsland.ArmLinter, a third-party linter whose tests hold outputs its
// authors got from ARM).
func (pl *Plan) Outputs(ref Referencer) (map[string]Value, error) {
	out := map[string]Value{}
	o := pl.p.t.outputs
	if o == nil {
		return out, nil
	}
	c := &evalCtx{p: pl.p, phase: phaseOutputs, ref: ref}
	for i, name := range o.keys {
		d := o.vals[i]
		v, keep, err := c.output(d)
		if err != nil {
			return nil, asTemplateError(err, func(msg string) *Error {
				return &Error{Code: CodeOutputEvaluationFailed, Message: fmt.Sprintf("The template output '%s' is not valid: %s.", name, msg), Line: d.line, Column: d.col}
			})
		}
		if keep {
			out[name] = v
		}
	}
	return out, nil
}

// output evaluates one output declaration; keep is false when its
// condition is false.
func (c *evalCtx) output(d *node) (v Value, keep bool, err error) {
	if d.kind != 'o' {
		return Value{}, false, exprErrorf("The output must be an object")
	}
	if cond := d.get("condition"); cond != nil {
		cv, err := c.evalNode(cond, false)
		if err != nil {
			return Value{}, false, err
		}
		b, ok := cv.(bool)
		if !ok {
			return Value{}, false, exprErrorf("The output condition must be a boolean. The provided value is of type '%s'", typeName(cv))
		}
		if !b {
			return Value{}, false, nil
		}
	}
	typ := ""
	if t := d.get("type"); t != nil && t.kind == 's' {
		typ = strings.ToLower(t.str)
	}
	if !validParamType(typ) {
		return Value{}, false, exprErrorf("The output type '%s' is not valid. The supported types are 'string, securestring, int, bool, object, secureobject, array'", typ)
	}
	var val any
	if cp := d.get("copy"); cp != nil {
		// Output iterations use copyIndex() without a name (copy-outputs.md).
		count, err := c.copyCount(cp)
		if err != nil {
			return Value{}, false, err
		}
		items := make([]any, 0, count)
		for j := 0; j < count; j++ {
			item, err := c.withLoop("", j, false).evalNode(cp.get("input"), false)
			if err != nil {
				return Value{}, false, err
			}
			items = append(items, item)
		}
		val = items
	} else {
		val, err = c.evalNode(d.get("value"), false)
		if err != nil {
			return Value{}, false, err
		}
	}
	// The wording is ours: no ARM answer for a mistyped output was found.
	if !typeMatches(typ, val) {
		return Value{}, false, exprErrorf("The output value is of type '%s', which does not match the declared type '%s'", typeName(val), echoType(typ))
	}
	return Value{Type: echoType(typ), Value: val}, true, nil
}

// implicitReferences lists the names of resources r's body passes to
// reference() and list*(): ARM makes a resource depend on a resource of
// the same template it references by name (resource-dependency.md,
// "reference and list functions": "Reference and list expressions
// implicitly declare that one resource depends on another… To enforce an
// implicit dependency, refer to the resource by name, not resource ID. If
// you pass the resource ID into the reference or list functions, an
// implicit reference isn't created."; its example derives the name from
// variables('webAppName')). The name may be computed: it is evaluated
// here when it needs only what is known before deployment (parameters,
// variables, copyIndex of r's loop and functions that do not read
// deployed resources); a name that cannot be evaluated yet adds nothing.
func (p *planner) implicitReferences(r *Resource) ([]string, error) {
	c := &evalCtx{p: p, phase: phasePlan, loops: r.loops}
	var out []string
	var walkExpr func(e expr) error
	walkExpr = func(e expr) error {
		switch t := e.(type) {
		case call:
			if (strings.EqualFold(t.name, "reference") || isListFunction(t.name) && functions[strings.ToLower(t.name)] == nil) && len(t.args) > 0 {
				v, err := c.eval(t.args[0])
				if errors.Is(err, ErrUnsupported) {
					return err // the budget is spent
				}
				if s, ok := v.(string); err == nil && ok && s != "" && !strings.HasPrefix(s, "/") {
					out = append(out, s)
				}
			}
			for _, a := range t.args {
				if err := walkExpr(a); err != nil {
					return err
				}
			}
		case propAccess:
			return walkExpr(t.target)
		case indexAccess:
			if err := walkExpr(t.target); err != nil {
				return err
			}
			return walkExpr(t.index)
		}
		return nil
	}
	var walk func(n *node) error
	walk = func(n *node) error {
		switch n.kind {
		case 's':
			if text, ok := splitExpression(n.str); ok {
				if e, err := p.parsed(text); err == nil {
					return walkExpr(e)
				}
			}
		case 'a':
			for _, e := range n.elems {
				if err := walk(e); err != nil {
					return err
				}
			}
		case 'o':
			for _, v := range n.vals {
				if err := walk(v); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for i, k := range r.decl.keys {
		if !bodyExcluded[strings.ToLower(k)] {
			if err := walk(r.decl.vals[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
