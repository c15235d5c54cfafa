package sim

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim/store"
)

// Deployment is an ARM template deployment into a resource group
// (Microsoft.Resources/deployments). The API runs it (sim/api); the
// service keeps its record, so it outlives a restart and goes with its
// group.
type Deployment struct {
	ResourceGroup string            `json:"resourceGroup"`
	Name          string            `json:"name"`
	Tags          map[string]string `json:"tags,omitempty"`
	// State is its provisioningState: Accepted, Running, then Succeeded,
	// Failed or Canceled.
	State         string    `json:"state"`
	Mode          string    `json:"mode"`
	CorrelationID string    `json:"correlationId"`
	TemplateHash  string    `json:"templateHash,omitempty"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end,omitzero"`
	// Template is the template as submitted, Parameters the evaluated
	// parameters as ARM echoes them ({"name": {"type", "value"}}),
	// Outputs the outputs once it succeeded.
	Template   json.RawMessage `json:"template,omitempty"`
	Parameters json.RawMessage `json:"parameters,omitempty"`
	Outputs    json.RawMessage `json:"outputs,omitempty"`
	// Resources are the IDs of the resources it deployed, in order;
	// Dependencies and Providers are ARM's views of the template.
	Resources    []string        `json:"resources,omitempty"`
	Dependencies json.RawMessage `json:"dependencies,omitempty"`
	Providers    json.RawMessage `json:"providers,omitempty"`
	Error        *Error          `json:"error,omitempty"`
	// Operations are its per-resource operations, in the order started.
	Operations []DeploymentOperation `json:"operations,omitempty"`
}

// Done reports whether the deployment has ended.
func (d Deployment) Done() bool {
	return d.State == "Succeeded" || d.State == "Failed" || d.State == "Canceled"
}

// DeploymentOperation is one resource's deployment: ARM's deployment
// operation (DeploymentOperation in the Microsoft.Resources spec).
type DeploymentOperation struct {
	ID            string    `json:"id"`
	Operation     string    `json:"provisioningOperation"`
	State         string    `json:"provisioningState"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end,omitzero"`
	StatusCode    string    `json:"statusCode,omitempty"`
	StatusMessage any       `json:"statusMessage,omitempty"`
	ResourceID    string    `json:"resourceId"`
	ResourceType  string    `json:"resourceType"`
	ResourceName  string    `json:"resourceName"`
}

const bucketDeployments = "deployments"

func deploymentKey(rg, name string) string { return groupKey(rg) + "/" + strings.ToLower(name) }

// DeploymentNotFound is ARM's answer for a missing deployment
// (Azure/azure-cli#28834; the status, 404, is assumed: no source shows it).
func DeploymentNotFound(name string) error {
	return Errorf(KindNotFound, "DeploymentNotFound", "Deployment '%s' could not be found.", name)
}

func deleteDeployments(tx *store.Tx, rg string) error {
	var keys []string
	err := store.Each(tx, bucketDeployments, func(k string, d Deployment) error {
		if strings.EqualFold(d.ResourceGroup, rg) {
			keys = append(keys, k)
		}
		return nil
	})
	for _, k := range keys {
		if err := tx.Delete(bucketDeployments, k); err != nil {
			return err
		}
	}
	return err
}

// Deployment returns a deployment of a resource group.
func (s *Service) Deployment(rg, name string) (Deployment, error) {
	var d Deployment
	err := s.st.View(func(tx *store.Tx) error {
		if _, err := getGroup(tx, rg); err != nil {
			return err
		}
		ok, err := tx.Get(bucketDeployments, deploymentKey(rg, name), &d)
		if err == nil && !ok {
			err = DeploymentNotFound(name)
		}
		return err
	})
	return d, err
}

// Deployments lists a resource group's deployments, oldest first.
func (s *Service) Deployments(rg string) ([]Deployment, error) {
	var out []Deployment
	err := s.st.View(func(tx *store.Tx) error {
		if _, err := getGroup(tx, rg); err != nil {
			return err
		}
		return store.Each(tx, bucketDeployments, func(_ string, d Deployment) error {
			if strings.EqualFold(d.ResourceGroup, rg) {
				out = append(out, d)
			}
			return nil
		})
	})
	return out, err
}

