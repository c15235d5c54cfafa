package armtemplate

import (
	"encoding/json"
	"os"
	"testing"
)

func TestUniqueString(t *testing.T) {
	tests := []struct {
		args []string
		want string
		src  string
	}{
		// Outputs recorded in KingslandConsulting/Kingsland.ArmLinter
		// src/Kingsland.ArmLinter/Functions/ArmStringFunctions.cs, a
		// third-party linter whose authors took them from ARM (tail 3,
		// and 11 bytes: one block and a tail of 3).
		{[]string{"aaa"}, "zavj67f3en4hc", "Kingsland.ArmLinter"},
		{[]string{"bbb"}, "w5eragfxe33cy", "Kingsland.ArmLinter"},
		{[]string{"zzz"}, "cryksdzzzawae", "Kingsland.ArmLinter"},
		{[]string{"xxx", "yyy", "zzz"}, "lghi7k5js7itq", "Kingsland.ArmLinter"},
		// Azure/terraform-provider-azapi's unique_string test (63 bytes: tail
		// of 7, the branch where azapi and Kudu could differ; they agree here).
		{[]string{"/subscriptions/00000000-0000-0000-0000-000000000000", "resource-id"}, "cwvxuqg24sifi", "terraform-provider-azapi"},
		// Outputs of Microsoft's own engine (Azure.Deployments.Expression),
		// covering the tails of 5, 6 and 7 bytes: Azure/bicep at
		// 9beb0fee60ca53458f41492b699af440367b240b,
		// src/Bicep.Core.Samples/Files/baselines_bicepparam/Expressions/parameters.json,
		// src/Bicep.Core.UnitTests/TypeSystem/FunctionResolverTests.cs,
		// src/Bicep.Cli.IntegrationTests/Files/SnapshotCommandTests/basic/main.snapshot.json
		// and JsonRpcCommandTests.cs; microsoft/commercial-marketplace-offer-deploy
		// ArmFunctionsTests.cs, which calls that engine (its first version
		// expected "yeygmhukyx3qg", from another input; the engine gives
		// this value for the string as written).
		{[]string{"asd", "asdf", "asdf"}, "iizpqit7ih3cc", "Azure/bicep parameters.json"},
		{[]string{"snap", "crackle", "pop"}, "byghxckddilkc", "Azure/bicep FunctionResolverTests.cs"},
		{[]string{"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/myRg"}, "js26ofeqkqeve", "Azure/bicep main.snapshot.json"},
		{[]string{"/subscriptions/11068ed9-6c31-4a47-8183-4eca6d84bb32/resourceGroups/myRg"}, "pwt7yebfrftwu", "Azure/bicep JsonRpcCommandTests.cs"},
		{[]string{"/subscriptions/31e9f9a0-9fd2-4294-a0a3-0101246d9700/resourceGroups/rg-modm201-20230913120256/providers/Microsoft.Compute/virtualMachines/bobjacmodm201"}, "yvjxno3je5on2", "commercial-marketplace-offer-deploy"},
	}
	for _, tt := range tests {
		if got := uniqueString(tt.args...); got != tt.want {
			t.Errorf("uniqueString(%q) = %q, want %q (%s)", tt.args, got, tt.want, tt.src)
		}
	}
}

func readGolden(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestMurmurTails pins the hash for every tail length 0..7, so that a
// change to the tail handling shows. The values in
// testdata/unique_string_tails.json were computed by this port of Kudu's
// HashHelper (regressions, not ARM outputs); the real-output vectors
// above cover tails of 3 and 7 bytes.
func TestMurmurTails(t *testing.T) {
	var golden map[string]string
	readGolden(t, "unique_string_tails.json", &golden)
	if len(golden) != 10 {
		t.Fatalf("golden vectors = %d, want 10", len(golden))
	}
	seen := map[string]string{}
	for in, want := range golden {
		got := uniqueString(in)
		if got != want {
			t.Errorf("uniqueString(%q) = %q, want %q", in, got, want)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("uniqueString(%q) = uniqueString(%q) = %q, want them different", in, prev, got)
		}
		seen[got] = in
	}
}

func TestGUID(t *testing.T) {
	// Outputs of Microsoft's engine (Azure.Deployments.Expression), from
	// Azure/bicep at 9beb0fee60ca53458f41492b699af440367b240b:
	// baselines_bicepparam/Expressions/parameters.json and
	// FunctionResolverTests.cs. They settle the construction: UUID v5 over
	// the namespace 11fb06fb-712d-4ddd-98c7-e71bbd588830, the arguments
	// joined with "-".
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"asdf"}, "228d27cc-6fdb-5934-b7ac-1efccebade04"},
		{[]string{"foo", "bar", "baz"}, "2ed86837-7c7c-5eaa-9864-dd077fd19b0d"},
	} {
		if got := armGUID(tt.args...); got != tt.want {
			t.Errorf("guid(%q) = %q, want %q (Azure/bicep)", tt.args, got, tt.want)
		}
	}
	// testdata/guid.json: more inputs, checked against an independent
	// implementation (Python's uuid.uuid5).
	var golden []struct {
		Args []string `json:"args"`
		Want string   `json:"want"`
	}
	readGolden(t, "guid.json", &golden)
	if len(golden) == 0 {
		t.Fatal("no guid vectors, want some")
	}
	for _, tt := range golden {
		if got := armGUID(tt.Args...); got != tt.Want {
			t.Errorf("guid(%q) = %q, want %q", tt.Args, got, tt.Want)
		}
	}
}
