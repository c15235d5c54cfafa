package sim

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSplitArgs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{``, nil},
		{`a b  c`, []string{"a", "b", "c"}},
		{`"arg 2" 'it''s' x\ y`, []string{"arg 2", "its", "x y"}},
		{`"say \"hi\"" '$HOME' "$HOME"`, []string{`say "hi"`, "$HOME", "$HOME"}},
		{`--name=a\"b ''`, []string{`--name=a"b`, ""}},
	} {
		got, err := SplitArgs(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`"open`, `'open`} {
		if _, err := SplitArgs(bad); err == nil {
			t.Errorf("SplitArgs(%q) accepted", bad)
		}
	}
}

func TestParseScriptRefusesBadInput(t *testing.T) {
	share := t.TempDir()
	os.MkdirAll(filepath.Join(share, "Users", "ada"), 0o755)
	os.WriteFile(filepath.Join(share, "Users", "ada", "setup.sh"), []byte("echo hi\n"), 0o644)
	outside := filepath.Join(t.TempDir(), "secret.sh")
	os.WriteFile(outside, []byte("x"), 0o644)
	os.Symlink(outside, filepath.Join(share, "Users", "ada", "link.sh"))
	os.Symlink("../../../", filepath.Join(share, "Users", "ada", "up"))

	ok := []ScriptRequest{
		{ScriptSource: "inline", ScriptData: base64.StdEncoding.EncodeToString([]byte("echo hi")), ScriptArguments: `a "b c"`, Timeout: "10m"},
		{ScriptSource: "workspaceStorage", ScriptData: "Users/ada/setup.sh", Timeout: "1.5h"},
	}
	for _, r := range ok {
		if _, err := parseScript(Creation, r, share); err != nil {
			t.Errorf("%+v refused: %v", r, err)
		}
	}
	// Refused up front.
	bad := map[string]ScriptRequest{
		"empty inline":  {ScriptSource: "inline", ScriptData: ""},
		"no source":     {ScriptData: "x"},
		"bad timeout":   {ScriptSource: "inline", ScriptData: "ZWNobw==", Timeout: "ten minutes"},
		"huge timeout":  {ScriptSource: "inline", ScriptData: "ZWNobw==", Timeout: "9223372036s"},
		"year+ timeout": {ScriptSource: "inline", ScriptData: "ZWNobw==", Timeout: "366d"},
		"bad arguments": {ScriptSource: "inline", ScriptData: "ZWNobw==", ScriptArguments: `"open`},
	}
	for name, r := range bad {
		_, err := parseScript(Creation, r, share)
		if !IsKind(err, KindBadRequest) {
			t.Errorf("%s: err = %v, want a 400", name, err)
		}
	}
	// Accepted, to fail in the VM as on Azure: never read from outside
	// the share.
	missing := map[string]ScriptRequest{
		"not base64":      {ScriptSource: "inline", ScriptData: "%%%"},
		"unknown source":  {ScriptSource: "http", ScriptData: "x"},
		"dot dot":         {ScriptSource: "workspaceStorage", ScriptData: "../../etc/passwd"},
		"absolute":        {ScriptSource: "workspaceStorage", ScriptData: "/etc/passwd"},
		"symlink out":     {ScriptSource: "workspaceStorage", ScriptData: "Users/ada/link.sh"},
		"dir symlink out": {ScriptSource: "workspaceStorage", ScriptData: "Users/ada/up/etc/passwd"},
		"missing":         {ScriptSource: "workspaceStorage", ScriptData: "Users/ada/none.sh"},
		"a directory":     {ScriptSource: "workspaceStorage", ScriptData: "Users/ada"},
	}
	for name, r := range missing {
		sc, err := parseScript(Creation, r, share)
		if err != nil || sc.Missing == "" || (sc.Source == SourceWorkspaceStorage && sc.Data != nil) {
			t.Errorf("%s: %+v, %v; want a script marked missing", name, sc, err)
		}
	}
}
