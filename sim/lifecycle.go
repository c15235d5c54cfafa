package sim

import (
	"fmt"
	"slices"
	"strings"
)

// The lifecycle of a compute instance is one table, and everything that
// depends on an instance's state reads it from here: whether a request is
// allowed and its refusal, the transitional state it enters, the work that
// runs (and runs again after a crash), where that work ends on success,
// failure, setup-script failure or a vanished VM, the ARM provisioningState,
// the listNodes nodeState, and what happens when the VM's power state
// drifts from what the instance's state promises. lifecycle_test.go walks
// every cell.

// State is a compute instance's state as the API reports it in
// properties.properties.state (ComputeInstanceState in the REST spec).
type State string

const (
	StateCreating     State = "Creating"
	StateCreateFailed State = "CreateFailed"
	StateRunning      State = "Running"
	StateStopping     State = "Stopping"
	StateStopped      State = "Stopped"
	StateStarting     State = "Starting"
	StateRestarting   State = "Restarting"
	StateResizing     State = "Resizing"
	StateDeleting     State = "Deleting"
	StateSetupFailed  State = "SetupFailed"
	StateUnusable     State = "Unusable"
)

// Action is a change asked of an instance: the operationName of its
// lastOperation.
type Action string

const (
	ActionCreate  Action = "Create"
	ActionStart   Action = "Start"
	ActionStop    Action = "Stop"
	ActionRestart Action = "Restart"
	ActionResize  Action = "Resize"
	ActionDelete  Action = "Delete"
)

// Trigger is who asked for an operation: lastOperation.operationTrigger.
// User, Schedule and IdleShutdown are Azure's values; System marks the
// changes amlsim makes itself when a VM drifts (they are events on the
// instance, never its lastOperation).
type Trigger string

const (
	TriggerUser         Trigger = "User"
	TriggerSchedule     Trigger = "Schedule"
	TriggerIdleShutdown Trigger = "IdleShutdown"
	TriggerSystem       Trigger = "System"
)

// Power is what an instance's state promises about its VM.
type Power int

const (
	// PowerAny promises nothing: an operation is changing it, or the
	// instance failed.
	PowerAny Power = iota
	// PowerOn promises a running VM.
	PowerOn
	// PowerOff promises a VM that is defined and shut off.
	PowerOff
)

// work is the background part of an operation. Every work is idempotent,
// so the same work resumes an operation a crash cut short.
type work func(r *runner, j job) error

// operation is the row part of a transitional state.
type operation struct {
	// Action is the request that enters the state.
	Action Action
	// Work runs the operation.
	Work work
	// Resume runs it again when a crash cut it short: every work is
	// idempotent, so each operation resumes by running its work again
	// (a create finds its domain defined, a stop finds it off, a delete
	// finds it gone, a restart reboots once more).
	Resume work
	// Done, Failed, SetupFailed and Vanished are where the operation ends:
	// on success, on failure, when a setup script failed (the VM stays up
	// for inspection), and when the VM was found gone. Done "" removes
	// the instance.
	Done, Failed, SetupFailed, Vanished State
}

// stateRow is one row of the lifecycle table.
type stateRow struct {
	// Provisioning is the ARM provisioningState of the compute resource.
	Provisioning string
	// Node is the listNodes nodeState; "" lists no node.
	Node string
	// Power is what the state promises about the VM (settled states).
	Power Power
	// OnPowerOff, OnPowerOn and OnVanished say where a settled instance
	// goes when its VM is found shut off, running, or gone; "" keeps it.
	OnPowerOff, OnPowerOn, OnVanished State
	// Op is set for transitional states: the operation moving through it.
	Op *operation
}

// lifecycle is the table of states. It is filled in init because its
// works read it back.
var lifecycle map[State]stateRow

func init() { lifecycle = lifecycleTable() }

func lifecycleTable() map[State]stateRow {
	return map[State]stateRow{
		StateCreating: {Provisioning: "Creating", Node: "preparing", Op: &operation{
			Action: ActionCreate, Work: (*runner).create, Resume: (*runner).create,
			Done: StateRunning, Failed: StateCreateFailed, SetupFailed: StateSetupFailed, Vanished: StateCreateFailed}},
		StateStarting: {Provisioning: "Succeeded", Node: "preparing", Op: &operation{
			Action: ActionStart, Work: (*runner).start, Resume: (*runner).start,
			Done: StateRunning, Failed: StateStopped, SetupFailed: StateSetupFailed, Vanished: StateUnusable}},
		StateStopping: {Provisioning: "Succeeded", Node: "leaving", Op: &operation{
			Action: ActionStop, Work: (*runner).stop, Resume: (*runner).stop,
			Done: StateStopped, Failed: StateRunning, SetupFailed: StateStopped, Vanished: StateUnusable}},
		StateRestarting: {Provisioning: "Succeeded", Node: "preparing", Op: &operation{
			Action: ActionRestart, Work: (*runner).restart, Resume: (*runner).restart,
			Done: StateRunning, Failed: StateUnusable, SetupFailed: StateSetupFailed, Vanished: StateUnusable}},
		// A resize changes the VM of a stopped instance (Compute_Resize of
		// the preview api-versions); it ends stopped either way.
		StateResizing: {Provisioning: "Succeeded", Node: "leaving", Op: &operation{
			Action: ActionResize, Work: (*runner).resize, Resume: (*runner).resize,
			Done: StateStopped, Failed: StateStopped, SetupFailed: StateStopped, Vanished: StateUnusable}},
		StateDeleting: {Provisioning: "Deleting", Op: &operation{
			Action: ActionDelete, Work: (*runner).delete, Resume: (*runner).delete,
			Done: "", Failed: StateUnusable, SetupFailed: StateUnusable, Vanished: ""}},

		StateRunning: {Provisioning: "Succeeded", Node: "idle", Power: PowerOn,
			OnPowerOff: StateStopped, OnVanished: StateUnusable},
		StateSetupFailed: {Provisioning: "Succeeded", Node: "unusable", Power: PowerOn,
			OnPowerOff: StateStopped, OnVanished: StateUnusable},
		StateStopped: {Provisioning: "Succeeded", Node: "leaving", Power: PowerOff,
			OnPowerOn: StateRunning, OnVanished: StateUnusable},
		StateCreateFailed: {Provisioning: "Failed"},
		StateUnusable:     {Provisioning: "Succeeded", Node: "unusable"},
	}
}

