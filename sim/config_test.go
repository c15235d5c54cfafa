package sim_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/amlsim/amlsim/sim"
)

// The sample config in fixtures documents every key with its default: read
// as a config, it must give exactly the built-in defaults.
func TestSampleConfigIsTheDefaults(t *testing.T) {
	// Decoded over nothing, so a key the sample leaves out shows.
	var got sim.Config
	if _, err := toml.DecodeFile("../fixtures/amlsim.toml", &got); err != nil {
		t.Fatal(err)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := sim.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("sample config = %+v\nwant defaults %+v", got, want)
	}
}

func TestParseConfig(t *testing.T) {
	cfg, err := sim.ParseConfig("text", "page_size = 3\n[fake]\ndelay = \"10ms\"\n")
	if err != nil {
		t.Fatal(err)
	}
	want := sim.DefaultConfig()
	want.PageSize = 3
	want.Fake.Delay.Duration = 10 * time.Millisecond
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("ParseConfig = %+v\nwant the defaults with page_size 3 and a 10ms delay: %+v", cfg, want)
	}
	if _, err := sim.ParseConfig("inline", "pagesize = 3\n"); err == nil || !strings.Contains(err.Error(), "config inline: unknown keys: pagesize") {
		t.Errorf("ParseConfig with a typo = %v, want it named with the text's name", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key":        "pagesize = 3\n",
		"bad duration":       "[timeouts]\nssh_ready = \"soon\"\n",
		"workspace region":   "[[workspaces]]\nresource_group = \"rg\"\nname = \"ws-x\"\nlocation = \"mars\"\n",
		"bad port range":     "[local]\nport_range = [80, 90]\n",
		"bad workspace name": "[[workspaces]]\nresource_group = \"rg\"\nname = \"w\"\nlocation = \"eastus\"\n",
	} {
		path := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(path, []byte(body), 0o600)
		if _, err := sim.LoadConfig(path); err == nil {
			t.Errorf("%s: config accepted", name)
		} else if !strings.Contains(err.Error(), "c.toml") && !strings.Contains(err.Error(), "config") {
			t.Errorf("%s: error %q does not say it is about the config", name, err)
		}
		if _, err := sim.ParseConfig("text", body); err == nil {
			t.Errorf("%s: config text accepted", name)
		}
	}
}
