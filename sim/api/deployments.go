package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/armtemplate"
)

// Template deployments (Microsoft.Resources/deployments at resource group
// scope): ARM's API over the template engine of package armtemplate.
// Shapes follow Azure/azure-rest-api-specs specification/resources/
// resource-manager/Microsoft.Resources/stable/2022-09-01/resources.json and
// its examples (PutDeploymentResourceGroup.json).
//
// A deployment's resources are created the way ARM creates them: by
// requests to the resource provider, here amlsim's own API handler, as the
// principal that deployed, at the api-version the template names. So a
// deployed instance goes through exactly the validation, RBAC, quota and
// lifecycle a REST call gets, and the audit log shows each request.

// internalPoll is how often a deployment polls its resources' operations:
// the calls stay in the process, so often is cheap.
const internalPoll = 100 * time.Millisecond

// deployTimeout bounds one deployment: a compute instance on a real VM
// takes minutes under TCG.
const deployTimeout = 2 * time.Hour

// deployableTypes are the resource types a template may deploy: those
// amlsim serves.
var deployableTypes = map[string]bool{
	strings.ToLower(Provider + "/workspaces"):          true,
	strings.ToLower(Provider + "/workspaces/computes"): true,
}

// deploymentRequest is the body of a deployment PUT, validate or whatIf.
type deploymentRequest struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties *struct {
		Template     json.RawMessage `json:"template"`
		TemplateLink json.RawMessage `json:"templateLink"`
		Parameters   map[string]struct {
			Value     any             `json:"value"`
			Reference json.RawMessage `json:"reference"`
		} `json:"parameters"`
		ParametersLink json.RawMessage `json:"parametersLink"`
		Mode           string          `json:"mode"`
	} `json:"properties"`
}

// prepared is a deployment request checked and planned.
type prepared struct {
	rec  sim.Deployment
	plan *armtemplate.Plan
}

// templateError turns an engine error into the ARM error it stands for.
func templateError(err error) error {
	var te *armtemplate.Error
	if !errors.As(err, &te) {
		return err
	}
	kind := sim.KindBadRequest
	if te.Code == armtemplate.CodeRequestContentTooLarge {
		kind = sim.KindTooLarge
	}
	return &sim.Error{Kind: kind, Code: te.Code, Message: te.Message}
}

