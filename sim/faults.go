package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sosodev/duration"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/sim/store"
)

// Fault injection: rules that make amlsim fail the way Azure fails, for the
// CI suites that test how their code copes (`amlsim serve --faults`). A
// rule matches requests by operation and by the instance's name (a glob),
// location, VM size and the requesting principal; its effect acts either
// on the request itself (an HTTP status: ARM's throttling, a transient
// error) or on the operation the request starts (a failure with an ARM
// code, a delay), through the lifecycle table like any other outcome. A
// rule applies to its next Times matches (then it is gone), or until it
// is removed. Rules live in the state database: they survive a restart,
// as the operations they were attached to do.

// bucketFaults holds the fault rules by ID.
const bucketFaults = "faults"

// Operations a fault rule can match: the actions on an instance, and the
// reads. "" matches any of them.
const (
	FaultGet  = "Get"
	FaultList = "List"
)

// FaultRule is one rule, as PUT /amlsim/faults/{id} takes it and GET
// /amlsim/faults lists it.
type FaultRule struct {
	ID        string      `json:"id"`
	Operation string      `json:"operation,omitempty"`
	Match     FaultMatch  `json:"match"`
	Effect    FaultEffect `json:"effect"`
	// Times is how many more matches the rule applies to; nil: until it
	// is removed.
	Times *int `json:"times,omitempty"`
	// Applied counts the matches the rule has applied to.
	Applied   int       `json:"applied"`
	CreatedOn time.Time `json:"createdOn"`
}

// FaultMatch selects what a rule applies to; empty fields match anything.
type FaultMatch struct {
	// Name is a glob (path.Match) over the instance's name.
	Name      string `json:"name,omitempty"`
	Location  string `json:"location,omitempty"`
	VMSize    string `json:"vmSize,omitempty"`
	Principal string `json:"principal,omitempty"`
}

// FaultEffect is what a matching request gets: exactly one of its fields.
type FaultEffect struct {
	// Fail fails the operation with an ARM error; the instance ends where
	// the lifecycle table puts a failed operation (CreateFailed, back to
	// Stopped, …).
	Fail *FaultFailure `json:"fail,omitempty"`
	// Status answers the request itself with 429 (ARM throttling, with
	// RetryAfter), 500 or 503, before anything is done.
	Status int `json:"status,omitempty"`
	// RetryAfter is the ISO 8601 duration of a 429's or 503's Retry-After.
	RetryAfter string `json:"retryAfter,omitempty"`
	// Delay holds the operation for an ISO 8601 duration before its work,
	// on the service's clock (the test clock makes it pass at once).
	Delay string `json:"delay,omitempty"`
	// VM acts on the VM of a Running instance: "crash" forces it off at
	// once (as when QEMU dies), "poweroff" shuts it down from the guest
	// (ACPI), "hang" freezes it (paused: it stops answering SSH and
	// Jupyter while the instance still says Running). The instance's
	// state then follows its VM, as for any drift. With no operation the
	// rule acts on matching instances that are Running when it is put,
	// and on those that become Running; with Create, Start or Restart,
	// when such an operation ends Running.
	VM string `json:"vm,omitempty"`
	// SetupScript makes the creation script of the next create exit with
	// ExitCode: the guest runs, in its place, a script that says so and
	// exits; the instance ends SetupFailed with its VM up, as for a real
	// script failure.
	SetupScript *FaultScriptRun `json:"setupScript,omitempty"`
}

// Effects on a VM.
const (
	FaultVMCrash    = "crash"
	FaultVMPowerOff = "poweroff"
	FaultVMHang     = "hang"
)

// faultClass is where an effect acts: on the request, on the operation
// it starts, or on a running instance's VM.
type faultClass int

const (
	onRequest faultClass = iota
	onOperation
	onVM
)

func (e FaultEffect) class() faultClass {
	switch {
	case e.Status != 0:
		return onRequest
	case e.VM != "":
		return onVM
	}
	return onOperation
}

// FaultFailure is an ARM error an operation ends with.
type FaultFailure struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// FaultScriptRun is the exit code the next setup script run ends with.
type FaultScriptRun struct {
	ExitCode int `json:"exitCode"`
}

// FaultTarget is a request as fault rules see it.
type FaultTarget struct {
	Operation string
	Name      string
	Location  string
	VMSize    string
	Principal string
}

// faultOperations are the operations a rule may name.
var faultOperations = []string{string(ActionCreate), string(ActionStart), string(ActionStop), string(ActionRestart), string(ActionDelete), FaultGet, FaultList}

