package pki

import (
	"crypto/x509"
	"testing"
)

func TestServerCertVerifiesAgainstTheHomeCA(t *testing.T) {
	home := t.TempDir()
	cfg, err := ServerTLS(home)
	if err != nil {
		t.Fatal(err)
	}
	ca1, _, err := EnsureCA(home)
	if err != nil {
		t.Fatal(err)
	}
	ca2, _, _ := EnsureCA(home)
	if !ca1.Equal(ca2) {
		t.Error("the CA changed on the second start")
	}
	pool, err := Pool(home)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("certificate for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "example.com"}); err == nil {
		t.Error("certificate verifies for example.com")
	}
	other, _ := Pool(t.TempDir())
	if other != nil {
		t.Error("a home without a CA gave a pool")
	}
}