// prepare reads and checks a deployment request and plans its template,
// as ARM validates a deployment before accepting it: every error here is
// answered at once, and nothing is created.
func (s *Server) prepare(r *request) (*prepared, error) {
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		return nil, sim.Errorf(sim.KindMediaType, "UnsupportedMediaType",
			"The content media type '%s' is not supported. Only 'application/json' is supported.", ct)
	}
	raw, err := readBody(r, armtemplate.MaxRequestSize)
	if err != nil {
		if sim.IsKind(err, sim.KindTooLarge) {
			return nil, templateError(armtemplate.CheckRequestSize(armtemplate.MaxRequestSize + 1))
		}
		return nil, err
	}
	// az sends the template file's text as it is (see standardizeLenient).
	std, err := standardizeLenient(raw)
	if err != nil {
		return nil, sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: '%v'.", err)
	}
	var body deploymentRequest
	if err := json.Unmarshal(std, &body); err != nil {
		return nil, sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: '%v'.", err)
	}
	p := body.Properties
	switch {
	case p == nil:
		return nil, sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'properties' not found in JSON.'.")
	case len(p.TemplateLink) > 0 || len(p.ParametersLink) > 0:
		return nil, sim.Errorf(sim.KindBadRequest, "InvalidTemplateDeployment", "amlsim does not fetch linked templates or parameter files (templateLink, parametersLink): send the template and its parameters inline.")
	case len(p.Template) == 0 || string(p.Template) == "null":
		return nil, sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'template' not found in JSON.'.")
	}
	mode := p.Mode
	if mode == "" {
		mode = "Incremental"
	}
	switch {
	case strings.EqualFold(mode, "Incremental"):
		mode = "Incremental"
	case strings.EqualFold(mode, "Complete"):
		return nil, sim.Errorf(sim.KindBadRequest, "InvalidDeploymentMode", "amlsim supports Incremental deployments only; Complete mode, which deletes the group's resources the template does not name, is not simulated.")
	default:
		return nil, sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Error converting value \"%s\" to type 'DeploymentMode''.", p.Mode)
	}
	params := map[string]any{}
	for name, v := range p.Parameters {
		if len(v.Reference) > 0 && string(v.Reference) != "null" {
			return nil, sim.Errorf(sim.KindBadRequest, "InvalidTemplateDeployment", "The parameter '%s' is a Key Vault reference; amlsim has no Key Vault: pass the value.", name)
		}
		params[name] = v.Value
	}
	tmpl, err := armtemplate.Parse(p.Template)
	if err != nil {
		return nil, templateError(err)
	}
	g, err := s.svc.ResourceGroup(r.vars["rg"])
	if err != nil {
		return nil, err
	}
	cfg := s.svc.Config()
	plan, err := tmpl.Plan(params, armtemplate.Scope{
		Subscription:  armtemplate.Subscription{SubscriptionID: cfg.Subscription, TenantID: cfg.Tenant, DisplayName: "amlsim"},
		ResourceGroup: armtemplate.ResourceGroup{Name: g.Name, Location: g.Location, Tags: g.Tags},
		Deployment:    armtemplate.Deployment{Name: r.vars["name"], Mode: mode},
		Tenant:        cfg.Tenant,
	})
	if err != nil {
		return nil, templateError(err)
	}
	for _, res := range plan.Resources {
		if !deployableTypes[strings.ToLower(res.Type)] {
			ns, rest, _ := strings.Cut(res.Type, "/")
			// ARM's words for a type it does not know (InvalidResourceType,
			// Azure/acs-engine#4037). ARM finds that out while deploying;
			// amlsim, which simulates few types, refuses the template
			// before it creates anything, and says why.
			return nil, sim.Errorf(sim.KindBadRequest, "InvalidTemplate",
				"Deployment template validation failed: 'The resource type '%s' at line '%d' and column '%d' could not be found in the namespace '%s' for api version '%s'. amlsim simulates only %s/workspaces and %s/workspaces/computes.'.",
				rest, res.Line, res.Column, ns, res.APIVersion, Provider, Provider)
		}
	}
	params2, _ := json.Marshal(plan.Parameters)
	h := fnv.New64a()
	h.Write(p.Template)
	d := sim.Deployment{
		ResourceGroup: g.Name, Name: r.vars["name"], Tags: body.Tags, Mode: mode,
		CorrelationID: r.Header.Get("x-ms-correlation-request-id"), TemplateHash: strconv.FormatUint(h.Sum64(), 10),
		Template: compactJSON(p.Template), Parameters: params2,
		Dependencies: dependencies(plan), Providers: providersOf(plan),
	}
	if d.CorrelationID == "" {
		d.CorrelationID = uuid.NewString()
	}
	return &prepared{rec: d, plan: plan}, nil
}

