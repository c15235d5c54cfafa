//go:build linux && cgo

package libvirt

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/amlsim/amlsim/hypervisor"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("domain XML differs from %s (run with -update if intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestDomainXML(t *testing.T) {
	debian := hypervisor.BaseImage{
		Disk:    "/var/cache/amlsim/images/abc/disk.qcow2",
		Kernel:  "/var/cache/amlsim/images/abc/vmlinuz",
		Initrd:  "/var/cache/amlsim/images/abc/initrd.img",
		Cmdline: "root=/dev/vda rw console=ttyS0",
	}
	cases := []struct {
		golden string
		typ    string
		image  hypervisor.BaseImage
		spec   hypervisor.Spec
	}{
		{
			golden: "kernel-boot-tcg.xml",
			typ:    "qemu",
			image:  debian,
			spec: hypervisor.Spec{
				Name: "ci-one", VCPUs: 2, MemoryMiB: 1024, DiskSizeGB: 120, SSHPort: 50022,
				Labels: map[string]string{"workspace": "ws-local", "compute": "one", "a&b": "<x>"},
			},
		},
		{
			golden: "bios-boot-kvm-shares.xml",
			typ:    "kvm",
			image:  hypervisor.BaseImage{Disk: "/srv/images/ubuntu-24.04.qcow2"},
			spec: hypervisor.Spec{
				Name: "ci-two", VCPUs: 4, MemoryMiB: 4096, DiskSizeGB: 120, SSHPort: 50023,
				Shares: []hypervisor.Share{
					{Tag: "workspace", HostPath: "/srv/amlsim/ws-local/files"},
					{Tag: "data", HostPath: "/srv/data"},
				},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			dom, err := buildDomain(c.spec, domainParams{Type: c.typ, Image: c.image, Dir: "/var/lib/amlsim/vms/" + c.spec.Name})
			if err != nil {
				t.Fatalf("buildDomain = %v", err)
			}
			doc, err := dom.Marshal()
			if err != nil {
				t.Fatalf("Marshal = %v", err)
			}
			golden(t, c.golden, []byte(doc+"\n"))

			// What we write must read back: the metadata is how we recognise
			// our domains and recover their port and labels.
			var back libvirtxml.Domain
			if err := back.Unmarshal(doc); err != nil {
				t.Fatalf("Unmarshal = %v", err)
			}
			meta, err := parseDomainMeta(back.Metadata.XML)
			if err != nil {
				t.Fatalf("parseDomainMeta = %v", err)
			}
			if meta.SSHPort != c.spec.SSHPort {
				t.Errorf("metadata SSH port = %d, want %d", meta.SSHPort, c.spec.SSHPort)
			}
			got := meta.labels()
			if len(got) != len(c.spec.Labels) {
				t.Errorf("metadata labels = %v, want %v", got, c.spec.Labels)
			}
			for k, v := range c.spec.Labels {
				if got[k] != v {
					t.Errorf("metadata label %q = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestParseDomainMeta(t *testing.T) {
	// libvirt hands our element back in several spellings: with a prefix
	// in the full domain XML, bare from GetMetadata.
	for _, s := range []string{
		`<amlsim:instance xmlns:amlsim="` + metadataNS + `"><amlsim:ssh-port>2222</amlsim:ssh-port><amlsim:label key="k">v</amlsim:label></amlsim:instance>`,
		`<instance><ssh-port>2222</ssh-port><label key="k">v</label></instance>`,
	} {
		m, err := parseDomainMeta(s)
		if err != nil {
			t.Fatalf("parseDomainMeta(%s) = %v", s, err)
		}
		if m.SSHPort != 2222 || m.labels()["k"] != "v" {
			t.Errorf("parseDomainMeta(%s) = %+v, want port 2222 and label k=v", s, m)
		}
	}
	if _, err := parseDomainMeta(`<other><ssh-port>1</ssh-port></other>`); err == nil {
		t.Errorf("parseDomainMeta of another element = nil error, want one")
	}
}

func TestDomainMetaForwards(t *testing.T) {
	spec := hypervisor.Spec{
		Name: "ci-fwd", VCPUs: 1, MemoryMiB: 256, DiskSizeGB: 1, SSHPort: 50022,
		// Two host ports may reach one guest port; the order is kept.
		Forwards: []hypervisor.Forward{{HostPort: 50888, GuestPort: 8888}, {HostPort: 50080, GuestPort: 8888}},
	}
	dom, err := buildDomain(spec, domainParams{Type: "qemu", Dir: "/var/lib/amlsim/vms/ci-fwd"})
	if err != nil {
		t.Fatalf("buildDomain = %v", err)
	}
	doc, err := dom.Marshal()
	if err != nil {
		t.Fatalf("Marshal = %v", err)
	}
	want := `<forwards><forward host-port="50888" guest-port="8888"></forward><forward host-port="50080" guest-port="8888"></forward></forwards>`
	if !strings.Contains(doc, want) {
		t.Errorf("domain XML lacks %s:\n%s", want, doc)
	}
	var back libvirtxml.Domain
	if err := back.Unmarshal(doc); err != nil {
		t.Fatalf("Unmarshal = %v", err)
	}
	meta, err := parseDomainMeta(back.Metadata.XML)
	if err != nil {
		t.Fatalf("parseDomainMeta = %v", err)
	}
	if got := meta.forwards(); !slices.Equal(got, spec.Forwards) {
		t.Errorf("metadata forwards = %v, want %v", got, spec.Forwards)
	}
	wantRules := append([]hypervisor.Forward{{HostPort: 50022, GuestPort: 22}}, spec.Forwards...)
	if got := meta.rules(); !slices.Equal(got, wantRules) {
		t.Errorf("rules = %v, want SSH first, then the forwards: %v", got, wantRules)
	}
}

func TestParseDomainMetaForwards(t *testing.T) {
	want := []hypervisor.Forward{{HostPort: 2888, GuestPort: 8888}}
	// As libvirt spells it back: prefixed elements, unprefixed attributes.
	for _, s := range []string{
		`<amlsim:instance xmlns:amlsim="` + metadataNS + `"><amlsim:ssh-port>2222</amlsim:ssh-port><amlsim:forwards><amlsim:forward host-port="2888" guest-port="8888"/></amlsim:forwards><amlsim:label key="k">v</amlsim:label></amlsim:instance>`,
		`<instance><ssh-port>2222</ssh-port><forwards><forward host-port="2888" guest-port="8888"/></forwards><label key="k">v</label></instance>`,
	} {
		m, err := parseDomainMeta(s)
		if err != nil {
			t.Fatalf("parseDomainMeta(%s) = %v", s, err)
		}
		if got := m.forwards(); !slices.Equal(got, want) || m.SSHPort != 2222 || m.labels()["k"] != "v" {
			t.Errorf("parseDomainMeta(%s) = port %d, forwards %v, labels %v; want 2222, %v, k=v", s, m.SSHPort, got, m.labels(), want)
		}
	}
}

func TestParseDomainMetaBeforeForwards(t *testing.T) {
	// Domains defined before extra forwards existed have no <forwards>:
	// they must still parse, with SSH as their only rule.
	m, err := parseDomainMeta(`<instance><ssh-port>2222</ssh-port><label key="k">v</label></instance>`)
	if err != nil {
		t.Fatalf("parseDomainMeta = %v", err)
	}
	if got := m.forwards(); got != nil {
		t.Errorf("forwards = %v, want nil", got)
	}
	if got, want := m.rules(), []hypervisor.Forward{{HostPort: 2222, GuestPort: 22}}; !slices.Equal(got, want) {
		t.Errorf("rules = %v, want %v", got, want)
	}
	// And a domain defined now without forwards writes no element, so its
	// XML is what it was before.
	doc, err := xml.Marshal(newDomainMeta(hypervisor.Spec{SSHPort: 2222}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(doc), "forward") {
		t.Errorf("metadata without forwards = %s, want no forwards element", doc)
	}
}
