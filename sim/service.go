// Package sim is the simulated Azure Machine Learning cloud: workspaces,
// regions, VM sizes, quotas, and compute instances moving through their
// states, each backed by a hypervisor domain. It is driven by the ARM API in
// sim/api and keeps its state in sim/store.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim/store"
	"github.com/google/uuid"
)

// Buckets of the state database.
const (
	bucketWorkspaces = "workspaces"
	bucketInstances  = "instances"
	bucketOperations = "operations"
	bucketQuotas     = "quotas"
)

// Guest prepares and reaches the guest OS of an instance: the seed it boots
// with, and the moment it is ready (SSH answers). The libvirt setup uses
// cloud-init and SSH; the fake one only asks the driver.
type Guest interface {
	Seed(inst Instance) ([]byte, error)
	WaitReady(ctx context.Context, inst Instance) error
	// RunSetup waits for the setup scripts of the guest's current boot to
	// finish, reporting progress, and returns their runs; a script that
	// failed or timed out is also a *SetupError.
	RunSetup(ctx context.Context, inst Instance, report func(string)) ([]ScriptRun, error)
}

// Service is the simulated cloud.
type Service struct {
	cfg     Config
	catalog *Catalog
	st      *store.Store
	drv     hypervisor.Driver
	guest   Guest
	log     *slog.Logger
	now     func() time.Time
	shares  string
	// domainPrefix starts the VMs' domain names.
	domainPrefix string

	// ctx ends when the service closes; workers stop without recording a
	// failure, and Recover resumes them at the next start.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	workers map[string]*worker // by instance key
	wg      sync.WaitGroup
}

type worker struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithShares keeps the workspaces' file shares under dir, one directory
// per workspace, mounted in every instance of the workspace.
func WithShares(dir string) Option { return func(s *Service) { s.shares = dir } }

// WithDomainPrefix starts the names of the instances' VMs with prefix
// (see HomeDomainPrefix) instead of DefaultDomainPrefix.
func WithDomainPrefix(prefix string) Option { return func(s *Service) { s.domainPrefix = prefix } }

