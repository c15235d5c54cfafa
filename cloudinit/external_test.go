package cloudinit

// Tests that check the rendered documents with the programs that consume
// them: cloud-init itself and PyYAML, the YAML parser it uses. Each one skips,
// saying why, when the program is not installed (Debian: apt-get install
// cloud-init, which brings python3-yaml).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// schemaConfigs are valid configurations that between them use every
// feature of the user-data.
func schemaConfigs(t *testing.T) map[string]Config {
	t.Helper()
	allKeys := typicalConfig(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	allKeys.HostKeys = append(allKeys.HostKeys,
		HostKey{Type: "ecdsa", Private: pemString(t, ecKey)},
		HostKey{Type: "rsa", Private: pemString(t, rsaKey)})
	allKeys.User = "bob"
	allKeys.RunCmd = append(allKeys.RunCmd, []string{"printf", "%s\n", "=", "yes", "1:20", "~", "\t\u2028🙂", ""})
	return map[string]Config{
		"typical": typicalConfig(t),
		"minimal": {
			InstanceID:     "i-1",
			Hostname:       "vm",
			AuthorizedKeys: []string{readTestdata(t, "keys/user_ed25519.pub")},
		},
		"all host key types": allKeys,
	}
}

func TestCloudInitSchema(t *testing.T) {
	bin, err := exec.LookPath("cloud-init")
	if err != nil {
		t.Skip("cloud-init is not installed (apt-get install cloud-init); user-data not checked against its schema")
	}
	dir := t.TempDir()
	for name, c := range schemaConfigs(t) {
		ud, err := c.UserData()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		if err := os.WriteFile(p, ud, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "schema", "--config-file", p).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("Valid cloud-config")) ||
			bytes.Contains(bytes.ToLower(out), []byte("deprecat")) {
			t.Errorf("%s: cloud-init schema: %v\n%s\n%s", name, err, out, ud)
		}
	}
}

// pyYAML returns a python3 that can import yaml, or skips the test.
func pyYAML(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import yaml").Run() == nil {
			return py
		}
	}
	t.Skip("no python3 with PyYAML (apt-get install python3-yaml); YAML 1.1 reading not checked")
	return ""
}

// pyLoadScript prints, as one JSON list, yaml.safe_load of each file named
// on the command line, the way cloud-init loads user-data.
const pyLoadScript = `
import json, sys, yaml
docs = [yaml.safe_load(open(p, encoding="utf-8")) for p in sys.argv[1:]]
print(json.dumps(docs))
`

// TestPyYAMLAgrees checks that PyYAML's safe_load reads exactly what
// yaml.v3 reads, for the usual configs and for every nasty string in every
// text field, so what cloud-init sees is what the Go side wrote.
func TestPyYAMLAgrees(t *testing.T) {
	py := pyYAML(t)
	dir := t.TempDir()
	var files [][]byte
	add := func(b []byte) { files = append(files, b) }
	for _, c := range schemaConfigs(t) {
		ud, err := c.UserData()
		if err != nil {
			t.Fatal(err)
		}
		md, err := c.MetaData()
		if err != nil {
			t.Fatal(err)
		}
		add(ud)
		add(md)
		add(c.NetworkConfig())
		c.MACAddress = "52:54:00:12:34:56"
		add(c.NetworkConfig())
	}
	for _, s := range nastyStrings {
		if !utf8.ValidString(s) {
			continue // rejected by Validate; PyYAML would read !!binary as bytes
		}
		c := Config{
			InstanceID:     s,
			Hostname:       s,
			AuthorizedKeys: []string{fuzzKeyPrefix + " " + s, s},
			HostKeys:       []HostKey{{Type: "ed25519", Private: s, Public: s}},
			Mounts:         []Mount{{Tag: s, Path: s}},
			Files:          []File{{Path: s, Content: []byte(s), Owner: s, Permissions: s}},
			BootCmd:        [][]string{{s}, {s, s}},
			RunCmd:         [][]string{{s, "x", s}},
		}
		ud, err := c.renderUserData()
		if err != nil {
			t.Fatal(err)
		}
		md, err := marshalYAML(c.metaDataDoc())
		if err != nil {
			t.Fatal(err)
		}
		add(ud)
		add(md)
	}

	args := []string{"-c", pyLoadScript}
	for i, b := range files {
		p := filepath.Join(dir, fmt.Sprintf("%03d.yaml", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(py, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("PyYAML could not load the documents: %v\n%s", err, stderr.Bytes())
	}
	var fromPy []any
	if err := json.Unmarshal(stdout.Bytes(), &fromPy); err != nil {
		t.Fatal(err)
	}
	if len(fromPy) != len(files) {
		t.Fatalf("PyYAML returned %d documents, want %d", len(fromPy), len(files))
	}
	for i, b := range files {
		var fromGo any
		if err := yaml.Unmarshal(b, &fromGo); err != nil {
			t.Fatal(err)
		}
		// Compare through JSON so both sides have the same Go types.
		j, err := json.Marshal(fromGo)
		if err != nil {
			t.Fatal(err)
		}
		var goView any
		if err := json.Unmarshal(j, &goView); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(goView, fromPy[i]) {
			pj, _ := json.Marshal(fromPy[i])
			t.Errorf("PyYAML and yaml.v3 disagree on\n%s\nPyYAML:  %s\nyaml.v3: %s", b, pj, j)
		}
	}
}

// TestNetworkConfigCloudInit converts network-config with cloud-init's own
// network code into what each renderer writes.
func TestNetworkConfigCloudInit(t *testing.T) {
	bin, err := exec.LookPath("cloud-init")
	if err != nil {
		t.Skip("cloud-init is not installed (apt-get install cloud-init); network-config not checked with it")
	}
	convert := func(t *testing.T, cfg []byte, renderer string) string {
		t.Helper()
		dir := t.TempDir()
		in := filepath.Join(dir, "network-config")
		if err := os.WriteFile(in, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		outDir := filepath.Join(dir, "out")
		out, err := exec.Command(bin, "devel", "net-convert", "-p", in, "-k", "yaml",
			"-d", outDir, "-D", "ubuntu", "-O", renderer).CombinedOutput()
		if err != nil {
			t.Fatalf("net-convert -O %s: %v\n%s", renderer, err, out)
		}
		var all strings.Builder
		err = filepath.WalkDir(outDir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			all.Write(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return all.String()
	}

	// netplan (Ubuntu) takes the document as it is, glob and all; the
	// networkd renderer (amlsim's Debian image) matches the same glob.
	for renderer, want := range map[string][]string{
		"netplan":  {"name: e*", "dhcp4: true"},
		"networkd": {"[Match]\nName=e*\n", "DHCP=ipv4"},
	} {
		out := convert(t, Config{}.NetworkConfig(), renderer)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s output lacks %q:\n%s", renderer, w, out)
			}
		}
	}
	// With a MAC address every renderer finds the NIC.
	withMAC := Config{MACAddress: "52:54:00:12:34:56"}.NetworkConfig()
	for renderer, want := range map[string][]string{
		"netplan":  {"macaddress: ", "52:54:00:12:34:56", "dhcp4: true"},
		"networkd": {"MACAddress=52:54:00:12:34:56", "DHCP=ipv4"},
		"eni":      {`ATTR{address}=="52:54:00:12:34:56"`, "inet dhcp"},
	} {
		out := convert(t, withMAC, renderer)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s output lacks %q:\n%s", renderer, w, out)
			}
		}
	}
}
