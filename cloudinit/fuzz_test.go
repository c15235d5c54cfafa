package cloudinit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// fuzzKeyPrefix is a valid authorized_keys line without a comment; the
// fuzzer supplies the comment, so some inputs pass validation.
const fuzzKeyPrefix = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEYbfcnMgKlSdruq4+bk3F8t57aSfWX0OcWRfZNPAlQA"

// nastyStrings are inputs that break naive YAML templating or that a YAML
// 1.1 parser reads as something other than a string when left unquoted.
var nastyStrings = []string{
	"", " ", "  leading", "trailing  ", "\t", "a: b", "a:b", "- x", "? x", "#", "# c", "a #b",
	"'", "\"", "''", "\"\"", "\\", "\\n", "{", "}", "[", "]", "{a: b}", "[a, b]", ",", "&a", "*a", "!tag", "!!str x",
	"|", ">", "|-", ">+", "%", "@", "`", "---", "...", "--- x", "=", "<<", "~", "null", "Null", "NULL",
	"y", "Y", "n", "N", "yes", "No", "on", "OFF", "true", "False", "TRUE", "0", "-0", "+1", "0755", "0o755",
	"0x1F", "0b101", "1_000", "1:20", "190:20:30", "1e3", "1.5", ".5", ".inf", "-.Inf", ".NaN", "2001-12-14",
	"2001-12-14t21:59:43.10-05:00", "12:30:45", "\n", "\n\n", "a\n", "a\nb", "a\n\n", "\na", " \na", "a \n b ",
	"a\r\nb", "\r", "a\rb", "\x00", "a\x00b", "\x01\x02\x1f", "\x7f", "\u0085", "\u00a0", "\u2028", "\u2029",
	"\ufeff", "\ufeffa", "\ufffe", "\uffff", "é", "hôte", "日本語", "🙂", "a🙂b", "\U0010ffff", "\xff", "\xc3", "a\xffb",
	"$HOME", "$(reboot)", "`reboot`", "; rm -rf /", "a && b", "it's 'quoted'", strings.Repeat("x", 300),
	strings.Repeat("word ", 40), "#cloud-config", "%YAML 1.1", "\"a\": b", "key: 'v'\nother: 1",
}

func FuzzUserData(f *testing.F) {
	f.Add("ci-alice-01", "alice@example", []byte("#!/bin/sh\necho hi\n"), "echo", "it's: #fine")
	f.Add("vm", "", []byte{}, "", "")
	for i, s := range nastyStrings {
		next := nastyStrings[(i+1)%len(nastyStrings)]
		f.Add(s, next, []byte(s), next, s)
	}
	f.Fuzz(func(t *testing.T, hostname, comment string, content []byte, arg0, arg1 string) {
		c := Config{
			InstanceID:     hostname,
			Hostname:       hostname,
			AuthorizedKeys: []string{fuzzKeyPrefix + " " + comment},
			Mounts:         []Mount{{Tag: arg0, Path: "/mnt/" + arg1}},
			Files:          []File{{Path: "/" + arg0, Content: content}},
			BootCmd:        [][]string{{arg1}, {arg0, hostname, comment}},
			RunCmd:         [][]string{{arg0, arg1}, {comment, string(content)}},
		}
		checkRoundTrip(t, c)
	})
}