// New opens the simulated cloud over a state database, making sure the
// configured workspaces exist.
func New(cfg Config, st *store.Store, drv hypervisor.Driver, guest Guest, opts ...Option) (*Service, error) {
	s := &Service{
		cfg:     cfg,
		catalog: NewCatalog(defaultSizes),
		st:      st,
		drv:     drv,
		guest:   guest,
		log:     slog.Default(),

		domainPrefix: DefaultDomainPrefix,
		now:          time.Now,
		workers:      map[string]*worker{},
	}
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	err := st.Update(func(tx *store.Tx) error {
		for _, w := range cfg.Workspaces {
			ref := WorkspaceRef{w.ResourceGroup, w.Name}
			var existing Workspace
			if ok, err := tx.Get(bucketWorkspaces, ref.key(), &existing); err != nil || ok {
				continue
			}
			ws := Workspace{ResourceGroup: w.ResourceGroup, Name: w.Name, Location: w.Location, CreatedOn: s.now().UTC()}
			if err := tx.Put(bucketWorkspaces, ref.key(), ws); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seed workspaces: %w", err)
	}
	return s, nil
}

// Buckets lists the buckets a state database for the service needs.
func Buckets() []string {
	return []string{bucketWorkspaces, bucketInstances, bucketOperations, bucketQuotas, bucketAssignments}
}

// Config returns the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Catalog returns the VM size catalogue.
func (s *Service) Catalog() *Catalog { return s.catalog }

// Close stops the workers without failing their operations; VMs keep
// running and the next start resumes where they were.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// --- workspaces ---

func workspaceNotFound(ref WorkspaceRef) error {
	return Errorf(KindNotFound, "ResourceNotFound",
		"The Resource 'Microsoft.MachineLearningServices/workspaces/%s' under resource group '%s' was not found.", ref.Name, ref.ResourceGroup)
}

// Workspace returns a workspace.
func (s *Service) Workspace(ref WorkspaceRef) (Workspace, error) {
	var ws Workspace
	err := s.st.View(func(tx *store.Tx) error {
		ok, err := tx.Get(bucketWorkspaces, ref.key(), &ws)
		if err == nil && !ok {
			err = workspaceNotFound(ref)
		}
		return err
	})
	return ws, err
}

// Workspaces lists the workspaces of a resource group, or all of them when
// resourceGroup is empty.
func (s *Service) Workspaces(resourceGroup string) ([]Workspace, error) {
	var out []Workspace
	err := s.st.View(func(tx *store.Tx) error {
		return store.Each(tx, bucketWorkspaces, func(_ string, w Workspace) error {
			if resourceGroup == "" || strings.EqualFold(w.ResourceGroup, resourceGroup) {
				out = append(out, w)
			}
			return nil
		})
	})
	return out, err
}

// PutWorkspace creates a workspace or updates its tags; the region of an
// existing workspace cannot change.
func (s *Service) PutWorkspace(ref WorkspaceRef, location string, tags map[string]string) (Workspace, error) {
	if err := CheckResourceGroupName(ref.ResourceGroup); err != nil {
		return Workspace{}, err
	}
	if err := CheckWorkspaceName(ref.Name); err != nil {
		return Workspace{}, err
	}
	region, ok := s.cfg.Region(location)
	if !ok {
		return Workspace{}, locationNotAvailable(location)
	}
	var ws Workspace
	err := s.st.Update(func(tx *store.Tx) error {
		ok, err := tx.Get(bucketWorkspaces, ref.key(), &ws)
		if err != nil {
			return err
		}
		if ok && !strings.EqualFold(ws.Location, region.Name) {
			return Errorf(KindBadRequest, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'.",
				ref.Name, ws.Location, ref.ResourceGroup, location)
		}
		if !ok {
			ws = Workspace{ResourceGroup: ref.ResourceGroup, Name: ref.Name, Location: region.Name, CreatedOn: s.now().UTC()}
		}
		ws.Tags = tags
		return tx.Put(bucketWorkspaces, ref.key(), ws)
	})
	return ws, err
}

// DeleteWorkspace removes a workspace that holds no computes; it reports
// whether the workspace existed.
func (s *Service) DeleteWorkspace(ref WorkspaceRef) (bool, error) {
	var existed bool
	err := s.st.Update(func(tx *store.Tx) error {
		var ws Workspace
		ok, err := tx.Get(bucketWorkspaces, ref.key(), &ws)
		if err != nil || !ok {
			return err
		}
		existed = true
		n := 0
		err = store.Each(tx, bucketInstances, func(_ string, i Instance) error {
			if i.Workspace.key() == ref.key() {
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n > 0 {
			return Errorf(KindConflict, "WorkspaceNotEmpty",
				"Workspace '%s' still holds %d compute(s); delete them first.", ref.Name, n)
		}
		return tx.Delete(bucketWorkspaces, ref.key())
	})
	return existed, err
}

// guestUID is azureuser's UID in the guest: share directories belong to it
// so the user can write to them, as on Azure.
const guestUID = 1000

// WorkspaceShare returns the host directory of the workspace's file share
// ("Notebooks file share"), creating it with its Users and Logs folders.
// It returns "" when the service keeps no shares.
func (s *Service) WorkspaceShare(ref WorkspaceRef) (string, error) {
	if s.shares == "" {
		return "", nil
	}
	dir := filepath.Join(s.shares, strings.ToLower(ref.ResourceGroup), strings.ToLower(ref.Name))
	for _, d := range []string{dir, filepath.Join(dir, "Users"), filepath.Join(dir, "Logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("workspace share: %w", err)
		}
		if os.Geteuid() == 0 {
			os.Chown(d, guestUID, guestUID)
		}
	}
	return dir, nil
}

func locationNotAvailable(location string) error {
	return Errorf(KindBadRequest, "LocationNotAvailableForResourceType",
		"The provided location '%s' is not available for resource type 'Microsoft.MachineLearningServices/workspaces'.", location)
}

// --- computes: reads ---

func computeNotFound(ws WorkspaceRef, name string) error {
	return Errorf(KindNotFound, "ResourceNotFound",
		"The Resource 'Microsoft.MachineLearningServices/workspaces/%s/computes/%s' under resource group '%s' was not found.", ws.Name, name, ws.ResourceGroup)
}

// getInWorkspace loads an instance and checks it belongs to the workspace.
func getInWorkspace(tx *store.Tx, ws Workspace, name string) (Instance, error) {
	var inst Instance
	ok, err := tx.Get(bucketInstances, instanceKey(ws.Location, name), &inst)
	if err != nil {
		return inst, err
	}
	if !ok || inst.Workspace.key() != ws.Ref().key() {
		return inst, computeNotFound(ws.Ref(), name)
	}
	return inst, nil
}

// Compute returns an instance of a workspace.
func (s *Service) Compute(ref WorkspaceRef, name string) (Instance, error) {
	var inst Instance
	err := s.st.View(func(tx *store.Tx) error {
		var ws Workspace
		ok, err := tx.Get(bucketWorkspaces, ref.key(), &ws)
		if err != nil {
			return err
		}
		if !ok {
			return workspaceNotFound(ref)
		}
		inst, err = getInWorkspace(tx, ws, name)
		return err
	})
	return inst, err
}

// Computes lists a workspace's instances by name, skipping skip of them
// and returning at most the page size; more reports whether others follow.
func (s *Service) Computes(ref WorkspaceRef, skip int) (page []Instance, more bool, err error) {
	var all []Instance
	err = s.st.View(func(tx *store.Tx) error {
		var ws Workspace
		ok, err := tx.Get(bucketWorkspaces, ref.key(), &ws)
		if err != nil {
			return err
		}
		if !ok {
			return workspaceNotFound(ref)
		}
		return store.Each(tx, bucketInstances, func(_ string, i Instance) error {
			if i.Workspace.key() == ref.key() {
				all = append(all, i)
			}
			return nil
		})
	})
	if err != nil {
		return nil, false, err
	}
	sort.Slice(all, func(i, j int) bool { return strings.ToLower(all[i].Name) < strings.ToLower(all[j].Name) })
	if skip >= len(all) {
		return nil, false, nil
	}
	end := min(skip+s.cfg.PageSize, len(all))
	return all[skip:end], end < len(all), nil
}

// Operation returns a long-running operation.
func (s *Service) Operation(location, id string) (Operation, error) {
	var op Operation
	err := s.st.View(func(tx *store.Tx) error {
		ok, err := tx.Get(bucketOperations, id, &op)
		if err == nil && (!ok || !strings.EqualFold(op.Location, location)) {
			err = Errorf(KindNotFound, "OperationNotFound", "Operation '%s' was not found in location '%s'.", id, location)
		}
		return err
	})
	return op, err
}

// --- computes: create ---

// CreateOrUpdate creates an instance, or updates the mutable fields of an
// existing one. A create reserves the name, quota and a port, records the
// instance as Creating and returns its operation; the VM is built in the
// background. Anything invalid is refused before a thing is written.
func (s *Service) CreateOrUpdate(p Principal, ref WorkspaceRef, name string, req CreateRequest) (Instance, *Operation, error) {
	ws, err := s.Workspace(ref)
	if err != nil {
		return Instance{}, nil, err
	}
	if err := CheckComputeName(name); err != nil {
		return Instance{}, nil, err
	}
	if req.Location != "" && !strings.EqualFold(strings.ReplaceAll(req.Location, " ", ""), ws.Location) {
		return Instance{}, nil, Errorf(KindBadRequest, "InvalidPropertyValue",
			"The compute location '%s' must be the workspace's location '%s'.", req.Location, ws.Location)
	}
	if req.Size == "" {
		return Instance{}, nil, Errorf(KindBadRequest, "InvalidPropertyValue",
			"The property VMSize is required for a compute instance.")
	}
	size, ok := s.catalog.Lookup(req.Size)
	if !ok {
		return Instance{}, nil, Errorf(KindBadRequest, "InvalidPropertyValue",
			"The specified value %s for property ComputeInstance.VMSize is not a supported VM size in location %s.", req.Size, ws.Location)
	}
	if req.SSHPublic {
		if err := checkAuthorizedKey(req.AdminKey); err != nil {
			return Instance{}, nil, err
		}
	}
	owner := p
	if u := req.AssignedUser; u != nil {
		if !guidRE.MatchString(u.ObjectID) || (u.TenantID != "" && !guidRE.MatchString(u.TenantID)) {
			return Instance{}, nil, Errorf(KindBadRequest, "InvalidPropertyValue",
				"The assigned user's objectId '%s' and tenantId '%s' must be GUIDs.", u.ObjectID, u.TenantID)
		}
		known, ok := s.Principal(u.ObjectID)
		if !ok {
			return Instance{}, nil, Errorf(KindBadRequest, "PrincipalNotFound",
				"The assigned user '%s' does not exist in the directory %s.", u.ObjectID, s.cfg.Tenant)
		}
		owner = known
	}

	share, err := s.WorkspaceShare(ref)
	if err != nil {
		return Instance{}, nil, err
	}
	var scripts []Script
	for _, r := range []struct {
		kind ScriptKind
		req  *ScriptRequest
	}{{Creation, req.CreationScript}, {Startup, req.StartupScript}} {
		if r.req == nil {
			continue
		}
		if r.req.ScriptSource == SourceWorkspaceStorage && share == "" {
			return Instance{}, nil, scriptError(r.kind, "this simulator keeps no workspace file share; use an inline script.")
		}
		sc, err := parseScript(r.kind, *r.req, share)
		if err != nil {
			return Instance{}, nil, err
		}
		scripts = append(scripts, *sc)
	}

	// A host key for the guest, generated before the transaction so the
	// transaction itself does no slow work.
	hostKey, err := newHostKey()
	if err != nil {
		return Instance{}, nil, err
	}
	appToken, err := newAppToken()
	if err != nil {
		return Instance{}, nil, err
	}

	now := s.now().UTC()
	var inst Instance
	var op *Operation
	err = s.st.Update(func(tx *store.Tx) error {
		var existing Instance
		found, err := tx.Get(bucketInstances, instanceKey(ws.Location, name), &existing)
		if err != nil {
			return err
		}
		if found {
			if existing.Workspace.key() != ref.key() {
				return nameAlreadyExists(name)
			}
			inst, err = updateInstance(existing, req, size, now)
			if err != nil {
				return err
			}
			return tx.Put(bucketInstances, inst.key(), inst)
		}
		if err := s.checkQuota(tx, ws.Location, size); err != nil {
			return err
		}
		ports, err := s.allocatePorts(tx, 2)
		if err != nil {
			return err
		}
		o := Operation{ID: uuid.NewString(), Action: "Create", Location: ws.Location, Instance: instanceKey(ws.Location, name), Status: OpInProgress, Start: now}
		inst = Instance{
			ID:            uuid.NewString(),
			Workspace:     ws.Ref(),
			Name:          name,
			Location:      ws.Location,
			Size:          size,
			Local:         s.cfg.Local.LocalFor(size.Name),
			State:         StateCreating,
			Description:   req.Description,
			Tags:          req.Tags,
			SSHPublic:     req.SSHPublic,
			SSHPort:       ports[0],
			AppPort:       ports[1],
			AppToken:      appToken,
			HostKey:       hostKey,
			CreatedBy:     p,
			Owner:         owner,
			CreatedOn:     now,
			ModifiedOn:    now,
			Domain:        domainName(s.domainPrefix, ws.Location, name),
			Operation:     o.ID,
			Extra:         req.Extra,
			Share:         share,
			Scripts:       scripts,
			LastOperation: &LastOperation{Name: "Create", Time: now, Status: "InProgress", Trigger: "User"},
			Events:        []Event{{Time: now, State: StateCreating, Message: "Create requested by " + describe(p)}},
		}
		if req.SSHPublic {
			inst.AdminKey = req.AdminKey
		}
		op = &o
		if err := tx.Put(bucketOperations, o.ID, o); err != nil {
			return err
		}
		return tx.Put(bucketInstances, inst.key(), inst)
	})
	if err != nil {
		return Instance{}, nil, err
	}
	if op != nil {
		s.spawn(inst.key(), op.ID, s.create)
	}
	return inst, op, nil
}

// updateInstance applies a PUT to an existing instance: only the mutable
// fields change, and the VM size never does (S5).
func updateInstance(inst Instance, req CreateRequest, size VMSize, now time.Time) (Instance, error) {
	if size.Name != inst.Size.Name {
		return inst, Errorf(KindBadRequest, "ComputeInstanceVmSizeUpdateNotSupported",
			"The VM size of compute instance '%s' cannot be changed from %s to %s after creation.", inst.Name, inst.Size.Name, size.Name)
	}
	if req.SSHPublic != inst.SSHPublic || (req.SSHPublic && req.AdminKey != inst.AdminKey) {
		return inst, Errorf(KindBadRequest, "ComputeInstanceSshSettingsUpdateNotSupported",
			"The SSH settings of compute instance '%s' cannot be changed after creation.", inst.Name)
	}
	inst.Description = req.Description
	inst.Tags = req.Tags
	inst.ModifiedOn = now
	return inst, nil
}

// --- quotas ---

// usedVCPUs counts the vCPUs of the region's instances, in total and by
// family. Every instance holds its quota until deleted, stopped or not (S6).
func usedVCPUs(tx *store.Tx, location string) (total int, byFamily map[string]int, err error) {
	byFamily = map[string]int{}
	err = store.Each(tx, bucketInstances, func(_ string, i Instance) error {
		if strings.EqualFold(i.Location, location) {
			total += i.Size.VCPUs
			byFamily[i.Size.Family] += i.Size.VCPUs
		}
		return nil
	})
	return total, byFamily, err
}

// quotaOverride is a limit changed through updateQuotas.
type quotaOverride struct {
	Limit int `json:"limit"`
}

const totalQuotaName = "totalCores"

func (s *Service) limits(tx *store.Tx, location string) (total int, family func(string) int, err error) {
	region, ok := s.cfg.Region(location)
	if !ok {
		return 0, nil, locationNotAvailable(location)
	}
	overrides := map[string]int{}
	err = store.Each(tx, bucketQuotas, func(k string, q quotaOverride) error {
		if loc, name, ok := strings.Cut(k, "/"); ok && strings.EqualFold(loc, region.Name) {
			overrides[name] = q.Limit
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	total = region.TotalVCPUs
	if v, ok := overrides[totalQuotaName]; ok {
		total = v
	}
	return total, func(f string) int {
		if v, ok := overrides[f]; ok {
			return v
		}
		return region.FamilyLimit(f)
	}, nil
}

func (s *Service) checkQuota(tx *store.Tx, location string, size VMSize) error {
	total, byFamily, err := usedVCPUs(tx, location)
	if err != nil {
		return err
	}
	totalLimit, familyLimit, err := s.limits(tx, location)
	if err != nil {
		return err
	}
	if free := familyLimit(size.Family) - byFamily[size.Family]; size.VCPUs > free {
		return Errorf(KindQuota, "QuotaExceeded",
			"The specified subscription has a %s vCPU quota of %d and is less than the requested compute training cluster and/or compute instance's min nodes of 1 which maps to %d vCPUs",
			strings.Replace(FamilyDisplayName(size.Family), "Family", "family", 1), max(free, 0), size.VCPUs)
	}
	if free := totalLimit - total; size.VCPUs > free {
		return Errorf(KindQuota, "QuotaExceeded",
			"The specified subscription has a total vCPU quota of %d and cannot accomodate for at least 1 requested compute training cluster and/or compute instance's node which maps to %d vCPUs",
			max(free, 0), size.VCPUs)
	}
	return nil
}

// Usages reports the region's quota use: total regional vCPUs, dedicated
// vCPUs, and each VM family's dedicated vCPUs.
func (s *Service) Usages(location string) ([]Usage, error) {
	region, ok := s.cfg.Region(location)
	if !ok {
		return nil, locationNotAvailable(location)
	}
	var out []Usage
	err := s.st.View(func(tx *store.Tx) error {
		total, byFamily, err := usedVCPUs(tx, region.Name)
		if err != nil {
			return err
		}
		totalLimit, familyLimit, err := s.limits(tx, region.Name)
		if err != nil {
			return err
		}
		out = append(out,
			Usage{Kind: "total", Name: "Total Regional vCPUs", Display: "Total Regional vCPUs", Current: total, Limit: totalLimit, Location: region.Name},
			Usage{Kind: "dedicated", Name: "Total Regional Dedicated vCPUs", Display: "Total Regional Dedicated vCPUs", Current: total, Limit: totalLimit, Location: region.Name})
		for _, f := range s.catalog.Families() {
			out = append(out, Usage{Kind: "family", Name: f, Display: FamilyDisplayName(f) + " Dedicated vCPUs", Current: byFamily[f], Limit: familyLimit(f), Location: region.Name})
		}
		return nil
	})
	return out, err
}

// Quotas reports the region's limits: one per VM family plus the total.
func (s *Service) Quotas(location string) ([]Usage, error) {
	usages, err := s.Usages(location)
	if err != nil {
		return nil, err
	}
	var out []Usage
	for _, u := range usages {
		if u.Kind == "family" {
			out = append(out, u)
		}
	}
	return out, nil
}

// QuotaUpdate is one requested limit change; Status is set on return.
type QuotaUpdate struct {
	Name   string // a VM family or "totalCores"
	Limit  int
	Status string
}

// UpdateQuotas changes limits of the region. Each item gets a status as
// Azure reports it: Success, InvalidVMFamilyName, InvalidQuotaBelowClusterMinimum…
func (s *Service) UpdateQuotas(location string, items []QuotaUpdate) ([]QuotaUpdate, error) {
	region, ok := s.cfg.Region(location)
	if !ok {
		return nil, locationNotAvailable(location)
	}
	families := map[string]string{}
	for _, f := range s.catalog.Families() {
		families[strings.ToLower(f)] = f
	}
	out := make([]QuotaUpdate, len(items))
	err := s.st.Update(func(tx *store.Tx) error {
		total, byFamily, err := usedVCPUs(tx, region.Name)
		if err != nil {
			return err
		}
		for i, it := range items {
			out[i] = it
			name, used := it.Name, total
			if !strings.EqualFold(name, totalQuotaName) {
				f, ok := families[strings.ToLower(name)]
				if !ok {
					out[i].Status = "InvalidVMFamilyName"
					continue
				}
				name, used = f, byFamily[f]
			}
			switch {
			case it.Limit < 0:
				out[i].Status = "Failure"
			case it.Limit < used:
				out[i].Status = "InvalidQuotaBelowClusterMinimum"
			default:
				out[i].Status = "Success"
				if err := tx.Put(bucketQuotas, region.Name+"/"+name, quotaOverride{Limit: it.Limit}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return out, err
}

// --- ports ---

// allocatePorts picks n loopback ports for an instance's forwards (SSH,
// then its applications): ports no instance holds and nothing on the host
// listens on right now.
func (s *Service) allocatePorts(tx *store.Tx, n int) ([]int, error) {
	taken := map[int]bool{}
	err := store.Each(tx, bucketInstances, func(_ string, i Instance) error {
		taken[i.SSHPort] = true
		taken[i.AppPort] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	lo, hi := s.cfg.Local.PortRange[0], s.cfg.Local.PortRange[1]
	var ports []int
	for p := lo; p <= hi && len(ports) < n; p++ {
		if taken[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, Errorf(KindInternal, "NoFreePort", "No free loopback ports are left in %d-%d for the SSH and application forwards (%d needed per instance).", lo, hi, n)
	}
	return ports, nil
}

// --- background work ---

// spawn runs fn for the instance in the background, one worker per
// instance at a time.
func (s *Service) spawn(key, opID string, fn func(ctx context.Context, key, opID string) error) {
	ctx, cancel := context.WithCancel(s.ctx)
	w := &worker{cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.workers[key] = w
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(w.done)
		defer cancel()
		if err := fn(ctx, key, opID); err != nil && s.ctx.Err() == nil {
			s.log.Error("operation failed", "instance", key, "err", err)
		}
		s.mu.Lock()
		if s.workers[key] == w {
			delete(s.workers, key)
		}
		s.mu.Unlock()
	}()
}

// stopWorker cancels the instance's worker, if any, and waits for it.
func (s *Service) stopWorker(key string) {
	s.mu.Lock()
	w := s.workers[key]
	s.mu.Unlock()
	if w != nil {
		w.cancel()
		<-w.done
	}
}

// load reads an instance by key.
func (s *Service) load(key string) (Instance, error) {
	var inst Instance
	err := s.st.View(func(tx *store.Tx) error {
		ok, err := tx.Get(bucketInstances, key, &inst)
		if err == nil && !ok {
			err = ErrNotFound
		}
		return err
	})
	return inst, err
}

// finish records the end of operation opID on an instance: the instance's
// new state, the operation's status and, on failure, the error. An
// operation superseded by another (a delete during a create) only gets its
// own status.
func (s *Service) finish(key, opID string, opErr error) error {
	return s.st.Update(func(tx *store.Tx) error {
		now := s.now().UTC()
		var inst Instance
		ok, err := tx.Get(bucketInstances, key, &inst)
		if err != nil {
			return err
		}
		if !ok || inst.Operation != opID {
			var op Operation
			if found, err := tx.Get(bucketOperations, opID, &op); err != nil || !found {
				return err
			}
			op.Status, op.End = OpFailed, now
			op.Error = Errorf(KindConflict, "OperationCanceled", "The operation was canceled by a later operation on compute instance '%s'.", inst.Name)
			return tx.Put(bucketOperations, opID, op)
		}
		from := inst.State
		inst.State = Outcome(from, opErr == nil)
		inst.ModifiedOn = now
		var op Operation
		if inst.Operation != "" {
			if _, err := tx.Get(bucketOperations, inst.Operation, &op); err != nil {
				return err
			}
		}
		if inst.LastOperation != nil {
			inst.LastOperation.Time = now
			inst.LastOperation.Status = "Succeeded"
		}
		op.Status, op.End = OpSucceeded, now
		var setupErr *SetupError
		if errors.As(opErr, &setupErr) {
			inst.State = StateSetupFailed
		}
		if opErr != nil {
			e := AsError(opErr)
			op.Status, op.Error = OpFailed, e
			inst.Errors = append(inst.Errors, InstanceError{Code: e.Code, Message: e.Message})
			if inst.LastOperation != nil {
				inst.LastOperation.Status = inst.LastOperation.Name + "Failed"
			}
		} else {
			inst.Errors = nil
		}
		inst.Operation = ""
		outcome := string(from) + " done: " + string(inst.State)
		if opErr != nil {
			outcome = string(from) + " failed: " + AsError(opErr).Message
		}
		inst.Events = append(inst.Events, Event{Time: now, State: inst.State, Message: outcome})
		if len(inst.Events) > maxEvents {
			inst.Events = inst.Events[len(inst.Events)-maxEvents:]
		}
		if op.ID != "" {
			if err := tx.Put(bucketOperations, op.ID, op); err != nil {
				return err
			}
		}
		return tx.Put(bucketInstances, key, inst)
	})
}

// step is one named part of a long operation, with its undo.
type step struct {
	name string
	do   func(ctx context.Context) error
	undo func(ctx context.Context) error
	// done is the event recorded when the step succeeds, if any.
	done string
}

// runSteps runs steps in order, reporting each step's done event; on
// failure it runs the undos of the steps done, in reverse, and joins their
// errors to the failure.
func runSteps(ctx context.Context, report func(string), steps []step) error {
	var done []step
	for _, st := range steps {
		if err := st.do(ctx); err != nil {
			err = fmt.Errorf("%s: %w", st.name, err)
			if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			undoCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			for i := len(done) - 1; i >= 0; i-- {
				if done[i].undo != nil {
					if uerr := done[i].undo(undoCtx); uerr != nil {
						err = errors.Join(err, fmt.Errorf("undo %s: %w", done[i].name, uerr))
					}
				}
			}
			return err
		}
		done = append(done, st)
		if st.done != "" {
			report(st.done)
		}
	}
	return nil
}

// event records a step of the instance's life.
func (s *Service) event(key, msg string) {
	err := s.st.Update(func(tx *store.Tx) error {
		var inst Instance
		if ok, err := tx.Get(bucketInstances, key, &inst); err != nil || !ok {
			return err
		}
		inst.Events = append(inst.Events, Event{Time: s.now().UTC(), State: inst.State, Message: msg})
		if len(inst.Events) > maxEvents {
			inst.Events = inst.Events[len(inst.Events)-maxEvents:]
		}
		return tx.Put(bucketInstances, key, inst)
	})
	if err != nil {
		s.log.Error("record event", "instance", key, "event", msg, "err", err)
	}
}

// recordRuns keeps the outcome of the latest script runs on the instance.
func (s *Service) recordRuns(key string, runs []ScriptRun) {
	err := s.st.Update(func(tx *store.Tx) error {
		var inst Instance
		if ok, err := tx.Get(bucketInstances, key, &inst); err != nil || !ok {
			return err
		}
		inst.ScriptRuns = runs
		return tx.Put(bucketInstances, key, inst)
	})
	if err != nil {
		s.log.Error("record script runs", "instance", key, "err", err)
	}
}

// reporter returns the event recorder of one instance.
func (s *Service) reporter(key string) func(string) {
	return func(msg string) { s.event(key, msg) }
}

// spec is the hypervisor domain of an instance.
func (s *Service) spec(inst Instance, seed []byte) hypervisor.Spec {
	return hypervisor.Spec{
		Name:       inst.Domain,
		VCPUs:      inst.Local.VCPUs,
		MemoryMiB:  inst.Local.MemoryMiB,
		DiskSizeGB: s.cfg.Local.DiskGB,
		Seed:       seed,
		SSHPort:    inst.SSHPort,
		Forwards:   forwards(inst),
		Shares:     shares(inst),
		Labels: map[string]string{
			"instance":  inst.ID,
			"name":      inst.Name,
			"location":  inst.Location,
			"workspace": inst.Workspace.ResourceGroup + "/" + inst.Workspace.Name,
		},
	}
}

func forwards(inst Instance) []hypervisor.Forward {
	if !inst.HasApplications() {
		return nil
	}
	return []hypervisor.Forward{{HostPort: inst.AppPort, GuestPort: JupyterGuestPort}}
}

func shares(inst Instance) []hypervisor.Share {
	if inst.Share == "" {
		return nil
	}
	return []hypervisor.Share{{Tag: ShareTag, HostPath: inst.Share}}
}

// create builds and boots the instance's VM and waits until its guest is
// ready. Each step tolerates having been done already, so a create cut
// short by a server restart resumes.
func (s *Service) create(ctx context.Context, key, opID string) error {
	inst, err := s.load(key)
	if err != nil {
		return err
	}
	err = runSteps(ctx, s.reporter(key), []step{
		{name: "define domain", do: func(ctx context.Context) error {
			if _, err := s.drv.Lookup(ctx, inst.Domain); err == nil {
				return nil // defined before a restart of the server
			}
			seed, err := s.guest.Seed(inst)
			if err != nil {
				return err
			}
			return s.drv.Define(ctx, s.spec(inst, seed))
		}, undo: func(ctx context.Context) error { return s.drv.Undefine(ctx, inst.Domain) }, done: "VM defined"},
		{name: "start domain", do: func(ctx context.Context) error {
			return s.ensureRunning(ctx, inst.Domain)
		}, done: "VM started"},
		{name: "wait for guest", do: func(ctx context.Context) error {
			return s.waitReady(ctx, inst)
		}, done: "SSH up"},
	})
	if err == nil && len(inst.Scripts) > 0 {
		// Outside the steps: a failed script keeps the VM for inspection.
		err = s.runSetup(ctx, inst)
	}
	if s.ctx.Err() != nil {
		return err // closing: leave Creating for Recover
	}
	return errors.Join(err, s.finish(key, opID, wrapOpError("Create", inst.Name, err)))
}

// ensureRunning brings the domain to running with its forwards in place,
// whatever a start cut short by a crash left: off, still starting (libvirt
// shows a domain paused while QEMU starts), or running with or without its
// forwards.
func (s *Service) ensureRunning(ctx context.Context, domain string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := s.drv.Lookup(ctx, domain)
		if err != nil {
			return err
		}
		switch d.State {
		case hypervisor.StateRunning:
			if f, ok := s.drv.(hypervisor.Forwarder); ok {
				return f.EnsureForwards(ctx, domain)
			}
			return nil
		case hypervisor.StateShutoff, hypervisor.StateCrashed:
			return s.drv.Start(ctx, domain)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("domain %s stayed %s for a minute", domain, d.State)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// runSetup waits for the setup scripts of the guest's current boot.
func (s *Service) runSetup(ctx context.Context, inst Instance) error {
	limit := s.cfg.Timeouts.Setup.Duration
	if len(inst.Scripts) > 0 {
		var total time.Duration
		for _, sc := range inst.Scripts {
			d := TimeoutDuration(sc.Timeout)
			if d == 0 {
				total = 0
				break
			}
			total += d
		}
		if total > 0 {
			limit = total + 2*time.Minute
		}
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	runs, err := s.guest.RunSetup(ctx, inst, s.reporter(inst.key()))
	if len(runs) > 0 {
		s.recordRuns(inst.key(), runs)
	}
	if err == nil {
		s.event(inst.key(), "setup done")
	}
	return err
}

func (s *Service) waitReady(ctx context.Context, inst Instance) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeouts.SSHReady.Duration)
	defer cancel()
	return s.guest.WaitReady(ctx, inst)
}

// wrapOpError turns a failure of a background operation into the ARM error
// clients see on the operation and in the instance's errors.
func wrapOpError(action, name string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var se *SetupError
	if errors.As(err, &se) {
		return se
	}
	return Errorf(KindInternal, action+"ComputeInstanceFailed", "%s of compute instance '%s' failed: %v", action, name, err)
}
