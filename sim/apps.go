package sim

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/amlsim/amlsim/sim/store"
)

// Applications: every instance runs a Jupyter notebook server (S24). The
// guest serves it on JupyterGuestPort under AppBasePath; the hypervisor
// forwards Instance.AppPort on the host to it; the API proxies
// AppBasePath to that port for the instance's owner only (or, with
// applicationSharingPolicy Shared, for anyone granted application access),
// adding the instance's AppToken, which nobody else learns, so the
// forwarded port is useless without going through the proxy.

// JupyterGuestPort is the guest port of the notebook server.
const JupyterGuestPort = 8888

// AppPathPrefix starts the path of every instance's applications on the
// simulator's HTTPS endpoint.
const AppPathPrefix = "/amlsim/instances/"

// Application is one entry of an instance's applications list.
type Application struct {
	DisplayName string
	// Path is where the application opens, under AppBasePath.
	Path string
}

// Applications lists the applications every instance offers. Debian 12
// packages the classic notebook server only, so JupyterLab and RStudio,
// which Azure also lists, are absent.
var Applications = []Application{{DisplayName: "Jupyter", Path: "tree"}}

// AppBasePath is the URL path under which an instance's applications are
// served, ending in "/". Compute names are unique in a region, so the
// location and name identify the instance.
func AppBasePath(location, name string) string {
	return AppPathPrefix + strings.ToLower(location) + "/" + strings.ToLower(name) + "/"
}

// HasApplications reports whether the instance was created with an
// application forward (instances recorded by older versions were not).
func (i Instance) HasApplications() bool { return i.AppPort != 0 && i.AppToken != "" }

// SharedApplications reports whether the instance was created with
// applicationSharingPolicy Shared: then any workspace user whose role
// grants applicationaccess/action may use its applications, not only its
// owner (Personal, the default).
func (i Instance) SharedApplications() bool {
	p, _ := i.Extra["applicationSharingPolicy"].(string)
	return strings.EqualFold(p, "Shared")
}

func newAppToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// ComputeAt returns the instance called name in a region, whatever its
// workspace: the application proxy knows only what its URL says.
func (s *Service) ComputeAt(location, name string) (Instance, error) {
	var inst Instance
	err := s.st.View(func(tx *store.Tx) error {
		var ok bool
		var err error
		inst, ok, err = getInstance(tx, instanceKey(location, name))
		if err != nil {
			return err
		}
		if !ok {
			return Errorf(KindNotFound, "NotFound", "There is no compute instance '%s' in region '%s'.", name, location)
		}
		return nil
	})
	return inst, err
}
