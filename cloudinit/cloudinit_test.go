package cloudinit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// typicalConfig is a compute instance as the simulator creates it. The keys
// in testdata/keys were made for these tests only.
func typicalConfig(t testing.TB) Config {
	t.Helper()
	return Config{
		InstanceID: "0d6c1a4e-7b7f-4b8e-9a55-3f0e2f1c9d21",
		Hostname:   "ci-alice-01",
		AuthorizedKeys: []string{
			readTestdata(t, "keys/user_ed25519.pub"), // ends in "\n", trimmed
			readTestdata(t, "keys/mgmt_ecdsa.pub"),
		},
		HostKeys: []HostKey{{
			Type:    "ed25519",
			Private: readTestdata(t, "keys/host_ed25519"),
			Public:  readTestdata(t, "keys/host_ed25519.pub"),
		}},
		Mounts: []Mount{
			{Tag: "cloudfiles", Path: "/mnt/batch/tasks/shared/LS_root/mounts/clusters/ci-alice-01/code"},
			{Tag: "datastore0", Path: "/mnt/datastore"},
		},
		Files: []File{
			{
				Path:        "/etc/amlsim/instance.json",
				Content:     []byte("{\"name\": \"ci-alice-01\", \"note\": \"quotes \\\" colons: # hashes\"}\n"),
				Permissions: "0644",
			},
			{
				Path:        "/usr/local/bin/amlsim-ready",
				Content:     []byte("#!/bin/sh\necho ready > /run/amlsim-ready\n"),
				Permissions: "0755",
				Owner:       "root:root",
			},
			{
				Path:    "/home/azureuser/.config/amlsim/token",
				Content: []byte{0x00, 0xff, 0xfe, '\n', 'x'},
				Owner:   "azureuser:azureuser",
			},
		},
		BootCmd: [][]string{
			{"systemctl", "mask", "--now", "unattended-upgrades.service"},
		},
		RunCmd: [][]string{
			{"/usr/local/bin/amlsim-ready"},
			{"sh", "-c", "echo \"$1\" > /tmp/greeting", "sh", "it's 'quoted' & $HOME; # not a comment"},
		},
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	c := typicalConfig(t)
	ud, err := c.UserData()
	if err != nil {
		t.Fatal(err)
	}
	md, err := c.MetaData()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "user-data.golden", ud)
	checkGolden(t, "meta-data.golden", md)
	checkGolden(t, "network-config.golden", c.NetworkConfig())

	c.MACAddress = "52:54:00:AB:CD:EF"
	checkGolden(t, "network-config-mac.golden", c.NetworkConfig())
}

// decodeUserData parses user-data the way a reader that knows nothing of
// this package would.
func decodeUserData(t testing.TB, ud []byte) map[string]any {
	t.Helper()
	if !bytes.HasPrefix(ud, []byte("#cloud-config\n")) {
		t.Fatalf("user-data does not start with #cloud-config: %q", ud)
	}
	var m map[string]any
	if err := yaml.Unmarshal(ud, &m); err != nil {
		t.Fatalf("user-data does not parse: %v\n%s", err, ud)
	}
	return m
}

