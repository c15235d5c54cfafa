package cloudinit

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// seedFiles is what the ISO must hold, name for name and byte for byte.
func seedFiles(t *testing.T, c Config) map[string][]byte {
	t.Helper()
	md, err := c.MetaData()
	if err != nil {
		t.Fatal(err)
	}
	ud, err := c.UserData()
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"meta-data":      md,
		"user-data":      ud,
		"network-config": c.NetworkConfig(),
	}
}

// writeSeed builds the ISO of c and stores it in a test directory.
func writeSeed(t *testing.T, c Config) string {
	t.Helper()
	img, err := c.ISO()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestISOReadBack(t *testing.T) {
	c := typicalConfig(t)
	want := seedFiles(t, c)
	p := writeSeed(t, c)

	b, err := file.OpenFromPath(p, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := iso9660.Read(b, st.Size(), 0, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// go-diskfs pads identifiers with NULs where ECMA-119 says spaces;
	// blkid and isoinfo read the label as "cidata" either way.
	if got := strings.TrimRight(fs.Label(), " \x00"); got != "cidata" {
		t.Errorf("volume label = %q, want cidata", got)
	}
	entries, err := fs.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, []string{"meta-data", "network-config", "user-data"}) {
		t.Fatalf("root directory = %q, want exactly meta-data, network-config, user-data", names)
	}
	for name, content := range want {
		got, err := fs.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, content) {
			t.Errorf("%s read back as\n%s\nwant\n%s", name, got, content)
		}
	}
}

// TestISOWholeBlocks checks the image ends on a 2 KiB boundary and is as
// long as its volume descriptor says: a CD-ROM only exposes whole blocks.
func TestISOWholeBlocks(t *testing.T) {
	img, err := typicalConfig(t).ISO()
	if err != nil {
		t.Fatal(err)
	}
	if len(img)%2048 != 0 {
		t.Errorf("image is %d bytes, not a whole number of 2048-byte blocks", len(img))
	}
	pvd := img[16*2048:]
	declared := int(binary.LittleEndian.Uint32(pvd[80:])) * int(binary.LittleEndian.Uint16(pvd[128:]))
	if declared != len(img) {
		t.Errorf("volume descriptor declares %d bytes, image has %d", declared, len(img))
	}
	if got := strings.TrimRight(string(pvd[40:72]), " \x00"); got != "cidata" {
		t.Errorf("primary volume identifier = %q", got)
	}
}

func TestISOLeavesNoTempFiles(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	if _, err := typicalConfig(t).ISO(); err != nil {
		t.Fatal(err)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("ISO left %s behind in TMPDIR", e.Name())
	}
}

// TestISOExternalReaders lists the image with the tools a person would use
// (genisoimage's isoinfo, libarchive's bsdtar, xorriso), each skipped when
// it is not installed, and checks that every naming scheme a reader may
// pick (Rock Ridge, Joliet) shows the exact file names and contents.
func TestISOExternalReaders(t *testing.T) {
	c := typicalConfig(t)
	want := seedFiles(t, c)
	p := writeSeed(t, c)
	ran := 0

	if _, err := exec.LookPath("isoinfo"); err == nil {
		ran++
		for _, ext := range []string{"-R", "-J"} {
			out := run(t, "isoinfo", ext, "-l", "-i", p)
			for name := range want {
				if !hasListedName(out, name) {
					t.Errorf("isoinfo %s -l does not list %q:\n%s", ext, name, out)
				}
			}
			for name, content := range want {
				got := run(t, "isoinfo", ext, "-i", p, "-x", "/"+name)
				if got != string(content) {
					t.Errorf("isoinfo %s -x /%s = %q, want %q", ext, name, got, content)
				}
			}
		}
		if out := run(t, "isoinfo", "-d", "-i", p); !strings.Contains(out, "Volume id: cidata\n") ||
			!strings.Contains(out, "Rock Ridge") || !strings.Contains(out, "Joliet") {
			t.Errorf("isoinfo -d:\n%s", out)
		}
	}
	if _, err := exec.LookPath("bsdtar"); err == nil {
		ran++
		dir := t.TempDir()
		run(t, "bsdtar", "-x", "-f", p, "-C", dir)
		checkExtracted(t, "bsdtar", dir, want)
	}
	if _, err := exec.LookPath("xorriso"); err == nil {
		ran++
		dir := filepath.Join(t.TempDir(), "x")
		run(t, "xorriso", "-osirrox", "on", "-indev", p, "-extract", "/", dir)
		checkExtracted(t, "xorriso", dir, want)
	}
	if _, err := exec.LookPath("blkid"); err == nil {
		ran++
		out := run(t, "blkid", "-p", "-o", "export", p)
		if !strings.Contains(out, "LABEL=cidata\n") || !strings.Contains(out, "TYPE=iso9660\n") {
			t.Errorf("blkid sees:\n%s", out)
		}
	}
	if ran == 0 {
		t.Skip("none of isoinfo (genisoimage), bsdtar (libarchive-tools), xorriso, blkid is installed")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, stderr.Bytes())
	}
	return stdout.String()
}

// hasListedName reports whether an isoinfo -l listing has a line ending in
// name exactly (isoinfo prints "<attributes>  name ").
func hasListedName(listing, name string) bool {
	for _, line := range strings.Split(listing, "\n") {
		if strings.HasSuffix(strings.TrimRight(line, " "), "  "+name) {
			return true
		}
	}
	return false
}

func checkExtracted(t *testing.T, tool, dir string, want map[string][]byte) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, []string{"meta-data", "network-config", "user-data"}) {
		t.Errorf("%s extracted %q", tool, names)
	}
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("%s: %s = %q, %v; want %q", tool, name, got, err, content)
		}
	}
}
