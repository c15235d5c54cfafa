package sim

import (
	"net"
	"strconv"
	"strings"

	"github.com/amlsim/amlsim/sim/store"
)

// ledger keeps the accounts of what instances hold: vCPU quota per region
// and VM family, and the loopback ports of their forwards. It holds no
// state of its own: everything is counted from the instance records in
// the caller's transaction, so usage is exact by construction, whatever a
// crash interrupted.
type ledger struct {
	cfg     Config
	catalog *Catalog
}

// usedVCPUs counts the vCPUs the region's instances hold, in total and by
// family, leaving out the instance at key except (none when ""). Every
// instance holds its quota until deleted, stopped or not (S6).
func usedVCPUs(tx *store.Tx, location, except string) (total int, byFamily map[string]int, err error) {
	byFamily = map[string]int{}
	insts, err := instances(tx, location)
	for _, i := range insts {
		if i.key() == except {
			continue
		}
		for f, n := range i.held() {
			total += n
			byFamily[f] += n
		}
	}
	return total, byFamily, err
}

const totalQuotaName = "totalCores"

func (l *ledger) limits(tx *store.Tx, location string) (total int, family func(string) int, err error) {
	region, ok := l.cfg.Region(location)
	if !ok {
		return 0, nil, l.cfg.locationNotAvailable(location)
	}
	overrides, err := quotaOverrides(tx, region.Name)
	if err != nil {
		return 0, nil, err
	}
	total = region.TotalVCPUs
	if v, ok := overrides[totalQuotaName]; ok {
		total = v
	}
	return total, func(f string) int {
		if v, ok := overrides[f]; ok {
			return v
		}
		return region.FamilyLimit(f)
	}, nil
}

// checkQuota refuses a request that would make inst hold more vCPUs
// than the region's family limits or total allow: a new instance (its
// key is in no record yet), or one whose resize is pending. size is the
// size asked for, named in the refusal.
func (l *ledger) checkQuota(tx *store.Tx, inst Instance, size VMSize) error {
	total, byFamily, err := usedVCPUs(tx, inst.Location, inst.key())
	if err != nil {
		return err
	}
	totalLimit, familyLimit, err := l.limits(tx, inst.Location)
	if err != nil {
		return err
	}
	want := 0
	for f, n := range inst.held() {
		want += n
		if free := familyLimit(f) - byFamily[f]; n > free {
			return Errorf(KindQuota, "QuotaExceeded",
				"The specified subscription has a %s vCPU quota of %d and is less than the requested compute training cluster and/or compute instance's min nodes of 1 which maps to %d vCPUs",
				strings.Replace(FamilyDisplayName(f), "Family", "family", 1), max(free, 0), size.VCPUs)
		}
	}
	if free := totalLimit - total; want > free {
		return Errorf(KindQuota, "QuotaExceeded",
			"The specified subscription has a total vCPU quota of %d and cannot accomodate for at least 1 requested compute training cluster and/or compute instance's node which maps to %d vCPUs",
			max(free, 0), size.VCPUs)
	}
	return nil
}

// Usages reports the region's quota use: total regional vCPUs, dedicated
// vCPUs, and each VM family's dedicated vCPUs.
func (s *Service) Usages(location string) ([]Usage, error) {
	region, ok := s.cfg.Region(location)
	if !ok {
		return nil, s.cfg.locationNotAvailable(location)
	}
	var out []Usage
	err := s.st.View(func(tx *store.Tx) error {
		total, byFamily, err := usedVCPUs(tx, region.Name, "")
		if err != nil {
			return err
		}
		totalLimit, familyLimit, err := s.ledger.limits(tx, region.Name)
		if err != nil {
			return err
		}
		out = append(out,
			Usage{Kind: "total", Name: "Total Regional vCPUs", Display: "Total Regional vCPUs", Current: total, Limit: totalLimit, Location: region.Name},
			Usage{Kind: "dedicated", Name: "Total Regional Dedicated vCPUs", Display: "Total Regional Dedicated vCPUs", Current: total, Limit: totalLimit, Location: region.Name})
		for _, f := range s.catalog.Families() {
			out = append(out, Usage{Kind: "family", Name: f, Display: FamilyDisplayName(f) + " Dedicated vCPUs", Current: byFamily[f], Limit: familyLimit(f), Location: region.Name})
		}
		return nil
	})
	return out, err
}

// Quotas reports the region's limits: one per VM family plus the total.
func (s *Service) Quotas(location string) ([]Usage, error) {
	usages, err := s.Usages(location)
	if err != nil {
		return nil, err
	}
	var out []Usage
	for _, u := range usages {
		if u.Kind == "family" {
			out = append(out, u)
		}
	}
	return out, nil
}

// QuotaUpdate is one requested limit change; Status is set on return.
type QuotaUpdate struct {
	Name   string // a VM family or "totalCores"
	Limit  int
	Status string
}

// UpdateQuotas changes limits of the region. Each item gets a status as
// Azure reports it: Success, InvalidVMFamilyName, InvalidQuotaBelowClusterMinimum…
func (s *Service) UpdateQuotas(location string, items []QuotaUpdate) ([]QuotaUpdate, error) {
	region, ok := s.cfg.Region(location)
	if !ok {
		return nil, s.cfg.locationNotAvailable(location)
	}
	families := map[string]string{}
	for _, f := range s.catalog.Families() {
		families[strings.ToLower(f)] = f
	}
	out := make([]QuotaUpdate, len(items))
	err := s.st.Update(func(tx *store.Tx) error {
		total, byFamily, err := usedVCPUs(tx, region.Name, "")
		if err != nil {
			return err
		}
		for i, it := range items {
			out[i] = it
			name, used := it.Name, total
			if !strings.EqualFold(name, totalQuotaName) {
				f, ok := families[strings.ToLower(name)]
				if !ok {
					out[i].Status = "InvalidVMFamilyName"
					continue
				}
				name, used = f, byFamily[f]
			}
			switch {
			case it.Limit < 0:
				out[i].Status = "Failure"
			case it.Limit < used:
				out[i].Status = "InvalidQuotaBelowClusterMinimum"
			default:
				out[i].Status = "Success"
				if err := putQuotaOverride(tx, region.Name, name, it.Limit); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return out, err
}

// --- ports ---

// allocatePorts picks n loopback ports for an instance's forwards (SSH,
// then its applications): ports no instance holds and nothing on the host
// listens on right now.
func (l *ledger) allocatePorts(tx *store.Tx, n int) ([]int, error) {
	taken := map[int]bool{}
	insts, err := instances(tx, "")
	for _, i := range insts {
		taken[i.SSHPort] = true
		taken[i.AppPort] = true
	}
	if err != nil {
		return nil, err
	}
	lo, hi := l.cfg.Local.PortRange[0], l.cfg.Local.PortRange[1]
	var ports []int
	for p := lo; p <= hi && len(ports) < n; p++ {
		if taken[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, Errorf(KindInternal, "NoFreePort", "No free loopback ports are left in %d-%d for the SSH and application forwards (%d needed per instance).", lo, hi, n)
	}
	return ports, nil
}
