package sim

import (
	"strings"
	"unicode"

	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"golang.org/x/crypto/ssh"
)

// newHostKey generates the SSH host key an instance's guest will present,
// as an OpenSSH PEM private key. The simulator knows it in advance and so
// can verify the guest it connects to.
func newHostKey() ([]byte, error) {
	k, err := guestssh.GenerateKey()
	if err != nil {
		return nil, err
	}
	return k.PrivatePEM(), nil
}

// checkAuthorizedKey validates sshSettings.adminPublicKey.
func checkAuthorizedKey(key string) error {
	if strings.TrimSpace(key) == "" {
		return Errorf(KindBadRequest, "InvalidPropertyValue",
			"The property AdminPublicKey is required when SSH public access is enabled.")
	}
	if strings.ContainsAny(strings.TrimSpace(key), "\r\n") {
		return Errorf(KindBadRequest, "InvalidPropertyValue", "The property AdminPublicKey must be a single OpenSSH public key.")
	}
	// Control characters (a NUL in the comment, say) parse here but break
	// the guest's authorized_keys: refused now rather than as a failed
	// create later.
	if strings.ContainsFunc(strings.TrimSpace(key), unicode.IsControl) {
		return Errorf(KindBadRequest, "InvalidPropertyValue", "The property AdminPublicKey must not contain control characters.")
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key)); err != nil {
		return Errorf(KindBadRequest, "InvalidPropertyValue",
			"The specified value for property AdminPublicKey is not a valid OpenSSH public key: %v", err)
	}
	return nil
}