// faultIDRE is what a rule's ID may be: a name for a URL path segment.
var faultIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// defaultFaultMessages are Azure's texts for the codes CI suites inject
// most, used when a rule gives none.
var defaultFaultMessages = map[string]string{
	// Microsoft.Compute's capacity errors: the troubleshooting article
	// (SupportArticles-docs, virtual-machines/windows/allocation-failure.md)
	// and real ones (vmware-tanzu/community-edition#3963, regional;
	// openshift/release#5181, zonal).
	"AllocationFailed":      "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at https://aka.ms/allocation-guidance",
	"ZonalAllocationFailed": "Allocation failed. We do not have sufficient capacity for the requested VM size in this zone. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance",
	// A regional quota refusal's opening (nforgeio/neonKUBE#1671).
	"OperationNotAllowed": "Operation could not be completed as it results in exceeding approved Total Regional Cores quota.",
	// ARM's (Azure/azure-powershell#11291), without its diagnostics.
	"InternalServerError": "Encountered internal server error.",
}

// String says what the effect does, in a few words: "fail with
// AllocationFailed", "answer 429, retry after PT5S", "delay PT10M".
func (e FaultEffect) String() string {
	switch {
	case e.Fail != nil:
		return "fail with " + e.Fail.Code
	case e.Status != 0 && e.RetryAfter != "":
		return fmt.Sprintf("answer %d, retry after %s", e.Status, e.RetryAfter)
	case e.Status != 0:
		return fmt.Sprintf("answer %d", e.Status)
	case e.Delay != "":
		return "delay " + e.Delay
	case e.SetupScript != nil:
		return fmt.Sprintf("setup script exits %d", e.SetupScript.ExitCode)
	case e.VM == FaultVMCrash:
		return "crash the VM"
	case e.VM == FaultVMPowerOff:
		return "power the VM off"
	case e.VM == FaultVMHang:
		return "hang the VM"
	}
	return "none"
}

// validate checks a rule as PUT gives it, filling in defaults.
func (r *FaultRule) validate() error {
	bad := func(format string, args ...any) error {
		return Errorf(KindBadRequest, "InvalidFaultRule", format, args...)
	}
	if !faultIDRE.MatchString(r.ID) {
		return bad("The fault rule ID '%s' must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.", r.ID)
	}
	if r.Operation != "" {
		i := slices.IndexFunc(faultOperations, func(o string) bool { return strings.EqualFold(o, r.Operation) })
		if i < 0 {
			return bad("The operation '%s' is not one of %s (or empty for any).", r.Operation, strings.Join(faultOperations, ", "))
		}
		r.Operation = faultOperations[i]
	}
	if _, err := path.Match(r.Match.Name, ""); err != nil {
		return bad("The name pattern '%s' is not a glob: %v.", r.Match.Name, err)
	}
	if r.Times != nil && *r.Times < 1 {
		return bad("times must be at least 1, or absent for a rule that stays until removed.")
	}
	e := &r.Effect
	n := 0
	for _, set := range []bool{e.Fail != nil, e.Status != 0, e.Delay != "", e.VM != "", e.SetupScript != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return bad("A fault rule has exactly one effect: fail, status, delay, vm or setupScript (it has %d).", n)
	}
	switch {
	case e.SetupScript != nil:
		if e.SetupScript.ExitCode < 1 || e.SetupScript.ExitCode > 255 {
			return bad("setupScript.exitCode must be 1 to 255, not %d.", e.SetupScript.ExitCode)
		}
		switch r.Operation {
		case "":
			// Only a create runs the creation script: another operation
			// must not use the rule up.
			r.Operation = string(ActionCreate)
		case string(ActionCreate), string(ActionStart), string(ActionRestart):
		default:
			return bad("A setupScript effect acts on the script a boot runs: its operation is Create (the creation script; also when none is given), Start or Restart (the startup script).")
		}
	case e.VM != "":
		if e.VM != FaultVMCrash && e.VM != FaultVMPowerOff && e.VM != FaultVMHang {
			return bad("vm must be crash, poweroff or hang, not '%s'.", e.VM)
		}
		if r.Operation != "" && r.Operation != string(ActionCreate) && r.Operation != string(ActionStart) && r.Operation != string(ActionRestart) {
			return bad("A vm effect acts on a Running instance: its operation is Create, Start or Restart (the one that made it Running), or none.")
		}
	case e.Fail != nil:
		if e.Fail.Code == "" {
			return bad("fail needs an ARM error code, such as AllocationFailed.")
		}
		if e.Fail.Message == "" {
			e.Fail.Message = cmp.Or(defaultFaultMessages[e.Fail.Code], "The operation failed with "+e.Fail.Code+" (injected fault).")
		}
	case e.Status != 0:
		if e.Status != 429 && e.Status != 500 && e.Status != 503 {
			return bad("status must be 429, 500 or 503, not %d.", e.Status)
		}
	case e.Delay != "":
		if d, err := duration.Parse(e.Delay); err != nil || d.Negative || d.ToTimeDuration() <= 0 {
			return bad("delay '%s' is not a positive ISO 8601 duration such as PT10M.", e.Delay)
		}
	}
	if e.RetryAfter != "" {
		if d, err := duration.Parse(e.RetryAfter); err != nil || d.Negative || e.Status == 500 || e.Status == 0 {
			return bad("retryAfter '%s' must be an ISO 8601 duration such as PT5S, with status 429 or 503.", e.RetryAfter)
		}
	}
	if e.class() == onOperation && (r.Operation == FaultGet || r.Operation == FaultList) {
		return bad("%s is a read: it can only be answered with a status, not %s.", r.Operation, e.String())
	}
	return nil
}