func TestUserDataContent(t *testing.T) {
	c := typicalConfig(t)
	ud, err := c.UserData()
	if err != nil {
		t.Fatal(err)
	}
	m := decodeUserData(t, ud)

	for key, want := range map[string]any{
		"hostname":         "ci-alice-01",
		"fqdn":             "ci-alice-01",
		"manage_etc_hosts": true,
		"ssh_pwauth":       false,
		"disable_root":     true,
		"ssh_deletekeys":   true,
		"resize_rootfs":    true,
		"package_update":   false,
		"package_upgrade":  false,
	} {
		if !reflect.DeepEqual(m[key], want) {
			t.Errorf("%s = %#v, want %#v", key, m[key], want)
		}
	}
	for _, key := range []string{"packages", "apt", "ntp", "snap", "phone_home", "chpasswd", "password"} {
		if _, ok := m[key]; ok {
			t.Errorf("user-data has %q, which the seed should not ask for", key)
		}
	}

	wantUser := map[string]any{
		"name":        "azureuser",
		"groups":      "sudo",
		"shell":       "/bin/bash",
		"sudo":        "ALL=(ALL) NOPASSWD:ALL",
		"lock_passwd": true,
		"ssh_authorized_keys": []any{
			strings.TrimSpace(readTestdata(t, "keys/user_ed25519.pub")),
			strings.TrimSpace(readTestdata(t, "keys/mgmt_ecdsa.pub")),
		},
	}
	if users := m["users"].([]any); len(users) != 1 || !reflect.DeepEqual(users[0], wantUser) {
		t.Errorf("users = %#v\nwant [%#v]", m["users"], wantUser)
	}

	wantGrow := map[string]any{"mode": "auto", "devices": []any{"/"}, "ignore_growroot_disabled": false}
	if !reflect.DeepEqual(m["growpart"], wantGrow) {
		t.Errorf("growpart = %#v, want %#v", m["growpart"], wantGrow)
	}

	keys := m["ssh_keys"].(map[string]any)
	if keys["ed25519_private"] != readTestdata(t, "keys/host_ed25519") {
		t.Errorf("ed25519_private = %q", keys["ed25519_private"])
	}
	if keys["ed25519_public"] != strings.TrimSpace(readTestdata(t, "keys/host_ed25519.pub")) {
		t.Errorf("ed25519_public = %q", keys["ed25519_public"])
	}

	wantBoot := []any{
		[]any{"mkdir", "-p", c.Mounts[0].Path},
		[]any{"sh", "-c", mountScript, "cloudinit-mount", c.Mounts[0].Path, "cloudfiles"},
		[]any{"mkdir", "-p", "/mnt/datastore"},
		[]any{"sh", "-c", mountScript, "cloudinit-mount", "/mnt/datastore", "datastore0"},
		[]any{"systemctl", "mask", "--now", "unattended-upgrades.service"},
	}
	if !reflect.DeepEqual(m["bootcmd"], wantBoot) {
		t.Errorf("bootcmd = %#v\nwant %#v", m["bootcmd"], wantBoot)
	}
	wantRun := []any{
		[]any{"/usr/local/bin/amlsim-ready"},
		[]any{"sh", "-c", "echo \"$1\" > /tmp/greeting", "sh", "it's 'quoted' & $HOME; # not a comment"},
	}
	if !reflect.DeepEqual(m["runcmd"], wantRun) {
		t.Errorf("runcmd = %#v\nwant %#v", m["runcmd"], wantRun)
	}

	files := m["write_files"].([]any)
	if len(files) != len(c.Files) {
		t.Fatalf("write_files has %d entries, want %d", len(files), len(c.Files))
	}
	wantMeta := []struct {
		perm, owner string
		deferred    bool
	}{
		{"0644", "root:root", false},
		{"0755", "root:root", false},
		{"0644", "azureuser:azureuser", true},
	}
	for i, raw := range files {
		f := raw.(map[string]any)
		content, err := base64.StdEncoding.DecodeString(f["content"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if f["path"] != c.Files[i].Path || f["encoding"] != "b64" || !bytes.Equal(content, c.Files[i].Content) {
			t.Errorf("write_files[%d] = %#v (content %q)", i, f, content)
		}
		deferred, _ := f["defer"].(bool)
		if f["permissions"] != wantMeta[i].perm || f["owner"] != wantMeta[i].owner || deferred != wantMeta[i].deferred {
			t.Errorf("write_files[%d] perm/owner/defer = %v %v %v, want %+v", i, f["permissions"], f["owner"], deferred, wantMeta[i])
		}
	}
}

func TestUserDataMinimal(t *testing.T) {
	c := Config{
		InstanceID:     "i-1",
		Hostname:       "vm",
		User:           "bob",
		AuthorizedKeys: []string{readTestdata(t, "keys/user_ed25519.pub")},
	}
	ud, err := c.UserData()
	if err != nil {
		t.Fatal(err)
	}
	m := decodeUserData(t, ud)
	for _, key := range []string{"ssh_keys", "bootcmd", "runcmd", "write_files"} {
		if _, ok := m[key]; ok {
			t.Errorf("minimal user-data has %q:\n%s", key, ud)
		}
	}
	if name := m["users"].([]any)[0].(map[string]any)["name"]; name != "bob" {
		t.Errorf("user name = %v, want bob", name)
	}
}

func TestMetaData(t *testing.T) {
	c := typicalConfig(t)
	md, err := c.MetaData()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(md, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"instance-id": c.InstanceID, "local-hostname": c.Hostname}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("meta-data = %#v, want %#v", m, want)
	}
}

func TestNetworkConfig(t *testing.T) {
	for _, tc := range []struct {
		mac   string
		id    string
		match map[string]any
	}{
		{"", "e*", map[string]any{"name": "e*"}},
		{"52:54:00:AB:CD:EF", "eth0", map[string]any{"macaddress": "52:54:00:ab:cd:ef"}},
	} {
		var m map[string]any
		if err := yaml.Unmarshal(Config{MACAddress: tc.mac}.NetworkConfig(), &m); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"version": 2,
			"ethernets": map[string]any{
				tc.id: map[string]any{"match": tc.match, "dhcp4": true, "dhcp6": false},
			},
		}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("MAC %q: network-config = %#v\nwant %#v", tc.mac, m, want)
		}
	}
}

