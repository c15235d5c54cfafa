// Package cloudinit renders the cloud-init NoCloud seed that boots the VM
// behind a compute instance: meta-data, user-data (#cloud-config) and
// network-config, packed into an ISO9660 volume labelled "cidata".
//
// Everything is pure Go. The YAML documents are built from Go structs and
// encoded by gopkg.in/yaml.v3, never by pasting strings together, and every
// string that comes from the caller is emitted quoted (double-quoted, or as a
// literal block when it spans lines), so no hostname, key, path or argv
// element can change the structure of a document or be read back by a YAML 1.1
// parser (cloud-init uses PyYAML) as a bool, number, date or null.
//
// Config.Validate reports input that would render a working YAML document but
// a broken guest (a hostname that is no DNS label, an unparsable SSH key,
// argv with a NUL byte, ...). MetaData, UserData and ISO call it first.
package cloudinit

import (
	"bytes"
	"encoding/base64"
	"net"
	"strings"
)

// DefaultUser is the login user when Config.User is empty, as on Azure.
const DefaultUser = "azureuser"

// VolumeLabel is the ISO9660 volume identifier cloud-init's NoCloud
// datasource looks for.
const VolumeLabel = "cidata"

// Names of the files in the seed volume.
const (
	MetaDataFile      = "meta-data"
	UserDataFile      = "user-data"
	NetworkConfigFile = "network-config"
)

// userDataHeader is the first line cloud-init requires of cloud-config
// user-data.
const userDataHeader = "#cloud-config\n"

// Config is what the seed of one VM is rendered from.
type Config struct {
	// InstanceID is meta-data's instance-id. cloud-init runs its
	// once-per-instance modules again whenever it changes.
	InstanceID string
	// Hostname is meta-data's local-hostname and user-data's hostname and
	// fqdn; it must be a single DNS label.
	Hostname string
	// User is the login user (DefaultUser when empty). It gets passwordless
	// sudo, /bin/bash, the sudo group and a locked password.
	User string
	// AuthorizedKeys are OpenSSH authorized_keys lines for User (the user's
	// own key and the simulator's management key). At least one is needed:
	// password logins are disabled. Surrounding whitespace, such as the
	// newline at the end of a .pub file, is trimmed.
	AuthorizedKeys []string
	// HostKeys are installed as the guest's SSH host keys (cloud-init
	// ssh_keys), so the simulator knows them before the first connection.
	// The image's own host keys are deleted in any case (ssh_deletekeys).
	// When HostKeys is empty the guest generates its own.
	HostKeys []HostKey
	// Mounts are virtio-fs shares mounted at every boot, before BootCmd runs;
	// their mount points are created when missing. bootcmd runs before
	// cloud-init creates users: a mount point under a user's home would
	// leave the home owned by root (amlsim's workspace share is therefore
	// mounted by a per-boot script instead, see sim/guest).
	Mounts []Mount
	// Files are written at first boot (write_files).
	Files []File
	// RunCmd entries run once, at the end of the first boot, in order.
	RunCmd [][]string
	// BootCmd entries run early at every boot, in order, after the mounts.
	BootCmd [][]string
	// MACAddress optionally names the guest NIC's MAC address. When set,
	// network-config matches the NIC by MAC, which every cloud-init network
	// renderer understands; otherwise it matches the NIC by the name glob
	// "e*", which the netplan (Ubuntu) and systemd-networkd renderers
	// honour, but ENI (ifupdown) and sysconfig (RHEL) do not.
	MACAddress string
	// Static, when set, gives the NIC a fixed IPv4 address instead of asking
	// DHCP for one.
	Static *StaticIPv4
}

// StaticIPv4 is a fixed IPv4 configuration of the guest NIC.
type StaticIPv4 struct {
	// Address is the address with its prefix length, such as "10.0.2.15/24".
	Address string
	// Gateway is the default route's next hop, such as "10.0.2.2".
	Gateway string
	// Nameservers are the DNS servers, such as ["10.0.2.3"].
	Nameservers []string
}

// HostKey is one SSH host key pair for the guest.
type HostKey struct {
	// Type is "ed25519", "ecdsa" or "rsa".
	Type string
	// Private is the unencrypted private key in PEM (OpenSSH or PKCS#1/8).
	Private string
	// Public is the public key in authorized_keys form ("ssh-ed25519 AAAA...").
	// When empty it is derived from Private; when set it must match Private.
	Public string
}

// Mount is one virtio-fs share exported by the host.
type Mount struct {
	// Tag is the virtio-fs mount tag (at most 36 bytes).
	Tag string
	// Path is the absolute mount point in the guest.
	Path string
}