// StartDeployment records a new deployment (replacing an ended one of the
// same name, as ARM does: replaced says so) in a group that exists and is
// not being deleted. A deployment of that name still running is ARM's 409
// DeploymentActive.
func (s *Service) StartDeployment(d Deployment) (replaced bool, err error) {
	err = s.st.Update(func(tx *store.Tx) error {
		g, err := writableGroup(tx, d.ResourceGroup)
		if err != nil {
			return err
		}
		d.ResourceGroup = g.Name
		var was Deployment
		ok, err := tx.Get(bucketDeployments, deploymentKey(g.Name, d.Name), &was)
		if err != nil {
			return err
		}
		if ok && !was.Done() {
			// 409, text and link of 2023 (Azure/modern-web-app-pattern-dotnet#143).
			return Errorf(KindConflict, "DeploymentActive",
				"Unable to edit or replace deployment '%s': previous deployment from '%s' is still active (expiration time is '%s'). Please see https://aka.ms/arm-deploy-resources for usage details.",
				d.Name, was.Start.UTC().Format("1/2/2006 3:04:05 PM"), was.Start.Add(7*24*time.Hour).UTC().Format("1/2/2006 3:04:05 PM"))
		}
		replaced = ok
		return tx.Put(bucketDeployments, deploymentKey(g.Name, d.Name), d)
	})
	return replaced, err
}

// UpdateDeployment changes a deployment's record with fn, in one
// transaction, when it is still the run with that correlation ID (a
// deployment of the same name made since, after a group's delete and
// re-creation, is left alone).
func (s *Service) UpdateDeployment(rg, name, correlationID string, fn func(*Deployment)) error {
	return s.st.Update(func(tx *store.Tx) error {
		var d Deployment
		ok, err := tx.Get(bucketDeployments, deploymentKey(rg, name), &d)
		if err != nil || !ok || d.CorrelationID != correlationID {
			return err // deleted meanwhile, or replaced
		}
		fn(&d)
		return tx.Put(bucketDeployments, deploymentKey(rg, name), d)
	})
}

// DeleteDeployment removes a deployment's record (not the resources it
// deployed, as ARM); none is no error. A running one cannot be deleted
// (409 DeploymentActive).
func (s *Service) DeleteDeployment(rg, name string) error {
	return s.st.Update(func(tx *store.Tx) error {
		if _, err := getGroup(tx, rg); err != nil {
			return err
		}
		var d Deployment
		ok, err := tx.Get(bucketDeployments, deploymentKey(rg, name), &d)
		if err != nil || !ok {
			return err
		}
		if !d.Done() {
			// The spec's Deployments_Delete: "A template deployment that is
			// currently running cannot be deleted." The text is amlsim's.
			return Errorf(KindConflict, "DeploymentActive",
				"The deployment '%s' cannot be deleted because it is still running. Please see https://aka.ms/arm-deploy-resources for usage details.", name)
		}
		return tx.Delete(bucketDeployments, deploymentKey(rg, name))
	})
}

// failInterruptedDeployments ends the deployments a restart cut short: the
// process that ran them is gone, so they fail, as ARM fails a deployment
// whose resources did not all deploy.
func failInterruptedDeployments(tx *store.Tx, now time.Time) error {
	var cut []Deployment
	err := store.Each(tx, bucketDeployments, func(_ string, d Deployment) error {
		if !d.Done() {
			cut = append(cut, d)
		}
		return nil
	})
	for _, d := range cut {
		d.State, d.End = "Failed", now
		d.Error = Errorf(KindInternal, "DeploymentFailed", "The deployment was interrupted: amlsim stopped while it ran. Resources it had deployed stay.")
		for i := range d.Operations {
			if d.Operations[i].End.IsZero() {
				d.Operations[i].State, d.Operations[i].End = "Failed", now
			}
		}
		if err := tx.Put(bucketDeployments, deploymentKey(d.ResourceGroup, d.Name), d); err != nil {
			return err
		}
	}
	return err
}
