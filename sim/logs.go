package sim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/amlsim/amlsim/hypervisor"
)

// LogKind names a log of an instance amlsim can show.
type LogKind string

const (
	// LogSerial is the VM's serial console: kernel, systemd and cloud-init.
	LogSerial LogKind = "serial"
	// LogSetup and LogStartup are the newest runs of the creation and
	// startup scripts, from Logs/<name>/ in the workspace file share.
	LogSetup   LogKind = "setup"
	LogStartup LogKind = "startup"
)

// Log returns the content of one of an instance's logs.
func (s *Service) Log(ref WorkspaceRef, name string, kind LogKind) ([]byte, error) {
	inst, err := s.Compute(ref, name)
	if err != nil {
		return nil, err
	}
	switch kind {
	case LogSerial:
		sl, ok := s.drv.(hypervisor.SerialLogger)
		if !ok {
			return nil, Errorf(KindNotFound, "LogNotAvailable", "Compute instance '%s' has no serial console log: its driver boots no VM (--driver fake).", name)
		}
		b, err := os.ReadFile(sl.SerialLog(inst.Domain))
		if errors.Is(err, os.ErrNotExist) {
			return nil, Errorf(KindNotFound, "LogNotAvailable", "Compute instance '%s' has no serial console log yet.", name)
		}
		return b, err
	case LogSetup, LogStartup:
		prefix := string(Creation) + "_"
		if kind == LogStartup {
			prefix = string(Startup) + "_"
		}
		if inst.Share == "" {
			return nil, Errorf(KindNotFound, "LogNotAvailable", "Compute instance '%s' has no workspace file share to keep script logs in.", name)
		}
		dir := filepath.Join(inst.Share, "Logs", inst.Name)
		entries, _ := os.ReadDir(dir)
		newest := ""
		for _, e := range entries {
			// Names carry a UTC timestamp, so the greatest is the newest.
			if strings.HasPrefix(e.Name(), prefix) && e.Name() > newest {
				newest = e.Name()
			}
		}
		if newest == "" {
			return nil, Errorf(KindNotFound, "LogNotAvailable", "Compute instance '%s' has no %s script log in Logs/%s/ yet.", name, kind, inst.Name)
		}
		return os.ReadFile(filepath.Join(dir, newest))
	}
	return nil, Errorf(KindBadRequest, "InvalidLogKind", "Unknown log '%s'; the logs are: serial, setup, startup.", kind)
}

// LastLines returns the last n lines of b, a final newline included when b
// has one.
func LastLines(b []byte, n int) []byte {
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	i := end
	for ; n > 0; n-- {
		j := bytes.LastIndexByte(b[:i], '\n')
		if j < 0 {
			return b
		}
		i = j
	}
	if i == end {
		return nil
	}
	return b[i+1:]
}
