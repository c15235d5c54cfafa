package sim

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/amlsim/amlsim/sim/schedule"
	"github.com/google/uuid"
	"github.com/sosodev/duration"
)

// Idle shutdown bounds: "compute instance must be inactive for a minimum
// of 15 mins and a maximum of three days" (MicrosoftDocs azure-ai-docs,
// how-to-create-compute-instance.md, "Configure idle shutdown"; the REST
// spec's IdleShutdownSetting: "Time is defined in ISO8601 format. Minimum
// is 15 min, maximum is 3 days.").
const (
	minIdleTime = 15 * time.Minute
	maxIdleTime = 3 * 24 * time.Hour
)

// parseIdleTime checks an idleTimeBeforeShutdown value and returns it as
// given; "" turns idle shutdown off.
func parseIdleTime(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	d, err := duration.Parse(s)
	if err != nil || d.Negative {
		return "", idleTimeError(s)
	}
	if t := d.ToTimeDuration(); t < minIdleTime || t > maxIdleTime {
		return "", idleTimeError(s)
	}
	return s, nil
}

// The compute service reports invalid input as 400 UserError (a recorded
// compute-instance PUT in Azure/azure-cli-extensions,
// src/machinelearningservices/azext_mlv2/tests/recordings/
// test_compute_compute_instance_with_no_public_ip.yaml; and
// Azure/data-product-analytics#141). No report shows the text for a bad
// schedule or idle time, so the messages are amlsim's.
func idleTimeError(s string) error {
	return Errorf(KindBadRequest, "UserError",
		"The idleTimeBeforeShutdown '%s' is not valid: it must be an ISO 8601 duration from PT15M to P3D.", s)
}

// IdleDuration is the instance's idle shutdown time; zero when it has none.
func (i Instance) IdleDuration() time.Duration {
	if i.IdleTime == "" {
		return 0
	}
	d, err := duration.Parse(i.IdleTime)
	if err != nil {
		return 0
	}
	return d.ToTimeDuration()
}

// parseSchedules checks the schedules property of a request (nil: absent)
// against prev, the instance's schedules, whose ids it keeps.
func parseSchedules(raw json.RawMessage, prev []schedule.Schedule) ([]schedule.Schedule, error) {
	if raw == nil {
		return prev, nil
	}
	s, err := schedule.Parse(raw, schedule.Schedules{ComputeStartStop: prev}, uuid.NewString)
	var se *schedule.Error
	if errors.As(err, &se) {
		return nil, Errorf(KindBadRequest, "UserError", "The property properties.properties.%s is invalid: %s.", se.Path, se.Message)
	}
	return s.ComputeStartStop, err
}
