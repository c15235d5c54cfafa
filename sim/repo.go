package sim

import (
	"encoding/json"
	"strings"

	"github.com/amlsim/amlsim/sim/rbac"
	"github.com/amlsim/amlsim/sim/store"
)

// Buckets of the state database.
const (
	bucketWorkspaces  = "workspaces"
	bucketInstances   = "instances"
	bucketOperations  = "operations"
	bucketQuotas      = "quotas"
	bucketAssignments = "roleAssignments"
	// bucketMeta holds the service's own bookkeeping, such as how far the
	// scheduler has looked.
	bucketMeta = "meta"
)

// Buckets lists the buckets a state database for the service needs.
func Buckets() []string {
	return []string{bucketGroups, bucketWorkspaces, bucketInstances, bucketOperations, bucketQuotas, bucketAssignments, bucketDeployments, bucketFaults, bucketJobs, bucketEnvironments, bucketMeta}
}

// The repository: typed reads and writes of the records, each inside the
// caller's transaction, so that whatever a read decides is written in the
// same transaction.

// getWorkspace returns a workspace, or ResourceNotFound.
func getWorkspace(tx *store.Tx, ref WorkspaceRef) (Workspace, error) {
	var ws Workspace
	ok, err := tx.Get(bucketWorkspaces, ref.key(), &ws)
	if err == nil && !ok {
		err = workspaceNotFound(ref)
	}
	return ws, err
}

// getParent reads the workspace a compute request is nested in. A missing
// one is ARM's answer for any nested resource: 404 ParentResourceNotFound
// (MicrosoftLearning/mslearn-azure-ml#27, a workspace's data asset;
// Azure/azure-cli#14960).
func getParent(tx *store.Tx, ref WorkspaceRef) (Workspace, error) {
	ws, err := getWorkspace(tx, ref)
	if IsKind(err, KindNotFound) {
		err = Errorf(KindNotFound, "ParentResourceNotFound",
			"Can not perform requested operation on nested resource. Parent resource '%s' not found.", ref.Name)
	}
	return ws, err
}

func putWorkspace(tx *store.Tx, ws Workspace) error {
	return tx.Put(bucketWorkspaces, ws.Ref().key(), ws)
}

// deleteWorkspace deletes a workspace's record with its jobs and
// environment versions (their logs stay on the host, as the share does).
func deleteWorkspace(tx *store.Tx, ref WorkspaceRef) error {
	for _, b := range []string{bucketJobs, bucketEnvironments} {
		var keys []string
		err := store.Each(tx, b, func(key string, _ json.RawMessage) error {
			if strings.HasPrefix(key, ref.key()+"/") {
				keys = append(keys, key)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(b, k); err != nil {
				return err
			}
		}
	}
	return tx.Delete(bucketWorkspaces, ref.key())
}

// workspaces returns every workspace.
func workspaces(tx *store.Tx) ([]Workspace, error) { return store.All[Workspace](tx, bucketWorkspaces) }

// getInstance returns the instance at key; ok is false when there is none.
func getInstance(tx *store.Tx, key string) (inst Instance, ok bool, err error) {
	ok, err = tx.Get(bucketInstances, key, &inst)
	return inst, ok, err
}

// getCompute returns an instance of a workspace, or the ResourceNotFound
// of the workspace or of the compute.
func getCompute(tx *store.Tx, ref WorkspaceRef, name string) (Workspace, Instance, error) {
	ws, err := getParent(tx, ref)
	if err != nil {
		return ws, Instance{}, err
	}
	inst, ok, err := getInstance(tx, instanceKey(ws.Location, name))
	if err != nil {
		return ws, inst, err
	}
	if !ok || inst.Workspace.key() != ref.key() {
		return ws, inst, computeNotFound(ref, name)
	}
	return ws, inst, nil
}

func putInstance(tx *store.Tx, inst Instance) error {
	return tx.Put(bucketInstances, inst.key(), inst)
}

func deleteInstance(tx *store.Tx, key string) error {
	return tx.Delete(bucketInstances, key)
}

// readInstances returns every instance, in a read transaction of its own.
func readInstances(st *store.Store) ([]Instance, error) {
	var insts []Instance
	err := st.View(func(tx *store.Tx) error {
		var err error
		insts, err = instances(tx, "")
		return err
	})
	return insts, err
}

// instances returns every instance, or those of one region when location
// is not "".
func instances(tx *store.Tx, location string) ([]Instance, error) {
	var out []Instance
	err := store.Each(tx, bucketInstances, func(_ string, i Instance) error {
		if location == "" || strings.EqualFold(i.Location, location) {
			out = append(out, i)
		}
		return nil
	})
	return out, err
}

// getOperation returns an operation; ok is false when there is none.
func getOperation(tx *store.Tx, id string) (op Operation, ok bool, err error) {
	ok, err = tx.Get(bucketOperations, id, &op)
	return op, ok, err
}

func putOperation(tx *store.Tx, op Operation) error {
	return tx.Put(bucketOperations, op.ID, op)
}

// operations returns every operation in progress.
func operationsInProgress(tx *store.Tx) ([]Operation, error) {
	var out []Operation
	err := store.Each(tx, bucketOperations, func(_ string, op Operation) error {
		if op.Status == OpInProgress {
			out = append(out, op)
		}
		return nil
	})
	return out, err
}

// quotaOverride is a limit changed through updateQuotas.
type quotaOverride struct {
	Limit int `json:"limit"`
}

// quotaOverrides returns the limits changed in a region, by quota name (a
// VM family or totalCores).
func quotaOverrides(tx *store.Tx, region string) (map[string]int, error) {
	out := map[string]int{}
	err := store.Each(tx, bucketQuotas, func(k string, q quotaOverride) error {
		if loc, name, ok := strings.Cut(k, "/"); ok && strings.EqualFold(loc, region) {
			out[name] = q.Limit
		}
		return nil
	})
	return out, err
}

func putQuotaOverride(tx *store.Tx, region, name string, limit int) error {
	return tx.Put(bucketQuotas, region+"/"+name, quotaOverride{Limit: limit})
}

// assignments returns the role assignments made through the API.
func assignments(tx *store.Tx) ([]rbac.Assignment, error) {
	return store.All[rbac.Assignment](tx, bucketAssignments)
}

func putAssignment(tx *store.Tx, name string, a rbac.Assignment) error {
	return tx.Put(bucketAssignments, strings.ToLower(name), a)
}

func deleteAssignment(tx *store.Tx, name string) error {
	return tx.Delete(bucketAssignments, strings.ToLower(name))
}

// addEvent appends an event to the instance, keeping the newest maxEvents.
func (i *Instance) addEvent(e Event) {
	i.Events = append(i.Events, e)
	if len(i.Events) > maxEvents {
		i.Events = i.Events[len(i.Events)-maxEvents:]
	}
}
