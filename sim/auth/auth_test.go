package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

func TestMintVerify(t *testing.T) {
	s, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Mint("oid-1", "tid-1", "Ada", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.ObjectID != "oid-1" || c.TenantID != "tid-1" || c.Name != "Ada" {
		t.Errorf("claims = %+v, want oid-1/tid-1/Ada", c)
	}
}

func TestVerifyRefuses(t *testing.T) {
	home := t.TempDir()
	s, _ := LoadOrCreate(home)
	same, _ := LoadOrCreate(home)
	other, _ := LoadOrCreate(t.TempDir())
	past := s.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) })

	good, _ := same.Mint("o", "t", "", time.Hour)
	foreign, _ := other.Mint("o", "t", "", time.Hour)
	expired, _ := past.Mint("o", "t", "", time.Hour)

	if _, err := s.Verify(good); err != nil {
		t.Errorf("token from the same home: %v", err)
	}
	for name, tc := range map[string]struct {
		tok  string
		want error
	}{
		"foreign":   {foreign, ErrInvalid},
		"expired":   {expired, ErrExpired},
		"malformed": {"not-a-jwt", ErrMalformed},
	} {
		if _, err := s.Verify(tc.tok); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func TestCredential(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s := New(make([]byte, 32)).WithClock(func() time.Time { return at })
	tok, err := s.Credential("oid-1", "tid-1", "Ada").GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{Audience + ".default"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := at.Add(time.Hour); !tok.ExpiresOn.Equal(want) {
		t.Errorf("ExpiresOn = %s, want %s", tok.ExpiresOn, want)
	}
	c, err := s.Verify(tok.Token)
	if err != nil {
		t.Fatalf("the credential's token: %v", err)
	}
	if c.ObjectID != "oid-1" || c.TenantID != "tid-1" || c.Name != "Ada" {
		t.Errorf("claims = %+v, want oid-1/tid-1/Ada", c)
	}
	if !c.ExpiresAt.Time.Equal(tok.ExpiresOn) {
		t.Errorf("the token expires at %s, but the credential says %s", c.ExpiresAt.Time, tok.ExpiresOn)
	}
}
