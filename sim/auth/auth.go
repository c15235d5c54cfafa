// Package auth mints and checks the bearer tokens the simulator accepts.
// Tokens are JWTs shaped like Entra ID's (aud, iss, oid, tid, name) and
// signed with a key kept in the simulator's home, so `amlsim token` and the
// server agree without talking to each other.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"
)

// Audience is the ARM audience clients ask tokens for.
const Audience = "https://management.azure.com/"

// Audiences are the audiences ARM accepts: both of its resource IDs, with
// and without the trailing slash (the cloud metadata lists the first two;
// az asks for audiences[0], the SDKs for Audience).
var Audiences = []string{Audience, "https://management.core.windows.net/", "https://management.azure.com", "https://management.core.windows.net"}

// KeyFile is the token signing key's file name in the home directory.
const KeyFile = "token.key"

var (
	// ErrMissing is returned when a request carries no bearer token.
	ErrMissing = errors.New("the 'Authorization' header is missing")
	// ErrMalformed is returned when the header or token cannot be parsed.
	ErrMalformed = errors.New("the 'Authorization' header is not a valid bearer token")
	// ErrExpired is returned for a token past its expiry.
	ErrExpired = errors.New("the access token has expired")
	// ErrInvalid is returned for a token signed with another key, for
	// another audience, or otherwise not ours.
	ErrInvalid = errors.New("the access token is invalid")
)

// Claims identify the principal a token speaks for.
type Claims struct {
	ObjectID string `json:"oid"`
	TenantID string `json:"tid"`
	Name     string `json:"name,omitempty"`
	jwt.RegisteredClaims
}

// Signer mints and verifies tokens with one key.
type Signer struct {
	key []byte
	now func() time.Time
}

// LoadOrCreate reads the signing key from home, creating it on first use.
func LoadOrCreate(home string) (*Signer, error) {
	path := filepath.Join(home, KeyFile)
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(home, 0o700); err != nil {
			return nil, err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, key, 0o600); err != nil {
			return nil, err
		}
		if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
			os.Remove(tmp)
			return nil, err
		}
		os.Remove(tmp)
		// Whoever linked first won; read back what is there.
		key, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("token key %s is too short", path)
	}
	return New(key), nil
}

// New returns a signer for key.
func New(key []byte) *Signer { return &Signer{key: key, now: time.Now} }

// WithClock returns a copy of the signer using now as its clock.
func (s *Signer) WithClock(now func() time.Time) *Signer { return &Signer{key: s.key, now: now} }

// Mint returns a token for the principal, valid for ttl.
func (s *Signer) Mint(oid, tid, name string, ttl time.Duration) (string, error) {
	return s.MintFor(Audience, oid, tid, name, ttl)
}

// MintFor returns a token for the principal, for audience aud, valid for
// ttl.
func (s *Signer) MintFor(aud, oid, tid, name string, ttl time.Duration) (string, error) {
	now := s.now()
	c := Claims{
		ObjectID: oid, TenantID: tid, Name: name,
		RegisteredClaims: jwt.RegisteredClaims{
			Audience:  jwt.ClaimStrings{aud},
			Issuer:    "https://sts.windows.net/" + tid + "/",
			Subject:   oid,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.key)
}

// Verify checks an ARM token and returns its claims.
func (s *Signer) Verify(token string) (Claims, error) {
	return s.VerifyFor(token, Audiences...)
}

// VerifyFor checks a token for one of the audiences and returns its
// claims.
func (s *Signer) VerifyFor(token string, audiences ...string) (Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return s.key, nil },
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithAudience(audiences...),
		jwt.WithTimeFunc(s.now),
		jwt.WithExpirationRequired())
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return c, fmt.Errorf("%w: expired at %s", ErrExpired, c.ExpiresAt.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenMalformed):
		return c, ErrMalformed
	default:
		return c, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.ObjectID == "" || c.TenantID == "" {
		return c, fmt.Errorf("%w: no oid or tid claim", ErrInvalid)
	}
	return c, nil
}

// IdentitySecret returns the secret of a managed identity that speaks for
// the principal (oid in tenant tid): what IDENTITY_HEADER holds. It does
// not expire and cannot be revoked but by replacing the home's token key
// (which ends every token and secret of that home).
func (s *Signer) IdentitySecret(oid, tid string) string {
	id := base64.RawURLEncoding.EncodeToString([]byte(oid + " " + tid))
	return id + "." + s.identityMAC(id)
}

// IdentityOf returns the principal an identity secret speaks for, or
// ErrInvalid.
func (s *Signer) IdentityOf(secret string) (oid, tid string, err error) {
	id, mac, ok := strings.Cut(secret, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(s.identityMAC(id))) {
		return "", "", ErrInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return "", "", ErrInvalid
	}
	oid, tid, ok = strings.Cut(string(b), " ")
	if !ok || oid == "" || tid == "" {
		return "", "", ErrInvalid
	}
	return oid, tid, nil
}

func (s *Signer) identityMAC(id string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("amlsim managed identity\x00" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// credentialTTL is how long the tokens of a Credential are valid.
const credentialTTL = time.Hour

// credential is an azcore.TokenCredential minting its tokens with a
// Signer.
type credential struct {
	signer         *Signer
	oid, tid, name string
}

// Credential returns an azcore.TokenCredential that mints tokens for the
// principal (object ID oid in tenant tid, display name name) with s, as
// `amlsim token` does: what a client holding the server's home (the CLI
// on the server's machine, a test running the server in-process) hands
// the Azure SDK, with nothing to sign in to. Its tokens are valid for an
// hour, whatever scope is asked: the server accepts both ARM audiences.
func (s *Signer) Credential(oid, tid, name string) azcore.TokenCredential {
	return &credential{signer: s, oid: oid, tid: tid, name: name}
}

// GetToken mints a fresh token for the credential's principal.
func (c *credential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if err := ctx.Err(); err != nil {
		return azcore.AccessToken{}, err
	}
	now := c.signer.now()
	tok, err := c.signer.WithClock(func() time.Time { return now }).Mint(c.oid, c.tid, c.name, credentialTTL)
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("mint a token for %s: %w", c.oid, err)
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: now.Add(credentialTTL)}, nil
}
