package hypervisor

import (
	"crypto/sha256"
	"fmt"
)

// MACAddress returns the MAC address drivers give the NIC of the domain
// called name. It is derived from the name alone so that a caller can write
// it into the guest's cloud-init network-config before the domain exists:
// matching the NIC by MAC is what every cloud-init network renderer
// understands, while interface names differ between guests (eth0, ens2, …).
// The prefix 52:54:00 is QEMU's locally administered range.
func MACAddress(name string) string {
	h := sha256.Sum256([]byte(name))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", h[0], h[1], h[2])
}
