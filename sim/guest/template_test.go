package guest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The template guest's seed authorizes only the template key, takes the
// user-mode network's address statically (no DHCP lease to clone), and
// brings reidentify.py, its unit and the sshd setting for the tmpfs key.
func TestTemplateSeed(t *testing.T) {
	keys, err := LoadTemplateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g := &SSH{Template: keys}
	cfg, err := g.templateConfig("amlsim-template-x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.TemplateSeed("amlsim-template-x"); err != nil {
		t.Fatal(err)
	}
	b, err := cfg.UserData()
	if err != nil {
		t.Fatal(err)
	}
	ud := string(b)
	for _, want := range []string{keys.User.AuthorizedKey(), reidentifyPath, reidentifyUnit, templateSSHD, "amlsim-reidentify.service"} {
		if !strings.Contains(ud, want) {
			t.Errorf("user-data lacks %q", want)
		}
	}
	nc := string(cfg.NetworkConfig())
	for _, want := range []string{`"10.0.2.15/24"`, `gateway4: "10.0.2.2"`, "dhcp4: false"} {
		if !strings.Contains(nc, want) {
			t.Errorf("network-config lacks %q:\n%s", want, nc)
		}
	}
	if _, err := (&SSH{}).TemplateSeed("x"); err == nil {
		t.Error("TemplateSeed without template keys succeeded")
	}
	// The version names the keys too: a snapshot of another key pair is
	// one the host cannot log in to.
	other, err := LoadTemplateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if g.TemplateVersion() == (&SSH{Template: other}).TemplateVersion() {
		t.Error("TemplateVersion is the same for two template key pairs")
	}
}

// reidentify.py is Python the guest's python3 can compile.
func TestReidentifyCompiles(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed here: the guest image has it, this host does not")
	}
	path := filepath.Join(t.TempDir(), "reidentify.py")
	if err := os.WriteFile(path, reidentifyPy, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, "-c", "import ast,sys; ast.parse(open(sys.argv[1]).read())", path).CombinedOutput(); err != nil {
		t.Fatalf("reidentify.py does not parse: %v\n%s", err, out)
	}
}
