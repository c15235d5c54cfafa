package rbac

import "testing"

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, action string
		want            bool
	}{
		{"*", "Microsoft.MachineLearningServices/workspaces/computes/read", true},
		{"*/read", "Microsoft.MachineLearningServices/workspaces/computes/read", true},
		{"*/read", "Microsoft.MachineLearningServices/workspaces/computes/write", false},
		{"Microsoft.MachineLearningServices/workspaces/computes/*", "microsoft.machinelearningservices/workspaces/computes/start/action", true},
		{"Microsoft.MachineLearningServices/workspaces/computes/*/action", "Microsoft.MachineLearningServices/workspaces/computes/stop/action", true},
		{"Microsoft.MachineLearningServices/workspaces/computes/*/action", "Microsoft.MachineLearningServices/workspaces/computes/read", false},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"Microsoft.MachineLearningServices/workspaces/computes/read", "Microsoft.MachineLearningServices/workspaces/computes/read", true},
		{"Microsoft.MachineLearningServices/workspaces/computes/read", "Microsoft.MachineLearningServices/workspaces/computes/readx", false},
	} {
		if got := Match(c.pattern, c.action); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.action, got, c.want)
		}
	}
}

func TestBuiltInRoles(t *testing.T) {
	const write = "Microsoft.Authorization/roleAssignments/write"
	const stop = "Microsoft.MachineLearningServices/workspaces/computes/stop/action"
	const read = "Microsoft.MachineLearningServices/workspaces/computes/read"
	for _, c := range []struct {
		role   Role
		action string
		want   bool
	}{
		{Owner, write, true}, {Contributor, write, false}, {Contributor, stop, true},
		{Reader, stop, false}, {Reader, read, true},
	} {
		if got := c.role.Grants(c.action); got != c.want {
			t.Errorf("%s grants %s = %v, want %v", c.role.Name, c.action, got, c.want)
		}
	}
}

func TestInScope(t *testing.T) {
	ws := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
	if !InScope("/subscriptions/s", ws+"/computes/c") || !InScope(ws, ws+"/computes/c") || !InScope("/SUBSCRIPTIONS/S/resourcegroups/RG", ws) {
		t.Error("ancestor scope not covering")
	}
	if InScope(ws+"x", ws+"x2/computes/c") || InScope("/subscriptions/s/resourceGroups/rg2", ws) {
		t.Error("a sibling scope covers")
	}
}
