package sim

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/amlsim/amlsim/sim/rbac"
)

// Config is the simulated cloud: its subscription, regions with quotas,
// workspaces, and how local VMs are sized. It is read from TOML; every
// field has a built-in default (see DefaultConfig and fixtures/amlsim.toml).
type Config struct {
	Subscription string `toml:"subscription"`
	Tenant       string `toml:"tenant"`
	// PageSize is how many computes a list page holds before a nextLink.
	PageSize   int               `toml:"page_size"`
	Regions    []RegionConfig    `toml:"regions"`
	Workspaces []WorkspaceConfig `toml:"workspaces"`
	Local      LocalConfig       `toml:"local"`
	Driver     DriverConfig      `toml:"driver"`
	Fake       FakeConfig        `toml:"fake"`
	Timeouts   TimeoutConfig     `toml:"timeouts"`
	API        APIConfig         `toml:"api"`
	// Principals are the users and service principals tokens may speak
	// for; Roles are custom roles beside Owner, Contributor and Reader;
	// RoleAssignments are assignments that exist from the start.
	Principals      []PrincipalConfig      `toml:"principals"`
	Roles           []rbac.Role            `toml:"roles"`
	RoleAssignments []RoleAssignmentConfig `toml:"role_assignments"`
}

// PrincipalConfig is a known principal: a user, or a service principal
// when it has a client (application) ID and secret, with which it signs in
// through the OAuth2 client-credentials grant (ClientSecretCredential,
// `az login --service-principal`).
type PrincipalConfig struct {
	ObjectID     string `toml:"object_id"`
	TenantID     string `toml:"tenant_id"`
	Name         string `toml:"name"`
	ClientID     string `toml:"client_id"`
	ClientSecret string `toml:"client_secret"`
}

// RoleAssignmentConfig gives a principal a role (by name or ID) at a scope
// ("/subscriptions/…/resourceGroups/…"; empty means the subscription).
type RoleAssignmentConfig struct {
	Principal string `toml:"principal"`
	Role      string `toml:"role"`
	Scope     string `toml:"scope"`
}

// RegionConfig holds a region's quotas: vCPUs per VM family and in total.
type RegionConfig struct {
	Name         string         `toml:"name"`
	TotalVCPUs   int            `toml:"total_vcpus"`
	FamilyVCPUs  map[string]int `toml:"family_vcpus"`
	DefaultVCPUs int            `toml:"default_family_vcpus"`
}

// WorkspaceConfig is a workspace that exists from the start.
type WorkspaceConfig struct {
	ResourceGroup string `toml:"resource_group"`
	Name          string `toml:"name"`
	Location      string `toml:"location"`
}

// LocalConfig sizes the local VMs: whatever Azure size an instance claims,
// its VM gets these resources unless a size has its own entry.
type LocalConfig struct {
	VCPUs     int                      `toml:"vcpus"`
	MemoryMiB int                      `toml:"memory_mib"`
	DiskGB    int                      `toml:"disk_gb"`
	Sizes     map[string]LocalResource `toml:"sizes"`
	// PortRange is the first and last loopback port used for SSH forwards.
	PortRange [2]int `toml:"port_range"`
}

// LocalResource overrides the local VM resources for one Azure size.
type LocalResource struct {
	VCPUs     int `toml:"vcpus"`
	MemoryMiB int `toml:"memory_mib"`
}

// DriverConfig configures the libvirt driver.
type DriverConfig struct {
	URI        string `toml:"uri"`
	DomainType string `toml:"domain_type"`
	StateDir   string `toml:"state_dir"`
	// ImageDir holds disk.qcow2, vmlinuz, initrd.img and cmdline; empty
	// means the default image built by `make image`.
	ImageDir string `toml:"image_dir"`
	// CloudImage is a qcow2 cloud image booted through the BIOS instead of
	// the default image (no kernel given).
	CloudImage string `toml:"cloud_image"`
	// FastCreate starts new instances from a snapshot of a booted guest
	// (taken once per VM shape) instead of booting them; on by default.
	FastCreate bool `toml:"fast_create"`
}

// APIConfig sets how strictly the API answers.
type APIConfig struct {
	// StrictVersions refuses api-versions newer than the newest amlsim
	// knows, as Azure refuses versions it does not publish; by default
	// they are answered as the newest known version.
	StrictVersions bool `toml:"strict_versions"`
}