// matches reports whether r, an effect of class c, applies to t.
func (r FaultRule) matches(t FaultTarget, c faultClass) bool {
	ok, _ := path.Match(r.Match.Name, t.Name)
	return r.Effect.class() == c &&
		(r.Operation == "" || r.Operation == t.Operation) &&
		(r.Match.Name == "" || ok) &&
		(r.Match.Location == "" || strings.EqualFold(r.Match.Location, t.Location)) &&
		(r.Match.VMSize == "" || strings.EqualFold(r.Match.VMSize, t.VMSize)) &&
		(r.Match.Principal == "" || strings.EqualFold(r.Match.Principal, t.Principal))
}

// PutFault creates or replaces a rule. A VM rule without an operation
// acts at once on the Running instances it matches.
func (s *Service) PutFault(r FaultRule) (FaultRule, error) {
	if err := r.validate(); err != nil {
		return FaultRule{}, err
	}
	r.Applied, r.CreatedOn = 0, s.now().UTC()
	if err := s.st.Update(func(tx *store.Tx) error { return tx.Put(bucketFaults, r.ID, r) }); err != nil {
		return FaultRule{}, err
	}
	if r.Effect.class() == onVM && r.Operation == "" {
		s.injectVMFaults("", "")
		rules, err := s.Faults()
		if err != nil {
			return FaultRule{}, err
		}
		for _, now := range rules {
			if now.ID == r.ID {
				return now, nil
			}
		}
		// Used up at once.
		none := 0
		r.Applied, r.Times = *r.Times, &none
	}
	return r, nil
}

// Faults lists the rules, oldest first (the order they are tried in).
func (s *Service) Faults() ([]FaultRule, error) {
	var rules []FaultRule
	err := s.st.View(func(tx *store.Tx) error {
		var err error
		rules, err = faultRules(tx)
		return err
	})
	return rules, err
}

// DeleteFault removes a rule; ok is false when there was none.
func (s *Service) DeleteFault(id string) (ok bool, err error) {
	err = s.st.Update(func(tx *store.Tx) error {
		var r FaultRule
		if ok, err = tx.Get(bucketFaults, id, &r); err != nil || !ok {
			return err
		}
		return tx.Delete(bucketFaults, id)
	})
	return ok, err
}

// TakeRequestFault applies the first rule whose effect answers a request
// matching t, if any: it counts the match and returns the rule, whose
// Effect.Status the API answers with.
func (s *Service) TakeRequestFault(t FaultTarget) (*FaultRule, error) {
	// Most requests match nothing: look before writing.
	var match bool
	if err := s.st.View(func(tx *store.Tx) error {
		rules, err := faultRules(tx)
		for _, r := range rules {
			match = match || r.matches(t, onRequest)
		}
		return err
	}); err != nil || !match {
		return nil, err
	}
	var rule *FaultRule
	err := s.st.Update(func(tx *store.Tx) error {
		var err error
		rule, err = takeFault(tx, t, onRequest)
		return err
	})
	if err == nil && rule != nil {
		s.log.Info("fault injected", "rule", rule.ID, "effect", rule.Effect.String(), "operation", t.Operation, "instance", t.Name)
	}
	return rule, err
}