// request is one row of the table of requests.
type request struct {
	// Enters is the transitional state the request moves the instance to.
	Enters State
	// From are the states the request is allowed in.
	From []State
	// Late are the states in which the request is accepted (202) but its
	// operation fails at once with the refusal, as a BadRequest: Azure
	// does so for a start of a running instance ("Long running operation
	// failed with error: StartComputeInstanceOnlyAllowedInStoppedState",
	// microsoft/vscode-tools-for-ai#2096). In any other state outside From
	// the request itself is refused with 409 (a start while an operation
	// is in flight: vscode-tools-for-ai#2673).
	Late []State
	// Refusal names, in the refusal's ARM code, the state the request
	// needs: StopComputeInstanceOnlyAllowedInRunningState.
	Refusal string
	// Triggers are who may make the request.
	Triggers []Trigger
}

var requests = map[Action]request{
	// A create enters Creating from no state at all.
	ActionCreate: {Enters: StateCreating, Triggers: []Trigger{TriggerUser}},
	ActionStart: {Enters: StateStarting, Refusal: "Stopped",
		From:     []State{StateStopped},
		Late:     []State{StateRunning, StateSetupFailed, StateUnusable, StateCreateFailed},
		Triggers: []Trigger{TriggerUser, TriggerSchedule}},
	ActionStop: {Enters: StateStopping, Refusal: "Running",
		From:     []State{StateRunning, StateSetupFailed},
		Triggers: []Trigger{TriggerUser, TriggerSchedule, TriggerIdleShutdown}},
	ActionRestart: {Enters: StateRestarting, Refusal: "Running",
		From:     []State{StateRunning, StateSetupFailed},
		Triggers: []Trigger{TriggerUser}},
	// No source says in which states Azure resizes an instance: the
	// studio offers it on a stopped one, and amlsim answers a resize of a
	// running one as Azure answers a start of one (accepted, then failed).
	ActionResize: {Enters: StateResizing, Refusal: "Stopped",
		From:     []State{StateStopped},
		Late:     []State{StateRunning, StateSetupFailed, StateUnusable, StateCreateFailed},
		Triggers: []Trigger{TriggerUser}},
	// A delete may cut in on any operation but another delete.
	ActionDelete: {Enters: StateDeleting, Refusal: "NonDeleting",
		From: []State{StateCreating, StateCreateFailed, StateRunning, StateStopping, StateStopped,
			StateStarting, StateRestarting, StateResizing, StateSetupFailed, StateUnusable},
		Triggers: []Trigger{TriggerUser}},
}

// Next returns the transitional state action leads to from s, or its
// refusal: a 409 with an ARM code such as
// StartComputeInstanceOnlyAllowedInStoppedState and Azure's message
// ("Start Azure ML Compute Instance is only allowed when the instance NAME
// is in 'stopped' state", microsoft/vscode-tools-for-ai#2096). late is
// set when Azure accepts the request and fails its operation instead:
// then the refusal is the operation's error, a BadRequest.
func Next(s State, a Action, name string) (to State, late bool, err error) {
	rq, ok := requests[a]
	if !ok {
		return "", false, fmt.Errorf("no request %q in the lifecycle table", a)
	}
	if slices.Contains(rq.From, s) {
		return rq.Enters, false, nil
	}
	allowed := make([]string, len(rq.From))
	for i, from := range rq.From {
		allowed[i] = "'" + strings.ToLower(string(from)) + "'"
	}
	late = slices.Contains(rq.Late, s)
	kind := KindConflict
	if late {
		kind = KindBadRequest
	}
	return "", late, Errorf(kind, string(a)+"ComputeInstanceOnlyAllowedIn"+rq.Refusal+"State",
		"%s Azure ML Compute Instance is only allowed when the instance %s is in %s state",
		a, name, strings.Join(allowed, " or "))
}

// Transitional reports whether s is a state an operation is moving through.
func Transitional(s State) bool { return lifecycle[s].Op != nil }

// ProvisioningState is the ARM provisioningState of an instance in s.
func (s State) ProvisioningState() string { return lifecycle[s].Provisioning }

// NodeState is the listNodes nodeState of an instance in s; "" when the
// instance has no node to list.
func (s State) NodeState() string { return lifecycle[s].Node }

// VMUp reports whether s promises a running VM that users may reach (SSH,
// applications): the settled states whose VM is on.
func (s State) VMUp() bool { return lifecycle[s].Power == PowerOn }

// Failed reports whether the instance's creation failed, so its errors
// are provisioning errors too.
func (s State) Failed() bool { return lifecycle[s].Provisioning == "Failed" }

// drift returns where a settled instance goes when its VM is found in
// power state (on, off, or gone), and whether that is a change.
func (s State) drift(on, gone bool) (State, bool) {
	row := lifecycle[s]
	if row.Op != nil {
		return s, false // the operation in flight owns the VM
	}
	var to State
	switch {
	case gone:
		to = row.OnVanished
	case on:
		to = row.OnPowerOn
	default:
		to = row.OnPowerOff
	}
	return to, to != "" && to != s
}
