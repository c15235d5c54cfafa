package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim/schedule"
)

// Principal is who makes a request: an Entra ID object in a tenant.
type Principal struct {
	ObjectID string `json:"objectId"`
	TenantID string `json:"tenantId"`
	Name     string `json:"name"`
}

// WorkspaceRef names a workspace.
type WorkspaceRef struct {
	ResourceGroup string
	Name          string
}

func (w WorkspaceRef) key() string {
	return strings.ToLower(w.ResourceGroup) + "/" + strings.ToLower(w.Name)
}

// Workspace is an Azure ML workspace: a container of computes in a region.
type Workspace struct {
	ResourceGroup string            `json:"resourceGroup"`
	Name          string            `json:"name"`
	Location      string            `json:"location"`
	Tags          map[string]string `json:"tags,omitempty"`
	CreatedOn     time.Time         `json:"createdOn"`
	// Deleting is the ID of the workspace's delete operation while its
	// compute instances are deleted.
	Deleting string `json:"deleting,omitempty"`
}

// ProvisioningState is the workspace's ARM provisioning state.
func (w Workspace) ProvisioningState() string {
	if w.Deleting != "" {
		return "Deleting"
	}
	return "Succeeded"
}

// ID is the workspace's workspaceId: a GUID that stays for the
// workspace's life, made from its name and creation time.
func (w Workspace) ID() string {
	h := sha256.Sum256([]byte(w.Ref().key() + "\n" + w.CreatedOn.UTC().Format(time.RFC3339Nano)))
	h[6] = h[6]&0x0f | 0x50 // a name-based (version 5 style) UUID
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// Ref returns the workspace's reference.
func (w Workspace) Ref() WorkspaceRef { return WorkspaceRef{w.ResourceGroup, w.Name} }

// LastOperation is the last user operation on an instance and its outcome.
type LastOperation struct {
	Name    string    `json:"operationName"`
	Time    time.Time `json:"operationTime"`
	Status  string    `json:"operationStatus"`
	Trigger string    `json:"operationTrigger"`
}

// InstanceError is one entry of an instance's errors list.
type InstanceError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Instance is a compute instance as the simulator records it.
type Instance struct {
	ID          string            `json:"id"`
	Workspace   WorkspaceRef      `json:"workspace"`
	Name        string            `json:"name"`
	Location    string            `json:"location"`
	Size        VMSize            `json:"size"`
	Local       LocalResource     `json:"local"`
	State       State             `json:"state"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	SSHPublic   bool              `json:"sshPublicAccess"`
	AdminKey    string            `json:"adminPublicKey,omitempty"`
	SSHPort     int               `json:"sshPort"`
	HostKey     []byte            `json:"hostKey,omitempty"`
	// AppPort is the host port forwarded to the guest's notebook server;
	// AppToken is the secret the guest's server requires, which only the
	// API's application proxy sends (see apps.go).
	AppPort   int       `json:"appPort,omitempty"`
	AppToken  string    `json:"appToken,omitempty"`
	CreatedBy Principal `json:"createdBy"`
	// Owner is the instance's single user: the user it was created for,
	// else its creator (S24).
	Owner         Principal       `json:"owner"`
	CreatedOn     time.Time       `json:"createdOn"`
	ModifiedOn    time.Time       `json:"modifiedOn"`
	LastOperation *LastOperation  `json:"lastOperation,omitempty"`
	Errors        []InstanceError `json:"errors,omitempty"`
	// Domain is the hypervisor domain behind the instance.
	Domain string `json:"domain"`
	// Operation is the ID of the operation in flight, if any.
	Operation string `json:"operation,omitempty"`
	// Resize is the size a resize in flight changes the instance to.
	Resize *Resize `json:"resize,omitempty"`
	// Share is the host directory of the workspace file share mounted in
	// the guest; Scripts are its setup scripts.
	Share   string   `json:"share,omitempty"`
	Scripts []Script `json:"scripts,omitempty"`
	// ScriptRuns are the outcomes of the latest boot's script runs.
	ScriptRuns []ScriptRun `json:"scriptRuns,omitempty"`
	// Events are the steps the instance went through, newest last, so
	// clients can show progress while they wait.
	Events []Event `json:"events,omitempty"`
	// Schedules are the instance's start and stop schedules
	// (schedules.computeStartStop).
	Schedules []schedule.Schedule `json:"schedules,omitempty"`
	// IdleTime is idleTimeBeforeShutdown: how long the instance may be
	// idle before it is stopped, as an ISO 8601 duration; "" for never.
	IdleTime string `json:"idleTimeBeforeShutdown,omitempty"`
	// DataMounts are the instance's data mounts (updateDataMounts).
	DataMounts []DataMount `json:"dataMounts,omitempty"`
	// Image is the version of the guest image the instance's VM was
	// created from (osImageMetadata.currentImageVersion).
	Image string `json:"image,omitempty"`
	// Extra holds ComputeInstanceProperties fields the simulator keeps and
	// echoes without acting on them (setupScripts, schedules, …), as JSON.
	Extra map[string]any `json:"extra,omitempty"`
}

// Resize is the change a resize operation makes. While it runs the
// instance holds the quota of both sizes (the larger, within one family),
// so that neither a failure nor a delete cutting in can leave the region
// over its limits; it takes the new size when the operation succeeds and
// keeps the old one otherwise.
type Resize struct {
	Size  VMSize        `json:"size"`
	Local LocalResource `json:"local"`
}

// held returns the vCPUs the instance holds, by VM family.
func (i Instance) held() map[string]int {
	h := map[string]int{i.Size.Family: i.Size.VCPUs}
	if r := i.Resize; r != nil {
		h[r.Size.Family] = max(h[r.Size.Family], r.Size.VCPUs)
	}
	return h
}

// Event is one step in an instance's life: "VM started", "SSH up", ….
type Event struct {
	Time    time.Time `json:"time"`
	State   State     `json:"state"`
	Message string    `json:"message"`
}

// maxEvents bounds the events kept per instance.
const maxEvents = 100

// Script returns the instance's script of a kind, or nil.
func (i Instance) Script(kind ScriptKind) *Script {
	for k := range i.Scripts {
		if i.Scripts[k].Kind == kind {
			return &i.Scripts[k]
		}
	}
	return nil
}

// ResourceID is the instance's ARM resource ID in the given subscription.
func (i Instance) ResourceID(subscription string) string {
	return "/subscriptions/" + subscription + "/resourceGroups/" + i.Workspace.ResourceGroup +
		"/providers/Microsoft.MachineLearningServices/workspaces/" + i.Workspace.Name + "/computes/" + i.Name
}

// ProvisioningState is the ARM provisioning state of the instance.
func (i Instance) ProvisioningState() string { return i.State.ProvisioningState() }

func instanceKey(location, name string) string {
	return strings.ToLower(location) + "/" + strings.ToLower(name)
}

func (i Instance) key() string { return instanceKey(i.Location, i.Name) }

// DefaultDomainPrefix starts the libvirt domain names of a service made
// without WithDomainPrefix.
const DefaultDomainPrefix = "amlsim-"

// DomainName is the libvirt domain name of an instance under the default
// prefix: unique among one server's domains because compute names are
// unique in a region.
func DomainName(location, name string) string {
	return domainName(DefaultDomainPrefix, location, name)
}

func domainName(prefix, location, name string) string {
	return prefix + strings.ToLower(location) + "-" + strings.ToLower(name)
}

// HomeDomainPrefix is the domain name prefix of the server whose home
// directory is home: "amlsim-" and a short hash of the home's absolute
// path, so that servers with different homes on one host (parallel CI
// jobs, say) never take or touch each other's VMs, even for instances of
// the same name.
func HomeDomainPrefix(home string) string {
	if abs, err := filepath.Abs(home); err == nil {
		home = abs
	}
	sum := sha256.Sum256([]byte(home))
	return DefaultDomainPrefix + hex.EncodeToString(sum[:3]) + "-"
}

// OperationStatus is the status of a long-running operation.
type OperationStatus string

const (
	OpInProgress OperationStatus = "InProgress"
	OpSucceeded  OperationStatus = "Succeeded"
	OpFailed     OperationStatus = "Failed"
	// OpCanceled ends an operation a later one cut in on.
	OpCanceled OperationStatus = "Canceled"
)

// Operation is a long-running operation clients poll.
type Operation struct {
	ID       string `json:"id"`
	Action   string `json:"action"`
	Location string `json:"location"`
	Instance string `json:"instance"`
	// Workspace is set on a workspace's delete operation: the workspace's
	// key.
	Workspace string `json:"workspace,omitempty"`
	// ResourceGroup is set on a resource group's delete operation: the
	// group's name.
	ResourceGroup string          `json:"resourceGroup,omitempty"`
	Status        OperationStatus `json:"status"`
	Error         *Error          `json:"error,omitempty"`
	Start         time.Time       `json:"start"`
	End           time.Time       `json:"end,omitzero"`
	// Fault is the fault rule the operation was started under, which
	// the runner applies when the work begins.
	Fault *OperationFault `json:"fault,omitempty"`
}

// CreateRequest is what a PUT of a compute instance asks for.
type CreateRequest struct {
	Location    string
	Size        string
	Description string
	Tags        map[string]string
	SSHPublic   bool
	AdminKey    string
	// SSHGiven is whether the request had sshSettings: an update without
	// them (what `az ml compute update` sends) keeps the instance's.
	SSHGiven bool
	Extra    map[string]any
	// Schedules is the schedules property as sent; nil when absent.
	Schedules json.RawMessage
	// IdleTime is idleTimeBeforeShutdown as sent; nil when absent.
	IdleTime *string
	// CreationScript and StartupScript are setupScripts.scripts.
	CreationScript *ScriptRequest
	StartupScript  *ScriptRequest
	// AssignedUser, when set, is who the instance is created for
	// (personalComputeInstanceSettings.assignedUser, S9).
	AssignedUser *Principal
}

// Usage is the use of one quota in a region.
type Usage struct {
	Kind     string // "total", "dedicated" or "family"
	Name     string // value, e.g. standardDSv2Family
	Display  string // localized value
	Current  int
	Limit    int
	Location string
}

// DefaultOwner is the built-in principal `amlsim token` speaks for unless
// told otherwise.
var DefaultOwner = Principal{
	ObjectID: "11111111-1111-1111-1111-111111111111",
	TenantID: "00000000-0000-0000-0000-0000000000aa",
	Name:     "amlsim owner",
}