// FakeConfig sets the fake driver's delays.
type FakeConfig struct {
	Delay Duration `toml:"delay"`
}

// TimeoutConfig bounds the slow steps.
type TimeoutConfig struct {
	SSHReady      Duration `toml:"ssh_ready"`
	ShutdownGrace Duration `toml:"shutdown_grace"`
	// Setup bounds the wait for setup scripts that set no timeout.
	Setup Duration `toml:"setup"`
	// Resync is how often every instance is checked against its VM,
	// besides the hypervisor's domain events.
	Resync Duration `toml:"resync"`
}

// Duration is a time.Duration written as "90s" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// DefaultConfig is the built-in simulated cloud.
func DefaultConfig() Config {
	return Config{
		Subscription: "00000000-0000-0000-0000-000000000000",
		Tenant:       "00000000-0000-0000-0000-0000000000aa",
		PageSize:     20,
		Regions: []RegionConfig{
			{Name: "eastus", TotalVCPUs: 48, DefaultVCPUs: 24, FamilyVCPUs: map[string]int{"standardNCFamily": 0, "standardNCSv3Family": 0}},
			{Name: "westeurope", TotalVCPUs: 48, DefaultVCPUs: 24, FamilyVCPUs: map[string]int{"standardNCFamily": 0, "standardNCSv3Family": 0}},
		},
		Workspaces:      []WorkspaceConfig{{ResourceGroup: "rg-local", Name: "ws-local", Location: "eastus"}},
		Local:           LocalConfig{VCPUs: 2, MemoryMiB: 1024, DiskGB: 120, PortRange: [2]int{20022, 20999}},
		Driver:          DriverConfig{URI: "qemu:///system", DomainType: "auto", FastCreate: true},
		Fake:            FakeConfig{Delay: Duration{200 * time.Millisecond}},
		Timeouts:        TimeoutConfig{SSHReady: Duration{10 * time.Minute}, ShutdownGrace: Duration{90 * time.Second}, Setup: Duration{time.Hour}, Resync: Duration{30 * time.Second}},
		Principals:      []PrincipalConfig{{ObjectID: DefaultOwner.ObjectID, TenantID: DefaultOwner.TenantID, Name: DefaultOwner.Name}},
		RoleAssignments: []RoleAssignmentConfig{{Principal: DefaultOwner.ObjectID, Role: "Owner"}},
	}
}

// LoadConfig reads a TOML file over the defaults; an empty path gives the
// defaults. Unknown keys are an error, so typos do not pass silently.
func LoadConfig(path string) (Config, error) {
	if path == "" {
		return DefaultConfig(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return DefaultConfig(), fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, string(b))
}

// ParseConfig reads TOML text over the defaults, as LoadConfig reads a
// file; name says where the text comes from in errors.
func ParseConfig(name, text string) (Config, error) {
	cfg := DefaultConfig()
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return cfg, fmt.Errorf("config %s: unknown keys: %s", name, strings.Join(keys, ", "))
	}
	return cfg, cfg.Validate()
}

