package hypervisor

import (
	"net"
	"testing"
)

func TestMACAddress(t *testing.T) {
	a := MACAddress("ci-one")
	if hw, err := net.ParseMAC(a); err != nil || len(hw) != 6 || hw[0] != 0x52 || hw[1] != 0x54 || hw[2] != 0x00 {
		t.Errorf("MACAddress(ci-one) = %q, want a 52:54:00 Ethernet address", a)
	}
	if b := MACAddress("ci-one"); b != a {
		t.Errorf("MACAddress is not stable: %q then %q", a, b)
	}
	if b := MACAddress("ci-two"); b == a {
		t.Errorf("MACAddress(ci-one) = MACAddress(ci-two) = %q, want different", a)
	}
}
