package armtemplate

import "testing"

func TestUniqueString(t *testing.T) {
	tests := []struct {
		args []string
		want string
		src  string
	}{
		// Real ARM outputs recorded in KingslandConsulting/Kingsland.ArmLinter
		// src/Kingsland.ArmLinter/Functions/ArmStringFunctions.cs (tail 3,
		// and 11 bytes: one block and a tail of 3).
		{[]string{"aaa"}, "zavj67f3en4hc", "Kingsland.ArmLinter"},
		{[]string{"bbb"}, "w5eragfxe33cy", "Kingsland.ArmLinter"},
		{[]string{"zzz"}, "cryksdzzzawae", "Kingsland.ArmLinter"},
		{[]string{"xxx", "yyy", "zzz"}, "lghi7k5js7itq", "Kingsland.ArmLinter"},
		// Azure/terraform-provider-azapi's unique_string test (63 bytes: tail
		// of 7, the branch where azapi and Kudu could differ; they agree here).
		{[]string{"/subscriptions/00000000-0000-0000-0000-000000000000", "resource-id"}, "cwvxuqg24sifi", "terraform-provider-azapi"},
	}
	for _, tt := range tests {
		if got := uniqueString(tt.args...); got != tt.want {
			t.Errorf("uniqueString(%q) = %q, want %q (%s)", tt.args, got, tt.want, tt.src)
		}
	}
}

// Not a test: microsoft/commercial-marketplace-offer-deploy
// test/Tests/ArmFunctionsTests.cs gives "yeygmhukyx3qg" for
// uniqueString('/subscriptions/31e9f9a0-9fd2-4294-a0a3-0101246d9700/resourceGroups/rg-modm201-20230913120256/providers/Microsoft.Compute/virtualMachines/bobjacmodm201')
// (150 bytes, tail of 6). This port gives "yvjxno3je5on2" and azapi's
// variant "fj4eohglcqelm", while every other real output above agrees with
// this port; that vector's provenance is unsettled, and a real ARM output
// with a 5-7 byte tail would settle it.

// TestMurmurTails pins the hash for every tail length 0..7, so that a
// change to the tail handling shows. The values were computed by this
// port of Kudu's HashHelper; the real-output vectors above cover tails of
// 3 and 7 bytes.
func TestMurmurTails(t *testing.T) {
	inputs := []string{"", "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh", "abcdefghi"}
	seen := map[string]string{}
	for _, in := range inputs {
		got := uniqueString(in)
		if len(got) != 13 {
			t.Errorf("uniqueString(%q) = %q, want 13 characters", in, got)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("uniqueString(%q) = uniqueString(%q) = %q", in, prev, got)
		}
		seen[got] = in
	}
	for in, want := range murmurTailGolden {
		if got := uniqueString(in); got != want {
			t.Errorf("uniqueString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGUID(t *testing.T) {
	// No real ARM output for guid() was found in the searched public
	// material; these vectors check the construction (UUID v5 over the
	// namespace 11fb06fb-712d-4ddd-98c7-e71bbd588830, arguments joined with
	// "-") against an independent implementation (Python's uuid.uuid5).
	for _, tt := range guidGolden {
		if got := armGUID(tt.args...); got != tt.want {
			t.Errorf("guid(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

var guidGolden = []struct {
	args []string
	want string
}{
	{[]string{"a"}, "3703365d-5a9f-59b4-bca7-b9681389e4c1"},
	{[]string{"a", "b", "c"}, "a98fa280-e03f-5afa-8d8e-92d0a9c201e8"},
	{[]string{"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg", "reader"}, "7eff629c-5159-5da4-8090-b0b36e5c2629"},
}
