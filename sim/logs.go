package sim

import (
	"errors"
	"fmt"
	"os"

	"github.com/amlsim/amlsim/hypervisor"
)

// LogKind names a log of an instance amlsim can show.
type LogKind string

const (
	// LogSerial is the VM's serial console: kernel, systemd and cloud-init.
	LogSerial LogKind = "serial"
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
			return nil, Errorf(KindNotFound, "LogNotAvailable", "The %s driver keeps no serial console log.", driverName(s.drv))
		}
		b, err := os.ReadFile(sl.SerialLog(inst.Domain))
		if errors.Is(err, os.ErrNotExist) {
			return nil, Errorf(KindNotFound, "LogNotAvailable", "Compute instance '%s' has no serial console log yet.", name)
		}
		return b, err
	}
	return nil, Errorf(KindBadRequest, "InvalidLogKind", "Unknown log '%s'; the logs are: serial.", kind)
}

func driverName(d hypervisor.Driver) string { return fmt.Sprintf("%T", d) }
