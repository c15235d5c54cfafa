package auth

import (
	"errors"
	"testing"
	"time"
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
