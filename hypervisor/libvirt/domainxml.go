//go:build linux && cgo

package libvirt

import (
	"encoding/xml"
	"fmt"
	"path/filepath"
	"sort"

	"libvirt.org/go/libvirtxml"

	"github.com/amlsim/amlsim/hypervisor"
)

// metadataNS is the XML namespace of the <metadata> element amlsim writes
// into every domain it defines. Its presence is what marks a domain as ours:
// domains without it are never listed, touched or removed.
const metadataNS = "https://github.com/amlsim/amlsim/xmlns/domain/1"

// metadataPrefix is the prefix libvirt uses when it re-serialises our element.
const metadataPrefix = "amlsim"

// netAlias is the user alias of the guest's only NIC. QEMU names the netdev
// behind it "host"+alias, which is what hostfwd_add needs.
const netAlias = "ua-net0"

// netdevID is the QEMU netdev id libvirt derives from netAlias.
const netdevID = "host" + netAlias

// sshGuestPort is where the guest's sshd listens; Spec.SSHPort leads there.
const sshGuestPort = 22

// virtiofsdPath is where Debian's QEMU packages install virtiofsd.
const virtiofsdPath = "/usr/lib/qemu/virtiofsd"

// domainMeta is what amlsim stores inside a domain's <metadata>.
type domainMeta struct {
	XMLName xml.Name `xml:"https://github.com/amlsim/amlsim/xmlns/domain/1 instance"`
	SSHPort int      `xml:"ssh-port"`
	// Forwards is nil, and so left out of the XML, for a domain without
	// extra forwards: its XML stays as it was before there were any.
	Forwards *metaForwards `xml:"forwards"`
	Labels   []metaLabel   `xml:"label"`
	// Snapshot is the snapshot directory the domain's next start restores
	// (Spec.Snapshot); cleared once it has been tried.
	Snapshot string `xml:"snapshot,omitempty"`
}

type metaForwards struct {
	Forward []metaForward `xml:"forward"`
}

type metaForward struct {
	HostPort  int `xml:"host-port,attr"`
	GuestPort int `xml:"guest-port,attr"`
}

type metaLabel struct {
	Key   string `xml:"key,attr"`
	Value string `xml:",chardata"`
}

func newDomainMeta(spec hypervisor.Spec) domainMeta {
	m := domainMeta{SSHPort: spec.SSHPort, Snapshot: spec.Snapshot}
	if len(spec.Forwards) > 0 {
		m.Forwards = &metaForwards{}
		for _, f := range spec.Forwards {
			m.Forwards.Forward = append(m.Forwards.Forward, metaForward{HostPort: f.HostPort, GuestPort: f.GuestPort})
		}
	}
	keys := make([]string, 0, len(spec.Labels))
	for k := range spec.Labels {
		keys = append(keys, k)
	}
	// Sorted so the XML (and its golden file) is stable.
	sort.Strings(keys)
	for _, k := range keys {
		m.Labels = append(m.Labels, metaLabel{Key: k, Value: spec.Labels[k]})
	}
	return m
}

// forwards returns the extra forwards in the order they were defined; nil
// when there are none.
func (m domainMeta) forwards() []hypervisor.Forward {
	if m.Forwards == nil {
		return nil
	}
	var out []hypervisor.Forward
	for _, f := range m.Forwards.Forward {
		out = append(out, hypervisor.Forward{HostPort: f.HostPort, GuestPort: f.GuestPort})
	}
	return out
}

// rules returns every forward QEMU must have, SSH first.
func (m domainMeta) rules() []hypervisor.Forward {
	return append([]hypervisor.Forward{{HostPort: m.SSHPort, GuestPort: sshGuestPort}}, m.forwards()...)
}

func (m domainMeta) labels() map[string]string {
	out := make(map[string]string, len(m.Labels))
	for _, l := range m.Labels {
		out[l.Key] = l.Value
	}
	return out
}

// parseDomainMeta reads our metadata element. libvirt's GetMetadata, asked
// by namespace, returns the element without its namespace, so any
// namespace (or none) is accepted here: the caller already selected it.
func parseDomainMeta(s string) (domainMeta, error) {
	var in struct {
		XMLName  xml.Name      `xml:"instance"`
		SSHPort  int           `xml:"ssh-port"`
		Forwards *metaForwards `xml:"forwards"`
		Labels   []metaLabel   `xml:"label"`
		Snapshot string        `xml:"snapshot"`
	}
	if err := xml.Unmarshal([]byte(s), &in); err != nil {
		return domainMeta{}, fmt.Errorf("parse amlsim metadata: %w", err)
	}
	return domainMeta{SSHPort: in.SSHPort, Forwards: in.Forwards, Labels: in.Labels, Snapshot: in.Snapshot}, nil
}

// domainParams is everything besides the Spec that shapes a domain's XML.
type domainParams struct {
	// Type is the libvirt domain type: "kvm", "qemu" or "test".
	Type  string
	Image hypervisor.BaseImage
	// Dir is the domain's own directory (StateDir/<name>).
	Dir string
}

