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
// deploy.
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
}

// Plan checks params (values as encoding/json decodes them: map[string]any,
// []any, string, float64 or json.Number, bool, nil), applies defaults,
// expands copy loops and child resources, resolves dependsOn and orders the
// resources. Errors are *Error with code InvalidTemplate, with ARM's
// message and the template position.
func (t *Template) Plan(params map[string]any, sc Scope, opts ...Option) (*Plan, error) {
	p := &planner{t: t, sc: sc, given: map[string]any{}, params: map[string]any{}, pstate: map[string]int{}, vars: map[string]any{}, vstate: map[string]int{}}
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
			v.Value = p.params[strings.ToLower(d.name)]
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
			var ae *Error
			if errors.As(err, &ae) {
				return nil, ae
			}
			return nil, validationFailed(def.line, def.col, "The template parameter '%s' at line '%d' and column '%d' is not valid: %s. Please see https://aka.ms/arm-template-expressions for usage details.", d.name, def.line, def.col, err.Error())
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
				if deepEqual(a, c) {
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
		count, err = c.copyCount(copyEl.get("count"))
		items := []any{}
		for i := 0; err == nil && i < count; i++ {
			var item any
			item, err = c.withLoop(name, i).evalNode(copyEl.get("input"), true)
			items = append(items, item)
		}
		v = items
	} else {
		v, err = c.evalNode(n, true)
	}
	if err != nil {
		delete(p.vstate, key)
		var ae *Error
		if errors.As(err, &ae) {
			return nil, ae
		}
		at := n
		if at == nil {
			at = copyEl
		}
		return nil, validationFailed(at.line, at.col, "The template variable '%s' is not valid: %s. Please see https://aka.ms/arm-template-expressions for usage details.", name, err.Error())
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
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	return validationFailed(n.line, n.col, "The template resource '%s' at line '%d' and column '%d' is not valid: %s. Please see https://aka.ms/arm-template-expressions for usage details.", name, n.line, n.col, err.Error())
}

func declName(n *node) string {
	if nm := n.get("name"); nm != nil && nm.kind == 's' {
		return nm.str
	}
	return ""
}

// expandResources turns the resource declarations into instances: copy
// loops expanded, child resources flattened with full types and names.
func (p *planner) expandResources() error {
	for _, n := range p.t.resources {
		if err := p.expand(n, nil, nil, true); err != nil {
			return err
		}
	}
	return nil
}

func (p *planner) expand(n *node, parent *Resource, loops []copyFrame, parentCond bool) error {
	c := &evalCtx{p: p, phase: phasePlan, loops: loops}
	cp := n.get("copy")
	if cp == nil {
		return p.instance(c, n, parent, parentCond, "", 0)
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
	count, err := c.copyCount(cp.get("count"))
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
			batch = int(i)
		}
	}
	var instances []*Resource
	for i := 0; i < count; i++ {
		start := len(p.res)
		if err := p.instance(c.withLoop(loopName, i), n, parent, parentCond, loopName, i); err != nil {
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

// instance evaluates one resource instance and its children.
func (p *planner) instance(c *evalCtx, n *node, parent *Resource, parentCond bool, loopName string, index int) error {
	r := &Resource{decl: n, loops: c.loops, Line: n.line, Column: n.col, CopyName: loopName, CopyIndex: index, Condition: parentCond}
	label := declName(n)
	str := func(key string, required bool) (string, error) {
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
	typ, err := str("type", true)
	if err != nil {
		return wrapResourceError(label, n, err)
	}
	name, err := str("name", true)
	if err != nil {
		return wrapResourceError(label, n, err)
	}
	label = name
	if r.APIVersion, err = str("apiVersion", true); err != nil {
		return wrapResourceError(label, n, err)
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
	r.Type, r.Name = typ, name
	if cond := n.get("condition"); cond != nil && r.Condition {
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
		if v, err := c.evalNode(loc, false); err == nil {
			r.Location, _ = v.(string)
		}
	}
	sub, rg := p.subscriptionID(), p.sc.ResourceGroup.Name
	if s, err := str("subscriptionId", false); err != nil {
		return wrapResourceError(label, n, err)
	} else if s != "" {
		sub = s
	}
	if s, err := str("resourceGroup", false); err != nil {
		return wrapResourceError(label, n, err)
	} else if s != "" {
		rg = s
	}
	if n.get("scope") != nil {
		e := unsupported("The template resource '%s' uses 'scope' (extension resource); this simulator does not support it.", label)
		e.Line, e.Column = n.line, n.col
		return e
	}
	path, err := providerPath(typ, strings.Split(name, "/"))
	if err != nil {
		// error-invalid-template.md, "incorrect segment lengths".
		return validationFailed(n.line, n.col, "The template resource '%s' for type '%s' at line '%d' and column '%d' has incorrect segment lengths. A nested resource type must have identical number of segments as its resource name. A root resource type must have segment length one greater than its resource name. Please see https://aka.ms/arm-syntax-resources for usage details.", name, typ, n.line, n.col)
	}
	r.ID = "/subscriptions/" + sub + "/resourceGroups/" + rg + path
	if dn := n.get("dependsOn"); dn != nil {
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
			if err := p.expand(k, r, c.loops, r.Condition); err != nil {
				return err
			}
		}
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
// bare names, copy loop names) into resource IDs of this template.
func (p *planner) resolveDependencies() error {
	for _, r := range p.res {
		seen := map[*Resource]bool{r: true}
		var deps []*Resource
		for _, name := range implicitReferences(r.decl) {
			for _, m := range p.res {
				if strings.EqualFold(m.Name, name) && !seen[m] {
					seen[m] = true
					deps = append(deps, m)
				}
			}
		}
		for _, d := range r.deps {
			matches, err := p.match(d)
			if err != nil {
				return validationFailed(r.Line, r.Column, "%s", err.Error())
			}
			for _, m := range matches {
				if !seen[m] {
					seen[m] = true
					deps = append(deps, m)
				}
			}
		}
		sort.SliceStable(deps, func(i, j int) bool { return p.index(deps[i]) < p.index(deps[j]) })
		for _, d := range deps {
			r.DependsOn = append(r.DependsOn, d.ID)
		}
	}
	return nil
}

func (p *planner) index(r *Resource) int {
	for i, x := range p.res {
		if x == r {
			return i
		}
	}
	return -1
}

func (p *planner) match(dep string) ([]*Resource, error) {
	var out []*Resource
	if strings.HasPrefix(dep, "/") {
		for _, r := range p.res {
			if strings.EqualFold(r.ID, dep) {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			// microsoft/vscode-azurearmtools#493 quotes ARM: "The resource
			// 'Microsoft.Compute/virtualMachines/windowsvm' is not defined in
			// the template. Please see https://aka.ms/arm-template for usage
			// details."
			return nil, fmt.Errorf("The resource '%s' is not defined in the template. Please see https://aka.ms/arm-template for usage details.", typeAndName(dep))
		}
		return out, nil
	}
	for _, r := range p.res {
		if r.CopyName != "" && strings.EqualFold(r.CopyName, dep) {
			out = append(out, r)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if strings.Contains(dep, "/") {
		for _, r := range p.res {
			if strings.EqualFold(r.Type+"/"+r.Name, dep) {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("The resource '%s' is not defined in the template. Please see https://aka.ms/arm-template for usage details.", dep)
		}
		return out, nil
	}
	for _, r := range p.res {
		if strings.EqualFold(r.Name, dep) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		// MicrosoftDocs/azure-docs#112757 quotes ARM: "The template reference
		// 'appServicePlan' is not valid: could not find template resource or
		// resource copy with this name. Please see
		// https://aka.ms/arm-function-reference for usage details."
		return nil, fmt.Errorf("The template reference '%s' is not valid: could not find template resource or resource copy with this name. Please see https://aka.ms/arm-function-reference for usage details.", dep)
	}
	return out, nil
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
	byID := map[string]int{}
	for i, r := range res {
		byID[strings.ToLower(r.ID)] = i
	}
	pending := make([]int, len(res))
	users := make([][]int, len(res))
	for i, r := range res {
		for _, d := range r.DependsOn {
			j := byID[strings.ToLower(d)]
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
	c := &evalCtx{p: pl.p, phase: phaseBody, loops: r.loops, ref: ref, self: r}
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
// DeploymentOutputEvaluationFailed (Kingsland.ArmLinter records ARM's
// "The template output 'test-output' is not valid: <reason>.").
func (pl *Plan) Outputs(ref Referencer) (map[string]Value, error) {
	out := map[string]Value{}
	o := pl.p.t.outputs
	if o == nil {
		return out, nil
	}
	c := &evalCtx{p: pl.p, phase: phaseOutputs, ref: ref}
	fail := func(name string, n *node, err error) error {
		var ae *Error
		if errors.As(err, &ae) {
			return ae
		}
		return &Error{Code: CodeOutputEvaluationFailed, Message: fmt.Sprintf("The template output '%s' is not valid: %s.", name, err.Error()), Line: n.line, Column: n.col}
	}
	for i, name := range o.keys {
		d := o.vals[i]
		if d.kind != 'o' {
			return nil, fail(name, d, exprErrorf("The output must be an object."))
		}
		if cond := d.get("condition"); cond != nil {
			v, err := c.evalNode(cond, false)
			if err != nil {
				return nil, fail(name, d, err)
			}
			if b, ok := v.(bool); ok && !b {
				continue
			}
		}
		typ := ""
		if t := d.get("type"); t != nil && t.kind == 's' {
			typ = t.str
		}
		var v any
		var err error
		if cp := d.get("copy"); cp != nil {
			var count int
			count, err = c.copyCount(cp.get("count"))
			items := []any{}
			for j := 0; err == nil && j < count; j++ {
				var item any
				item, err = c.withLoop("", j).evalNode(cp.get("input"), false)
				items = append(items, item)
			}
			v = items
		} else {
			v, err = c.evalNode(d.get("value"), false)
		}
		if err != nil {
			return nil, fail(name, d, err)
		}
		out[name] = Value{Type: echoType(typ), Value: v}
	}
	return out, nil
}

// implicitReferences lists the literal names passed to reference() in a
// resource's body: ARM makes a resource depend on a resource of the same
// template it references by name (template-functions-resource.md,
// "Implicit dependency"). Names computed by expressions are not followed.
func implicitReferences(decl *node) []string {
	var out []string
	var walkExpr func(e expr)
	walkExpr = func(e expr) {
		switch t := e.(type) {
		case call:
			if strings.EqualFold(t.name, "reference") && len(t.args) > 0 {
				if s, ok := t.args[0].(strLit); ok && !strings.HasPrefix(s.val, "/") {
					out = append(out, s.val)
				}
			}
			for _, a := range t.args {
				walkExpr(a)
			}
		case propAccess:
			walkExpr(t.target)
		case indexAccess:
			walkExpr(t.target)
			walkExpr(t.index)
		}
	}
	var walk func(n *node)
	walk = func(n *node) {
		switch n.kind {
		case 's':
			if text, ok := splitExpression(n.str); ok {
				if e, err := parseExpression(text); err == nil {
					walkExpr(e)
				}
			}
		case 'a':
			for _, e := range n.elems {
				walk(e)
			}
		case 'o':
			for _, v := range n.vals {
				walk(v)
			}
		}
	}
	for i, k := range decl.keys {
		if !bodyExcluded[strings.ToLower(k)] {
			walk(decl.vals[i])
		}
	}
	return out
}
