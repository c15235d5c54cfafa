package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/amlsim/amlsim/sim/store"
)

// ResourceGroup is an ARM resource group: the container of workspaces (and
// of deployments) in the simulated subscription.
type ResourceGroup struct {
	Name      string            `json:"name"`
	Location  string            `json:"location"`
	Tags      map[string]string `json:"tags,omitempty"`
	ManagedBy string            `json:"managedBy,omitempty"`
	CreatedOn time.Time         `json:"createdOn"`
	// Deleting is the ID of the group's delete operation while what it
	// holds is deleted.
	Deleting string `json:"deleting,omitempty"`
}

// ProvisioningState is the group's ARM provisioning state: "Deleting"
// while it is deleted, else "Succeeded".
func (g ResourceGroup) ProvisioningState() string {
	if g.Deleting != "" {
		return "Deleting"
	}
	return "Succeeded"
}

const bucketGroups = "resourceGroups"

func groupKey(name string) string { return strings.ToLower(name) }

// ResourceGroupNotFound is ARM's 404 for a request under a resource group
// that does not exist (pulumi/pulumi#3891: Status=404
// Code="ResourceGroupNotFound"; also the answer to a delete of a missing
// group, Azure/azure-cli#20316).
func ResourceGroupNotFound(name string) error {
	return Errorf(KindNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", name)
}

// groupBeingDeleted is ARM's 409 for a write into a group being deleted
// (Azure/azure-cli#28679, #21121).
func groupBeingDeleted(name string) error {
	return Errorf(KindConflict, "ResourceGroupBeingDeleted",
		"The resource group '%s' is in deprovisioning state and cannot perform this operation.", name)
}

func getGroup(tx *store.Tx, name string) (ResourceGroup, error) {
	var g ResourceGroup
	ok, err := tx.Get(bucketGroups, groupKey(name), &g)
	if err == nil && !ok {
		err = ResourceGroupNotFound(name)
	}
	return g, err
}

// writableGroup returns the group a write goes into: it must exist and not
// be being deleted.
func writableGroup(tx *store.Tx, name string) (ResourceGroup, error) {
	g, err := getGroup(tx, name)
	if err == nil && g.Deleting != "" {
		err = groupBeingDeleted(g.Name)
	}
	return g, err
}

func putGroup(tx *store.Tx, g ResourceGroup) error { return tx.Put(bucketGroups, groupKey(g.Name), g) }

// ensureGroup creates the group of a workspace that predates resource
// groups (state from an older amlsim, or a workspace of the config).
func ensureGroup(tx *store.Tx, name, location string, now time.Time) error {
	if _, err := getGroup(tx, name); !IsKind(err, KindNotFound) {
		return err
	}
	return putGroup(tx, ResourceGroup{Name: name, Location: location, CreatedOn: now})
}

// ResourceGroup returns a resource group, or ResourceGroupNotFound.
func (s *Service) ResourceGroup(name string) (ResourceGroup, error) {
	var g ResourceGroup
	err := s.st.View(func(tx *store.Tx) (err error) {
		g, err = getGroup(tx, name)
		return err
	})
	return g, err
}

// ResourceGroups lists the subscription's resource groups.
func (s *Service) ResourceGroups() ([]ResourceGroup, error) {
	var out []ResourceGroup
	err := s.st.View(func(tx *store.Tx) (err error) {
		out, err = store.All[ResourceGroup](tx, bucketGroups)
		return err
	})
	return out, err
}

// PutResourceGroup creates a resource group or updates its tags and
// managedBy. A group's location cannot change (ARM's 409
// InvalidResourceGroupLocation: Azure/azure-cli#22242 for the text,
// trailofbits/algo#1814 for the status), and a group being
// deleted cannot be written. created tells a create (201) from an update
// (200).
func (s *Service) PutResourceGroup(name, location string, tags map[string]string, managedBy string) (g ResourceGroup, created bool, err error) {
	if err := CheckResourceGroupName(name); err != nil {
		return g, false, err
	}
	region, ok := s.cfg.Region(location)
	if !ok {
		return g, false, s.cfg.locationNotAvailable(location)
	}
	err = s.st.Update(func(tx *store.Tx) error {
		var err error
		g, err = getGroup(tx, name)
		created = IsKind(err, KindNotFound)
		switch {
		case created:
			g = ResourceGroup{Name: name, Location: region.Name, CreatedOn: s.now().UTC()}
		case err != nil:
			return err
		case g.Deleting != "":
			return groupBeingDeleted(g.Name)
		case !strings.EqualFold(g.Location, region.Name):
			return Errorf(KindConflict, "InvalidResourceGroupLocation",
				"Invalid resource group location '%s'. The Resource group already exists in location '%s'.", location, g.Location)
		}
		g.Tags, g.ManagedBy = tags, managedBy
		return putGroup(tx, g)
	})
	return g, created, err
}

// DeleteResourceGroup deletes a resource group with everything in it, as
// ARM does: every workspace (so every compute instance, its VM and its
// quota; see DeleteWorkspace) and every deployment. It is a long-running
// operation; the group goes when its last workspace is gone. It returns
// nil when there is no such group, and the operation already running when
// the group is being deleted.
func (s *Service) DeleteResourceGroup(p Principal, name string) (*Operation, error) {
	var op *Operation
	var launches []launch
	err := s.st.Update(func(tx *store.Tx) error {
		g, err := getGroup(tx, name)
		if IsKind(err, KindNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if g.Deleting != "" {
			o, ok, err := getOperation(tx, g.Deleting)
			if err == nil && !ok {
				err = fmt.Errorf("resource group %s: its delete operation %s is missing", g.Name, g.Deleting)
			}
			op = &o
			return err
		}
		now := s.now().UTC()
		op = &Operation{ID: uuid.NewString(), Action: "DeleteResourceGroup", Location: g.Location, ResourceGroup: g.Name, Status: OpInProgress, Start: now}
		g.Deleting = op.ID
		if err := putGroup(tx, g); err != nil {
			return err
		}
		if err := putOperation(tx, *op); err != nil {
			return err
		}
		all, err := workspaces(tx)
		if err != nil {
			return err
		}
		for _, ws := range all {
			if !strings.EqualFold(ws.ResourceGroup, g.Name) {
				continue
			}
			_, l, err := s.beginWorkspaceDelete(tx, p, ws)
			if err != nil {
				return err
			}
			launches = append(launches, l...)
		}
		return endGroupDelete(tx, g.Name, now)
	})
	if err != nil {
		return nil, err
	}
	for _, l := range launches {
		s.runner.launch(l.key, l.op)
	}
	return op, nil
}

// endGroupDelete removes a group being deleted once it holds no
// workspace, with its deployments, and ends its delete operation. It does
// nothing for a group that is not being deleted or still holds workspaces.
func endGroupDelete(tx *store.Tx, name string, now time.Time) error {
	g, err := getGroup(tx, name)
	if err != nil || g.Deleting == "" {
		return nil
	}
	all, err := workspaces(tx)
	if err != nil {
		return err
	}
	for _, ws := range all {
		if strings.EqualFold(ws.ResourceGroup, name) {
			return nil
		}
	}
	if err := deleteDeployments(tx, name); err != nil {
		return err
	}
	if op, ok, err := getOperation(tx, g.Deleting); err != nil {
		return err
	} else if ok && op.Status == OpInProgress {
		op.Status, op.End = OpSucceeded, now
		if err := putOperation(tx, op); err != nil {
			return err
		}
	}
	return tx.Delete(bucketGroups, groupKey(name))
}

// launch is an operation to start on an instance once its transaction
// has committed.
type launch struct{ key, op string }