func TestHostKeyPublicDerived(t *testing.T) {
	c := typicalConfig(t)
	c.HostKeys[0].Public = ""
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c.HostKeys = append(c.HostKeys,
		HostKey{Type: "ecdsa", Private: pemString(t, ecKey)},
		HostKey{Type: "rsa", Private: pemString(t, rsaKey)},
	)
	ud, err := c.UserData()
	if err != nil {
		t.Fatal(err)
	}
	keys := decodeUserData(t, ud)["ssh_keys"].(map[string]any)
	wantPub := strings.Fields(readTestdata(t, "keys/host_ed25519.pub"))
	if keys["ed25519_public"] != wantPub[0]+" "+wantPub[1] {
		t.Errorf("ed25519_public = %q, want %q", keys["ed25519_public"], wantPub[0]+" "+wantPub[1])
	}
	for _, typ := range []string{"ecdsa", "rsa"} {
		if keys[typ+"_private"] != c.HostKeys[map[string]int{"ecdsa": 1, "rsa": 2}[typ]].Private {
			t.Errorf("%s_private not carried over", typ)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(keys[typ+"_public"].(string)))
		if err != nil {
			t.Errorf("%s_public: %v", typ, err)
		} else if typ == "ecdsa" && pub.Type() != ssh.KeyAlgoECDSA384 {
			t.Errorf("ecdsa_public is %s", pub.Type())
		}
	}
}

func pemString(t testing.TB, key any) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block))
}