func compactJSON(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// dependencies is ARM's properties.dependencies: each resource that
// depends on others, with them.
func dependencies(plan *armtemplate.Plan) json.RawMessage {
	byID := map[string]*armtemplate.Resource{}
	for _, r := range plan.Resources {
		byID[strings.ToLower(r.ID)] = r
	}
	type ref struct {
		ID           string `json:"id"`
		ResourceType string `json:"resourceType"`
		ResourceName string `json:"resourceName"`
	}
	type dep struct {
		ref
		DependsOn []ref `json:"dependsOn"`
	}
	out := []dep{}
	for _, r := range plan.Resources {
		if len(r.DependsOn) == 0 {
			continue
		}
		d := dep{ref: ref{r.ID, r.Type, r.Name}}
		for _, id := range r.DependsOn {
			if o := byID[strings.ToLower(id)]; o != nil {
				d.DependsOn = append(d.DependsOn, ref{o.ID, o.Type, o.Name})
			}
		}
		out = append(out, d)
	}
	b, _ := json.Marshal(out)
	return b
}

// providersOf is ARM's properties.providers: the namespaces and types the
// template deploys, with their locations.
func providersOf(plan *armtemplate.Plan) json.RawMessage {
	types := map[string]map[string]bool{}
	var order []string
	for _, r := range plan.Resources {
		_, t, _ := strings.Cut(r.Type, "/")
		if types[t] == nil {
			types[t] = map[string]bool{}
			order = append(order, t)
		}
		if r.Location != "" {
			types[t][r.Location] = true
		}
	}
	var rts []map[string]any
	for _, t := range order {
		locs := []string{}
		for l := range types[t] {
			locs = append(locs, l)
		}
		sort.Strings(locs)
		rts = append(rts, map[string]any{"resourceType": t, "locations": locs})
	}
	out := []any{}
	if len(rts) > 0 {
		out = append(out, map[string]any{"namespace": Provider, "resourceTypes": rts})
	}
	b, _ := json.Marshal(out)
	return b
}

// --- handlers ---

func (s *Server) deploymentID(rg, name string) string {
	return "/subscriptions/" + s.sub() + "/resourceGroups/" + rg + "/providers/Microsoft.Resources/deployments/" + name
}

type deploymentView struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties map[string]any    `json:"properties"`
}

func (s *Server) deploymentView(d sim.Deployment) deploymentView {
	p := map[string]any{
		"templateHash":      d.TemplateHash,
		"mode":              d.Mode,
		"provisioningState": d.State,
		"timestamp":         d.Start.UTC().Format(time.RFC3339Nano),
		"correlationId":     d.CorrelationID,
		"parameters":        d.Parameters,
		"providers":         d.Providers,
		"dependencies":      d.Dependencies,
	}
	end := d.End
	if end.IsZero() {
		end = s.svc.Now()
	}
	p["duration"] = isoDuration(end.Sub(d.Start))
	if !d.End.IsZero() {
		p["timestamp"] = d.End.UTC().Format(time.RFC3339Nano)
	}
	if len(d.Outputs) > 0 {
		p["outputs"] = d.Outputs
	}
	res := []map[string]string{}
	for _, id := range d.Resources {
		res = append(res, map[string]string{"id": id})
	}
	p["outputResources"] = res
	if d.Error != nil {
		p["error"] = detailOf(d.Error)
	}
	return deploymentView{ID: s.deploymentID(d.ResourceGroup, d.Name), Name: d.Name, Type: "Microsoft.Resources/deployments", Tags: d.Tags, Properties: p}
}

// isoDuration writes d as ARM does: PT22.8S, PT1M3.2S.
func isoDuration(d time.Duration) string {
	d = d.Round(time.Millisecond)
	out := "PT"
	if h := int(d.Hours()); h > 0 {
		out += strconv.Itoa(h) + "H"
		d -= time.Duration(h) * time.Hour
	}
	if m := int(d.Minutes()); m > 0 {
		out += strconv.Itoa(m) + "M"
		d -= time.Duration(m) * time.Minute
	}
	return out + strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S"
}

