package fake_test

import (
	"testing"

	"github.com/amlsim/amlsim/hypervisor"
	"github.com/amlsim/amlsim/hypervisor/fake"
	"github.com/amlsim/amlsim/hypervisor/hypervisortest"
)

func TestConformance(t *testing.T) {
	hypervisortest.Run(t, func(t *testing.T) hypervisor.Driver {
		return fake.New(fake.WithForeign("test"))
	}, hypervisortest.Options{Foreign: []string{"test"}})
}
