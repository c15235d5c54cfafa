package api

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/amlsim/amlsim/sim"
)

// Jobs of a workspace (REST spec 2024-04-01, mfe.json: Jobs_CreateOrUpdate,
// Jobs_Get, Jobs_List, Jobs_Cancel, Jobs_Delete) and the environment
// versions they name (EnvironmentVersions_CreateOrUpdate, _Get).

// RBAC actions of jobs and environments (azure-docs, permissions/
// ai-machine-learning.md).
const (
	ActJobRead     = "Microsoft.MachineLearningServices/workspaces/jobs/read"
	ActJobWrite    = "Microsoft.MachineLearningServices/workspaces/jobs/write"
	ActJobDelete   = "Microsoft.MachineLearningServices/workspaces/jobs/delete"
	ActJobCancel   = "Microsoft.MachineLearningServices/workspaces/jobs/cancel/action"
	ActJobOpResult = "Microsoft.MachineLearningServices/workspaces/jobs/operationresults/read"
	ActEnvRead     = "Microsoft.MachineLearningServices/workspaces/environments/versions/read"
	ActEnvWrite    = "Microsoft.MachineLearningServices/workspaces/environments/versions/write"
)

// jobResource is JobBaseResource, and (same shape) an environment
// version's resource.
type jobResource struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	SystemData systemData     `json:"systemData"`
	Properties map[string]any `json:"properties"`
}

func (s *Server) jobView(r *request, j sim.Job) jobResource {
	props := make(map[string]any, len(j.Spec)+3)
	for k, v := range j.Spec {
		props[k] = v
	}
	props["status"] = string(j.Status)
	props["parameters"] = map[string]any{}
	// Real jobs carry Studio and Tracking; azure-ai-ml's stream reads
	// services["Studio"] and fails on a null map.
	props["services"] = map[string]any{
		"Studio":   map[string]any{"jobServiceType": "Studio", "endpoint": r.baseURL() + "/studio/", "status": string(j.Status)},
		"Tracking": map[string]any{"jobServiceType": "Tracking", "endpoint": r.baseURL(), "status": string(j.Status)},
	}
	return jobResource{
		ID:         "/subscriptions/" + s.sub() + "/resourceGroups/" + j.Workspace.ResourceGroup + "/providers/" + Provider + "/workspaces/" + j.Workspace.Name + "/jobs/" + j.Name,
		Name:       j.Name,
		Type:       Provider + "/workspaces/jobs",
		SystemData: userSystemData(j.CreatedBy.Name, j.CreatedOn, j.ModifiedOn),
		Properties: props,
	}
}

