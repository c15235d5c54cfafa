package cloudinit

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// ErrInvalidConfig is wrapped by every error Validate returns; the errors
// below name the offending field and wrap it too, so
// errors.Is(err, ErrHostname) and errors.Is(err, ErrInvalidConfig) both hold.
var ErrInvalidConfig = errors.New("cloudinit: invalid config")

var (
	ErrInstanceID    = fmt.Errorf("%w: instance-id", ErrInvalidConfig)
	ErrHostname      = fmt.Errorf("%w: hostname", ErrInvalidConfig)
	ErrUser          = fmt.Errorf("%w: user", ErrInvalidConfig)
	ErrAuthorizedKey = fmt.Errorf("%w: authorized key", ErrInvalidConfig)
	ErrHostKey       = fmt.Errorf("%w: host key", ErrInvalidConfig)
	ErrMount         = fmt.Errorf("%w: mount", ErrInvalidConfig)
	ErrFile          = fmt.Errorf("%w: file", ErrInvalidConfig)
	ErrCommand       = fmt.Errorf("%w: command", ErrInvalidConfig)
	ErrMACAddress    = fmt.Errorf("%w: MAC address", ErrInvalidConfig)
	ErrStatic        = fmt.Errorf("%w: static address", ErrInvalidConfig)
)

// maxTagLen is the size of the tag field in the virtio-fs config space.
const maxTagLen = 36