func (s *Server) getDeployment(w http.ResponseWriter, r *request) error {
	d, err := s.svc.Deployment(r.vars["rg"], r.vars["name"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.deploymentView(d))
	return nil
}

// headDeployment is Deployments_CheckExistence: 204 or 404.
func (s *Server) headDeployment(w http.ResponseWriter, r *request) error {
	_, err := s.svc.Deployment(r.vars["rg"], r.vars["name"])
	return writeExistence(w, err)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *request) error {
	list, err := s.svc.Deployments(r.vars["rg"])
	if err != nil {
		return err
	}
	out := []deploymentView{}
	for _, d := range list {
		out = append(out, s.deploymentView(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

// putDeployment validates the deployment, answers 201 (200 when it
// replaces an ended deployment of that name) with provisioningState
// Accepted and an Azure-AsyncOperation to poll, and deploys in the
// background.
func (s *Server) putDeployment(w http.ResponseWriter, r *request) error {
	p, err := s.prepare(r)
	if err != nil {
		return err
	}
	p.rec.State = "Accepted"
	p.rec.Start = s.svc.Now().UTC()
	replaced, err := s.svc.StartDeployment(p.rec)
	if err != nil {
		return err
	}
	run := &deployRun{s: s, p: p, who: r.principal, host: r.Host, version: r.version}
	s.deploys.start(p.rec.ResourceGroup, p.rec.Name, run)
	w.Header().Set("Azure-AsyncOperation", r.baseURL()+s.deploymentID(p.rec.ResourceGroup, p.rec.Name)+"/operationStatuses/"+p.rec.CorrelationID+"?api-version="+url.QueryEscape(r.version))
	s.setRetryAfter(w)
	status := http.StatusCreated
	if replaced {
		status = http.StatusOK
	}
	writeJSON(w, status, s.deploymentView(p.rec))
	return nil
}

// validateDeployment is Deployments_Validate: the checks of a PUT, and
// nothing deployed. 200 with the deployment as it would be, or 400.
func (s *Server) validateDeployment(w http.ResponseWriter, r *request) error {
	p, err := s.prepare(r)
	if err != nil {
		return err
	}
	p.rec.State = "Succeeded"
	p.rec.Start, p.rec.End = s.svc.Now().UTC(), s.svc.Now().UTC()
	v := s.deploymentView(p.rec)
	var validated []map[string]string
	for _, res := range p.plan.Resources {
		if res.Condition {
			validated = append(validated, map[string]string{"id": res.ID})
		}
	}
	v.Properties["validatedResources"] = validated
	delete(v.Properties, "outputResources")
	writeJSON(w, http.StatusOK, v)
	return nil
}

// deploymentStatus is the Azure-AsyncOperation of a deployment PUT: the
// operation is the run's correlation ID, so the status of an older run of
// the same name is gone once a newer one replaced it.
func (s *Server) deploymentStatus(w http.ResponseWriter, r *request) error {
	d, err := s.svc.Deployment(r.vars["rg"], r.vars["name"])
	if err != nil {
		return err
	}
	if !strings.EqualFold(d.CorrelationID, r.vars["op"]) {
		return sim.Errorf(sim.KindNotFound, "OperationNotFound", "The operation '%s' of deployment '%s' was not found.", r.vars["op"], d.Name)
	}
	status := map[string]any{"status": d.State}
	if d.Error != nil {
		status["error"] = detailOf(d.Error)
	}
	if !d.Done() {
		s.setRetryAfter(w)
	}
	writeJSON(w, http.StatusOK, status)
	return nil
}

// cancelDeployment is Deployments_Cancel: 204, and the deployment stops
// before its next resource (what was created stays). One that ended is
// ARM's 409.
func (s *Server) cancelDeployment(w http.ResponseWriter, r *request) error {
	d, err := s.svc.Deployment(r.vars["rg"], r.vars["name"])
	if err != nil {
		return err
	}
	if d.Done() || !s.deploys.cancel(d.ResourceGroup, d.Name) {
		// Code and 409: juju/juju provider/azure/environ.go; the docs: "You
		// can cancel a deployment only if the provisioningState is Accepted
		// or Running". The text is amlsim's.
		return sim.Errorf(sim.KindConflict, "DeploymentCannotBeCancelled",
			"The deployment '%s' cannot be cancelled because it is in '%s' state.", d.Name, d.State)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteDeployment removes the deployment's record, not what it deployed
// (as ARM). 204: ARM's answer when there is none (Azure/azure-cli#20205);
// for one that exists ARM answers 202 and a Location that turns 204,
// amlsim deletes at once.
func (s *Server) deleteDeployment(w http.ResponseWriter, r *request) error {
	if err := s.svc.DeleteDeployment(r.vars["rg"], r.vars["name"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) exportDeploymentTemplate(w http.ResponseWriter, r *request) error {
	d, err := s.svc.Deployment(r.vars["rg"], r.vars["name"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"template": d.Template})
	return nil
}

type deploymentOperationView struct {
	ID          string         `json:"id"`
	OperationID string         `json:"operationId"`
	Properties  map[string]any `json:"properties"`
}

func (s *Server) operationView(d sim.Deployment, op sim.DeploymentOperation) deploymentOperationView {
	end := op.End
	if end.IsZero() {
		end = s.svc.Now()
	}
	p := map[string]any{
		"provisioningOperation": op.Operation,
		"provisioningState":     op.State,
		"timestamp":             end.UTC().Format(time.RFC3339Nano),
		"duration":              isoDuration(end.Sub(op.Start)),
		"trackingId":            op.ID,
		"serviceRequestId":      op.ID,
		"targetResource":        map[string]string{"id": op.ResourceID, "resourceType": op.ResourceType, "resourceName": op.ResourceName},
	}
	if op.StatusCode != "" {
		p["statusCode"] = op.StatusCode
	}
	if op.StatusMessage != nil {
		p["statusMessage"] = op.StatusMessage
	}
	return deploymentOperationView{ID: s.deploymentID(d.ResourceGroup, d.Name) + "/operations/" + op.ID, OperationID: op.ID, Properties: p}
}

func (s *Server) listDeploymentOperations(w http.ResponseWriter, r *request) error {
	d, err := s.svc.Deployment(r.vars["rg"], r.vars["name"])
	if err != nil {
		return err
	}
	out := []deploymentOperationView{}
	for _, op := range d.Operations {
		out = append(out, s.operationView(d, op))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Server) getDeploymentOperation(w http.ResponseWriter, r *request) error {
	d, err := s.svc.Deployment(r.vars["rg"], r.vars["name"])
	if err != nil {
		return err
	}
	for _, op := range d.Operations {
		if strings.EqualFold(op.ID, r.vars["op"]) {
			writeJSON(w, http.StatusOK, s.operationView(d, op))
			return nil
		}
	}
	return sim.Errorf(sim.KindNotFound, "DeploymentOperationNotFound", "Deployment operation '%s' could not be found.", r.vars["op"])
}

// --- running deployments ---

// deployments tracks the deployments running in this process.
type deployments struct {
	mu      sync.Mutex
	running map[string]*running // by resource group/name, lowercase
	wg      sync.WaitGroup
}

// running is one deployment's run: how to stop it.
type running struct{ cancel context.CancelFunc }

func deployKey(rg, name string) string { return strings.ToLower(rg + "/" + name) }

func (ds *deployments) start(rg, name string, run *deployRun) {
	ctx, cancel := context.WithTimeout(context.Background(), deployTimeout)
	key, me := deployKey(rg, name), &running{cancel: cancel}
	ds.mu.Lock()
	if ds.running == nil {
		ds.running = map[string]*running{}
	}
	ds.running[key] = me
	ds.mu.Unlock()
	ds.wg.Add(1)
	go func() {
		defer ds.wg.Done()
		defer func() {
			ds.mu.Lock()
			// A later deployment of the same name may have taken the key.
			if ds.running[key] == me {
				delete(ds.running, key)
			}
			ds.mu.Unlock()
			cancel()
		}()
		run.run(ctx)
	}()
}

// cancel stops a running deployment; false when none runs here.
func (ds *deployments) cancel(rg, name string) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	r, ok := ds.running[deployKey(rg, name)]
	if ok {
		r.cancel()
	}
	return ok
}

// cancelGroup stops the deployments running in a resource group.
func (ds *deployments) cancelGroup(rg string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for key, r := range ds.running {
		if strings.HasPrefix(key, strings.ToLower(rg)+"/") {
			r.cancel()
		}
	}
}

// close stops every running deployment and waits for their goroutines.
func (ds *deployments) close() {
	ds.mu.Lock()
	for _, r := range ds.running {
		r.cancel()
	}
	ds.mu.Unlock()
	ds.wg.Wait()
}

// deployRun is one deployment being carried out.
type deployRun struct {
	s       *Server
	p       *prepared
	who     sim.Principal
	host    string
	version string
}

func (d *deployRun) update(fn func(*sim.Deployment)) {
	if err := d.s.svc.UpdateDeployment(d.p.rec.ResourceGroup, d.p.rec.Name, d.p.rec.CorrelationID, fn); err != nil {
		d.s.log.Error("record deployment", "deployment", d.p.rec.Name, "err", err)
	}
}

// run deploys the resources in order. A resource whose deployment fails
// fails those that depend on it; the others are still deployed, and what
// was created stays (Incremental mode).
func (d *deployRun) run(ctx context.Context) {
	d.update(func(r *sim.Deployment) { r.State = "Running" })
	failed := map[string]bool{}
	var deployed []string
	var details []*sim.Error
	canceled := false
	for _, res := range d.p.plan.Resources {
		if !res.Condition {
			continue
		}
		if ctx.Err() != nil {
			canceled = errors.Is(ctx.Err(), context.Canceled)
			break
		}
		blocked := ""
		for _, dep := range res.DependsOn {
			if failed[strings.ToLower(dep)] {
				blocked = dep
			}
		}
		if blocked != "" {
			failed[strings.ToLower(res.ID)] = true
			continue
		}
		op := sim.DeploymentOperation{ID: strings.ToUpper(strings.ReplaceAll(uuid.NewString(), "-", "")[:16]), Operation: "Create", State: "Running",
			Start: d.s.svc.Now().UTC(), ResourceID: res.ID, ResourceType: res.Type, ResourceName: res.Name}
		d.update(func(r *sim.Deployment) { r.Operations = append(r.Operations, op) })
		status, err := d.deploy(ctx, res)
		op.End = d.s.svc.Now().UTC()
		if err != nil {
			e := sim.AsError(err)
			op.State, op.StatusCode = "Failed", statusName(status)
			op.StatusMessage = map[string]any{"status": "Failed", "error": detailOf(e)}
			failed[strings.ToLower(res.ID)] = true
			details = append(details, e)
		} else {
			op.State, op.StatusCode = "Succeeded", statusName(status)
			deployed = append(deployed, res.ID)
		}
		d.update(func(r *sim.Deployment) {
			for i := range r.Operations {
				if r.Operations[i].ID == op.ID {
					r.Operations[i] = op
				}
			}
			r.Resources = deployed
		})
	}
	var outputs json.RawMessage
	var final *sim.Error
	state := "Succeeded"
	switch {
	case canceled || errors.Is(ctx.Err(), context.Canceled):
		state = "Canceled"
	case ctx.Err() != nil:
		state = "Failed"
		final = sim.Errorf(sim.KindInternal, "DeploymentTimeout", "The deployment did not end within %s.", deployTimeout)
	case len(details) > 0:
		state = "Failed"
		// ARM's summary of failed resources, with the deployment as its
		// target (MicrosoftDocs/azure-docs#107757, microsoft/finops-toolkit#593).
		final = sim.Errorf(sim.KindBadRequest, "DeploymentFailed",
			"At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.")
		final.Target = d.s.deploymentID(d.p.rec.ResourceGroup, d.p.rec.Name)
		final.Details = details
	default:
		out, err := d.p.plan.Outputs(referencer{d, ctx})
		if err != nil {
			state, final = "Failed", sim.AsError(templateError(err))
		} else {
			outputs, _ = json.Marshal(out)
		}
	}
	d.update(func(r *sim.Deployment) {
		r.State, r.End, r.Error, r.Outputs, r.Resources = state, d.s.svc.Now().UTC(), final, outputs, deployed
	})
}

func statusName(code int) string {
	if code == 0 {
		return ""
	}
	return strings.ReplaceAll(http.StatusText(code), " ", "")
}

// deploy creates or updates one resource: PUT through the API, then poll
// its operation to the end, as ARM does with a provider.
func (d *deployRun) deploy(ctx context.Context, res *armtemplate.Resource) (int, error) {
	body, err := d.p.plan.Body(res, referencer{d, ctx})
	if err != nil {
		return 0, templateError(err)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	resp := d.call(ctx, "PUT", res.ID, res.APIVersion, b)
	if !resp.OK() {
		return resp.Status, resp.Err()
	}
	status := resp.Status
	poll := resp.Header.Get("Azure-AsyncOperation")
	for poll != "" {
		u, err := url.Parse(poll)
		if err != nil {
			return status, err
		}
		select {
		case <-ctx.Done():
			return status, sim.Errorf(sim.KindInternal, "DeploymentCanceled", "The deployment was canceled while '%s' was being deployed; the resource stays as it is.", res.Name)
		case <-time.After(internalPoll):
		}
		pr := d.call(ctx, "GET", u.Path, u.Query().Get("api-version"), nil)
		if pr.Status != http.StatusOK {
			return pr.Status, pr.Err()
		}
		var st struct {
			Status string       `json:"status"`
			Error  *errorDetail `json:"error"`
		}
		if err := json.Unmarshal(pr.Body, &st); err != nil {
			return status, err
		}
		switch st.Status {
		case "InProgress", "Running", "Accepted", "Creating", "Updating":
			continue
		case "Succeeded":
			poll = ""
		default:
			if st.Error != nil {
				return status, &sim.Error{Kind: sim.KindBadRequest, Code: st.Error.Code, Message: st.Error.Message}
			}
			return status, sim.Errorf(sim.KindInternal, "ResourceDeploymentFailure", "The resource operation completed with terminal provisioning state '%s'.", st.Status)
		}
	}
	return status, nil
}

// call sends one request to the API as the deploying principal.
func (d *deployRun) call(ctx context.Context, method, path, version string, body []byte) Response {
	return d.s.Call(ctx, d.who, Request{Host: d.host, Method: method, Path: path, Version: version, Body: body, CorrelationID: d.p.rec.CorrelationID})
}

// referencer answers reference(): a GET of the resource through the API.
type referencer struct {
	d   *deployRun
	ctx context.Context
}

func (r referencer) Reference(id, apiVersion string, full bool) (any, error) {
	if apiVersion == "" {
		for _, res := range r.d.p.plan.Resources {
			if strings.EqualFold(res.ID, id) {
				apiVersion = res.APIVersion
			}
		}
	}
	if apiVersion == "" {
		apiVersion = newestStable
	}
	resp := r.d.call(r.ctx, "GET", id, apiVersion, nil)
	if resp.Status != http.StatusOK {
		return nil, fmt.Errorf("the resource '%s' could not be read: %w", id, resp.Err())
	}
	var v map[string]any
	if err := json.Unmarshal(resp.Body, &v); err != nil {
		return nil, err
	}
	if full {
		v["apiVersion"] = apiVersion
		return v, nil
	}
	return v["properties"], nil
}

// whatIfDeployment is Deployments_WhatIf: what the deployment would
// change, resource by resource, deploying nothing. A resource amlsim does
// not have is Create; one whose template properties all match what it has
// is NoChange; otherwise Modify, with a delta per differing property. A
// resource whose body needs reference() to something not yet deployed is
// Unsupported, with the reason. Resources of the group the template does
// not name are left out (Incremental mode leaves them alone).
func (s *Server) whatIfDeployment(w http.ResponseWriter, r *request) error {
	p, err := s.prepare(r)
	if err != nil {
		return err
	}
	run := &deployRun{s: s, p: p, who: r.principal, host: r.Host, version: r.version}
	changes := []map[string]any{}
	for _, res := range p.plan.Resources {
		if !res.Condition {
			continue
		}
		change := map[string]any{"resourceId": res.ID}
		body, err := p.plan.Body(res, referencer{run, r.Context()})
		if err != nil {
			change["changeType"], change["unsupportedReason"] = "Unsupported", sim.AsError(templateError(err)).Message
			changes = append(changes, change)
			continue
		}
		after := map[string]any{"id": res.ID, "name": res.Name[strings.LastIndex(res.Name, "/")+1:], "type": res.Type, "apiVersion": res.APIVersion}
		for k, v := range body {
			after[k] = v
		}
		cur := run.call(r.Context(), "GET", res.ID, res.APIVersion, nil)
		switch {
		case cur.Status == http.StatusNotFound:
			change["changeType"], change["after"] = "Create", after
		case cur.Status != http.StatusOK:
			change["changeType"], change["unsupportedReason"] = "Unsupported", cur.Err().Error()
		default:
			var before map[string]any
			if err := json.Unmarshal(cur.Body, &before); err != nil {
				return err
			}
			before["apiVersion"] = res.APIVersion
			delta := diffProperties("", before, body)
			change["before"] = before
			change["after"] = mergeJSON(before, body)
			change["changeType"] = "NoChange"
			if len(delta) > 0 {
				change["changeType"], change["delta"] = "Modify", delta
			}
		}
		changes = append(changes, change)
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "Succeeded", "properties": map[string]any{"changes": changes}})
	return nil
}

// diffProperties lists the properties of want that differ from have, as
// what-if's delta: leaves by their dotted path (propertyChangeType Create
// when have lacks it, else Modify).
func diffProperties(path string, have, want map[string]any) []map[string]any {
	var out []map[string]any
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := k
		if path != "" {
			p = path + "." + k
		}
		hv, ok := lookupFold(have, k)
		wv := want[k]
		hm, hIsMap := hv.(map[string]any)
		wm, wIsMap := wv.(map[string]any)
		switch {
		case !ok && wv != nil:
			out = append(out, map[string]any{"path": p, "propertyChangeType": "Create", "after": wv})
		case hIsMap && wIsMap:
			out = append(out, diffProperties(p, hm, wm)...)
		case ok && !covers(hv, wv):
			out = append(out, map[string]any{"path": p, "propertyChangeType": "Modify", "before": hv, "after": wv})
		}
	}
	return out
}

// lookupFold finds a property by name, ignoring case as ARM does.
func lookupFold(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// covers reports whether have holds what want says: the same scalars
// (strings ignoring case, as ARM compares sizes, locations and enums),
// arrays element by element, and objects at least want's members; what
// the resource adds of its own (IDs, states) is no change.
func covers(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			hv, ok := lookupFold(h, k)
			if !ok && wv != nil || ok && !covers(hv, wv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !covers(h[i], w[i]) {
				return false
			}
		}
		return true
	case string:
		h, ok := have.(string)
		return ok && strings.EqualFold(h, w)
	}
	hb, _ := json.Marshal(have)
	wb, _ := json.Marshal(want)
	return bytes.Equal(hb, wb)
}

// mergeJSON is have with want's properties laid over it, objects merged
// member by member.
func mergeJSON(have, want map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range have {
		out[k] = v
	}
	for k, v := range want {
		hm, ok1 := out[k].(map[string]any)
		wm, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = mergeJSON(hm, wm)
			continue
		}
		out[k] = v
	}
	return out
}