func (s *Server) putJob(w http.ResponseWriter, r *request) error {
	var body struct {
		Properties map[string]any `json:"properties"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if body.Properties == nil {
		return sim.Errorf(sim.KindBadRequest, "UserError", "The job's properties are required.")
	}
	job, created, err := s.svc.SubmitJob(r.principal, r.workspace(), r.vars["name"], body.Properties)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, s.jobView(r, job))
	return nil
}

func (s *Server) getJob(w http.ResponseWriter, r *request) error {
	job, err := s.svc.Job(r.workspace(), r.vars["name"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.jobView(r, job))
	return nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	skip := 0
	if v := q.Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return sim.Errorf(sim.KindBadRequest, "InvalidQueryParameterValue", "The value '%s' of query parameter '$skip' is not a valid continuation token.", v)
		}
		skip = n
	}
	f := sim.JobFilter{View: q.Get("listViewType"), JobType: q.Get("jobType"), Tag: q.Get("tag")}
	switch f.View {
	case "", "ActiveOnly", "ArchivedOnly", "All":
	default:
		return sim.Errorf(sim.KindBadRequest, "UserError", "The listViewType '%s' is not one of ActiveOnly, ArchivedOnly, All.", f.View)
	}
	page, more, err := s.svc.Jobs(r.workspace(), f, skip)
	if err != nil {
		return err
	}
	out := struct {
		Value    []jobResource `json:"value"`
		NextLink string        `json:"nextLink,omitempty"`
	}{Value: []jobResource{}}
	for _, j := range page {
		out.Value = append(out.Value, s.jobView(r, j))
	}
	if more {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("$skip", strconv.Itoa(skip+len(page)))
		out.NextLink = r.baseURL() + r.URL.Path + "?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// cancelJob answers Jobs_Cancel: 202 with Location (the spec's only
// polling header here) until the job is Canceled; the Go SDK polls it
// (final-state-via location).
func (s *Server) cancelJob(w http.ResponseWriter, r *request) error {
	job, err := s.svc.CancelJob(r.workspace(), r.vars["name"])
	if err != nil {
		return err
	}
	if job.Status.Terminal() {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	s.setJobPolling(w, r, "cancel")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// deleteJob answers Jobs_Delete: 204 for an ended job, which is gone at
// once; else 202 with Location until its cancel ends and it is gone.
func (s *Server) deleteJob(w http.ResponseWriter, r *request) error {
	done, err := s.svc.DeleteJob(r.workspace(), r.vars["name"])
	if err != nil {
		return err
	}
	if done {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	s.setJobPolling(w, r, "delete")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) setJobPolling(w http.ResponseWriter, r *request, kind string) {
	w.Header().Set("Location", r.baseURL()+"/subscriptions/"+s.sub()+"/resourceGroups/"+r.vars["rg"]+"/providers/"+Provider+
		"/workspaces/"+r.vars["ws"]+"/jobs/"+url.PathEscape(r.vars["name"])+"/operationresults/"+kind+"?api-version="+url.QueryEscape(r.version))
	s.setRetryAfter(w)
}

// jobOperationResult is the Location of a cancel or delete: 202 while it
// goes on, 200 once done.
func (s *Server) jobOperationResult(w http.ResponseWriter, r *request) error {
	job, err := s.svc.Job(r.workspace(), r.vars["name"])
	switch kind := r.vars["kind"]; {
	case (kind == "delete" || kind == "cancel") && sim.IsKind(err, sim.KindNotFound):
		// Gone: deleted, so also no longer running.
		w.WriteHeader(http.StatusOK)
		return nil
	case err != nil:
		return err
	case kind == "cancel" && job.Status.Terminal():
		w.WriteHeader(http.StatusOK)
		return nil
	case kind != "cancel" && kind != "delete":
		return sim.Errorf(sim.KindNotFound, "NotFound", "The requested path '%s' was not found.", r.URL.Path)
	}
	w.Header().Set("Location", r.baseURL()+r.URL.RequestURI())
	s.setRetryAfter(w)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// --- environment versions ---

func (s *Server) environmentView(env sim.Environment) jobResource {
	props := map[string]any{}
	for k, v := range env.Properties {
		props[k] = v
	}
	props["provisioningState"] = "Succeeded"
	return jobResource{
		ID:         "/subscriptions/" + s.sub() + "/resourceGroups/" + env.Workspace.ResourceGroup + "/providers/" + Provider + "/workspaces/" + env.Workspace.Name + "/environments/" + env.Name + "/versions/" + env.Version,
		Name:       env.Version,
		Type:       Provider + "/workspaces/environments/versions",
		SystemData: userSystemData(env.CreatedBy.Name, env.CreatedOn, env.CreatedOn),
		Properties: props,
	}
}

func (s *Server) putEnvironment(w http.ResponseWriter, r *request) error {
	var body struct {
		Properties map[string]any `json:"properties"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if body.Properties == nil {
		return sim.Errorf(sim.KindBadRequest, "UserError", "The environment version's properties are required.")
	}
	delete(body.Properties, "provisioningState")
	env, err := s.svc.PutEnvironment(r.principal, r.workspace(), r.vars["name"], r.vars["version"], body.Properties)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.environmentView(env))
	return nil
}

func (s *Server) getEnvironment(w http.ResponseWriter, r *request) error {
	env, err := s.svc.GetEnvironment(r.workspace(), r.vars["name"], r.vars["version"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.environmentView(env))
	return nil
}
