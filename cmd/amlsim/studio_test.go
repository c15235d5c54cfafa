package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// amlsim studio prints an address that signs a browser in: opened, it
// leads to the instance list, as the signed-in principal.
func TestStudioSignInAddress(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	addr := strings.TrimSpace(e.ok("studio", "--user", "22222222-2222-2222-2222-222222222222").stdout)
	if !strings.HasPrefix(addr, e.endpoint+"/studio/signin?token=") {
		t.Fatalf("amlsim studio printed %q", addr)
	}
	ca, err := os.ReadFile(filepath.Join(e.home, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || !strings.Contains(page, "<h1>Compute instances") || !strings.Contains(page, "Signed in as <strong>other user</strong>") {
		t.Errorf("after sign-in: %d, %s", resp.StatusCode, resp.Request.URL)
	}
	if strings.Contains(resp.Request.URL.String(), "token=") {
		t.Errorf("the token stayed in the address bar: %s", resp.Request.URL)
	}
}
