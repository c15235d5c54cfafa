package api

import (
	"net/url"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/schedule"
)

// The JSON shapes of the ARM resources, as the REST specs define them.

type systemData struct {
	CreatedBy          string    `json:"createdBy,omitempty"`
	CreatedByType      string    `json:"createdByType,omitempty"`
	CreatedAt          time.Time `json:"createdAt"`
	LastModifiedBy     string    `json:"lastModifiedBy,omitempty"`
	LastModifiedByType string    `json:"lastModifiedByType,omitempty"`
	LastModifiedAt     time.Time `json:"lastModifiedAt"`
}

// userSystemData is the systemData of a resource a user made and last
// changed.
func userSystemData(by string, created, modified time.Time) systemData {
	return systemData{CreatedBy: by, CreatedByType: "User", CreatedAt: created, LastModifiedBy: by, LastModifiedByType: "User", LastModifiedAt: modified}
}

type computeResource struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	SystemData systemData        `json:"systemData"`
	Properties computeProperties `json:"properties"`
}

type computeProperties struct {
	ComputeType        string         `json:"computeType"`
	ComputeLocation    string         `json:"computeLocation"`
	ProvisioningState  string         `json:"provisioningState"`
	Description        string         `json:"description,omitempty"`
	CreatedOn          time.Time      `json:"createdOn"`
	ModifiedOn         time.Time      `json:"modifiedOn"`
	ProvisioningErrors []armError     `json:"provisioningErrors"`
	IsAttachedCompute  bool           `json:"isAttachedCompute"`
	DisableLocalAuth   bool           `json:"disableLocalAuth"`
	Properties         map[string]any `json:"properties"`
}

type sshSettings struct {
	SSHPublicAccess string `json:"sshPublicAccess"`
	AdminUserName   string `json:"adminUserName"`
	SSHPort         int    `json:"sshPort,omitempty"`
	AdminPublicKey  string `json:"adminPublicKey,omitempty"`
}

// AdminUser is the login user of every instance.
const AdminUser = "azureuser"

type application struct {
	DisplayName string `json:"displayName"`
	EndpointURI string `json:"endpointUri"`
}

// computeView is the instance as r's caller sees it. The instance is its
// owner's (S24): only the owner is shown how to reach it by SSH.
func (s *Server) computeView(r *request, inst sim.Instance) computeResource {
	sub := s.sub()
	props := map[string]any{}
	for k, v := range inst.Extra {
		props[k] = v
	}
	access := "Disabled"
	ssh := sshSettings{AdminUserName: AdminUser}
	if inst.SSHPublic {
		access = "Enabled"
		if isOwner(r.principal, inst) {
			ssh.SSHPort = inst.SSHPort
			ssh.AdminPublicKey = inst.AdminKey
		}
	}
	ssh.SSHPublicAccess = access
	if inst.HasApplications() {
		base := r.baseURL() + sim.AppBasePath(inst.Location, inst.Name)
		var apps []application
		for _, a := range sim.Applications {
			apps = append(apps, application{DisplayName: a.DisplayName, EndpointURI: base + a.Path})
		}
		for _, name := range inst.CustomServices() {
			apps = append(apps, application{DisplayName: name, EndpointURI: base + customServicePath + url.PathEscape(name) + "/"})
		}
		props["applications"] = apps
	}
	if latest := s.svc.ImageVersion(); latest != "" || inst.Image != "" {
		props["osImageMetadata"] = map[string]any{
			"currentImageVersion": inst.Image, "latestImageVersion": latest, "isLatestOsImageVersion": inst.Image == latest,
		}
	}
	// As a real GET of an instance with none shows them (api-version
	// 2021-10-01, recorded in Az.MachineLearningWorkspaces' notes):
	// "dataMounts": null, "dataDisks": null, "containers": null and
	// "versions": {"runtime": "3.0.01915.0001"}; amlsim's runtime is its
	// guest image.
	props["dataMounts"] = inst.DataMounts
	props["dataDisks"] = nil
	props["containers"] = nil
	props["versions"] = map[string]any{"runtime": inst.Image}
	errs := []armError{}
	for _, e := range inst.Errors {
		errs = append(errs, armError{Error: errorDetail{Code: e.Code, Message: e.Message}})
	}
	// Always shown, empty when there are none, as the same real GET
	// shows them.
	scheds := inst.Schedules
	if scheds == nil {
		scheds = []schedule.Schedule{}
	}
	props["schedules"] = map[string]any{"computeStartStop": scheds}
	if inst.IdleTime != "" {
		props["idleTimeBeforeShutdown"] = inst.IdleTime
	}
	props["vmSize"] = inst.Size.Name
	props["sshSettings"] = ssh
	props["connectivityEndpoints"] = map[string]string{"publicIpAddress": "127.0.0.1", "privateIpAddress": "10.0.2.15"}
	props["createdBy"] = map[string]string{"userName": inst.CreatedBy.Name, "userOrgId": inst.CreatedBy.TenantID, "userId": inst.CreatedBy.ObjectID}
	props["state"] = inst.State
	props["errors"] = errs
	props["computeInstanceAuthorizationType"] = "personal"
	if _, ok := props["applicationSharingPolicy"]; !ok {
		props["applicationSharingPolicy"] = "Personal"
	}
	if inst.LastOperation != nil {
		props["lastOperation"] = inst.LastOperation
	}
	for k := range props {
		if !hasProperty(r.version, k) {
			delete(props, k)
		}
	}
	var provErrs []armError
	if inst.State.Failed() {
		provErrs = errs
	}
	return computeResource{
		ID:         inst.ResourceID(sub),
		Name:       inst.Name,
		Type:       Provider + "/workspaces/computes",
		Location:   inst.Location,
		Tags:       inst.Tags,
		SystemData: userSystemData(inst.CreatedBy.Name, inst.CreatedOn, inst.ModifiedOn),
		Properties: computeProperties{
			ComputeType:        "ComputeInstance",
			ComputeLocation:    inst.Location,
			ProvisioningState:  inst.ProvisioningState(),
			Description:        inst.Description,
			CreatedOn:          inst.CreatedOn,
			ModifiedOn:         inst.ModifiedOn,
			ProvisioningErrors: provErrs,
			DisableLocalAuth:   true,
			Properties:         props,
		},
	}
}