// takeFault finds the first rule matching t whose effect is of class c,
// counts the match (removing a rule whose times are used up), and returns
// it; nil when none matches.
func takeFault(tx *store.Tx, t FaultTarget, c faultClass) (*FaultRule, error) {
	rules, err := faultRules(tx)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		if !r.matches(t, c) {
			continue
		}
		r.Applied++
		if r.Times != nil {
			left := *r.Times - 1
			r.Times = &left
			if left == 0 {
				return &r, tx.Delete(bucketFaults, r.ID)
			}
		}
		return &r, tx.Put(bucketFaults, r.ID, r)
	}
	return nil, nil
}

func faultRules(tx *store.Tx) ([]FaultRule, error) {
	rules, err := store.All[FaultRule](tx, bucketFaults)
	slices.SortFunc(rules, func(a, b FaultRule) int {
		return cmp.Or(a.CreatedOn.Compare(b.CreatedOn), strings.Compare(a.ID, b.ID))
	})
	return rules, err
}

// attachFault takes the first operation rule matching the operation op is
// starting on inst (asked by principal), and records it on op and as an
// event of inst; the runner applies it when the work begins.
func attachFault(tx *store.Tx, op *Operation, inst *Instance, principal string, now time.Time) error {
	rule, err := takeFault(tx, FaultTarget{Operation: op.Action, Name: inst.Name, Location: inst.Location, VMSize: inst.Size.Name, Principal: principal}, onOperation)
	if err != nil || rule == nil {
		return err
	}
	op.Fault = &OperationFault{Rule: rule.ID, Effect: rule.Effect}
	what := rule.Effect.String()
	if sc := rule.Effect.SetupScript; sc != nil {
		kind := Startup
		if op.Action == string(ActionCreate) {
			kind = Creation
		}
		what = fmt.Sprintf("%s script exits %d", kind, sc.ExitCode)
	}
	inst.addEvent(Event{Time: now, State: inst.State, Message: fmt.Sprintf("Fault %s injected: %s", rule.ID, what)})
	return nil
}

// OperationFault is the fault rule an operation was started under.
type OperationFault struct {
	Rule   string      `json:"rule"`
	Effect FaultEffect `json:"effect"`
}

