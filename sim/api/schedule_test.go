package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/amlsimtest"
	"github.com/amlsim/amlsim/sim/api"
)

// newClockEnv is an environment on a test clock served at
// /amlsim/clock, set to start (amlsim serve --test-clock).
func newClockEnv(t *testing.T, start time.Time, tweak ...func(*sim.Config)) *env {
	t.Helper()
	return newServerEnv(t, tweak, amlsimtest.WithTestClock(start))
}

// setActivity sets what the fake guest of an instance reports to idle
// shutdown.
func (e *env) setActivity(name string, a sim.Activity) {
	e.t.Helper()
	if err := e.svc.SetActivity(sim.WorkspaceRef{ResourceGroup: rg, Name: ws}, name, a); err != nil {
		e.t.Fatal(err)
	}
}

// setClock moves the test clock through the API, as a test suite would.
func (e *env) setClock(body string) time.Time {
	e.t.Helper()
	resp := e.raw("POST", api.ClockPath, e.token, body)
	var v struct{ Now time.Time }
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(raw, &v) != nil {
		e.t.Fatalf("POST %s %s: %d %s", api.ClockPath, body, resp.StatusCode, raw)
	}
	return v.Now
}

// waitFor polls an instance until cond holds.
func (e *env) waitFor(name, what string, cond func(*ml.ComputeInstance) bool) *ml.ComputeInstance {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ci := e.get(name)
		if cond(ci) {
			return ci
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %s never happened; state %s, lastOperation %+v", name, what, *ci.Properties.State, ci.Properties.LastOperation)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func cronSchedule(action ml.ComputePowerAction, expr string) *ml.ComputeStartStopSchedule {
	return &ml.ComputeStartStopSchedule{
		Action: to(action), TriggerType: to(ml.ComputeTriggerTypeCron), Status: to(ml.ScheduleStatusEnabled),
		Cron: &ml.Cron{Expression: to(expr), StartTime: to("2026-12-01T00:00:00"), TimeZone: to("UTC")},
	}
}

// The seed quickstart's three schedules (cron stop at 18:00, cron start
// at 08:00, a daily recurrence stop at 17:00), created with the Go SDK,
// act through the lifecycle as a user would, with operationTrigger
// Schedule; a stop of a stopped instance is skipped with an event; a PUT
// that changes the schedules takes effect at once.
func TestSchedulesFireOnTheTestClock(t *testing.T) {
	t.Parallel()
	e := newClockEnv(t, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	body := instanceBody("Standard_D1_v2")
	body.Properties.(*ml.ComputeInstance).Properties.Schedules = &ml.ComputeSchedules{ComputeStartStop: []*ml.ComputeStartStopSchedule{
		cronSchedule(ml.ComputePowerActionStop, "0 18 * * *"),
		cronSchedule(ml.ComputePowerActionStart, "0 8 * * *"),
		{
			Action: to(ml.ComputePowerActionStop), TriggerType: to(ml.ComputeTriggerTypeRecurrence), Status: to(ml.ScheduleStatusEnabled),
			Recurrence: &ml.Recurrence{Frequency: to(ml.ComputeRecurrenceFrequencyDay), Interval: to[int32](1), StartTime: to("2026-12-01T00:00:00"), TimeZone: to("UTC"),
				Schedule: &ml.ComputeRecurrenceSchedule{Hours: []*int32{to[int32](17)}, Minutes: []*int32{to[int32](0)}}},
		},
	}}
	if _, err := e.create("ci-sched", body); err != nil {
		t.Fatal(err)
	}
	got := e.get("ci-sched").Properties.Schedules.ComputeStartStop
	if len(got) != 3 || got[0].ID == nil || *got[0].ProvisioningStatus != ml.ProvisioningStatusCompleted || *got[2].Recurrence.Schedule.Hours[0] != 17 {
		t.Fatalf("schedules after create: %+v", got)
	}

	e.setClock(`{"now":"2026-12-01T16:59:30Z"}`)
	time.Sleep(100 * time.Millisecond)
	if st := e.state("ci-sched"); st != ml.ComputeInstanceStateRunning {
		t.Fatalf("state before 17:00 = %s, want Running", st)
	}
	e.setClock(`{"advance":"PT1M"}`)
	ci := e.waitFor("ci-sched", "the 17:00 stop", func(ci *ml.ComputeInstance) bool {
		return *ci.Properties.State == ml.ComputeInstanceStateStopped
	})
	if lo := ci.Properties.LastOperation; *lo.OperationName != ml.OperationNameStop || *lo.OperationTrigger != ml.OperationTriggerSchedule {
		t.Errorf("lastOperation after the 17:00 stop = %s %s, want Stop by Schedule", *lo.OperationName, *lo.OperationTrigger)
	}
	if ci.Properties.LastOperation.OperationTime.Hour() != 17 {
		t.Errorf("the stop is dated %v, want the test clock's 17:00", ci.Properties.LastOperation.OperationTime)
	}

	e.setClock(`{"now":"2026-12-01T18:00:30Z"}`)
	waitEvent(t, e, "ci-sched", "skipped: the instance is Stopped")

	// Over a night: the 08:00 start is the last firing.
	e.setClock(`{"now":"2026-12-02T08:00:30Z"}`)
	ci = e.waitFor("ci-sched", "the 08:00 start", func(ci *ml.ComputeInstance) bool {
		return *ci.Properties.State == ml.ComputeInstanceStateRunning
	})
	if lo := ci.Properties.LastOperation; *lo.OperationName != ml.OperationNameStart || *lo.OperationTrigger != ml.OperationTriggerSchedule {
		t.Errorf("lastOperation after the 08:00 start = %s %s", *lo.OperationName, *lo.OperationTrigger)
	}

	// A PUT that disables the stops takes effect at once: 17:00 and
	// 18:00 pass and the instance runs on.
	resp, err := e.computes().Get(ctx(t), rg, ws, "ci-sched", nil)
	if err != nil {
		t.Fatal(err)
	}
	props := resp.Properties.(*ml.ComputeInstance).Properties
	for _, s := range props.Schedules.ComputeStartStop {
		if *s.Action == ml.ComputePowerActionStop {
			s.Status = to(ml.ScheduleStatusDisabled)
		}
	}
	ids := *props.Schedules.ComputeStartStop[0].ID
	if _, err := e.create("ci-sched", resp.ComputeResource); err != nil {
		t.Fatalf("PUT back with the stops disabled: %v", err)
	}
	after := e.get("ci-sched").Properties.Schedules.ComputeStartStop
	if *after[0].Status != ml.ScheduleStatusDisabled || *after[0].ID != ids {
		t.Errorf("schedules after the PUT: status %s, id %s (was %s)", *after[0].Status, *after[0].ID, ids)
	}
	e.setClock(`{"now":"2026-12-02T18:30:00Z"}`)
	time.Sleep(200 * time.Millisecond)
	if st := e.state("ci-sched"); st != ml.ComputeInstanceStateRunning {
		t.Errorf("state after disabled stops passed = %s, want Running", st)
	}
}

// Bad schedules and idle times are refused with 400 and create nothing;
// the idle time is checked against Azure's bounds (PT15M to P3D) at
// create and in updateIdleShutdownSetting.
func TestSchedulesAndIdleTimeInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	put := func(name, props string) (int, string, string) {
		return e.send("PUT", computePath+name+"?api-version="+previewVersion, "application/json",
			`{"properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2",`+props+`}}}`)
	}
	for _, props := range []string{
		`"schedules":{"computeStartStop":[{"action":"Stop","triggerType":"Cron","cron":{"expression":"0 25 * * *"}}]}`,
		`"schedules":{"computeStartStop":[{"action":"Stop","triggerType":"Cron","cron":{"expression":"0 18 * * *","timeZone":"Atlantis Standard Time"}}]}`,
		`"schedules":{"computeStartStop":[{"action":"Hibernate","triggerType":"Cron","cron":{"expression":"0 18 * * *"}}]}`,
		`"schedules":{"computeStartStop":[{"action":"Stop","triggerType":"Recurrence"}]}`,
		`"schedules":{"computeStartStop":[` + strings.Repeat(`{"action":"Stop","cron":{"expression":"0 18 * * *"}},`, 1000) + `{"action":"Stop","cron":{"expression":"0 18 * * *"}}]}`,
		`"idleTimeBeforeShutdown":"PT10M"`,
		`"idleTimeBeforeShutdown":"P4D"`,
		`"idleTimeBeforeShutdown":"30"`,
	} {
		if status, code, msg := put("ci-bad", props); status != 400 || code != "UserError" {
			t.Errorf("%.80s: %d %s %q, want 400 UserError", props, status, code, msg)
		}
	}
	if status, _, _ := e.send("GET", computePath+"ci-bad?api-version="+previewVersion, "", ""); status != 404 {
		t.Errorf("after refused creates GET = %d, want 404", status)
	}

	if status, code, msg := put("ci-idle", `"idleTimeBeforeShutdown":"PT30M"`); status != 201 {
		t.Fatalf("idle time PT30M: %d %s %q", status, code, msg)
	}
	idle := func() string {
		var v struct {
			Properties struct {
				Properties struct {
					IdleTimeBeforeShutdown string `json:"idleTimeBeforeShutdown"`
				} `json:"properties"`
			} `json:"properties"`
		}
		json.NewDecoder(e.raw("GET", computePath+"ci-idle?api-version="+previewVersion, e.token, "").Body).Decode(&v)
		return v.Properties.Properties.IdleTimeBeforeShutdown
	}
	if got := idle(); got != "PT30M" {
		t.Errorf("idleTimeBeforeShutdown = %q, want PT30M", got)
	}
	update := computePath + "ci-idle/updateIdleShutdownSetting?api-version=" + previewVersion
	if status, code, msg := e.send("POST", update, "application/json", `{"idleTimeBeforeShutdown":"PT2H"}`); status != 200 {
		t.Errorf("updateIdleShutdownSetting PT2H: %d %s %q", status, code, msg)
	}
	if status, code, _ := e.send("POST", update, "application/json", `{"idleTimeBeforeShutdown":"PT5M"}`); status != 400 || code != "UserError" {
		t.Errorf("updateIdleShutdownSetting PT5M: %d %s, want 400", status, code)
	}
	if got := idle(); got != "PT2H" {
		t.Errorf("idleTimeBeforeShutdown after the updates = %q, want PT2H", got)
	}
}

// The test clock is served only with the option, to Owners only, and
// only moves forward.
func TestClockAPI(t *testing.T) {
	t.Parallel()
	plain := newEnv(t)
	if resp := plain.raw("GET", api.ClockPath, plain.token, ""); resp.StatusCode != 404 {
		t.Errorf("GET %s without the test clock = %d, want 404", api.ClockPath, resp.StatusCode)
	}
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	e := newClockEnv(t, start, rbacConfig)
	var v struct{ Now time.Time }
	json.NewDecoder(e.raw("GET", api.ClockPath, e.token, "").Body).Decode(&v)
	if v.Now.Before(start) || v.Now.After(start.Add(time.Minute)) {
		t.Errorf("GET clock = %v, want about %v", v.Now, start)
	}
	if now := e.setClock(`{"advance":"P1DT2H"}`); now.Sub(v.Now) < 26*time.Hour {
		t.Errorf("after advancing P1DT2H: %v", now)
	}
	for _, body := range []string{`{"now":"2020-01-01T00:00:00Z"}`, `{"advance":"-PT1H"}`, `{"advance":"soon"}`, `{}`, `{"now":"2030-01-01T00:00:00Z","advance":"PT1H"}`} {
		if status, code, _ := e.send("POST", api.ClockPath, "application/json", body); status != 400 || code != "InvalidRequestContent" {
			t.Errorf("POST clock %s: %d %s, want 400 InvalidRequestContent", body, status, code)
		}
	}
	// A workspace Contributor may not move the clock of everyone.
	contributor, err := e.tokens.Mint(oidContrib, tenant, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if resp := e.raw("POST", api.ClockPath, contributor, `{"advance":"PT1H"}`); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST clock as a workspace Contributor = %d, want 403", resp.StatusCode)
	}
}

// Idle shutdown stops a running instance once it was idle for its
// idleTimeBeforeShutdown, with the trigger IdleShutdown, and not while it
// has an SSH session or a kernel; a stopped instance stays stopped.
func TestIdleShutdown(t *testing.T) {
	t.Parallel()
	e := newClockEnv(t, time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	put := `{"properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2","idleTimeBeforeShutdown":"PT30M"}}}`
	for _, name := range []string{"ci-idle", "ci-busy"} {
		if status, code, msg := e.send("PUT", computePath+name+"?api-version="+previewVersion, "application/json", put); status != 201 {
			t.Fatalf("create %s: %d %s %q", name, status, code, msg)
		}
		e.waitFor(name, "Running", func(ci *ml.ComputeInstance) bool { return *ci.Properties.State == ml.ComputeInstanceStateRunning })
	}
	e.setActivity("ci-busy", sim.Activity{SSHSessions: 1})

	e.setClock(`{"advance":"PT20M"}`)
	time.Sleep(200 * time.Millisecond)
	if st := e.state("ci-idle"); st != ml.ComputeInstanceStateRunning {
		t.Fatalf("after 20 idle minutes of 30: %s, want Running", st)
	}
	e.setClock(`{"advance":"PT11M"}`)
	ci := e.waitFor("ci-idle", "idle shutdown", func(ci *ml.ComputeInstance) bool {
		return *ci.Properties.State == ml.ComputeInstanceStateStopped
	})
	if lo := ci.Properties.LastOperation; *lo.OperationName != ml.OperationNameStop || *lo.OperationTrigger != ml.OperationTriggerIdleShutdown {
		t.Errorf("lastOperation = %s %s, want Stop by IdleShutdown", *lo.OperationName, *lo.OperationTrigger)
	}
	if st := e.state("ci-busy"); st != ml.ComputeInstanceStateRunning {
		t.Errorf("an instance with an SSH session: %s, want Running", st)
	}
	// Its session ends, then a kernel runs for a while, then nothing.
	e.setActivity("ci-busy", sim.Activity{Kernels: 1})
	e.setClock(`{"advance":"PT40M"}`)
	time.Sleep(200 * time.Millisecond)
	if st := e.state("ci-busy"); st != ml.ComputeInstanceStateRunning {
		t.Fatalf("an instance with a kernel: %s, want Running", st)
	}
	e.setActivity("ci-busy", sim.Activity{})
	e.setClock(`{"advance":"PT29M"}`)
	time.Sleep(200 * time.Millisecond)
	if st := e.state("ci-busy"); st != ml.ComputeInstanceStateRunning {
		t.Fatalf("29 minutes after its kernel closed: %s, want Running", st)
	}
	e.setClock(`{"advance":"PT2M"}`)
	e.waitFor("ci-busy", "idle shutdown after the kernel closed", func(ci *ml.ComputeInstance) bool {
		return *ci.Properties.State == ml.ComputeInstanceStateStopped
	})
}

// The activity idle shutdown sees is readable, and settable on the fake
// driver: users of `serve --driver fake` keep an instance busy with it.
func TestActivityAPI(t *testing.T) {
	t.Parallel()
	e := newClockEnv(t, time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	put := `{"properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2","idleTimeBeforeShutdown":"PT15M"}}}`
	if status, code, msg := e.send("PUT", computePath+"ci-act?api-version="+previewVersion, "application/json", put); status != 201 {
		t.Fatalf("create: %d %s %q", status, code, msg)
	}
	e.waitFor("ci-act", "Running", func(ci *ml.ComputeInstance) bool { return *ci.Properties.State == ml.ComputeInstanceStateRunning })
	activity := computePath + "ci-act/amlsim/activity?api-version=" + previewVersion
	resp := e.raw("PUT", activity, e.token, `{"sshSessions":1,"kernels":2}`)
	var a sim.Activity
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != 200 || a.SSHSessions != 1 || a.Kernels != 2 {
		t.Fatalf("PUT activity: %d %+v %v", resp.StatusCode, a, err)
	}
	e.setClock(`{"advance":"PT1H"}`)
	time.Sleep(200 * time.Millisecond)
	if st := e.state("ci-act"); st != ml.ComputeInstanceStateRunning {
		t.Fatalf("busy by the API for an hour: %s, want Running", st)
	}
	if status, code, _ := e.send("PUT", activity, "application/json", `{"kernels":-1}`); status != 400 || code != "InvalidRequestContent" {
		t.Errorf("negative activity: %d %s", status, code)
	}
	e.raw("PUT", activity, e.token, `{}`)
	e.setClock(`{"advance":"PT16M"}`)
	e.waitFor("ci-act", "idle shutdown", func(ci *ml.ComputeInstance) bool { return *ci.Properties.State == ml.ComputeInstanceStateStopped })
	if status, code, _ := e.send("GET", activity, "", ""); status != 409 || code != "ComputeInstanceNotRunning" {
		t.Errorf("GET activity of a stopped instance: %d %s, want 409", status, code)
	}
}
