package sim

// State is a compute instance's state as the API reports it in
// properties.properties.state.
type State string

const (
	StateCreating     State = "Creating"
	StateCreateFailed State = "CreateFailed"
	StateRunning      State = "Running"
	StateStopping     State = "Stopping"
	StateStopped      State = "Stopped"
	StateStarting     State = "Starting"
	StateRestarting   State = "Restarting"
	StateDeleting     State = "Deleting"
	StateSetupFailed  State = "SetupFailed"
	StateUnusable     State = "Unusable"
)

// Action is something a user asks of an instance.
type Action string

const (
	ActionStart   Action = "Start"
	ActionStop    Action = "Stop"
	ActionRestart Action = "Restart"
	ActionDelete  Action = "Delete"
)

// transitions is the state machine: for each state, the actions a user may
// take and the transitional state each leads to. Anything absent is refused.
var transitions = map[State]map[Action]State{
	StateCreating:     {ActionDelete: StateDeleting},
	StateCreateFailed: {ActionDelete: StateDeleting},
	StateRunning:      {ActionStop: StateStopping, ActionRestart: StateRestarting, ActionDelete: StateDeleting},
	StateStopping:     {ActionDelete: StateDeleting},
	StateStopped:      {ActionStart: StateStarting, ActionDelete: StateDeleting},
	StateStarting:     {ActionDelete: StateDeleting},
	StateRestarting:   {ActionDelete: StateDeleting},
	StateSetupFailed:  {ActionStop: StateStopping, ActionRestart: StateRestarting, ActionDelete: StateDeleting},
	StateUnusable:     {ActionDelete: StateDeleting},
}

// outcomes says where a transitional state ends, on success and on failure.
var outcomes = map[State]struct{ Done, Failed State }{
	StateCreating:   {StateRunning, StateCreateFailed},
	StateStarting:   {StateRunning, StateStopped},
	StateStopping:   {StateStopped, StateRunning},
	StateRestarting: {StateRunning, StateUnusable},
	StateDeleting:   {"", StateUnusable},
}

// allowedFrom names, for the error message, the state an action needs.
var allowedFrom = map[Action]string{
	ActionStart:   "stopped",
	ActionStop:    "running",
	ActionRestart: "running",
	ActionDelete:  "any state but deleting",
}

// Next returns the transitional state action leads to from s, or an error
// with an ARM code such as StartComputeInstanceOnlyAllowedInStoppedState.
func Next(s State, a Action, name string) (State, error) {
	if to, ok := transitions[s][a]; ok {
		return to, nil
	}
	return "", Errorf(KindConflict, string(a)+"ComputeInstanceOnlyAllowedIn"+stateWord(a)+"State",
		"%s Azure ML Compute Instance is only allowed when the instance %q is in '%s' state. Current state is '%s'.",
		a, name, allowedFrom[a], s)
}

func stateWord(a Action) string {
	switch a {
	case ActionStart:
		return "Stopped"
	case ActionStop, ActionRestart:
		return "Running"
	}
	return "NonDeleting"
}

// Transitional reports whether s is a state an operation is moving through.
func Transitional(s State) bool {
	_, ok := outcomes[s]
	return ok
}

// Outcome returns where transitional state s ends.
func Outcome(s State, ok bool) State {
	o := outcomes[s]
	if ok {
		return o.Done
	}
	return o.Failed
}