func TestValidationErrors(t *testing.T) {
	mgmt := readTestdata(t, "keys/mgmt_ecdsa.pub")
	hostPriv := readTestdata(t, "keys/host_ed25519")
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := ssh.MarshalPrivateKeyWithPassphrase(ecKey, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		modify func(*Config)
		want   error
	}{
		{"empty instance-id", func(c *Config) { c.InstanceID = "" }, ErrInstanceID},
		{"instance-id with slash", func(c *Config) { c.InstanceID = "a/b" }, ErrInstanceID},
		{"instance-id with newline", func(c *Config) { c.InstanceID = "a\nb" }, ErrInstanceID},
		{"instance-id dotdot", func(c *Config) { c.InstanceID = ".." }, ErrInstanceID},
		{"empty hostname", func(c *Config) { c.Hostname = "" }, ErrHostname},
		{"hostname underscore", func(c *Config) { c.Hostname = "bad_host" }, ErrHostname},
		{"hostname leading hyphen", func(c *Config) { c.Hostname = "-vm" }, ErrHostname},
		{"hostname trailing hyphen", func(c *Config) { c.Hostname = "vm-" }, ErrHostname},
		{"hostname with dot", func(c *Config) { c.Hostname = "vm.example.com" }, ErrHostname},
		{"hostname 64 chars", func(c *Config) { c.Hostname = strings.Repeat("a", 64) }, ErrHostname},
		{"hostname YAML", func(c *Config) { c.Hostname = "a: b" }, ErrHostname},
		{"hostname unicode", func(c *Config) { c.Hostname = "hôte" }, ErrHostname},
		{"user root", func(c *Config) { c.User = "root" }, ErrUser},
		{"user uppercase", func(c *Config) { c.User = "Alice" }, ErrUser},
		{"user with space", func(c *Config) { c.User = "a b" }, ErrUser},
		{"no authorized keys", func(c *Config) { c.AuthorizedKeys = nil }, ErrAuthorizedKey},
		{"garbage key", func(c *Config) { c.AuthorizedKeys = []string{"ssh-ed25519 not-base64"} }, ErrAuthorizedKey},
		{"empty key", func(c *Config) { c.AuthorizedKeys = []string{"  \n"} }, ErrAuthorizedKey},
		{"two keys in one", func(c *Config) { c.AuthorizedKeys = []string{mgmt + mgmt} }, ErrAuthorizedKey},
		{"key with CR", func(c *Config) { c.AuthorizedKeys = []string{strings.TrimSpace(mgmt) + "\rextra"} }, ErrAuthorizedKey},
		{"host key bad type", func(c *Config) { c.HostKeys[0].Type = "dsa" }, ErrHostKey},
		{"host key type mismatch", func(c *Config) { c.HostKeys[0].Type = "rsa" }, ErrHostKey},
		{"host key garbage", func(c *Config) {
			c.HostKeys[0].Private = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
		}, ErrHostKey},
		{"host key encrypted", func(c *Config) {
			c.HostKeys[0] = HostKey{Type: "ecdsa", Private: string(pem.EncodeToMemory(encrypted))}
		}, ErrHostKey},
		{"host key public mismatch", func(c *Config) { c.HostKeys[0].Public = mgmt }, ErrHostKey},
		{"host key duplicate", func(c *Config) {
			c.HostKeys = append(c.HostKeys, HostKey{Type: "ed25519", Private: hostPriv})
		}, ErrHostKey},
		{"mount empty tag", func(c *Config) { c.Mounts[0].Tag = "" }, ErrMount},
		{"mount long tag", func(c *Config) { c.Mounts[0].Tag = strings.Repeat("t", 37) }, ErrMount},
		{"mount tag control", func(c *Config) { c.Mounts[0].Tag = "a\nb" }, ErrMount},
		{"mount relative", func(c *Config) { c.Mounts[0].Path = "mnt/x" }, ErrMount},
		{"mount root", func(c *Config) { c.Mounts[0].Path = "/" }, ErrMount},
		{"mount unclean", func(c *Config) { c.Mounts[0].Path = "/mnt/../etc" }, ErrMount},
		{"mount twice", func(c *Config) { c.Mounts[1].Path = c.Mounts[0].Path }, ErrMount},
		{"file relative", func(c *Config) { c.Files[0].Path = "etc/x" }, ErrFile},
		{"file NUL path", func(c *Config) { c.Files[0].Path = "/etc/x\x00y" }, ErrFile},
		{"file permissions", func(c *Config) { c.Files[0].Permissions = "rwxr-xr-x" }, ErrFile},
		{"file permissions 8", func(c *Config) { c.Files[0].Permissions = "0844" }, ErrFile},
		{"file owner", func(c *Config) { c.Files[0].Owner = "root; rm -rf /" }, ErrFile},
		{"file twice", func(c *Config) { c.Files[1].Path = c.Files[0].Path }, ErrFile},
		{"runcmd empty argv", func(c *Config) { c.RunCmd = append(c.RunCmd, []string{}) }, ErrCommand},
		{"runcmd empty program", func(c *Config) { c.RunCmd = append(c.RunCmd, []string{"", "x"}) }, ErrCommand},
		{"runcmd NUL", func(c *Config) { c.RunCmd = append(c.RunCmd, []string{"echo", "a\x00b"}) }, ErrCommand},
		{"bootcmd not UTF-8", func(c *Config) { c.BootCmd = append(c.BootCmd, []string{"echo", "\xff"}) }, ErrCommand},
		{"bad MAC", func(c *Config) { c.MACAddress = "52:54:00:zz:00:01" }, ErrMACAddress},
		{"long MAC", func(c *Config) { c.MACAddress = "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01" }, ErrMACAddress},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := typicalConfig(t)
			tc.modify(&c)
			err := c.Validate()
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want an error wrapping %v", err, tc.want)
			}
			if _, err := c.UserData(); !errors.Is(err, tc.want) {
				t.Errorf("UserData() error = %v", err)
			}
			if _, err := c.MetaData(); !errors.Is(err, tc.want) {
				t.Errorf("MetaData() error = %v", err)
			}
			if _, err := c.ISO(); !errors.Is(err, tc.want) {
				t.Errorf("ISO() error = %v", err)
			}
		})
	}
}

