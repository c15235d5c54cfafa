// Package guestssh is how amlsim and its tests reach a guest: SSH keys for
// users and hosts (in the forms cloud-init expects), a client that only
// talks to a host whose key it knows in advance, a wait loop for a guest
// that is still booting, and command execution with exit status and output.
package guestssh

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Key is an SSH key pair. The same type serves user keys (AuthorizedKey goes
// into authorized_keys, Signer authenticates) and instance host keys, which
// amlsim generates before boot and hands to cloud-init's ssh_keys as
// ed25519_private (PrivatePEM) and ed25519_public (AuthorizedKey), so the
// client knows the host key without trusting it on first use.
type Key struct {
	priv   crypto.PrivateKey
	signer ssh.Signer
}

// GenerateKey returns a new ed25519 key.
func GenerateKey() (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return newKey(priv)
}

// ParseKey reads an unencrypted private key in OpenSSH (or PKCS#1, PKCS#8,
// SEC 1) PEM form.
func ParseKey(pemBytes []byte) (Key, error) {
	priv, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		return Key{}, fmt.Errorf("parse private key: %w", err)
	}
	// ParseRawPrivateKey returns a pointer for ed25519 keys; keep the value
	// form every other API uses.
	if p, ok := priv.(*ed25519.PrivateKey); ok {
		priv = *p
	}
	return newKey(priv)
}

func newKey(priv crypto.PrivateKey) (Key, error) {
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return Key{}, fmt.Errorf("ssh signer from %T: %w", priv, err)
	}
	return Key{priv: priv, signer: signer}, nil
}

// Signer authenticates with the key (as a user) or proves a host's identity
// (in a server).
func (k Key) Signer() ssh.Signer { return k.signer }

// PublicKey returns the public half, as a client's expected host key.
func (k Key) PublicKey() ssh.PublicKey { return k.signer.PublicKey() }

// PrivatePEM returns the private key in OpenSSH PEM form ("-----BEGIN
// OPENSSH PRIVATE KEY-----"), as ssh-keygen writes it and as cloud-init
// writes it to /etc/ssh/ssh_host_ed25519_key.
func (k Key) PrivatePEM() []byte {
	block, err := ssh.MarshalPrivateKey(k.priv, "")
	if err != nil {
		// Only keys MarshalPrivateKey supports can be built: newKey
		// accepted them through NewSignerFromKey, which supports the
		// same types.
		panic(fmt.Sprintf("guestssh: marshal %T: %v", k.priv, err))
	}
	return pem.EncodeToMemory(block)
}

// AuthorizedKey returns the public key as one authorized_keys line, such as
// "ssh-ed25519 AAAA…", without a trailing newline.
func (k Key) AuthorizedKey() string {
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k.PublicKey())), "\n")
}

// ParseAuthorizedKey reads one authorized_keys line, such as a host key
// stored beside an instance's record.
func ParseAuthorizedKey(line string) (ssh.PublicKey, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("parse authorized key: %w", err)
	}
	return pub, nil
}

// LoadOrCreateKey reads the private key at path, or generates an ed25519
// key and writes it there with mode 0600 when the file does not exist. The
// file appears complete or not at all, and when two processes race, both
// end up with the key that landed on disk.
func LoadOrCreateKey(path string) (Key, error) {
	if b, err := os.ReadFile(path); err == nil {
		k, err := ParseKey(b)
		if err != nil {
			return Key{}, fmt.Errorf("load key %s: %w", path, err)
		}
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Key{}, fmt.Errorf("load key: %w", err)
	}
	k, err := GenerateKey()
	if err != nil {
		return Key{}, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, fmt.Errorf("create key %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return Key{}, fmt.Errorf("create key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already uses 0600; Chmod makes it so whatever the umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return Key{}, fmt.Errorf("create key %s: %w", path, err)
	}
	if _, err := tmp.Write(k.PrivatePEM()); err != nil {
		tmp.Close()
		return Key{}, fmt.Errorf("create key %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return Key{}, fmt.Errorf("create key %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return Key{}, fmt.Errorf("create key %s: %w", path, err)
	}
	// Link, unlike Rename, fails when path exists: a concurrent creator
	// that won keeps its key and we adopt it.
	err = os.Link(tmp.Name(), path)
	switch {
	case err == nil:
		return k, nil
	case errors.Is(err, fs.ErrExist):
		return LoadOrCreateKey(path)
	default:
		// Some file systems have no hard links; fall back to a rename,
		// which is atomic but lets the last of two racing creators win.
		if err := os.Rename(tmp.Name(), path); err != nil {
			return Key{}, fmt.Errorf("create key %s: %w", path, err)
		}
		return k, nil
	}
}