var (
	dnsLabelRE    = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	userNameRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	ownerRE       = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}(?::[a-z_][a-z0-9_-]{0,31})?$`)
	permissionsRE = regexp.MustCompile(`^[0-7]{3,4}$`)
)

// hostKeyAlgos maps a HostKey.Type to the SSH key algorithms it may hold.
var hostKeyAlgos = map[string][]string{
	"ed25519": {ssh.KeyAlgoED25519},
	"ecdsa":   {ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521},
	"rsa":     {ssh.KeyAlgoRSA},
}

// Validate reports every problem with c at once (joined with errors.Join).
// Each one wraps one of the field errors above and ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(validateInstanceID(c.InstanceID))
	add(validateHostname(c.Hostname))
	if c.User != "" {
		if !userNameRE.MatchString(c.User) || c.User == "root" {
			add(fmt.Errorf("%w: %q is not a usable login name", ErrUser, c.User))
		}
	}
	if len(c.AuthorizedKeys) == 0 {
		add(fmt.Errorf("%w: none given, and password logins are disabled", ErrAuthorizedKey))
	}
	for i, k := range c.AuthorizedKeys {
		if _, err := parseAuthorizedKey(k); err != nil {
			add(fmt.Errorf("%w %d: %v", ErrAuthorizedKey, i, err))
		}
	}
	seenTypes := map[string]bool{}
	for i, hk := range c.HostKeys {
		if seenTypes[hk.Type] {
			add(fmt.Errorf("%w %d: a second %q key", ErrHostKey, i, hk.Type))
		}
		seenTypes[hk.Type] = true
		if err := validateHostKey(hk); err != nil {
			add(fmt.Errorf("%w %d: %v", ErrHostKey, i, err))
		}
	}
	seenMounts := map[string]bool{}
	for i, m := range c.Mounts {
		if err := validateMount(m); err != nil {
			add(fmt.Errorf("%w %d: %v", ErrMount, i, err))
		}
		if seenMounts[m.Path] {
			add(fmt.Errorf("%w %d: %q is mounted twice", ErrMount, i, m.Path))
		}
		seenMounts[m.Path] = true
	}
	seenFiles := map[string]bool{}
	for i, f := range c.Files {
		if err := validateFile(f); err != nil {
			add(fmt.Errorf("%w %d: %v", ErrFile, i, err))
		}
		if seenFiles[f.Path] {
			add(fmt.Errorf("%w %d: %q is written twice", ErrFile, i, f.Path))
		}
		seenFiles[f.Path] = true
	}
	for i, argv := range c.BootCmd {
		if err := validateArgv(argv); err != nil {
			add(fmt.Errorf("%w: bootcmd %d: %v", ErrCommand, i, err))
		}
	}
	for i, argv := range c.RunCmd {
		if err := validateArgv(argv); err != nil {
			add(fmt.Errorf("%w: runcmd %d: %v", ErrCommand, i, err))
		}
	}
	if c.MACAddress != "" {
		if hw, err := net.ParseMAC(c.MACAddress); err != nil || len(hw) != 6 {
			add(fmt.Errorf("%w: %q is not an Ethernet MAC address", ErrMACAddress, c.MACAddress))
		}
	}
	if st := c.Static; st != nil {
		if p, err := netip.ParsePrefix(st.Address); err != nil || !p.Addr().Is4() {
			add(fmt.Errorf("%w: %q is not an IPv4 address with a prefix length", ErrStatic, st.Address))
		}
		for _, a := range append([]string{st.Gateway}, st.Nameservers...) {
			if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
				add(fmt.Errorf("%w: %q is not an IPv4 address", ErrStatic, a))
			}
		}
	}
	return errors.Join(errs...)
}

func validateInstanceID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInstanceID)
	case len(id) > 255:
		return fmt.Errorf("%w: longer than 255 bytes", ErrInstanceID)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: not UTF-8", ErrInstanceID)
	case id == "." || id == ".." || strings.ContainsRune(id, '/'):
		// cloud-init keeps per-instance state in /var/lib/cloud/instances/<id>.
		return fmt.Errorf("%w: %q cannot be a directory name", ErrInstanceID, id)
	case strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("%w: %q has spaces or unprintable characters", ErrInstanceID, id)
	}
	return nil
}

func validateHostname(h string) error {
	if h == "" {
		return fmt.Errorf("%w: empty", ErrHostname)
	}
	if !dnsLabelRE.MatchString(h) {
		return fmt.Errorf("%w: %q is not a DNS label (1-63 letters, digits and inner hyphens)", ErrHostname, h)
	}
	return nil
}

// parseAuthorizedKey checks that s is exactly one authorized_keys line.
func parseAuthorizedKey(s string) (ssh.PublicKey, error) {
	line := trimKey(s)
	if !utf8.ValidString(line) {
		return nil, errors.New("not UTF-8")
	}
	if strings.ContainsAny(line, "\r\n\x00") {
		return nil, errors.New("more than one line")
	}
	pk, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one key")
	}
	return pk, nil
}

// derivePublic returns the authorized_keys form of a private key's public
// half, without a comment.
func derivePublic(private string) (string, error) {
	signer, err := ssh.ParsePrivateKey([]byte(private))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(signer.PublicKey())), "\n"), nil
}

func validateHostKey(hk HostKey) error {
	algos, ok := hostKeyAlgos[hk.Type]
	if !ok {
		return fmt.Errorf("type %q is none of ed25519, ecdsa, rsa", hk.Type)
	}
	if !utf8.ValidString(hk.Private) {
		return errors.New("private key is not UTF-8 PEM")
	}
	signer, err := ssh.ParsePrivateKey([]byte(hk.Private))
	if err != nil {
		return fmt.Errorf("private key: %v", err)
	}
	pub := signer.PublicKey()
	matches := false
	for _, a := range algos {
		matches = matches || pub.Type() == a
	}
	if !matches {
		return fmt.Errorf("private key is %s, not %s", pub.Type(), hk.Type)
	}
	if strings.TrimSpace(hk.Public) != "" {
		given, err := parseAuthorizedKey(hk.Public)
		if err != nil {
			return fmt.Errorf("public key: %v", err)
		}
		if !bytes.Equal(given.Marshal(), pub.Marshal()) {
			return errors.New("public key does not match the private key")
		}
	}
	return nil
}

// validateGuestPath checks an absolute, clean path other than "/".
func validateGuestPath(p string) error {
	switch {
	case !utf8.ValidString(p):
		return errors.New("path is not UTF-8")
	case strings.ContainsRune(p, 0):
		return errors.New("path contains a NUL byte")
	case !path.IsAbs(p) || path.Clean(p) != p:
		return fmt.Errorf("path %q is not absolute and clean", p)
	case p == "/":
		return errors.New(`path is "/"`)
	}
	return nil
}

func validateMount(m Mount) error {
	switch {
	case m.Tag == "":
		return errors.New("empty tag")
	case len(m.Tag) > maxTagLen:
		return fmt.Errorf("tag %q is longer than %d bytes", m.Tag, maxTagLen)
	case !utf8.ValidString(m.Tag):
		return errors.New("tag is not UTF-8")
	case strings.IndexFunc(m.Tag, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("tag %q has unprintable characters", m.Tag)
	}
	return validateGuestPath(m.Path)
}

func validateFile(f File) error {
	if err := validateGuestPath(f.Path); err != nil {
		return err
	}
	if f.Permissions != "" && !permissionsRE.MatchString(f.Permissions) {
		return fmt.Errorf("%s: permissions %q are not octal like \"0644\"", f.Path, f.Permissions)
	}
	if f.Owner != "" && !ownerRE.MatchString(f.Owner) {
		return fmt.Errorf("%s: owner %q is not user or user:group", f.Path, f.Owner)
	}
	return nil
}

// validateArgv checks what execve can take, and what cloud-init can quote:
// its shell script quotes each element as text, so the bytes must be UTF-8.
func validateArgv(argv []string) error {
	if len(argv) == 0 {
		return errors.New("empty argv")
	}
	if argv[0] == "" {
		return errors.New("empty program name")
	}
	for i, a := range argv {
		if !utf8.ValidString(a) {
			return fmt.Errorf("argument %d is not UTF-8", i)
		}
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("argument %d contains a NUL byte", i)
		}
	}
	return nil
}
