package sim

import (
	"fmt"
	"slices"
	"strings"

	"github.com/amlsim/amlsim/sim/store"
)

// Settings of an instance that change without an operation: the custom
// services and data mounts of the preview api-versions (REST spec
// 2026-09-15-preview: Compute_UpdateCustomServices, POST …/customServices;
// Compute_UpdateDataMounts, POST …/updateDataMounts; both answer a plain
// 200).

// DataMount is one entry of an instance's dataMounts
// (ComputeInstanceDataMount in the REST spec).
type DataMount struct {
	Source      string `json:"source,omitempty"`
	SourceType  string `json:"sourceType,omitempty"`
	MountName   string `json:"mountName,omitempty"`
	MountAction string `json:"mountAction,omitempty"`
	MountMode   string `json:"mountMode,omitempty"`
	CreatedBy   string `json:"createdBy,omitempty"`
	MountPath   string `json:"mountPath,omitempty"`
	MountState  string `json:"mountState,omitempty"`
	// MountedOn is an RFC 3339 time, set once mounted.
	MountedOn string `json:"mountedOn,omitempty"`
	Error     string `json:"error,omitempty"`
}

// The enums of ComputeInstanceDataMount (REST spec 2026-09-15-preview).
var (
	mountSourceTypes = []string{"Dataset", "Datastore", "URI"}
	mountActions     = []string{"Mount", "Unmount"}
	mountModes       = []string{"ReadOnly", "ReadWrite"}
)

// canonical returns the spelling in values that v matches, ignoring case;
// "" matches "" (the property is optional).
func canonical(prop, v string, values []string) (string, error) {
	if v == "" {
		return "", nil
	}
	for _, want := range values {
		if strings.EqualFold(v, want) {
			return want, nil
		}
	}
	return "", Errorf(KindBadRequest, "InvalidPropertyValue",
		"The specified value '%s' for property %s is not valid. Valid values: %s.", v, prop, strings.Join(values, ", "))
}

// UpdateDataMounts applies mount and unmount requests to an instance's
// dataMounts, keyed by mountName. amlsim has no datastores or data assets
// to mount, so a Mount is recorded as MountFailed with the reason (the
// workspace file share is mounted in every guest already); an Unmount
// marks the mount Unmounted. Invalid enum values are refused with 400 and
// change nothing.
func (s *Service) UpdateDataMounts(p Principal, ref WorkspaceRef, name string, mounts []DataMount) error {
	for i := range mounts {
		m := &mounts[i]
		var err error
		if m.SourceType, err = canonical("sourceType", m.SourceType, mountSourceTypes); err != nil {
			return err
		}
		if m.MountAction, err = canonical("mountAction", m.MountAction, mountActions); err != nil {
			return err
		}
		if m.MountMode, err = canonical("mountMode", m.MountMode, mountModes); err != nil {
			return err
		}
		if m.MountName == "" {
			return Errorf(KindBadRequest, "InvalidPropertyValue", "The property mountName of data mount %d is required.", i)
		}
	}
	return s.changeInstance(ref, name, func(inst *Instance) string {
		for _, m := range mounts {
			at := slices.IndexFunc(inst.DataMounts, func(d DataMount) bool { return d.MountName == m.MountName })
			if m.MountAction == "Unmount" {
				if at >= 0 {
					inst.DataMounts[at].MountAction, inst.DataMounts[at].MountState = "Unmount", "Unmounted"
					inst.DataMounts[at].Error = ""
				}
				continue
			}
			m.MountAction = "Mount"
			m.CreatedBy = describe(p)
			m.MountState = "MountFailed"
			m.MountedOn = ""
			m.Error = fmt.Sprintf("amlsim cannot mount %s: it keeps no datastores or data assets (the workspace file share is mounted in every instance already).", m.Source)
			if at >= 0 {
				inst.DataMounts[at] = m
			} else {
				inst.DataMounts = append(inst.DataMounts, m)
			}
		}
		return fmt.Sprintf("Data mounts updated by %s", describe(p))
	})
}

// UpdateCustomServices replaces an instance's customServices with
// services, each a CustomService object of the API whose name is set and
// unique (the spec identifies them by name).
func (s *Service) UpdateCustomServices(p Principal, ref WorkspaceRef, name string, services []map[string]any) error {
	seen := map[string]bool{}
	list := make([]any, len(services))
	for i, svc := range services {
		n, _ := svc["name"].(string)
		if n == "" {
			return Errorf(KindBadRequest, "InvalidPropertyValue", "The property name of custom service %d is required.", i)
		}
		if seen[strings.ToLower(n)] {
			return Errorf(KindBadRequest, "InvalidPropertyValue", "The custom service name '%s' is used twice.", n)
		}
		seen[strings.ToLower(n)] = true
		list[i] = svc
	}
	return s.changeInstance(ref, name, func(inst *Instance) string {
		if inst.Extra == nil {
			inst.Extra = map[string]any{}
		}
		inst.Extra["customServices"] = normalizeJSON(list)
		return fmt.Sprintf("Custom services updated by %s", describe(p))
	})
}

// UpdateIdleShutdown sets an instance's idleTimeBeforeShutdown
// (Compute_UpdateIdleShutdownSetting: POST …/updateIdleShutdownSetting
// with {"idleTimeBeforeShutdown": "PT30M"}, answered 200). It takes
// effect at once; a time outside PT15M–P3D is refused with 400.
func (s *Service) UpdateIdleShutdown(p Principal, ref WorkspaceRef, name, idle string) error {
	idle, err := parseIdleTime(idle)
	if err != nil {
		return err
	}
	return s.changeInstance(ref, name, func(inst *Instance) string {
		inst.IdleTime = idle
		if idle == "" {
			return fmt.Sprintf("Idle shutdown turned off by %s", describe(p))
		}
		return fmt.Sprintf("Idle shutdown set to %s by %s", idle, describe(p))
	})
}

// CustomServices returns the names of an instance's custom services.
func (i Instance) CustomServices() []string {
	list, _ := i.Extra["customServices"].([]any)
	var out []string
	for _, v := range list {
		if m, ok := v.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				out = append(out, n)
			}
		}
	}
	return out
}

// beingDeleted refuses a change of an instance being deleted, as Azure
// refuses other requests on it (microsoft/vscode-tools-for-ai#2673); the
// code is amlsim's.
func beingDeleted(name string) error {
	return Errorf(KindConflict, "ComputeInstanceBeingDeleted", "Compute instance '%s' is being deleted.", name)
}

// changeInstance changes an instance's record in one transaction and
// records the event change returns. A deleting instance is not changed.
func (s *Service) changeInstance(ref WorkspaceRef, name string, change func(*Instance) string) error {
	return s.st.Update(func(tx *store.Tx) error {
		_, inst, err := getCompute(tx, ref, name)
		if err != nil {
			return err
		}
		if inst.State == StateDeleting {
			return beingDeleted(name)
		}
		now := s.now().UTC()
		msg := change(&inst)
		inst.ModifiedOn = now
		inst.addEvent(Event{Time: now, State: inst.State, Message: msg})
		return putInstance(tx, inst)
	})
}

// AllowedResizeSizes returns the sizes an instance may be resized to:
// every size of the catalog (Compute_getAllowedResizeSizes).
func (s *Service) AllowedResizeSizes(ref WorkspaceRef, name string) ([]VMSize, error) {
	if _, err := s.Compute(ref, name); err != nil {
		return nil, err
	}
	return s.catalog.Sizes(), nil
}