// buildDomain renders the libvirt domain for spec. It is a pure function so
// the XML can be checked against golden files without libvirt.
func buildDomain(spec hypervisor.Spec, p domainParams) (*libvirtxml.Domain, error) {
	meta, err := xml.Marshal(newDomainMeta(spec))
	if err != nil {
		return nil, fmt.Errorf("marshal amlsim metadata: %w", err)
	}
	dom := &libvirtxml.Domain{
		Type:     p.Type,
		Name:     spec.Name,
		Metadata: &libvirtxml.DomainMetadata{XML: string(meta)},
		Memory:   &libvirtxml.DomainMemory{Value: uint(spec.MemoryMiB), Unit: "MiB"},
		VCPU:     &libvirtxml.DomainVCPU{Value: uint(spec.VCPUs)},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Type: "hvm"},
		},
		Features: &libvirtxml.DomainFeatureList{
			// ACPI is what lets Shutdown and Reboot ask the guest politely.
			ACPI: &libvirtxml.DomainFeature{},
			APIC: &libvirtxml.DomainFeatureAPIC{},
		},
		Clock:      &libvirtxml.DomainClock{Offset: "utc"},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices:    &libvirtxml.DomainDeviceList{},
	}
	if p.Type == "kvm" {
		dom.CPU = &libvirtxml.DomainCPU{Mode: "host-passthrough"}
	}
	if p.Image.Kernel != "" {
		dom.OS.Kernel = p.Image.Kernel
		dom.OS.Initrd = p.Image.Initrd
		dom.OS.Cmdline = p.Image.Cmdline
	} else {
		dom.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	}

	dev := dom.Devices
	dev.Disks = []libvirtxml.DomainDisk{
		{
			Device:  "disk",
			Driver:  &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2", Discard: "unmap"},
			Source:  &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: filepath.Join(p.Dir, OverlayDisk)}},
			Target:  &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
			Address: pciSlot(slotRoot),
		},
		{
			// virtio rather than a CD-ROM: the Debian cloud kernel has no
			// SATA/IDE CD driver, and cloud-init finds the seed by label.
			Device:   "disk",
			Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
			Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: filepath.Join(p.Dir, SeedISO)}},
			Target:   &libvirtxml.DomainDiskTarget{Dev: "vdb", Bus: "virtio"},
			ReadOnly: &libvirtxml.DomainDiskReadOnly{},
			Address:  pciSlot(slotSeed),
		},
	}
	dev.Interfaces = []libvirtxml.DomainInterface{{
		// A MAC known before the domain exists lets the seed's
		// network-config match the NIC whatever the guest calls it.
		MAC:     &libvirtxml.DomainInterfaceMAC{Address: hypervisor.MACAddress(spec.Name)},
		Source:  &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}},
		Model:   &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		Alias:   &libvirtxml.DomainAlias{Name: netAlias},
		Address: pciSlot(slotNIC),
	}}
	port := uint(0)
	dev.Serials = []libvirtxml.DomainSerial{{
		// A file chardev goes through virtlogd, which keeps the log across
		// restarts (append) and rotates it.
		Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{
			Path: filepath.Join(p.Dir, SerialLog), Append: "on",
		}},
		Target: &libvirtxml.DomainSerialTarget{Port: &port},
	}}
	// A virtio RNG spares the guest minutes of waiting for entropy (sshd
	// host keys, cloud-init) under TCG.
	dev.RNGs = []libvirtxml.DomainRNG{{
		Model:   "virtio",
		Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
		Address: pciSlot(slotRNG),
	}}
	dev.MemBalloon = &libvirtxml.DomainMemBalloon{Model: "none"}

	// virtiofsd maps guest memory, so it must be shareable. Every domain
	// gets shareable memory, with or without shares: a domain restored from
	// a snapshot gets its shares plugged in after the restore, and its
	// memory is the template's, which had none.
	dom.MemoryBacking = &libvirtxml.DomainMemoryBacking{
		MemorySource: &libvirtxml.DomainMemorySource{Type: "memfd"},
		MemoryAccess: &libvirtxml.DomainMemoryAccess{Mode: "shared"},
	}
	for i, s := range spec.Shares {
		dev.Filesystems = append(dev.Filesystems, shareDevice(s, slotShares+uint(i)))
	}
	return dom, nil
}

// The PCI slots of the devices, fixed rather than left to libvirt: a domain
// restored from a snapshot must have every device where the template had
// it (QEMU finds device state by address: "Unknown ramblock
// 0000:00:02.0/virtio-net-pci.rom, cannot accept migration"), and shares,
// which only it has, must not move the others.
const (
	slotNIC    = 2
	slotRoot   = 3
	slotSeed   = 4
	slotRNG    = 5
	slotShares = 6
)

func pciSlot(slot uint) *libvirtxml.DomainAddress {
	zero := uint(0)
	return &libvirtxml.DomainAddress{PCI: &libvirtxml.DomainAddressPCI{Domain: &zero, Bus: &zero, Slot: &slot, Function: &zero}}
}

// shareDevice is the virtio-fs device that exports s.
func shareDevice(s hypervisor.Share, slot uint) libvirtxml.DomainFilesystem {
	return libvirtxml.DomainFilesystem{
		Address:    pciSlot(slot),
		AccessMode: "passthrough",
		Driver:     &libvirtxml.DomainFilesystemDriver{Type: "virtiofs"},
		Binary:     &libvirtxml.DomainFilesystemBinary{Path: virtiofsdPath},
		Source:     &libvirtxml.DomainFilesystemSource{Mount: &libvirtxml.DomainFilesystemSourceMount{Dir: s.HostPath}},
		Target:     &libvirtxml.DomainFilesystemTarget{Dir: s.Tag},
	}
}