// checkRoundTrip renders c without validating it and checks that the YAML
// parses back to exactly the values that went in; then checks the public
// methods agree with Validate.
func checkRoundTrip(t *testing.T, c Config) {
	t.Helper()
	doc := c.userDataDoc()
	ud, err := c.renderUserData()
	if err != nil {
		t.Fatalf("rendering user-data: %v", err)
	}
	if !bytes.HasPrefix(ud, []byte(userDataHeader)) {
		t.Fatalf("user-data does not start with %q", userDataHeader)
	}
	var got userDataDoc
	if err := yaml.Unmarshal(ud, &got); err != nil {
		t.Fatalf("user-data does not parse: %v\n%s", err, ud)
	}
	if !reflect.DeepEqual(got, doc) {
		t.Fatalf("user-data parses back differently\n got %#v\nwant %#v\n%s", got, doc, ud)
	}

	// The parsed document holds the caller's values, not just the
	// document's: the hostname, the keys, the file bytes and every argv.
	if got.Hostname != c.Hostname || got.FQDN != c.Hostname {
		t.Fatalf("hostname %q / fqdn %q, want %q", got.Hostname, got.FQDN, c.Hostname)
	}
	var wantKeys []string
	for _, k := range c.AuthorizedKeys {
		wantKeys = append(wantKeys, trimKey(k))
	}
	if !reflect.DeepEqual(got.Users[0].SSHAuthorizedKeys, wantKeys) {
		t.Fatalf("keys %q, want %q", got.Users[0].SSHAuthorizedKeys, wantKeys)
	}
	for i, f := range c.Files {
		b, err := base64.StdEncoding.DecodeString(got.WriteFiles[i].Content)
		if err != nil || !bytes.Equal(b, f.Content) || got.WriteFiles[i].Path != f.Path {
			t.Fatalf("file %d: %q %q (%v), want %q %q", i, got.WriteFiles[i].Path, b, err, f.Path, f.Content)
		}
	}
	if !argvEqual(got.RunCmd, c.RunCmd) {
		t.Fatalf("runcmd %q, want %q", got.RunCmd, c.RunCmd)
	}
	var wantBoot [][]string
	for _, m := range c.Mounts {
		wantBoot = append(wantBoot, mountCmds(m)...)
	}
	wantBoot = append(wantBoot, c.BootCmd...)
	if !argvEqual(got.BootCmd, wantBoot) {
		t.Fatalf("bootcmd %q, want %q", got.BootCmd, wantBoot)
	}

	md, err := marshalYAML(c.metaDataDoc())
	if err != nil {
		t.Fatalf("rendering meta-data: %v", err)
	}
	var gotMD metaDataDoc
	if err := yaml.Unmarshal(md, &gotMD); err != nil {
		t.Fatalf("meta-data does not parse: %v\n%s", err, md)
	}
	if gotMD != c.metaDataDoc() {
		t.Fatalf("meta-data parses back as %#v\n%s", gotMD, md)
	}

	// The public methods render the same bytes for valid input and refuse
	// the rest with a wrapped sentinel.
	pub, err := c.UserData()
	if verr := c.Validate(); verr != nil {
		if !errors.Is(verr, ErrInvalidConfig) || !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Validate() = %v, UserData() error = %v; want ErrInvalidConfig", verr, err)
		}
		return
	}
	if err != nil || !bytes.Equal(pub, ud) {
		t.Fatalf("UserData() = %q, %v; want the unvalidated rendering", pub, err)
	}
	if pmd, err := c.MetaData(); err != nil || !bytes.Equal(pmd, md) {
		t.Fatalf("MetaData() = %q, %v", pmd, err)
	}
}

// argvEqual compares argv lists, treating nil and empty alike.
func argvEqual(a, b [][]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestNastyStrings runs every nasty string through each field the fuzzer
// covers, so the cases are checked on every plain go test run too.
func TestNastyStrings(t *testing.T) {
	for _, s := range nastyStrings {
		checkRoundTrip(t, Config{
			InstanceID:     s,
			Hostname:       s,
			AuthorizedKeys: []string{fuzzKeyPrefix + " " + s, s},
			HostKeys:       []HostKey{{Type: "ed25519", Private: s, Public: s}},
			Mounts:         []Mount{{Tag: s, Path: s}},
			Files:          []File{{Path: s, Content: []byte(s), Owner: s, Permissions: s}},
			BootCmd:        [][]string{{s}, {s, s}},
			RunCmd:         [][]string{{s, "x", s}},
		})
	}
}
