// Package sim is the simulated Azure Machine Learning cloud: workspaces,
// regions, VM sizes, quotas, and compute instances moving through their
// states, each backed by a hypervisor domain. It is driven by the ARM API in
// sim/api and keeps its state in sim/store.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/amlsim/amlsim/sim/clock"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim/store"
	"github.com/google/uuid"
)

// Guest prepares and reaches the guest OS of an instance: the seed it boots
// with, and the moment it is ready (SSH answers). The libvirt setup uses
// cloud-init and SSH; the fake one only asks the driver.
type Guest interface {
	Seed(inst Instance) ([]byte, error)
	WaitReady(ctx context.Context, inst Instance) error
	// StartJob starts a job's command in the guest, detached from amlsim:
	// it runs on while amlsim restarts. A job started already is left as
	// it is.
	StartJob(ctx context.Context, inst Instance, job Job) error
	// WaitJob follows a started job's command, writing its output from
	// byte offset on to out as it comes, until the command ends: its exit
	// code. When ctx ends first it returns ctx's error and leaves the
	// command running. A command the guest no longer runs (it rebooted)
	// is an error.
	WaitJob(ctx context.Context, inst Instance, job Job, out io.Writer, offset int64) (exitCode int, err error)
	// StopJob stops a job's command (SIGTERM, then SIGKILL) and returns
	// its exit code.
	StopJob(ctx context.Context, inst Instance, job Job) (exitCode int, err error)
	// RunSetup waits for the setup scripts of the guest's current boot to
	// finish, reporting progress, and returns their runs; a script that
	// failed or timed out is also a *SetupError.
	RunSetup(ctx context.Context, inst Instance, report func(string)) ([]ScriptRun, error)
	// Activity reports what keeps a running instance from being idle.
	Activity(ctx context.Context, inst Instance) (Activity, error)
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
	// faultLog is told of fault effects applied outside requests.
	faultLog func(InjectedFault)
	// jobs runs the command jobs; their logs are kept under jobsDir.
	jobs    *jobEngine
	jobsDir string
	// image is the version of the guest image new VMs are created from.
	image string
	clock clock.Clock
	// scheduler fires the instances' schedules; idler stops idle ones.
	scheduler *scheduler
	idler     *idler

	ledger     ledger
	runner     *runner
	reconciler *reconciler
	// resync is how often the reconciler checks every VM besides the
	// driver's events.
	resync time.Duration
	// ctx ends when the service closes.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Option configures a Service.
type Option func(*Service)

// WithImageVersion names the version of the guest image new instances'
// VMs are created from, as osImageMetadata reports it.
func WithImageVersion(v string) Option { return func(s *Service) { s.image = v } }

// ImageVersion is the version of the guest image new instances get: the
// latestImageVersion of osImageMetadata.
func (s *Service) ImageVersion() string { return s.image }

// WithClock sets the clock: every timestamp amlsim records and every
// schedule and idle shutdown follows it (the test clock of
// `serve --test-clock`). The default is the wall clock.
func WithClock(c clock.Clock) Option { return func(s *Service) { s.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithShares keeps the workspaces' file shares under dir, one directory
// per workspace, mounted in every instance of the workspace.
func WithShares(dir string) Option { return func(s *Service) { s.shares = dir } }

// WithJobsDir keeps the jobs' logs under dir, one directory per job
// (default: a directory in the system's temporary one).
func WithJobsDir(dir string) Option { return func(s *Service) { s.jobsDir = dir } }

// WithResync sets how often the reconciler checks every instance against
// its VM besides the driver's domain events (default: the configuration's
// timeouts.resync, 30 s unless set).
func WithResync(d time.Duration) Option { return func(s *Service) { s.resync = d } }

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
		clock:        clock.Wall{},
		resync:       cfg.Timeouts.Resync.Duration,
	}
	for _, o := range opts {
		o(s)
	}
	if s.resync <= 0 {
		s.resync = 30 * time.Second
	}
	s.now = s.clock.Now
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.ledger = ledger{cfg: cfg, catalog: s.catalog}
	s.runner = &runner{cfg: cfg, st: st, drv: drv, guest: guest, log: s.log, now: s.now, clock: s.clock,
		ctx: s.ctx, cancel: s.cancel, workers: map[string]*worker{}}
	if snap, ok := drv.(hypervisor.Snapshotter); ok && cfg.Driver.FastCreate {
		if tg, ok := guest.(Templater); ok {
			s.runner.snaps = &snapshots{drv: snap, guest: tg, log: s.log, diskGB: cfg.Local.DiskGB, ctx: s.ctx,
				taking: map[string]*taking{}, failed: map[string]time.Time{}}
		}
	}
	s.reconciler = &reconciler{st: st, drv: drv, runner: s.runner, log: s.log, now: s.now, prefix: s.domainPrefix}
	s.runner.settle = s.reconciler.settle
	s.jobs = newJobEngine(s)
	if s.jobsDir == "" {
		s.jobsDir = filepath.Join(os.TempDir(), "amlsim-jobs")
	}
	s.runner.ended = func(key string, action Action) {
		s.injectVMFaults(key, action)
		s.jobs.poke()
	}
	s.scheduler = &scheduler{svc: s, st: st, clock: s.clock, log: s.log}
	s.idler = &idler{svc: s, clock: s.clock, log: s.log, lastActive: map[string]time.Time{}}
	err := st.Update(func(tx *store.Tx) error {
		if err := migrateSettings(tx); err != nil {
			return err
		}
		for _, w := range cfg.Workspaces {
			ref := WorkspaceRef{w.ResourceGroup, w.Name}
			if err := ensureGroup(tx, w.ResourceGroup, w.Location, s.now().UTC()); err != nil {
				return err
			}
			if _, err := getWorkspace(tx, ref); !IsKind(err, KindNotFound) {
				continue
			}
			ws := Workspace{ResourceGroup: w.ResourceGroup, Name: w.Name, Location: w.Location, CreatedOn: s.now().UTC()}
			if err := putWorkspace(tx, ws); err != nil {
				return err
			}
		}
		if err := failInterruptedDeployments(tx, s.now().UTC()); err != nil {
			return err
		}
		// Workspaces stored by an amlsim that had no resource groups.
		all, err := workspaces(tx)
		for _, ws := range all {
			if err := ensureGroup(tx, ws.ResourceGroup, ws.Location, ws.CreatedOn); err != nil {
				return err
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("seed workspaces: %w", err)
	}
	return s, nil
}

// Config returns the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Catalog returns the VM size catalogue.
func (s *Service) Catalog() *Catalog { return s.catalog }

// Close stops the workers without failing their operations; VMs keep
// running and the next start resumes where they were.
func (s *Service) Close() {
	s.cancel()
	// The reconciler, scheduler and idler launch work: they end first.
	s.wg.Wait()
	s.runner.close()
}

// Recover reconciles the store with the hypervisor at start-up (see
// reconciler): operations a crash cut short resume, acknowledged ones no
// instance runs end, instances whose VM changed while the server was down
// show their real state, and domains of ours that no record claims are
// reported and left alone. Then it keeps reconciling, on the driver's
// domain events and every resync period, until Close.
func (s *Service) Recover(ctx context.Context) error {
	if err := s.reconciler.strays(ctx); err != nil {
		return err
	}
	if err := s.reconciler.reconcile(ctx); err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.reconciler.watch(s.ctx, s.resync)
	}()
	if tc, ok := s.clock.(*clock.Test); ok {
		if err := s.keepTestClock(tc); err != nil {
			return err
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.scheduler.run(s.ctx)
	}()
	if s.runner.snaps != nil {
		// Most instances have the default shape: have its snapshot ready
		// before the first create asks for it.
		s.runner.snaps.clearDebris(ctx, s.drv)
		s.runner.snaps.warm(LocalResource{VCPUs: s.cfg.Local.VCPUs, MemoryMiB: s.cfg.Local.MemoryMiB})
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.idler.run(s.ctx)
	}()
	return s.jobs.resume()
}

const metaTestClock = "testClock"

// keepTestClock makes the test clock outlive a restart: it starts where it
// was last moved to, when that is later than the wall clock (amlsim's
// records may be dated there), and every jump is stored.
func (s *Service) keepTestClock(tc *clock.Test) error {
	var was time.Time
	err := s.st.View(func(tx *store.Tx) error { _, err := tx.Get(bucketMeta, metaTestClock, &was); return err })
	if err != nil {
		return err
	}
	if was.After(tc.Now()) {
		if _, err := tc.Set(was); err != nil {
			return err
		}
	}
	jumps := tc.Jumps()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-jumps:
				now := tc.Now()
				if err := s.st.Update(func(tx *store.Tx) error { return tx.Put(bucketMeta, metaTestClock, now) }); err != nil {
					s.log.Error("store the test clock", "err", err)
				}
			}
		}
	}()
	return nil
}

// Now is the service's time: the wall clock's, or the test clock's.
func (s *Service) Now() time.Time { return s.now() }

// --- workspaces ---

// workspaceNotFound is ARM's 404 for a missing workspace (MicrosoftDocs
// azure-docs, articles/machine-learning/troubleshooting-managed-feature-store.md).
func workspaceNotFound(ref WorkspaceRef) error {
	return Errorf(KindNotFound, "ResourceNotFound",
		"The Resource 'Microsoft.MachineLearningServices/workspaces/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", ref.Name, ref.ResourceGroup)
}

// Workspace returns a workspace.
func (s *Service) Workspace(ref WorkspaceRef) (Workspace, error) {
	var ws Workspace
	err := s.st.View(func(tx *store.Tx) (err error) {
		ws, err = getWorkspace(tx, ref)
		return err
	})
	return ws, err
}

// Workspaces lists the workspaces of a resource group, or all of them when
// resourceGroup is empty.
func (s *Service) Workspaces(resourceGroup string) ([]Workspace, error) {
	var out []Workspace
	err := s.st.View(func(tx *store.Tx) error {
		all, err := workspaces(tx)
		for _, w := range all {
			if resourceGroup == "" || strings.EqualFold(w.ResourceGroup, resourceGroup) {
				out = append(out, w)
			}
		}
		return err
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
		return Workspace{}, s.cfg.locationNotAvailable(location)
	}
	var ws Workspace
	err := s.st.Update(func(tx *store.Tx) error {
		if _, err := writableGroup(tx, ref.ResourceGroup); err != nil {
			return err
		}
		var err error
		ws, err = getWorkspace(tx, ref)
		ok := err == nil
		if err != nil && !IsKind(err, KindNotFound) {
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
		return putWorkspace(tx, ws)
	})
	return ws, err
}

// DeleteWorkspace deletes a workspace and, as Azure does, every compute
// instance in it: their VMs are deleted and their quota freed ("Compute
// instance: Hard deleted", MicrosoftDocs/azure-ai-docs,
// articles/machine-learning/concept-soft-delete.md). It is a long-running
// operation (Workspaces_Delete is x-ms-long-running-operation in the REST
// spec): the instances enter Deleting at once, in the same transaction,
// and the workspace goes when the last of them is gone. It returns nil
// when there is no such workspace (Azure's 204), and the operation already
// running when the workspace is being deleted.
func (s *Service) DeleteWorkspace(p Principal, ref WorkspaceRef) (*Operation, error) {
	var op *Operation
	var launches []launch
	err := s.st.Update(func(tx *store.Tx) error {
		ws, err := getWorkspace(tx, ref)
		if IsKind(err, KindNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		o, l, err := s.beginWorkspaceDelete(tx, p, ws)
		op, launches = &o, l
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, l := range launches {
		s.runner.launch(l.key, l.op)
	}
	return op, nil
}

// beginWorkspaceDelete starts deleting a workspace in tx: its instances
// enter Deleting, and the operations to launch once tx commits are
// returned. A workspace being deleted already gives its running operation.
func (s *Service) beginWorkspaceDelete(tx *store.Tx, p Principal, ws Workspace) (Operation, []launch, error) {
	if ws.Deleting != "" {
		o, _, err := getOperation(tx, ws.Deleting)
		return o, nil, err
	}
	now := s.now().UTC()
	ref := ws.Ref()
	op := Operation{ID: uuid.NewString(), Action: "DeleteWorkspace", Location: ws.Location, Workspace: ref.key(), Status: OpInProgress, Start: now}
	insts, err := instances(tx, ws.Location)
	if err != nil {
		return op, nil, err
	}
	var launches []launch
	for _, inst := range insts {
		if inst.Workspace.key() != ref.key() {
			continue
		}
		del, err := s.enter(tx, inst, ActionDelete, TriggerUser, fmt.Sprintf("Delete: workspace %s deleted by %s", ws.Name, describe(p)), p.ObjectID)
		if IsKind(err, KindConflict) {
			continue // being deleted already
		}
		if err != nil {
			return op, nil, err
		}
		launches = append(launches, launch{inst.key(), del.ID})
	}
	ws.Deleting = op.ID
	if err := putWorkspace(tx, ws); err != nil {
		return op, nil, err
	}
	if err := putOperation(tx, op); err != nil {
		return op, nil, err
	}
	return op, launches, endWorkspaceDelete(tx, ref, now)
}

// endWorkspaceDelete removes a workspace being deleted once it holds no
// instance, and ends its delete operation. It does nothing for a workspace
// that is not being deleted or still holds instances.
func endWorkspaceDelete(tx *store.Tx, ref WorkspaceRef, now time.Time) error {
	ws, err := getWorkspace(tx, ref)
	if err != nil || ws.Deleting == "" {
		return nil
	}
	insts, err := instances(tx, ws.Location)
	if err != nil {
		return err
	}
	for _, i := range insts {
		if i.Workspace.key() == ref.key() {
			return nil
		}
	}
	if op, ok, err := getOperation(tx, ws.Deleting); err != nil {
		return err
	} else if ok && op.Status == OpInProgress {
		op.Status, op.End = OpSucceeded, now
		if err := putOperation(tx, op); err != nil {
			return err
		}
	}
	if err := deleteWorkspace(tx, ref); err != nil {
		return err
	}
	return endGroupDelete(tx, ws.ResourceGroup, now)
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
		if err := mkdirShared(d); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// mkdirShared makes a directory of a workspace share, owned by the guest's
// azureuser when the simulator runs as root.
func mkdirShared(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("workspace share: %w", err)
	}
	if os.Geteuid() == 0 {
		os.Chown(dir, guestUID, guestUID)
	}
	return nil
}

// locationNotAvailable is ARM's refusal of a region the provider is not
// in, with the list of those it is (Azure/azure-rest-api-specs#8347).
func (c Config) locationNotAvailable(location string) error {
	var names []string
	for _, r := range c.Regions {
		names = append(names, r.Name)
	}
	return Errorf(KindBadRequest, "LocationNotAvailableForResourceType",
		"The provided location '%s' is not available for resource type 'Microsoft.MachineLearningServices/workspaces'. List of available regions for the resource type is '%s'.",
		location, strings.Join(names, ","))
}

// --- computes: reads ---

func computeNotFound(ws WorkspaceRef, name string) error {
	return Errorf(KindNotFound, "ResourceNotFound",
		"The Resource 'Microsoft.MachineLearningServices/workspaces/%s/computes/%s' under resource group '%s' was not found.", ws.Name, name, ws.ResourceGroup)
}

// Compute returns an instance of a workspace.
func (s *Service) Compute(ref WorkspaceRef, name string) (Instance, error) {
	var inst Instance
	err := s.st.View(func(tx *store.Tx) (err error) {
		_, inst, err = getCompute(tx, ref, name)
		return err
	})
	return inst, err
}

// Computes lists a workspace's instances by name, skipping skip of them
// and returning at most the page size; more reports whether others follow.
func (s *Service) Computes(ref WorkspaceRef, skip int) (page []Instance, more bool, err error) {
	var all []Instance
	err = s.st.View(func(tx *store.Tx) error {
		ws, err := getParent(tx, ref)
		if err != nil {
			return err
		}
		insts, err := instances(tx, ws.Location)
		for _, i := range insts {
			if i.Workspace.key() == ref.key() {
				all = append(all, i)
			}
		}
		return err
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

// Operation returns a long-running operation of a region, or of any
// region when location is "".
func (s *Service) Operation(location, id string) (Operation, error) {
	var op Operation
	err := s.st.View(func(tx *store.Tx) error {
		var ok bool
		var err error
		op, ok, err = getOperation(tx, id)
		if err == nil && (!ok || location != "" && !strings.EqualFold(op.Location, location)) {
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
	var ws Workspace
	err := s.st.View(func(tx *store.Tx) error {
		var err error
		ws, err = getParent(tx, ref)
		return err
	})
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
	scheds, err := parseSchedules(req.Schedules, nil)
	if err != nil {
		return Instance{}, nil, err
	}
	idle := ""
	if req.IdleTime != nil {
		if idle, err = parseIdleTime(*req.IdleTime); err != nil {
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
		// The workspace is read again here: a workspace deleted since the
		// checks above must not get an instance.
		if ws, err := getParent(tx, ref); err != nil {
			return err
		} else if ws.Deleting != "" {
			return Errorf(KindConflict, "WorkspaceBeingDeleted",
				"The workspace '%s' is being deleted; no compute can be created or updated in it.", ref.Name)
		}
		existing, found, err := getInstance(tx, instanceKey(ws.Location, name))
		if err != nil {
			return err
		}
		if found {
			if existing.Workspace.key() != ref.key() {
				return nameAlreadyExists(name)
			}
			if existing.State == StateDeleting {
				return beingDeleted(name)
			}
			inst, err = updateInstance(existing, req, size, now)
			if err != nil {
				return err
			}
			return putInstance(tx, inst)
		}
		if err := s.ledger.checkQuota(tx, Instance{Location: ws.Location, Name: name, Size: size}, size); err != nil {
			return err
		}
		ports, err := s.ledger.allocatePorts(tx, 2)
		if err != nil {
			return err
		}
		o := Operation{ID: uuid.NewString(), Action: string(ActionCreate), Location: ws.Location, Instance: instanceKey(ws.Location, name), Status: OpInProgress, Start: now}
		inst = Instance{
			Image:         s.image,
			ID:            uuid.NewString(),
			Workspace:     ws.Ref(),
			Name:          name,
			Location:      ws.Location,
			Size:          size,
			Local:         s.cfg.Local.LocalFor(size.Name),
			State:         requests[ActionCreate].Enters,
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
			Schedules:     scheds,
			IdleTime:      idle,
			Share:         share,
			Scripts:       scripts,
			LastOperation: &LastOperation{Name: string(ActionCreate), Time: now, Status: string(OpInProgress), Trigger: string(TriggerUser)},
			Events:        []Event{{Time: now, State: requests[ActionCreate].Enters, Message: requestedBy(ActionCreate, p)}},
		}
		if req.SSHPublic {
			inst.AdminKey = req.AdminKey
		}
		if err := attachFault(tx, &o, &inst, p.ObjectID, now); err != nil {
			return err
		}
		op = &o
		if err := putOperation(tx, o); err != nil {
			return err
		}
		return putInstance(tx, inst)
	})
	if err != nil {
		return Instance{}, nil, err
	}
	if op != nil {
		s.runner.launch(inst.key(), op.ID)
	}
	return inst, op, nil
}

// updateInstance applies a PUT to an existing instance: only the mutable
// fields change, and the VM size never does (S5).
//
// A change is applied or refused, never acknowledged and dropped. The
// full object a client PUTs back after a GET (azure-ai-ml's begin_update,
// `az ml compute update`, which leaves sshSettings out) is accepted: what
// it repeats unchanged, or leaves out, stays as it is. Description, tags,
// schedules and idleTimeBeforeShutdown change; any other property that
// differs is refused with 400, naming it.
func updateInstance(inst Instance, req CreateRequest, size VMSize, now time.Time) (Instance, error) {
	if size.Name != inst.Size.Name {
		return inst, Errorf(KindBadRequest, "ComputeInstanceVmSizeUpdateNotSupported",
			"The VM size of compute instance '%s' cannot be changed from %s to %s after creation.", inst.Name, inst.Size.Name, size.Name)
	}
	// GET shows the key to the owner only: a PUT that leaves it out, or
	// leaves sshSettings out, keeps what the instance has.
	if req.SSHGiven && (req.SSHPublic != inst.SSHPublic || (req.SSHPublic && req.AdminKey != "" && req.AdminKey != inst.AdminKey)) {
		return inst, Errorf(KindBadRequest, "ComputeInstanceSshSettingsUpdateNotSupported",
			"The SSH settings of compute instance '%s' cannot be changed after creation.", inst.Name)
	}
	if req.Schedules != nil {
		scheds, err := parseSchedules(req.Schedules, inst.Schedules)
		if err != nil {
			return inst, err
		}
		inst.Schedules = scheds
	}
	if req.IdleTime != nil {
		idle, err := parseIdleTime(*req.IdleTime)
		if err != nil {
			return inst, err
		}
		inst.IdleTime = idle
	}
	extra := maps.Clone(inst.Extra)
	if extra == nil {
		extra = map[string]any{}
	}
	for _, k := range slices.Sorted(maps.Keys(req.Extra)) {
		v := req.Extra[k]
		if mutableProperties[k] {
			extra[k] = v
			continue
		}
		old, ok := inst.Extra[k]
		if !ok {
			old = propertyDefaults[k]
		}
		if !reflect.DeepEqual(normalizeJSON(old), normalizeJSON(v)) {
			return inst, Errorf(KindBadRequest, "InvalidPropertyValue",
				"The property %s of compute instance '%s' cannot be changed after creation.", k, inst.Name)
		}
	}
	inst.Extra = extra
	inst.Description = req.Description
	inst.Tags = req.Tags
	inst.ModifiedOn = now
	return inst, nil
}

// mutableProperties are the ComputeInstanceProperties kept in Extra that
// a PUT on an existing instance may change (schedules and
// idleTimeBeforeShutdown, which change too, have fields of their own).
var mutableProperties = map[string]bool{}

// propertyDefaults are the values GET shows for properties a create did
// not set, so that a PUT repeating them changes nothing.
var propertyDefaults = map[string]any{"applicationSharingPolicy": "Personal", "computeInstanceAuthorizationType": "personal"}

// normalizeJSON gives JSON values one Go shape (numbers as float64,
// strings compared case-sensitively), for comparing what a client sends
// with what was stored.
func normalizeJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	json.Unmarshal(b, &out)
	return out
}

// failWorkspaceDelete ends the delete of inst's workspace, if one is
// running, as failed: one of its instances could not be deleted. The
// workspace stays, with the instances that are left.
func failWorkspaceDelete(tx *store.Tx, inst Instance, cause *Error, now time.Time) error {
	ws, err := getWorkspace(tx, inst.Workspace)
	if err != nil || ws.Deleting == "" {
		return nil
	}
	op, ok, err := getOperation(tx, ws.Deleting)
	if err != nil {
		return err
	}
	if ok && op.Status == OpInProgress {
		op.Status, op.End = OpFailed, now
		op.Error = Errorf(KindInternal, "WorkspaceDeleteFailed", "The compute instance '%s' of workspace '%s' could not be deleted: %s", inst.Name, ws.Name, cause.Message)
		if err := putOperation(tx, op); err != nil {
			return err
		}
	}
	ws.Deleting = ""
	return putWorkspace(tx, ws)
}
