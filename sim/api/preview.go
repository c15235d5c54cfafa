package api

import (
	"fmt"
	"net/http"

	"github.com/amlsim/amlsim/sim"
)

// The compute-instance operations that only the preview api-versions
// define (REST spec preview/2026-09-15-preview/openapi.json):
//
//	POST …/computes/{name}/resize                      {"targetVMSize"} → 202, Location
//	POST …/computes/{name}/getAllowedVmSizesForResize  → 200 VirtualMachineSizeListResult
//	POST …/computes/{name}/customServices              [CustomService] → 200
//	POST …/computes/{name}/updateDataMounts            [ComputeInstanceDataMount] → 200
//	POST …/computes/{name}/updateIdleShutdownSetting   {"idleTimeBeforeShutdown"} → 200
//
// (updateIdleShutdownSetting is in stable 2025-12-01 too.)
// amlsim serves them in every api-version.

// customServicePath is where, under an instance's application base path,
// the application proxy answers for its custom services.
const customServicePath = "services/"

// patchCompute is Compute_Update (PATCH …/computes/{name}): the spec's
// body is ClusterUpdateParameters, the scale settings of an AmlCompute
// cluster, and nothing of a compute instance can change through it. The
// refusal is azure-ai-ml's own for an update of another compute type
// (COMPUTE_UPDATE_ERROR, azure/ai/ml/constants/_common.py).
func (s *Server) patchCompute(w http.ResponseWriter, r *request) error {
	var body struct {
		Properties *struct {
			Properties *struct {
				ScaleSettings map[string]any `json:"scaleSettings"`
			} `json:"properties"`
		} `json:"properties"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	inst, err := s.svc.Compute(r.workspace(), r.vars["name"])
	if err != nil {
		return err
	}
	return sim.Errorf(sim.KindBadRequest, "BadRequest",
		"Only AmlCompute/KubernetesCompute cluster properties are supported, compute name %s, is ComputeInstance type.", inst.Name)
}

func (s *Server) resize(w http.ResponseWriter, r *request) error {
	var body struct {
		TargetVMSize string `json:"targetVMSize"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	op, err := s.svc.Resize(r.principal, r.workspace(), r.vars["name"], body.TargetVMSize)
	if err != nil {
		return err
	}
	s.setPollingHeaders(w, r, op, true)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) allowedResizeSizes(w http.ResponseWriter, r *request) error {
	sizes, err := s.svc.AllowedResizeSizes(r.workspace(), r.vars["name"])
	if err != nil {
		return err
	}
	out := []vmSizeView{}
	for _, z := range sizes {
		out = append(out, sizeView(z))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

// customServiceFields are the typed properties of a CustomService; the
// spec allows others (additionalProperties), which are kept.
var customServiceFields = map[string]jsonType{
	"name": jsonString, "image": jsonObject, "environmentVariables": jsonObject, "docker": jsonObject,
	"endpoints": jsonArray, "volumes": jsonArray, "kernel": jsonObject,
}

func (s *Server) updateCustomServices(w http.ResponseWriter, r *request) error {
	var body []any
	if err := decode(r, &body); err != nil {
		return err
	}
	services := make([]map[string]any, len(body))
	for i, v := range body {
		if err := jsonObject.check(fmt.Sprintf("[%d]", i), v); err != nil {
			return err
		}
		m, _ := v.(map[string]any)
		for k, t := range customServiceFields {
			if err := t.check(fmt.Sprintf("[%d].%s", i, k), m[k]); err != nil {
				return err
			}
		}
		services[i] = m
	}
	if err := s.svc.UpdateCustomServices(r.principal, r.workspace(), r.vars["name"], services); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) updateIdleShutdown(w http.ResponseWriter, r *request) error {
	var body struct {
		IdleTimeBeforeShutdown string `json:"idleTimeBeforeShutdown"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if err := s.svc.UpdateIdleShutdown(r.principal, r.workspace(), r.vars["name"], body.IdleTimeBeforeShutdown); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) updateDataMounts(w http.ResponseWriter, r *request) error {
	var mounts []sim.DataMount
	if err := decode(r, &mounts); err != nil {
		return err
	}
	if err := s.svc.UpdateDataMounts(r.principal, r.workspace(), r.vars["name"], mounts); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