// File is one file written into the guest at first boot.
type File struct {
	// Path is the absolute path in the guest.
	Path string
	// Content is written byte for byte (it travels base64-encoded).
	Content []byte
	// Permissions is the octal mode, such as "0644" (the default) or "0755".
	Permissions string
	// Owner is "user" or "user:group"; the default is "root:root". Files
	// owned by anyone but root are written late in the first boot, after the
	// users exist (write_files defer), but still before RunCmd runs.
	Owner string
}

// Defaults for File.
const (
	DefaultPermissions = "0644"
	DefaultOwner       = "root:root"
)

// MetaData renders the NoCloud meta-data document.
func (c Config) MetaData() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return marshalYAML(c.metaDataDoc())
}

// UserData renders the #cloud-config user-data document.
func (c Config) UserData() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.renderUserData()
}

// NetworkConfig renders a network-config (version 2) that brings up the
// Ethernet NIC with DHCPv4, as QEMU user networking serves it. It matches the
// NIC by Config.MACAddress when that is set and valid, and by the interface
// name glob "e*" (eth0, ens2, enp0s2, ...) otherwise. Validate reports an
// invalid MACAddress.
func (c Config) NetworkConfig() []byte {
	b, err := marshalYAML(c.networkConfigDoc())
	if err != nil {
		// The document holds only constants and a canonical MAC address, so
		// encoding cannot fail.
		panic("cloudinit: encoding network-config: " + err.Error())
	}
	return b
}

// renderUserData encodes user-data without validating c first.
func (c Config) renderUserData() ([]byte, error) {
	body, err := marshalYAML(c.userDataDoc())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(userDataHeader) + len(body))
	buf.WriteString(userDataHeader)
	buf.Write(body)
	return buf.Bytes(), nil
}

// The documents. Field order is the order of the keys in the output.

type metaDataDoc struct {
	InstanceID    string `yaml:"instance-id"`
	LocalHostname string `yaml:"local-hostname"`
}

type userDataDoc struct {
	Hostname       string `yaml:"hostname"`
	FQDN           string `yaml:"fqdn"`
	ManageEtcHosts bool   `yaml:"manage_etc_hosts"`

	SSHPwauth     bool              `yaml:"ssh_pwauth"`
	DisableRoot   bool              `yaml:"disable_root"`
	Users         []userEntry       `yaml:"users"`
	SSHDeleteKeys bool              `yaml:"ssh_deletekeys"`
	SSHKeys       map[string]string `yaml:"ssh_keys,omitempty"`

	Growpart     growpartConfig `yaml:"growpart"`
	ResizeRootfs bool           `yaml:"resize_rootfs"`

	PackageUpdate  bool `yaml:"package_update"`
	PackageUpgrade bool `yaml:"package_upgrade"`

	BootCmd    [][]string  `yaml:"bootcmd,omitempty"`
	WriteFiles []writeFile `yaml:"write_files,omitempty"`
	RunCmd     [][]string  `yaml:"runcmd,omitempty"`
}