type workspaceResource struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties map[string]any    `json:"properties"`
}

// workspaceView is a workspace as ARM answers it; base is the URL clients
// reach amlsim on, for the endpoints it names.
func workspaceView(sub, base string, ws sim.Workspace) workspaceResource {
	props := workspaceEndpoints(base, sub, ws)
	props["provisioningState"] = ws.ProvisioningState()
	props["friendlyName"] = ws.Name
	props["creationTime"] = ws.CreatedOn
	return workspaceResource{
		ID:         "/subscriptions/" + sub + "/resourceGroups/" + ws.ResourceGroup + "/providers/" + Provider + "/workspaces/" + ws.Name,
		Name:       ws.Name,
		Type:       Provider + "/workspaces",
		Location:   ws.Location,
		Tags:       ws.Tags,
		Properties: props,
	}
}

type operationView struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Status    string       `json:"status"`
	StartTime time.Time    `json:"startTime"`
	EndTime   *time.Time   `json:"endTime,omitempty"`
	Error     *errorDetail `json:"error,omitempty"`
}

type usageName struct {
	Value          string `json:"value"`
	LocalizedValue string `json:"localizedValue"`
}

type usageView struct {
	ID                   string    `json:"id"`
	AmlWorkspaceLocation string    `json:"amlWorkspaceLocation"`
	Type                 string    `json:"type"`
	Unit                 string    `json:"unit"`
	CurrentValue         int       `json:"currentValue"`
	Limit                int       `json:"limit"`
	Name                 usageName `json:"name"`
}

type vmSizeView struct {
	Name                  string   `json:"name"`
	Family                string   `json:"family"`
	VCPUs                 int      `json:"vCPUs"`
	GPUs                  int      `json:"gpus"`
	OSVhdSizeMB           int      `json:"osVhdSizeMB"`
	MaxResourceVolumeMB   int      `json:"maxResourceVolumeMB"`
	MemoryGB              float64  `json:"memoryGB"`
	LowPriorityCapable    bool     `json:"lowPriorityCapable"`
	PremiumIO             bool     `json:"premiumIO"`
	SupportedComputeTypes []string `json:"supportedComputeTypes"`
}

type quotaView struct {
	ID                   string    `json:"id"`
	AmlWorkspaceLocation string    `json:"amlWorkspaceLocation"`
	Type                 string    `json:"type"`
	Name                 usageName `json:"name"`
	Limit                int       `json:"limit"`
	Unit                 string    `json:"unit"`
}
