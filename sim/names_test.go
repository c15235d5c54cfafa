package sim

import "testing"

// Azure ML's rule for compute instance names (how-to-create-compute-instance):
// 3-24 characters, letters, digits and '-', a letter first, and a '-'
// followed by at least one letter later in the name.
func TestComputeNames(t *testing.T) {
	for name, want := range map[string]bool{
		"abc": true, "ci-x": true, "ci-x2": true, "a-b-c": true, "a1-2b": true, "Abc123": true,
		"abcdefghijklmnopqrstuvwx": true, "abcdefghijklmnopqrstuvwxy": false,
		"ab": false, "1abc": false, "-abc": false, "abc-": false, "ab--": false, "a-1": false,
		"cpu-cluster-1": false, "a--b": true, "a_b": false, "a.b": false, "ci-1x": true,
	} {
		if got := CheckComputeName(name) == nil; got != want {
			t.Errorf("name %q valid = %v, want %v", name, got, want)
		}
	}
}
