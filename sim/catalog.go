package sim

import (
	"sort"
	"strings"
)

// VMSize is one entry of the Azure VM size catalogue the simulator offers.
// Its vCPUs count against quotas; the local VM gets far less (see
// LocalResources).
type VMSize struct {
	Name     string
	Family   string
	VCPUs    int
	GPUs     int
	MemoryGB float64
	// OSVhdSizeMB and MaxResourceVolumeMB are reported as Azure does.
	OSVhdSizeMB         int
	MaxResourceVolumeMB int
	PremiumIO           bool
}

// FamilyDisplayName is how Azure names a VM family in quota messages and
// usages, e.g. "Standard DSv2 Family".
func FamilyDisplayName(family string) string {
	f := strings.TrimSuffix(strings.TrimPrefix(family, "standard"), "Family")
	return "Standard " + f + " Family"
}

// defaultSizes is the built-in catalogue, the sizes compute instances are
// most often created with.
var defaultSizes = []VMSize{
	{Name: "Standard_D1_v2", Family: "standardDv2Family", VCPUs: 1, MemoryGB: 3.5, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 51200},
	{Name: "Standard_D2_v2", Family: "standardDv2Family", VCPUs: 2, MemoryGB: 7, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 102400},
	{Name: "Standard_D3_v2", Family: "standardDv2Family", VCPUs: 4, MemoryGB: 14, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 204800},
	{Name: "Standard_D4_v2", Family: "standardDv2Family", VCPUs: 8, MemoryGB: 28, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 409600},
	{Name: "Standard_D11_v2", Family: "standardDv2Family", VCPUs: 2, MemoryGB: 14, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 102400},
	{Name: "Standard_DS1_v2", Family: "standardDSv2Family", VCPUs: 1, MemoryGB: 3.5, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 7168, PremiumIO: true},
	{Name: "Standard_DS2_v2", Family: "standardDSv2Family", VCPUs: 2, MemoryGB: 7, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 14336, PremiumIO: true},
	{Name: "Standard_DS3_v2", Family: "standardDSv2Family", VCPUs: 4, MemoryGB: 14, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 28672, PremiumIO: true},
	{Name: "Standard_DS4_v2", Family: "standardDSv2Family", VCPUs: 8, MemoryGB: 28, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 57344, PremiumIO: true},
	{Name: "Standard_DS11_v2", Family: "standardDSv2Family", VCPUs: 2, MemoryGB: 14, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 28672, PremiumIO: true},
	{Name: "Standard_DS12_v2", Family: "standardDSv2Family", VCPUs: 4, MemoryGB: 28, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 57344, PremiumIO: true},
	{Name: "Standard_F4s_v2", Family: "standardFSv2Family", VCPUs: 4, MemoryGB: 8, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 32768, PremiumIO: true},
	{Name: "Standard_NC6", Family: "standardNCFamily", VCPUs: 6, GPUs: 1, MemoryGB: 56, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 389120},
	{Name: "Standard_NC12", Family: "standardNCFamily", VCPUs: 12, GPUs: 2, MemoryGB: 112, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 696320},
	{Name: "Standard_NC6s_v3", Family: "standardNCSv3Family", VCPUs: 6, GPUs: 1, MemoryGB: 112, OSVhdSizeMB: 1047552, MaxResourceVolumeMB: 344064, PremiumIO: true},
}

// Catalog is the set of VM sizes offered, looked up case-insensitively as
// Azure does (STANDARD_D3_V2 is Standard_D3_v2).
type Catalog struct {
	sizes map[string]VMSize
}

// NewCatalog builds a catalogue from sizes.
func NewCatalog(sizes []VMSize) *Catalog {
	c := &Catalog{sizes: make(map[string]VMSize, len(sizes))}
	for _, s := range sizes {
		c.sizes[strings.ToLower(s.Name)] = s
	}
	return c
}

// Lookup finds a size by name, ignoring case.
func (c *Catalog) Lookup(name string) (VMSize, bool) {
	s, ok := c.sizes[strings.ToLower(name)]
	return s, ok
}

// Sizes lists the catalogue sorted by name.
func (c *Catalog) Sizes() []VMSize {
	out := make([]VMSize, 0, len(c.sizes))
	for _, s := range c.sizes {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Families lists the VM families in the catalogue, sorted.
func (c *Catalog) Families() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range c.sizes {
		if !seen[s.Family] {
			seen[s.Family] = true
			out = append(out, s.Family)
		}
	}
	sort.Strings(out)
	return out
}