func TestValidationReportsAll(t *testing.T) {
	err := Config{}.Validate()
	for _, want := range []error{ErrInstanceID, ErrHostname, ErrAuthorizedKey} {
		if !errors.Is(err, want) {
			t.Errorf("Validate() of the zero Config = %v, missing %v", err, want)
		}
	}
}

func TestValidAccepted(t *testing.T) {
	for name, modify := range map[string]func(*Config){
		"typical":          func(*Config) {},
		"hostname 63":      func(c *Config) { c.Hostname = strings.Repeat("a", 63) },
		"hostname 1":       func(c *Config) { c.Hostname = "a" },
		"hostname digits":  func(c *Config) { c.Hostname = "0123" },
		"hostname upper":   func(c *Config) { c.Hostname = "CI-Alice" },
		"key with options": func(c *Config) { c.AuthorizedKeys[0] = `from="10.0.2.2",no-pty ` + c.AuthorizedKeys[0] },
		"key CRLF":         func(c *Config) { c.AuthorizedKeys[0] = strings.TrimSpace(c.AuthorizedKeys[0]) + "\r\n" },
		"tag with space":   func(c *Config) { c.Mounts[0].Tag = "my share" },
		"tag 36":           func(c *Config) { c.Mounts[0].Tag = strings.Repeat("t", 36) },
		"argv any text":    func(c *Config) { c.RunCmd = [][]string{{"echo", "", "\n", "'\"$`\\", "#", "- x", ": y", "🙂"}} },
		"MAC dashes":       func(c *Config) { c.MACAddress = "52-54-00-12-34-56" },
		"perm 3 digits":    func(c *Config) { c.Files[0].Permissions = "600" },
		"owner user only":  func(c *Config) { c.Files[0].Owner = "azureuser" },
	} {
		c := typicalConfig(t)
		modify(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v", name, err)
		}
	}
}

func TestStaticNetworkConfig(t *testing.T) {
	c := typicalConfig(t)
	c.MACAddress = "52:54:00:ab:cd:ef"
	c.Static = &StaticIPv4{Address: "10.0.2.15/24", Gateway: "10.0.2.2", Nameservers: []string{"10.0.2.3"}}
	got := string(c.NetworkConfig())
	want := `version: 2
ethernets:
  eth0:
    match:
      macaddress: "52:54:00:ab:cd:ef"
    dhcp4: false
    dhcp6: false
    addresses:
      - "10.0.2.15/24"
    gateway4: "10.0.2.2"
    nameservers:
      addresses:
        - "10.0.2.3"
`
	if got != want {
		t.Errorf("network-config:\n%s\nwant:\n%s", got, want)
	}
	c.Static = &StaticIPv4{Address: "10.0.2.15", Gateway: "gw"}
	if err := c.Validate(); !errors.Is(err, ErrStatic) {
		t.Errorf("Validate of a bad static address: %v, want ErrStatic", err)
	}
}