// injectVMFaults applies the VM rules to the Running instances they
// match: all of them (key ""), or the one at key whose operation action
// has just ended Running. Each rule acts on its next Times instances: the
// match is recorded (with an event) at once, the VM is acted on in the
// background (a power-off waits for the guest), and the instance's state
// then follows its VM through the reconciler.
func (s *Service) injectVMFaults(key string, action Action) {
	var hits []vmHit
	err := s.st.Update(func(tx *store.Tx) error {
		insts, err := store.All[Instance](tx, bucketInstances)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		for _, inst := range insts {
			if inst.State != StateRunning || key != "" && inst.key() != key {
				continue
			}
			t := FaultTarget{Operation: string(action), Name: inst.Name, Location: inst.Location, VMSize: inst.Size.Name, Principal: inst.CreatedBy.ObjectID}
			rule, err := takeFault(tx, t, onVM)
			if err != nil || rule == nil {
				if err != nil {
					return err
				}
				continue
			}
			inst.addEvent(Event{Time: now, State: inst.State, Message: fmt.Sprintf("Fault %s injected: %s", rule.ID, rule.Effect.String())})
			if err := putInstance(tx, inst); err != nil {
				return err
			}
			hits = append(hits, vmHit{inst, *rule, now})
		}
		return nil
	})
	if err != nil {
		s.log.Error("inject VM faults", "err", err)
		return
	}
	if len(hits) == 0 {
		return
	}
	if s.faultLog != nil {
		for _, h := range hits {
			s.faultLog(InjectedFault{Time: h.at, Rule: h.rule.ID, Effect: h.rule.Effect.String(), Instance: h.inst.ResourceID(s.cfg.Subscription)})
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.actOnVMs(s.ctx, hits)
	}()
}

// InjectedFault is a fault rule's effect applied to an instance outside
// the request that asked for it: a VM rule acting when it is put, or when
// an operation ends Running. WithFaultLog hands each to the audit log.
type InjectedFault struct {
	Time time.Time
	Rule string
	// Effect says what it does (FaultEffect.String): "crash the VM".
	Effect string
	// Instance is the instance's ARM resource ID.
	Instance string
}

// WithFaultLog calls log for each fault effect applied outside a request
// (amlsim serve writes them to its audit log).
func WithFaultLog(log func(InjectedFault)) Option { return func(s *Service) { s.faultLog = log } }

// vmHit is a VM rule that matched a Running instance.
type vmHit struct {
	inst Instance
	rule FaultRule
	at   time.Time
}

// actOnVMs does what VM rules ask of the VMs they matched.
func (s *Service) actOnVMs(ctx context.Context, hits []vmHit) {
	for _, h := range hits {
		var err error
		switch h.rule.Effect.VM {
		case FaultVMCrash:
			err = s.drv.Destroy(ctx, h.inst.Domain)
		case FaultVMPowerOff:
			err = s.drv.Shutdown(ctx, h.inst.Domain, s.cfg.Timeouts.ShutdownGrace.Duration)
		case FaultVMHang:
			sus, ok := s.drv.(hypervisor.Suspender)
			if !ok {
				err = errors.New("this driver cannot pause a VM")
				break
			}
			err = sus.Suspend(ctx, h.inst.Domain)
		}
		if err != nil {
			s.log.Error("inject a VM fault", "rule", h.rule.ID, "instance", h.inst.Name, "err", err)
			continue
		}
		s.log.Info("fault injected", "rule", h.rule.ID, "effect", h.rule.Effect.String(), "instance", h.inst.Name)
		// The driver's event moves the instance; a check makes sure.
		s.reconciler.settle(ctx, h.inst.key())
	}
}

// withInjectedScript returns inst with its script of the given kind
// replaced by one that exits as the fault f says, and that exit code;
// inst itself and 0 when f asks nothing of the scripts. The creation
// script reaches the guest in the seed made at create; for a startup
// script see injectStartupScript.
func withInjectedScript(inst Instance, kind ScriptKind, f *OperationFault) (Instance, int) {
	if f == nil || f.Effect.SetupScript == nil {
		return inst, 0
	}
	code := f.Effect.SetupScript.ExitCode
	sc := Script{Kind: kind, Source: SourceInline, Data: injectedScript(f.Rule, kind, code)}
	scripts := []Script{sc}
	for _, s := range inst.Scripts {
		if s.Kind != kind {
			scripts = append(scripts, s)
		}
	}
	inst.Scripts = scripts
	return inst, code
}

// injectedScript is the bash script a setupScript fault runs in place of
// the instance's own: it says so on stderr (so in the script's log) and
// exits with code.
func injectedScript(rule string, kind ScriptKind, code int) []byte {
	return []byte(fmt.Sprintf("#!/bin/bash\necho \"amlsim: fault rule %s: this %s script exits %d in place of the instance's\" >&2\nexit %d\n", rule, kind, code, code))
}

// InjectedStartupFault is the name, in the instance's folder Logs/<name>/
// of the workspace file share, of the file by which a setupScript fault
// on a Start or Restart reaches a guest whose seed was made at create: it
// holds "CODE RULE", and the guest's setup runner, at its next boot, runs
// a script of its own that says so and exits CODE in place of the startup
// script, then deletes the file (sim/guest/setup.sh). Only an exit code
// crosses the share, which the instance's users can write to. ID is the
// instance's.
func InjectedStartupFault(id string) string { return ".amlsim-fault-" + id + "-startup" }

// injectStartupScript prepares a start or restart under a setupScript
// fault: it leaves the fault's file in the instance's Logs folder for the
// guest's next boot, and returns inst with the injected script as its
// startup script, the exit code asked, and a cleanup that removes the
// file if the boot did not take it. Without a fault it returns inst, 0
// and a no-op.
func injectStartupScript(inst Instance, f *OperationFault) (Instance, int, func(), error) {
	inst, code := withInjectedScript(inst, Startup, f)
	if code == 0 || inst.Share == "" {
		// No share: a guest that runs scripts cannot be reached; one that
		// runs none (the fake driver's) gets the outcome all the same.
		return inst, code, func() {}, nil
	}
	dir := filepath.Join(inst.Share, "Logs", inst.Name)
	if err := mkdirShared(dir); err != nil {
		return inst, 0, nil, err
	}
	file := filepath.Join(dir, InjectedStartupFault(inst.ID))
	if err := os.WriteFile(file, []byte(fmt.Sprintf("%d %s\n", code, f.Rule)), 0o644); err != nil {
		return inst, 0, nil, fmt.Errorf("inject a startup script: %w", err)
	}
	return inst, code, func() { os.Remove(file) }, nil
}
