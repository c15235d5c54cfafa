package schedule

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func trigger(t *testing.T, js string) *Trigger {
	t.Helper()
	var sc Schedule
	if err := json.Unmarshal([]byte(js), &sc); err != nil {
		t.Fatal(err)
	}
	if err := sc.normalize("s"); err != nil {
		t.Fatal(err)
	}
	tr, err := sc.Trigger()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// wantNext checks the successive firings after from.
func wantNext(t *testing.T, name string, tr *Trigger, from string, want ...string) {
	t.Helper()
	at := utc(from)
	for i, w := range want {
		at = tr.Next(at)
		if !at.Equal(utc(w)) {
			t.Errorf("%s: firing %d = %s, want %s", name, i+1, at.UTC().Format(time.RFC3339), w)
			return
		}
	}
}

// Central Europe moves to summer time on the last Sunday of March (29
// March 2026, 02:00 → 03:00); the United States on the second Sunday of
// March (8 March 2026). A schedule at 18:00 local fires at 17:00 UTC
// before and 16:00 UTC after, whether the zone is named the Windows way
// or the IANA way.
func TestTimeZonesAndDST(t *testing.T) {
	for _, tz := range []string{"W. Europe Standard Time", "Europe/Berlin", "w. europe standard time"} {
		tr := trigger(t, `{"action":"Stop","triggerType":"Cron","cron":{"expression":"0 18 * * *","timeZone":"`+tz+`"}}`)
		wantNext(t, tz, tr, "2026-03-28T12:00:00Z", "2026-03-28T17:00:00Z", "2026-03-29T16:00:00Z", "2026-03-30T16:00:00Z")
	}
	// 02:30 does not exist in Berlin on 29 March: that day has no firing
	// (robfig/cron skips a time the clocks jump over), the next day's is
	// in summer time.
	tr := trigger(t, `{"action":"Start","cron":{"expression":"30 2 * * *","timeZone":"Europe/Berlin"}}`)
	wantNext(t, "02:30 Berlin across the DST gap", tr, "2026-03-28T12:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z")
	tr = trigger(t, `{"action":"Stop","triggerType":"Recurrence","recurrence":{"frequency":"Day","interval":1,"timeZone":"Pacific Standard Time","schedule":{"hours":[17],"minutes":[0]}}}`)
	wantNext(t, "Pacific daily 17:00", tr, "2026-03-07T00:00:00Z", "2026-03-07T01:00:00Z", "2026-03-08T01:00:00Z", "2026-03-09T00:00:00Z")
	wantNext(t, "Pacific daily 17:00 in autumn", tr, "2026-10-31T12:00:00Z", "2026-11-01T00:00:00Z", "2026-11-02T01:00:00Z")
	if _, err := Location("Mars/Olympus_Mons"); err == nil {
		t.Error("Mars/Olympus_Mons is a time zone")
	}
	if loc, err := Location(""); err != nil || loc != time.UTC {
		t.Errorf(`Location("") = %v, %v; want UTC`, loc, err)
	}
}

func TestRecurrences(t *testing.T) {
	tr := trigger(t, `{"action":"Start","triggerType":"Recurrence","recurrence":{"frequency":"Week","interval":1,"timeZone":"UTC","schedule":{"hours":[8],"minutes":[0],"weekDays":["Monday","Friday"]}}}`)
	wantNext(t, "Mondays and Fridays", tr, "2026-12-02T12:00:00Z", "2026-12-04T08:00:00Z", "2026-12-07T08:00:00Z", "2026-12-11T08:00:00Z")
	tr = trigger(t, `{"action":"Stop","recurrence":{"frequency":"Day","interval":2,"startTime":"2026-12-01T00:00:00","schedule":{"hours":[9,21],"minutes":[30]}}}`)
	wantNext(t, "every other day", tr, "2026-11-20T00:00:00Z", "2026-12-01T09:30:00Z", "2026-12-01T21:30:00Z", "2026-12-03T09:30:00Z")
	tr = trigger(t, `{"action":"Stop","recurrence":{"frequency":"Week","interval":2,"startTime":"2026-11-30T00:00:00","schedule":{"hours":[18],"minutes":[0],"weekDays":["Wednesday"]}}}`)
	wantNext(t, "every other Wednesday", tr, "2026-11-30T00:00:00Z", "2026-12-02T18:00:00Z", "2026-12-16T18:00:00Z")
	tr = trigger(t, `{"action":"Start","recurrence":{"frequency":"Month","interval":1,"schedule":{"hours":[9],"minutes":[30],"monthDays":[1,15]}}}`)
	wantNext(t, "1st and 15th", tr, "2026-12-02T00:00:00Z", "2026-12-15T09:30:00Z", "2027-01-01T09:30:00Z")
	tr = trigger(t, `{"action":"Stop","recurrence":{"frequency":"Minute","interval":15,"startTime":"2026-12-01T10:05:00"}}`)
	wantNext(t, "every 15 minutes from 10:05", tr, "2026-12-01T10:06:00Z", "2026-12-01T10:20:00Z", "2026-12-01T10:35:00Z")
	tr = trigger(t, `{"action":"Stop","recurrence":{"frequency":"Hour","interval":3,"startTime":"2026-12-01T01:00:00","schedule":{"hours":[],"minutes":[10]}}}`)
	wantNext(t, "every 3 hours at :10", tr, "2026-12-01T00:00:00Z", "2026-12-01T01:10:00Z", "2026-12-01T04:10:00Z")
	// A start time in the future holds the trigger back.
	tr = trigger(t, `{"action":"Stop","cron":{"expression":"0 18 * * *","startTime":"2026-12-10T00:00:00","timeZone":"UTC"}}`)
	wantNext(t, "cron from 10 December", tr, "2026-12-01T00:00:00Z", "2026-12-10T18:00:00Z")
}

// Latest finds the last firing in a span: what a jump of the test clock
// over several firings acts on.
func TestLatest(t *testing.T) {
	stop := trigger(t, `{"action":"Stop","cron":{"expression":"0 18 * * *"}}`)
	if at, ok := stop.Latest(utc("2026-12-01T17:59:00Z"), utc("2026-12-01T18:00:00Z")); !ok || !at.Equal(utc("2026-12-01T18:00:00Z")) {
		t.Errorf("Latest over 18:00 = %v %v", at, ok)
	}
	if _, ok := stop.Latest(utc("2026-12-01T18:00:00Z"), utc("2026-12-01T23:00:00Z")); ok {
		t.Error("Latest over (18:00, 23:00] fired; the span excludes its start")
	}
	if at, ok := stop.Latest(utc("2026-01-01T00:00:00Z"), utc("2026-12-01T19:00:00Z")); !ok || !at.Equal(utc("2026-12-01T18:00:00Z")) {
		t.Errorf("Latest over eleven months = %v %v", at, ok)
	}
	// A monthly schedule over a jump of six weeks, a yearly one over two
	// years.
	monthly := trigger(t, `{"action":"Start","cron":{"expression":"0 8 1 * *"}}`)
	if at, ok := monthly.Latest(utc("2026-10-20T00:00:00Z"), utc("2026-12-02T00:00:00Z")); !ok || !at.Equal(utc("2026-12-01T08:00:00Z")) {
		t.Errorf("monthly Latest over six weeks = %v %v", at, ok)
	}
	if at, ok := monthly.Latest(utc("2026-11-02T00:00:00Z"), utc("2026-11-30T00:00:00Z")); ok {
		t.Errorf("monthly Latest over a span without its day = %v", at)
	}
	yearly := trigger(t, `{"action":"Start","cron":{"expression":"0 8 1 1 *"}}`)
	if at, ok := yearly.Latest(utc("2025-06-01T00:00:00Z"), utc("2027-06-01T00:00:00Z")); !ok || !at.Equal(utc("2027-01-01T08:00:00Z")) {
		t.Errorf("yearly Latest over two years = %v %v", at, ok)
	}
	every := trigger(t, `{"action":"Stop","recurrence":{"frequency":"Minute","interval":1}}`)
	if at, ok := every.Latest(utc("2020-01-01T00:00:00Z"), utc("2026-12-01T19:00:30Z")); !ok || !at.Equal(utc("2026-12-01T19:00:00Z")) {
		t.Errorf("minutely Latest over six years = %v %v", at, ok)
	}
}

func TestParse(t *testing.T) {
	ids := 0
	newID := func() string { ids++; return fmt.Sprintf("id-%d", ids) }
	raw := `{"computeStartStop":[
		{"action":"stop","triggerType":"cron","cron":{"expression":"0 18 * * *","timeZone":"UTC"}},
		{"status":"Disabled","action":"Start","recurrence":{"frequency":"day","interval":1,"schedule":{"hours":[8],"minutes":[0],"weekDays":["monday"]}}}]}`
	s, err := Parse(json.RawMessage(raw), Schedules{}, newID)
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.ComputeStartStop[0], s.ComputeStartStop[1]
	if a.Action != "Stop" || a.TriggerType != "Cron" || a.Status != "Enabled" || a.ID != "id-1" || a.ProvisioningStatus != "Completed" {
		t.Errorf("first schedule = %+v", a)
	}
	if b.TriggerType != "Recurrence" || b.Recurrence.Frequency != "Day" || b.Enabled() || b.Recurrence.Schedule.WeekDays[0] != "Monday" {
		t.Errorf("second schedule = %+v", b)
	}
	// Sent back as GET showed it, a schedule keeps its id.
	again, err := Parse(json.RawMessage(raw), s, newID)
	if err != nil || again.ComputeStartStop[0].ID != "id-1" || again.ComputeStartStop[1].ID != "id-2" {
		t.Errorf("ids after a second PUT: %+v %v", again.ComputeStartStop, err)
	}
	if s, err := Parse(json.RawMessage(`null`), Schedules{}, newID); err != nil || len(s.ComputeStartStop) != 0 {
		t.Errorf("null: %+v %v", s, err)
	}
}

func TestParseRefuses(t *testing.T) {
	one := func(s string) string { return `{"computeStartStop":[` + s + `]}` }
	cron := func(expr, tz string) string {
		return one(`{"action":"Stop","triggerType":"Cron","cron":{"expression":"` + expr + `","timeZone":"` + tz + `"}}`)
	}
	five := one(strings.Repeat(`{"action":"Stop","cron":{"expression":"0 18 * * *"}},`, 4) + `{"action":"Stop","cron":{"expression":"0 18 * * *"}}`)
	for raw, path := range map[string]string{
		cron("61 * * * *", "UTC"):                                    "cron.expression",
		cron("0 18 * *", "UTC"):                                      "cron.expression",
		cron("@daily", "UTC"):                                        "cron.expression",
		cron("0 18 * * *", "Mars/Sol"):                               "cron.timeZone",
		one(`{"action":"Pause","cron":{"expression":"0 18 * * *"}}`): "action",
		one(`{"action":"Stop","status":"Sometimes","cron":{"expression":"0 18 * * *"}}`):                                        "status",
		one(`{"action":"Stop","triggerType":"Recurrence","cron":{"expression":"0 18 * * *"}}`):                                  "recurrence",
		one(`{"action":"Stop","recurrence":{"frequency":"Year","schedule":{"hours":[1],"minutes":[0]}}}`):                       "recurrence.frequency",
		one(`{"action":"Stop","recurrence":{"frequency":"Day"}}`):                                                               "recurrence.schedule",
		one(`{"action":"Stop","recurrence":{"frequency":"Day","schedule":{"hours":[24],"minutes":[0]}}}`):                       "recurrence.schedule.hours",
		one(`{"action":"Stop","recurrence":{"frequency":"Week","schedule":{"hours":[1],"minutes":[0],"weekDays":["Funday"]}}}`): "weekDays[0]",
		one(`{"action":"Stop","recurrence":{"frequency":"Day","interval":0,"schedule":{"hours":[1],"minutes":[0]}}}`):           "recurrence.interval",
		one(`{"action":"Stop","cron":{"expression":"0 18 * * *","startTime":"tomorrow"}}`):                                      "cron.startTime",
		five: "schedules.computeStartStop",
	} {
		_, err := Parse(json.RawMessage(raw), Schedules{}, func() string { return "x" })
		var se *Error
		if !errors.As(err, &se) || !strings.HasSuffix(se.Path, path) {
			t.Errorf("%s: error %v, want one at a path ending in %q", raw, err, path)
		}
	}
}
