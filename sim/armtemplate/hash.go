package armtemplate

import (
	"crypto/sha1"
	"encoding/binary"
	"math/bits"
	"strings"
)

// murmurHash64 is Microsoft's 64-bit variant of MurmurHash3 that ARM's
// uniqueString() uses: two 32-bit lanes over 8-byte blocks. Ported from
// Azure-App-Service/KuduLite Kudu.Core/Helpers/HashHelper.cs (MurmurHash64),
// keeping its uint32 arithmetic (Azure/terraform-provider-azapi's port has
// an abs() in the tail branch that Kudu lacks). Outputs of Microsoft's
// engine for every tail length that matters agree with it (TestUniqueString).
func murmurHash64(data []byte, seed uint32) uint64 {
	const (
		c1 = 0x239b961b
		c2 = 0xab0e9789
		c3 = 0x561ccd1b
		c4 = 0x0bcaa747
		c5 = 0x85ebca6b
		c6 = 0xc2b2ae35
	)
	length := len(data)
	h1, h2 := seed, seed
	i := 0
	for ; i+7 < length; i += 8 {
		k1 := binary.LittleEndian.Uint32(data[i:])
		k2 := binary.LittleEndian.Uint32(data[i+4:])

		k1 *= c1
		k1 = bits.RotateLeft32(k1, 15)
		k1 *= c2
		h1 ^= k1
		h1 = bits.RotateLeft32(h1, 19)
		h1 += h2
		h1 = h1*5 + c3

		k2 *= c2
		k2 = bits.RotateLeft32(k2, 17)
		k2 *= c1
		h2 ^= k2
		h2 = bits.RotateLeft32(h2, 13)
		h2 += h1
		h2 = h2*5 + c4
	}
	if tail := length - i; tail > 0 {
		// Kudu reads up to four bytes into k1 and the rest into k2,
		// little-endian, and mixes them without the rotate/add steps.
		var k1 uint32
		for j := min(tail, 4) - 1; j >= 0; j-- {
			k1 = k1<<8 | uint32(data[i+j])
		}
		k1 *= c1
		k1 = bits.RotateLeft32(k1, 15)
		k1 *= c2
		h1 ^= k1
		if tail > 4 {
			var k2 uint32
			for j := tail - 1; j >= 4; j-- {
				k2 = k2<<8 | uint32(data[i+j])
			}
			k2 *= c2
			k2 = bits.RotateLeft32(k2, 17)
			k2 *= c1
			h2 ^= k2
		}
	}
	h1 ^= uint32(length)
	h2 ^= uint32(length)
	h1 += h2
	h2 += h1
	fmix := func(h uint32) uint32 {
		h ^= h >> 16
		h *= c5
		h ^= h >> 13
		h *= c6
		h ^= h >> 16
		return h
	}
	h1 = fmix(h1)
	h2 = fmix(h2)
	h1 += h2
	h2 += h1
	return uint64(h2)<<32 | uint64(h1)
}

// uniqueString is ARM's uniqueString(): the arguments joined with "-",
// hashed with murmurHash64 (seed 0), and written as 13 base-32 characters,
// five bits at a time from the top (Azure/terraform-provider-azapi
// internal/services/functions/unique_string_function.go, checked against
// real ARM outputs in the tests).
func uniqueString(args ...string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	v := murmurHash64([]byte(strings.Join(args, "-")), 0)
	var b [13]byte
	for i := range b {
		b[i] = alphabet[v>>59]
		v <<= 5
	}
	return string(b[:])
}

// guidNamespace is the namespace of ARM's guid(): a name-based (version 5,
// SHA-1) UUID over the arguments joined with "-". No Microsoft document
// gives the namespace; public ports use it, and outputs of Microsoft's own
// engine recorded in Azure/bicep's tests (guid('asdf'),
// guid('foo','bar','baz'); see TestGUID) match it, joining included.
var guidNamespace = [16]byte{0x11, 0xfb, 0x06, 0xfb, 0x71, 0x2d, 0x4d, 0xdd, 0x98, 0xc7, 0xe7, 0x1b, 0xbd, 0x58, 0x88, 0x30}

// armGUID is ARM's guid(): RFC 4122 §4.3 version 5 UUID, lowercase.
func armGUID(args ...string) string {
	h := sha1.New()
	h.Write(guidNamespace[:])
	h.Write([]byte(strings.Join(args, "-")))
	sum := h.Sum(nil)
	var u [16]byte
	copy(u[:], sum)
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return formatUUID(u)
}

func formatUUID(u [16]byte) string {
	const hexdig = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j] = hexdig[c>>4]
		b[j+1] = hexdig[c&0xf]
		j += 2
	}
	return string(b[:])
}
