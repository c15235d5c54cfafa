package studio

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// The vendored htmx is the one the lockfile pins: its bytes hash to the
// recorded sum (written when it was copied out of the npm package the
// lockfile's integrity names; `make studio-assets` redoes and checks it),
// and package.json, the lockfile and the file itself name one version.
func TestVendoredHTMXMatchesTheLockfile(t *testing.T) {
	js, err := staticFS.ReadFile("assets/static/htmx.min.js")
	if err != nil {
		t.Fatal(err)
	}
	want, err := staticFS.ReadFile("assets/static/htmx.min.js.sha256")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(js)
	if got := hex.EncodeToString(sum[:]); got != strings.TrimSpace(string(want)) {
		t.Errorf("htmx.min.js sha256 %s, recorded %s: re-vendor it with make studio-assets", got, want)
	}
	var pkg struct{ Dependencies map[string]string }
	var lock struct {
		Packages map[string]struct{ Version, Integrity string }
	}
	for name, v := range map[string]any{"assets/package.json": &pkg, "assets/package-lock.json": &lock} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	version := pkg.Dependencies["htmx.org"]
	locked := lock.Packages["node_modules/htmx.org"]
	if version == "" || locked.Version != version || locked.Integrity == "" || !strings.Contains(string(js), `version:"`+version+`"`) {
		t.Errorf("package.json pins %q, the lockfile %q (%s), the file says %v", version, locked.Version, locked.Integrity, strings.Contains(string(js), `version:"`+version+`"`))
	}
}