// Validate checks the config for values the simulator cannot run with.
func (c Config) Validate() error {
	if c.PageSize < 1 {
		return fmt.Errorf("config: page_size must be at least 1")
	}
	if len(c.Regions) == 0 {
		return fmt.Errorf("config: at least one region is needed")
	}
	regions := map[string]bool{}
	for _, r := range c.Regions {
		if r.Name == "" {
			return fmt.Errorf("config: a region has no name")
		}
		regions[strings.ToLower(r.Name)] = true
	}
	for _, w := range c.Workspaces {
		if err := CheckWorkspaceName(w.Name); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := CheckResourceGroupName(w.ResourceGroup); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if !regions[strings.ToLower(w.Location)] {
			return fmt.Errorf("config: workspace %s is in region %q, which is not configured", w.Name, w.Location)
		}
	}
	if c.Local.VCPUs < 1 || c.Local.MemoryMiB < 256 || c.Local.DiskGB < 4 {
		return fmt.Errorf("config: local vcpus >= 1, memory_mib >= 256 and disk_gb >= 4 are needed")
	}
	if p := c.Local.PortRange; p[0] < 1024 || p[1] > 65535 || p[0] > p[1] {
		return fmt.Errorf("config: local.port_range %v is not a range of unprivileged ports", p)
	}
	known := map[string]bool{}
	for _, p := range c.Principals {
		if !guidRE.MatchString(p.ObjectID) || (p.TenantID != "" && !guidRE.MatchString(p.TenantID)) {
			return fmt.Errorf("config: principal %q: object_id and tenant_id must be GUIDs", p.ObjectID)
		}
		known[strings.ToLower(p.ObjectID)] = true
		if (p.ClientID == "") != (p.ClientSecret == "") || p.ClientID != "" && !guidRE.MatchString(p.ClientID) {
			return fmt.Errorf("config: principal %q: a service principal needs a client_id (a GUID) and a client_secret", p.ObjectID)
		}
	}
	roles := map[string]bool{}
	for _, r := range append(rbac.BuiltIns(), c.Roles...) {
		if r.Name == "" || len(r.Actions) == 0 {
			return fmt.Errorf("config: role %q needs a name and actions", r.Name)
		}
		if r.ID != "" && !guidRE.MatchString(r.ID) {
			return fmt.Errorf("config: role %s: id must be a GUID", r.Name)
		}
		roles[strings.ToLower(r.Name)] = true
		roles[strings.ToLower(r.ID)] = true
	}
	for _, a := range c.RoleAssignments {
		if !known[strings.ToLower(a.Principal)] {
			return fmt.Errorf("config: role assignment for unknown principal %q", a.Principal)
		}
		if !roles[strings.ToLower(a.Role)] {
			return fmt.Errorf("config: role assignment names unknown role %q", a.Role)
		}
	}
	return nil
}

// guidRE matches a GUID, as Entra object IDs are.
var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Region returns the named region's config, ignoring case and spaces:
// ARM takes a region's display name ("East US") for its name ("eastus").
func (c Config) Region(name string) (RegionConfig, bool) {
	name = strings.ReplaceAll(name, " ", "")
	for _, r := range c.Regions {
		if strings.EqualFold(r.Name, name) {
			return r, true
		}
	}
	return RegionConfig{}, false
}

// FamilyLimit is the dedicated vCPU quota of family in the region.
func (r RegionConfig) FamilyLimit(family string) int {
	if v, ok := r.FamilyVCPUs[family]; ok {
		return v
	}
	return r.DefaultVCPUs
}

// LocalFor returns the local VM resources for an Azure size.
func (l LocalConfig) LocalFor(size string) LocalResource {
	for k, v := range l.Sizes {
		if strings.EqualFold(k, size) {
			if v.VCPUs == 0 {
				v.VCPUs = l.VCPUs
			}
			if v.MemoryMiB == 0 {
				v.MemoryMiB = l.MemoryMiB
			}
			return v
		}
	}
	return LocalResource{VCPUs: l.VCPUs, MemoryMiB: l.MemoryMiB}
}

// regionDisplayNames are the display names of Azure's public regions, as
// GET /subscriptions/{id}/locations gives them.
var regionDisplayNames = map[string]string{
	"eastus": "East US", "eastus2": "East US 2", "westus": "West US", "westus2": "West US 2",
	"westus3": "West US 3", "centralus": "Central US", "northcentralus": "North Central US",
	"southcentralus": "South Central US", "westcentralus": "West Central US",
	"canadacentral": "Canada Central", "brazilsouth": "Brazil South",
	"northeurope": "North Europe", "westeurope": "West Europe", "uksouth": "UK South",
	"ukwest": "UK West", "francecentral": "France Central", "germanywestcentral": "Germany West Central",
	"swedencentral": "Sweden Central", "switzerlandnorth": "Switzerland North", "norwayeast": "Norway East",
	"japaneast": "Japan East", "japanwest": "Japan West", "koreacentral": "Korea Central",
	"eastasia": "East Asia", "southeastasia": "Southeast Asia", "centralindia": "Central India",
	"australiaeast": "Australia East", "uaenorth": "UAE North", "southafricanorth": "South Africa North",
}

// RegionDisplayName is a region's display name ("East US" for eastus);
// a region Azure does not have is its own display name.
func RegionDisplayName(name string) string {
	if d, ok := regionDisplayNames[strings.ToLower(name)]; ok {
		return d
	}
	return name
}
