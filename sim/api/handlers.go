package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim"
)

// setRetryAfter tells the client when to poll again: the SDKs wait 30 s
// unless told otherwise.
func (s *Server) setRetryAfter(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	if s.poll < time.Second {
		w.Header().Set("retry-after-ms", strconv.Itoa(int(s.poll.Milliseconds())))
	}
}

func (s *Server) sub() string { return s.svc.Config().Subscription }

// --- workspaces ---

func (s *Server) listAllWorkspaces(w http.ResponseWriter, r *request) error {
	return s.writeWorkspaces(w, r, "")
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *request) error {
	return s.writeWorkspaces(w, r, r.vars["rg"])
}

func (s *Server) writeWorkspaces(w http.ResponseWriter, r *request, rg string) error {
	list, err := s.svc.Workspaces(rg)
	if err != nil {
		return err
	}
	out := []workspaceResource{}
	for _, ws := range list {
		out = append(out, workspaceView(s.sub(), r.baseURL(), ws))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *request) error {
	ws, err := s.svc.Workspace(r.workspace())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, workspaceView(s.sub(), r.baseURL(), ws))
	return nil
}

func (s *Server) putWorkspace(w http.ResponseWriter, r *request) error {
	var body struct {
		Location string            `json:"location"`
		Tags     map[string]string `json:"tags"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if body.Location == "" {
		return sim.Errorf(sim.KindBadRequest, "LocationRequired", "The location property is required for this definition.")
	}
	if err := checkTags(body.Tags); err != nil {
		return err
	}
	// The spec allows 200 and 202 only: a workspace is ready at once here.
	ws, err := s.svc.PutWorkspace(r.workspace(), body.Location, body.Tags)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, workspaceView(s.sub(), r.baseURL(), ws))
	return nil
}

func (s *Server) deleteWorkspace(w http.ResponseWriter, r *request) error {
	// A long-running operation that deletes the workspace's computes too
	// (see sim.Service.DeleteWorkspace); 204 when there is none.
	op, err := s.svc.DeleteWorkspace(r.principal, r.workspace())
	if err != nil {
		return err
	}
	if op == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	s.setPollingHeaders(w, r, *op, true)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// --- computes ---

func (s *Server) getCompute(w http.ResponseWriter, r *request) error {
	inst, err := s.svc.Compute(r.workspace(), r.vars["name"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.computeView(r, inst))
	return nil
}

func (s *Server) listComputes(w http.ResponseWriter, r *request) error {
	skip := 0
	if v := r.URL.Query().Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return sim.Errorf(sim.KindBadRequest, "InvalidQueryParameterValue", "The value '%s' of query parameter '$skip' is not a non-negative integer.", v)
		}
		skip = n
	}
	page, more, err := s.svc.Computes(r.workspace(), skip)
	if err != nil {
		return err
	}
	out := struct {
		Value    []computeResource `json:"value"`
		NextLink string            `json:"nextLink,omitempty"`
	}{Value: []computeResource{}}
	for _, inst := range page {
		out.Value = append(out.Value, s.computeView(r, inst))
	}
	if more {
		q := url.Values{"api-version": {r.version}, "$skip": {strconv.Itoa(skip + len(page))}}
		out.NextLink = r.baseURL() + r.URL.Path + "?" + q.Encode()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// computeTypes are the compute types ARM knows; the simulator serves
// ComputeInstance only.
var computeTypes = []string{"AKS", "Kubernetes", "AmlCompute", "ComputeInstance", "DataFactory", "VirtualMachine", "HDInsight", "Databricks", "DataLakeAnalytics", "SynapseSpark"}

// readOnlyInstanceProperties are ComputeInstanceProperties the service
// sets; values a client sends for them are ignored.
var readOnlyInstanceProperties = map[string]bool{
	"vmSize": true, "sshSettings": true, "state": true, "errors": true, "lastOperation": true,
	"createdBy": true, "connectivityEndpoints": true, "applications": true, "osImageMetadata": true,
	"computeInstanceAuthorizationType": true, "containers": true, "dataDisks": true, "dataMounts": true, "versions": true,
}

// jsonType is the JSON type a writable property must have.
type jsonType string

const (
	jsonString jsonType = "string"
	jsonBool   jsonType = "boolean"
	jsonObject jsonType = "object"
	jsonArray  jsonType = "array"
)

// check refuses a value of the wrong JSON type (null is always allowed),
// naming its path in the body.
func (t jsonType) check(path string, v any) error {
	ok := true
	switch v.(type) {
	case nil:
	case string:
		ok = t == jsonString
	case bool:
		ok = t == jsonBool
	case map[string]any:
		ok = t == jsonObject
	case []any:
		ok = t == jsonArray
	default:
		ok = false
	}
	if ok {
		return nil
	}
	got, _ := json.Marshal(v)
	return sim.Errorf(sim.KindBadRequest, "InvalidRequestContent",
		"The request content was invalid and could not be deserialized: the value %s at path '%s' is not a JSON %s.", got, path, t)
}

// instanceProperties are the writable ComputeInstanceProperties a client
// may send, with their JSON types: those of the REST spec's 2025-12-01
// (stable) ComputeInstanceProperties, and those the previews add
// (enableSSO, enableRootAccess, enableOSPatching, releaseQuotaOnStop,
// idleTimeBeforeShutdown, autologgerSettings). Others are dropped, as
// Azure drops them; the read-only ones are set by amlsim.
var instanceProperties = map[string]jsonType{
	"vmSize": jsonString, "subnet": jsonObject, "applicationSharingPolicy": jsonString,
	"sshSettings": jsonObject, "customServices": jsonArray, "computeInstanceAuthorizationType": jsonString,
	"personalComputeInstanceSettings": jsonObject, "setupScripts": jsonObject, "schedules": jsonObject,
	"enableNodePublicIp": jsonBool,
	"enableSSO":          jsonBool, "enableRootAccess": jsonBool, "enableOSPatching": jsonBool, "releaseQuotaOnStop": jsonBool,
	"idleTimeBeforeShutdown": jsonString, "autologgerSettings": jsonObject,
}

type putComputeBody struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties *struct {
		ComputeType string                     `json:"computeType"`
		Description string                     `json:"description"`
		Properties  map[string]json.RawMessage `json:"properties"`
	} `json:"properties"`
}

// parseCreate turns a PUT body in api-version version into a create
// request.
func parseCreate(body putComputeBody, version string) (sim.CreateRequest, error) {
	if body.Properties == nil || body.Properties.ComputeType == "" {
		return sim.CreateRequest{}, sim.Errorf(sim.KindBadRequest, "InvalidPropertyValue", "The property 'properties.computeType' is required.")
	}
	ct := body.Properties.ComputeType
	known := false
	for _, t := range computeTypes {
		if strings.EqualFold(t, ct) {
			known = true
			ct = t
		}
	}
	if !known {
		return sim.CreateRequest{}, sim.Errorf(sim.KindBadRequest, "InvalidPropertyValue",
			"The specified value '%s' for property computeType is not valid. Valid values: %s.", body.Properties.ComputeType, strings.Join(computeTypes, ", "))
	}
	if ct != "ComputeInstance" {
		return sim.CreateRequest{}, sim.Errorf(sim.KindBadRequest, "ComputeTypeNotSupported",
			"amlsim simulates compute instances only; computeType '%s' is not supported.", ct)
	}
	req := sim.CreateRequest{Location: body.Location, Tags: body.Tags, Description: body.Properties.Description, Extra: map[string]any{}}
	props := body.Properties.Properties
	if raw, ok := props["vmSize"]; ok {
		if err := json.Unmarshal(raw, &req.Size); err != nil {
			return req, sim.Errorf(sim.KindBadRequest, "InvalidPropertyValue", "The property VMSize must be a string.")
		}
	}
	if raw, ok := props["sshSettings"]; ok && string(raw) != "null" {
		var ssh struct {
			SSHPublicAccess string `json:"sshPublicAccess"`
			AdminPublicKey  string `json:"adminPublicKey"`
		}
		if err := json.Unmarshal(raw, &ssh); err != nil {
			return req, sim.Errorf(sim.KindBadRequest, "InvalidPropertyValue", "The property sshSettings is invalid: %v.", err)
		}
		switch {
		case strings.EqualFold(ssh.SSHPublicAccess, "Enabled"):
			req.SSHPublic = true
		case ssh.SSHPublicAccess == "" || strings.EqualFold(ssh.SSHPublicAccess, "Disabled"):
		default:
			return req, sim.Errorf(sim.KindBadRequest, "InvalidPropertyValue",
				"The specified value '%s' for property sshPublicAccess is not valid. Valid values: Enabled, Disabled.", ssh.SSHPublicAccess)
		}
		req.AdminKey = ssh.AdminPublicKey
		req.SSHGiven = true
	}
	if raw, ok := props["personalComputeInstanceSettings"]; ok && string(raw) != "null" {
		var pc struct {
			AssignedUser *struct {
				ObjectID string `json:"objectId"`
				TenantID string `json:"tenantId"`
			} `json:"assignedUser"`
		}
		if err := json.Unmarshal(raw, &pc); err != nil {
			return req, sim.Errorf(sim.KindBadRequest, "InvalidPropertyValue", "The property personalComputeInstanceSettings is invalid: %v.", err)
		}
		if u := pc.AssignedUser; u != nil {
			req.AssignedUser = &sim.Principal{ObjectID: u.ObjectID, TenantID: u.TenantID}
		}
	}
	if raw, ok := props["setupScripts"]; ok && string(raw) != "null" {
		var ss struct {
			Scripts *struct {
				CreationScript *scriptReference `json:"creationScript"`
				StartupScript  *scriptReference `json:"startupScript"`
			} `json:"scripts"`
		}
		if err := json.Unmarshal(raw, &ss); err != nil {
			return req, sim.Errorf(sim.KindBadRequest, "InvalidPropertyValue", "The property setupScripts is invalid: %v.", err)
		}
		if ss.Scripts != nil {
			req.CreationScript = ss.Scripts.CreationScript.request()
			req.StartupScript = ss.Scripts.StartupScript.request()
		}
	}
	for k, raw := range props {
		want, known := instanceProperties[k]
		if !known || readOnlyInstanceProperties[k] || !hasProperty(version, k) {
			continue // Azure drops what it does not know and what it sets itself
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return req, sim.Errorf(sim.KindBadRequest, "InvalidPropertyValue", "The property %s is invalid: %v.", k, err)
		}
		if err := want.check("properties.properties."+k, v); err != nil {
			return req, err
		}
		if k == "applicationSharingPolicy" && v != nil {
			if p, _ := v.(string); !strings.EqualFold(p, "Personal") && !strings.EqualFold(p, "Shared") {
				return req, sim.Errorf(sim.KindBadRequest, "InvalidPropertyValue",
					"The property applicationSharingPolicy has the invalid value '%v': it must be Personal or Shared.", v)
			}
		}
		switch {
		case k == "schedules":
			req.Schedules = raw
		case k == "idleTimeBeforeShutdown":
			idle, _ := v.(string)
			req.IdleTime = &idle
		case v != nil:
			req.Extra[k] = v
		}
	}
	return req, nil
}

// scriptReference is a ScriptReference of the API.
type scriptReference struct {
	ScriptSource    string `json:"scriptSource"`
	ScriptData      string `json:"scriptData"`
	ScriptArguments string `json:"scriptArguments"`
	Timeout         string `json:"timeout"`
}

func (r *scriptReference) request() *sim.ScriptRequest {
	if r == nil {
		return nil
	}
	return &sim.ScriptRequest{ScriptSource: r.ScriptSource, ScriptData: r.ScriptData, ScriptArguments: r.ScriptArguments, Timeout: r.Timeout}
}

func (s *Server) putCompute(w http.ResponseWriter, r *request) error {
	var body putComputeBody
	if err := decode(r, &body); err != nil {
		return err
	}
	if err := checkTags(body.Tags); err != nil {
		return err
	}
	req, err := parseCreate(body, r.version)
	if err != nil {
		return err
	}
	inst, op, err := s.svc.CreateOrUpdate(r.principal, r.workspace(), r.vars["name"], req)
	r.started(op)
	if err != nil {
		return err
	}
	if op == nil {
		writeJSON(w, http.StatusOK, s.computeView(r, inst))
		return nil
	}
	s.setPollingHeaders(w, r, *op, false)
	writeJSON(w, http.StatusCreated, s.computeView(r, inst))
	return nil
}

func (s *Server) deleteCompute(w http.ResponseWriter, r *request) error {
	action := r.URL.Query().Get("underlyingResourceAction")
	switch {
	case action == "":
		return sim.Errorf(sim.KindBadRequest, "MissingRequiredQueryParameter", "The query parameter 'underlyingResourceAction' is required (Delete or Detach).")
	case strings.EqualFold(action, "Detach"):
		return sim.Errorf(sim.KindBadRequest, "InvalidQueryParameterValue", "Compute instance '%s' is not an attached compute and cannot be detached; use underlyingResourceAction=Delete.", r.vars["name"])
	case !strings.EqualFold(action, "Delete"):
		return sim.Errorf(sim.KindBadRequest, "InvalidQueryParameterValue", "The value '%s' of query parameter 'underlyingResourceAction' is not valid. Valid values: Delete, Detach.", action)
	}
	// Deleting what is not there is a success (204), in a workspace that is.
	op, err := s.svc.Delete(r.principal, r.workspace(), r.vars["name"])
	r.started(op)
	if err != nil {
		return err
	}
	if op == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	s.setPollingHeaders(w, r, *op, true)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) action(a sim.Action) handlerFunc {
	return func(w http.ResponseWriter, r *request) error {
		op, err := s.svc.Begin(r.principal, r.workspace(), r.vars["name"], a)
		r.started(&op)
		if err != nil {
			return err
		}
		s.setPollingHeaders(w, r, op, true)
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
}

func (s *Server) listNodes(w http.ResponseWriter, r *request) error {
	inst, err := s.svc.Compute(r.workspace(), r.vars["name"])
	if err != nil {
		return err
	}
	type node struct {
		NodeID           string `json:"nodeId"`
		PrivateIPAddress string `json:"privateIpAddress"`
		PublicIPAddress  string `json:"publicIpAddress"`
		Port             int    `json:"port"`
		NodeState        string `json:"nodeState"`
	}
	nodes := []node{}
	if state := inst.State.NodeState(); state != "" {
		n := node{NodeID: inst.Domain, PrivateIPAddress: "10.0.2.15", PublicIPAddress: "127.0.0.1", NodeState: state}
		if inst.SSHPublic {
			n.Port = inst.SSHPort
		}
		nodes = append(nodes, n)
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": nodes})
	return nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *request) error {
	if _, err := s.svc.Compute(r.workspace(), r.vars["name"]); err != nil {
		return err
	}
	return sim.Errorf(sim.KindBadRequest, "ComputeKeysNotSupported", "Compute instances have no keys to list; reach them over SSH with your key.")
}

// --- long-running operations ---

// setPollingHeaders points the client at the operation: Azure-AsyncOperation
// (a status resource) and, for POST and DELETE, Location (202 until done).
func (s *Server) setPollingHeaders(w http.ResponseWriter, r *request, op sim.Operation, location bool) {
	q := "?api-version=" + url.QueryEscape(r.version)
	base := r.baseURL() + "/subscriptions/" + s.sub() + "/providers/" + Provider + "/locations/" + op.Location
	kind := "compute"
	if op.Workspace != "" {
		kind = "workspace"
	}
	w.Header().Set("Azure-AsyncOperation", base+"/"+kind+"OperationsStatus/"+op.ID+q)
	if location {
		w.Header().Set("Location", base+"/"+kind+"OperationsResults/"+op.ID+q)
	}
	s.setRetryAfter(w)
}

func (s *Server) operationStatus(w http.ResponseWriter, r *request) error {
	op, err := s.svc.Operation(r.vars["loc"], r.vars["op"])
	if err != nil {
		return err
	}
	v := operationView{
		ID:        r.URL.Path,
		Name:      op.ID,
		Status:    string(op.Status),
		StartTime: op.Start,
	}
	if !op.End.IsZero() {
		end := op.End
		v.EndTime = &end
	}
	if op.Error != nil {
		d := detailOf(op.Error)
		v.Error = &d
	}
	if op.Status == sim.OpInProgress {
		s.setRetryAfter(w)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// operationResult is the Location poller's view: 202 while in progress,
// 200 once done, the operation's error once failed.
func (s *Server) operationResult(w http.ResponseWriter, r *request) error {
	op, err := s.svc.Operation(r.vars["loc"], r.vars["op"])
	if err != nil {
		return err
	}
	return s.writeOperationResult(w, r, op)
}

// writeOperationResult writes an operation as its Location poller sees
// it.
func (s *Server) writeOperationResult(w http.ResponseWriter, r *request, op sim.Operation) error {
	switch op.Status {
	case sim.OpInProgress:
		w.Header().Set("Location", r.baseURL()+r.URL.RequestURI())
		s.setRetryAfter(w)
		w.WriteHeader(http.StatusAccepted)
	case sim.OpSucceeded:
		w.WriteHeader(http.StatusOK)
	default:
		e := op.Error
		if e == nil {
			e = sim.Errorf(sim.KindInternal, "OperationFailed", "The operation failed.")
		}
		return e
	}
	return nil
}

// --- location-scoped: usages, sizes, quotas ---

func (s *Server) usages(w http.ResponseWriter, r *request) error {
	list, err := s.svc.Usages(r.vars["loc"])
	if err != nil {
		return err
	}
	out := []usageView{}
	for _, u := range list {
		typ := map[string]string{"total": "totalCores", "dedicated": "dedicatedCores", "family": "vmFamily"}[u.Kind]
		out = append(out, usageView{
			ID:                   fmt.Sprintf("/subscriptions/%s/providers/%s/locations/%s/usages/%s", s.sub(), Provider, u.Location, u.Name),
			AmlWorkspaceLocation: u.Location,
			Type:                 Provider + "/" + typ + "/usages",
			Unit:                 "Count",
			CurrentValue:         u.Current,
			Limit:                u.Limit,
			Name:                 usageName{Value: u.Name, LocalizedValue: u.Display},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Server) vmSizes(w http.ResponseWriter, r *request) error {
	if _, ok := s.svc.Config().Region(r.vars["loc"]); !ok {
		return sim.Errorf(sim.KindBadRequest, "LocationNotAvailableForResourceType", "The provided location '%s' is not available.", r.vars["loc"])
	}
	out := []vmSizeView{}
	for _, z := range s.svc.Catalog().Sizes() {
		out = append(out, sizeView(z))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func sizeView(z sim.VMSize) vmSizeView {
	return vmSizeView{
		Name: z.Name, Family: z.Family, VCPUs: z.VCPUs, GPUs: z.GPUs, OSVhdSizeMB: z.OSVhdSizeMB,
		MaxResourceVolumeMB: z.MaxResourceVolumeMB, MemoryGB: z.MemoryGB, LowPriorityCapable: true, PremiumIO: z.PremiumIO,
		SupportedComputeTypes: []string{"AmlCompute", "ComputeInstance"},
	}
}

func (s *Server) quotaID(loc, name string) string {
	return fmt.Sprintf("/subscriptions/%s/providers/%s/locations/%s/quotas/%s", s.sub(), Provider, loc, name)
}

func (s *Server) quotas(w http.ResponseWriter, r *request) error {
	list, err := s.svc.Quotas(r.vars["loc"])
	if err != nil {
		return err
	}
	out := []quotaView{}
	for _, q := range list {
		out = append(out, quotaView{
			ID: s.quotaID(q.Location, q.Name), AmlWorkspaceLocation: q.Location, Type: Provider + "/vmFamily/quotas",
			Name: usageName{Value: q.Name, LocalizedValue: q.Display}, Limit: q.Limit, Unit: "Count",
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Server) updateQuotas(w http.ResponseWriter, r *request) error {
	var body struct {
		Location string `json:"location"`
		Value    []struct {
			ID    string `json:"id"`
			Type  string `json:"type"`
			Limit *int   `json:"limit"`
			Unit  string `json:"unit"`
		} `json:"value"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	items := make([]sim.QuotaUpdate, len(body.Value))
	for i, v := range body.Value {
		if v.Limit == nil || v.ID == "" {
			return sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "Every quota update needs an id and a limit.")
		}
		items[i] = sim.QuotaUpdate{Name: v.ID[strings.LastIndex(v.ID, "/")+1:], Limit: *v.Limit}
	}
	res, err := s.svc.UpdateQuotas(r.vars["loc"], items)
	if err != nil {
		return err
	}
	type result struct {
		ID     string `json:"id"`
		Type   string `json:"type"`
		Limit  int    `json:"limit"`
		Unit   string `json:"unit"`
		Status string `json:"status"`
	}
	out := []result{}
	for i, it := range res {
		out = append(out, result{ID: body.Value[i].ID, Type: body.Value[i].Type, Limit: it.Limit, Unit: "Count", Status: it.Status})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}