type userEntry struct {
	Name              string   `yaml:"name"`
	Groups            string   `yaml:"groups"`
	Shell             string   `yaml:"shell"`
	Sudo              string   `yaml:"sudo"`
	LockPasswd        bool     `yaml:"lock_passwd"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
}

type growpartConfig struct {
	Mode                   string   `yaml:"mode"`
	Devices                []string `yaml:"devices"`
	IgnoreGrowrootDisabled bool     `yaml:"ignore_growroot_disabled"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Encoding    string `yaml:"encoding"`
	Content     string `yaml:"content"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
	Defer       bool   `yaml:"defer,omitempty"`
}

type networkConfigDoc struct {
	Version   int                     `yaml:"version"`
	Ethernets map[string]ethernetConf `yaml:"ethernets"`
}

type ethernetConf struct {
	Match     ethernetMatch `yaml:"match"`
	DHCP4     bool          `yaml:"dhcp4"`
	DHCP6     bool          `yaml:"dhcp6"`
	Addresses []string      `yaml:"addresses,omitempty"`
	Gateway4  string        `yaml:"gateway4,omitempty"`
	// Nameservers has the one key "addresses".
	Nameservers map[string][]string `yaml:"nameservers,omitempty"`
}

type ethernetMatch struct {
	Name       string `yaml:"name,omitempty"`
	MACAddress string `yaml:"macaddress,omitempty"`
}

func (c Config) metaDataDoc() metaDataDoc {
	return metaDataDoc{InstanceID: c.InstanceID, LocalHostname: c.Hostname}
}

func (c Config) user() string {
	if c.User == "" {
		return DefaultUser
	}
	return c.User
}

// trimKey drops the whitespace around an authorized_keys line.
func trimKey(s string) string { return strings.Trim(s, " \t\r\n") }

// mountScript mounts one share unless something is mounted there already.
// The path and tag are passed as positional parameters ($1, $2), never
// spliced into the script.
const mountScript = `mountpoint -q "$1" || mount -t virtiofs "$2" "$1"`

// mountCmds are the bootcmd entries for one share: create the mount point,
// then mount. A failed mount (no such share on the host) is reported in
// /var/log/cloud-init-output.log and does not stop the boot.
func mountCmds(m Mount) [][]string {
	return [][]string{
		{"mkdir", "-p", m.Path},
		{"sh", "-c", mountScript, "cloudinit-mount", m.Path, m.Tag},
	}
}

func (c Config) userDataDoc() userDataDoc {
	d := userDataDoc{
		Hostname:       c.Hostname,
		FQDN:           c.Hostname,
		ManageEtcHosts: true,
		SSHPwauth:      false,
		DisableRoot:    true,
		Users: []userEntry{{
			Name:       c.user(),
			Groups:     "sudo",
			Shell:      "/bin/bash",
			Sudo:       "ALL=(ALL) NOPASSWD:ALL",
			LockPasswd: true,
		}},
		SSHDeleteKeys: true,
		Growpart: growpartConfig{
			Mode:                   "auto",
			Devices:                []string{"/"},
			IgnoreGrowrootDisabled: false,
		},
		ResizeRootfs:   true,
		PackageUpdate:  false,
		PackageUpgrade: false,
	}
	keys := make([]string, 0, len(c.AuthorizedKeys))
	for _, k := range c.AuthorizedKeys {
		keys = append(keys, trimKey(k))
	}
	d.Users[0].SSHAuthorizedKeys = keys

	if len(c.HostKeys) > 0 {
		d.SSHKeys = make(map[string]string, 2*len(c.HostKeys))
		for _, hk := range c.HostKeys {
			d.SSHKeys[hk.Type+"_private"] = hk.Private
			pub := trimKey(hk.Public)
			if pub == "" {
				pub, _ = derivePublic(hk.Private) // Validate reports failures
			}
			d.SSHKeys[hk.Type+"_public"] = pub
		}
	}

	// Shares are mounted by bootcmd rather than the mounts module: bootcmd
	// runs at every boot before anything else the seed asks for, and the
	// mounts module of older cloud-init releases silently drops an fs_spec
	// that is neither a block device nor "host:path", which a virtio-fs tag
	// is.
	for _, m := range c.Mounts {
		d.BootCmd = append(d.BootCmd, mountCmds(m)...)
	}
	d.BootCmd = append(d.BootCmd, copyArgv(c.BootCmd)...)
	d.RunCmd = copyArgv(c.RunCmd)

	for _, f := range c.Files {
		wf := writeFile{
			Path:        f.Path,
			Encoding:    "b64",
			Content:     base64.StdEncoding.EncodeToString(f.Content),
			Owner:       f.Owner,
			Permissions: f.Permissions,
		}
		if wf.Owner == "" {
			wf.Owner = DefaultOwner
		}
		if wf.Permissions == "" {
			wf.Permissions = DefaultPermissions
		}
		wf.Defer = !ownedByRoot(wf.Owner)
		d.WriteFiles = append(d.WriteFiles, wf)
	}
	return d
}

// ownedByRoot reports whether an owner spec names only root, so the file can
// be written before the users are created.
func ownedByRoot(owner string) bool {
	return owner == "root" || owner == "root:root"
}

// copyArgv returns a deep copy of cmds, or nil when it is empty, so an empty
// list is left out of the document rather than rendered as [].
func copyArgv(cmds [][]string) [][]string {
	if len(cmds) == 0 {
		return nil
	}
	out := make([][]string, len(cmds))
	for i, argv := range cmds {
		out[i] = append([]string(nil), argv...)
	}
	return out
}

func (c Config) networkConfigDoc() networkConfigDoc {
	eth := ethernetConf{DHCP4: true, DHCP6: false}
	// The key is what cloud-init's own renderers (networkd, ENI, sysconfig)
	// take as the interface name, unless they find the name by MAC address
	// on the running guest; netplan treats it as a mere identifier.
	id := nicGlob
	if hw, err := net.ParseMAC(c.MACAddress); err == nil && len(hw) == 6 {
		eth.Match.MACAddress = hw.String()
		id = "eth0" // ENI writes a udev rule renaming the NIC to this
	} else {
		// systemd-networkd's Name= takes the glob as it is, so the
		// networkd renderer writes [Match] Name=e* from the key.
		eth.Match.Name = nicGlob
	}
	if st := c.Static; st != nil {
		eth.DHCP4 = false
		eth.Addresses = []string{st.Address}
		eth.Gateway4 = st.Gateway
		if len(st.Nameservers) > 0 {
			eth.Nameservers = map[string][]string{"addresses": st.Nameservers}
		}
	}
	return networkConfigDoc{
		Version:   2,
		Ethernets: map[string]ethernetConf{id: eth},
	}
}

// nicGlob matches the first Ethernet NIC whatever udev names it: eth0 with
// net.ifnames=0, ens2 or enp0s2 with predictable names.
const nicGlob = "e*"
