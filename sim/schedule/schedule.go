// Package schedule reads the start and stop schedules of a compute
// instance (properties.properties.schedules.computeStartStop of the REST
// spec: ComputeStartStopSchedule, with a Cron or a Recurrence trigger) and
// says when each fires. Cron expressions are parsed by robfig/cron; time
// zones are Windows names (CLDR's table) or IANA names, evaluated with
// Go's embedded time zone database, so daylight saving time is honoured
// whatever the host has installed.
package schedule

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // schedules must not depend on the host's zoneinfo

	"github.com/robfig/cron/v3"
)

// Schedules is the schedules property of a compute instance.
type Schedules struct {
	ComputeStartStop []Schedule `json:"computeStartStop"`
}

// Schedule is one ComputeStartStopSchedule. ID and ProvisioningStatus are
// read-only: amlsim sets them.
type Schedule struct {
	ID                 string      `json:"id,omitempty"`
	ProvisioningStatus string      `json:"provisioningStatus,omitempty"`
	Status             string      `json:"status,omitempty"`
	Action             string      `json:"action,omitempty"`
	TriggerType        string      `json:"triggerType,omitempty"`
	Recurrence         *Recurrence `json:"recurrence,omitempty"`
	Cron               *Cron       `json:"cron,omitempty"`
}

// Recurrence is a Recurrence trigger: every Interval Frequency units,
// at the times of Schedule.
type Recurrence struct {
	Frequency string   `json:"frequency,omitempty"`
	Interval  *int     `json:"interval,omitempty"`
	StartTime string   `json:"startTime,omitempty"`
	TimeZone  string   `json:"timeZone,omitempty"`
	Schedule  *Pattern `json:"schedule,omitempty"`
}

// Pattern is a RecurrenceSchedule: the hours and minutes of the day a
// recurrence fires at, and for weekly and monthly ones the days.
type Pattern struct {
	Hours     []int    `json:"hours"`
	Minutes   []int    `json:"minutes"`
	MonthDays []int    `json:"monthDays,omitempty"`
	WeekDays  []string `json:"weekDays,omitempty"`
}

// Cron is a Cron trigger: a five-field cron expression.
type Cron struct {
	StartTime  string `json:"startTime,omitempty"`
	TimeZone   string `json:"timeZone,omitempty"`
	Expression string `json:"expression,omitempty"`
}

// Error is a schedule that cannot be read: the JSON path of the value at
// fault and what is wrong with it.
type Error struct {
	Path    string
	Message string
}

func (e *Error) Error() string { return e.Path + ": " + e.Message }

func errorf(path, format string, args ...any) *Error {
	return &Error{Path: path, Message: fmt.Sprintf(format, args...)}
}

// The enums of the REST spec.
var (
	actions      = []string{"Start", "Stop"}
	statuses     = []string{"Enabled", "Disabled"}
	triggerTypes = []string{"Recurrence", "Cron"}
	frequencies  = []string{"Minute", "Hour", "Day", "Week", "Month"}
	weekDays     = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
)

// MaxSchedules is how many schedules an instance may have: "You can
// create a total of four schedules per compute instance"
// (MicrosoftDocs azure-ai-docs, how-to-create-compute-instance.md).
const MaxSchedules = 4

func oneOf(path, v string, values []string) (string, *Error) {
	for _, want := range values {
		if strings.EqualFold(v, want) {
			return want, nil
		}
	}
	return "", errorf(path, "'%s' is not valid; valid values: %s", v, strings.Join(values, ", "))
}

// Parse reads the schedules property, checks every schedule and returns
// them with enum values in Azure's spelling, status Enabled where none
// was given, and the read-only fields set: the ID a schedule had in prev
// (matched by position, as a client sends back what GET showed) or a new
// one from newID, and provisioningStatus Completed.
func Parse(raw json.RawMessage, prev Schedules, newID func() string) (Schedules, error) {
	var s Schedules
	if len(raw) == 0 || string(raw) == "null" {
		return s, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, errorf("schedules", "%v", err)
	}
	if n := len(s.ComputeStartStop); n > MaxSchedules {
		return s, errorf("schedules.computeStartStop", "%d schedules; a compute instance may have at most %d", n, MaxSchedules)
	}
	for i := range s.ComputeStartStop {
		sc := &s.ComputeStartStop[i]
		path := fmt.Sprintf("schedules.computeStartStop[%d]", i)
		if err := sc.normalize(path); err != nil {
			return s, err
		}
		if _, err := sc.Trigger(); err != nil {
			return s, err
		}
		sc.ID = ""
		if i < len(prev.ComputeStartStop) {
			sc.ID = prev.ComputeStartStop[i].ID
		}
		if sc.ID == "" {
			sc.ID = newID()
		}
		sc.ProvisioningStatus = "Completed"
	}
	return s, nil
}

func (sc *Schedule) normalize(path string) *Error {
	var err *Error
	if sc.Action, err = oneOf(path+".action", sc.Action, actions); err != nil {
		return err
	}
	if sc.Status == "" {
		sc.Status = "Enabled"
	}
	if sc.Status, err = oneOf(path+".status", sc.Status, statuses); err != nil {
		return err
	}
	if sc.TriggerType == "" {
		switch {
		case sc.Cron != nil && sc.Recurrence == nil:
			sc.TriggerType = "Cron"
		case sc.Recurrence != nil && sc.Cron == nil:
			sc.TriggerType = "Recurrence"
		}
	}
	if sc.TriggerType, err = oneOf(path+".triggerType", sc.TriggerType, triggerTypes); err != nil {
		return err
	}
	switch sc.TriggerType {
	case "Cron":
		if sc.Cron == nil {
			return errorf(path+".cron", "a Cron trigger needs its cron object")
		}
		sc.Recurrence = nil
	case "Recurrence":
		r := sc.Recurrence
		if r == nil {
			return errorf(path+".recurrence", "a Recurrence trigger needs its recurrence object")
		}
		sc.Cron = nil
		if r.Frequency, err = oneOf(path+".recurrence.frequency", r.Frequency, frequencies); err != nil {
			return err
		}
		if p := r.Schedule; p != nil {
			for j, d := range p.WeekDays {
				if p.WeekDays[j], err = oneOf(fmt.Sprintf("%s.recurrence.schedule.weekDays[%d]", path, j), d, weekDays); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Enabled reports whether the schedule acts.
func (sc Schedule) Enabled() bool { return sc.Status == "Enabled" }

// Trigger compiles the schedule's trigger.
func (sc Schedule) Trigger() (*Trigger, error) {
	switch sc.TriggerType {
	case "Cron":
		return cronTrigger(sc.Cron, "cron")
	case "Recurrence":
		return recurrenceTrigger(sc.Recurrence, "recurrence")
	}
	return nil, errorf("triggerType", "'%s' is not valid; valid values: %s", sc.TriggerType, strings.Join(triggerTypes, ", "))
}

// Trigger says when a schedule fires.
type Trigger struct {
	spec cron.Schedule
	loc  *time.Location
	// start is the first moment the trigger may fire at (zero: any).
	start time.Time
	// every keeps one occurrence in Interval units counted from the
	// anchor (a recurrence with an interval above 1).
	every    int
	unit     string
	anchor   time.Time
	interval int
}

// parser reads the five standard cron fields: minute, hour, day of month,
// month, day of week (names allowed, no descriptors, no seconds).
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

func cronTrigger(c *Cron, path string) (*Trigger, error) {
	loc, err := Location(c.TimeZone)
	if err != nil {
		return nil, errorf(path+".timeZone", "%v", err)
	}
	expr := strings.TrimSpace(c.Expression)
	if expr == "" || strings.Contains(expr, "TZ=") {
		return nil, errorf(path+".expression", "'%s' is not a cron expression of five fields (minute hour day-of-month month day-of-week)", c.Expression)
	}
	spec, err := parser.Parse(expr)
	if err != nil {
		return nil, errorf(path+".expression", "'%s' is not a valid cron expression: %v", c.Expression, err)
	}
	start, err := startTime(c.StartTime, loc)
	if err != nil {
		return nil, errorf(path+".startTime", "%v", err)
	}
	spec.(*cron.SpecSchedule).Location = loc
	return &Trigger{spec: spec, loc: loc, start: start}, nil
}

func recurrenceTrigger(r *Recurrence, path string) (*Trigger, error) {
	loc, err := Location(r.TimeZone)
	if err != nil {
		return nil, errorf(path+".timeZone", "%v", err)
	}
	start, err := startTime(r.StartTime, loc)
	if err != nil {
		return nil, errorf(path+".startTime", "%v", err)
	}
	interval := 1
	if r.Interval != nil {
		interval = *r.Interval
	}
	if interval < 1 {
		return nil, errorf(path+".interval", "%d is not a positive number", interval)
	}
	p := r.Schedule
	if p == nil {
		if r.Frequency != "Minute" && r.Frequency != "Hour" {
			return nil, errorf(path+".schedule", "a %s recurrence needs its schedule (hours and minutes)", r.Frequency)
		}
		p = &Pattern{}
	}
	minutes, err := list(path+".schedule.minutes", p.Minutes, 0, 59)
	if err != nil {
		return nil, err
	}
	hours, err := list(path+".schedule.hours", p.Hours, 0, 23)
	if err != nil {
		return nil, err
	}
	days, err := list(path+".schedule.monthDays", p.MonthDays, 1, 31)
	if err != nil {
		return nil, err
	}
	var dows []string
	for _, d := range p.WeekDays {
		dows = append(dows, strconv.Itoa(slices.Index(weekDays, d)))
	}
	dow := strings.Join(dows, ",")
	if dow == "" {
		dow = "*"
	}
	if r.Frequency != "Minute" && r.Frequency != "Hour" && (minutes == "*" || hours == "*") {
		return nil, errorf(path+".schedule", "a %s recurrence needs the hours and minutes it fires at", r.Frequency)
	}
	var expr string
	switch r.Frequency {
	case "Minute":
		expr = "* * * * *"
	case "Hour":
		if minutes == "*" {
			minutes = "0"
		}
		expr = minutes + " * * * *"
	case "Day":
		expr = minutes + " " + hours + " * * *"
	case "Week":
		if dow == "*" {
			return nil, errorf(path+".schedule.weekDays", "a Week recurrence needs the days of the week it fires on")
		}
		expr = minutes + " " + hours + " * * " + dow
	case "Month":
		if days == "*" {
			return nil, errorf(path+".schedule.monthDays", "a Month recurrence needs the days of the month it fires on")
		}
		expr = minutes + " " + hours + " " + days + " * *"
	}
	spec, err := parser.Parse(expr)
	if err != nil {
		return nil, errorf(path, "%v", err)
	}
	spec.(*cron.SpecSchedule).Location = loc
	anchor := start
	if anchor.IsZero() {
		anchor = time.Date(2000, 1, 3, 0, 0, 0, 0, loc) // a Monday
	}
	return &Trigger{spec: spec, loc: loc, start: start, interval: interval, unit: r.Frequency, anchor: anchor}, nil
}

// list renders a list of numbers as a cron field: "*" when empty.
func list(path string, values []int, lo, hi int) (string, error) {
	if len(values) == 0 {
		return "*", nil
	}
	parts := make([]string, len(values))
	for i, v := range values {
		if v < lo || v > hi {
			return "", errorf(path, "%d is outside %d-%d", v, lo, hi)
		}
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ","), nil
}

// startTime reads a schedule's startTime: a local time in the schedule's
// zone, as the REST spec's examples write it ("2021-04-23T01:30:00"), or
// an RFC 3339 time with its own offset.
func startTime(s string, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("'%s' is not a date and time such as 2021-04-23T01:30:00", s)
}

// Location resolves a schedule's timeZone: "" and "UTC" are UTC; Windows
// names ("Pacific Standard Time", "W. Europe Standard Time") map to their
// IANA zone as Windows itself maps them (CLDR); IANA names
// ("Europe/Berlin") are taken as they are.
func Location(name string) (*time.Location, error) {
	if name == "" || strings.EqualFold(name, "UTC") {
		return time.UTC, nil
	}
	for win, iana := range windowsZones {
		if strings.EqualFold(win, name) {
			return time.LoadLocation(iana)
		}
	}
	if strings.Contains(name, "/") {
		if loc, err := time.LoadLocation(name); err == nil {
			return loc, nil
		}
	}
	return nil, fmt.Errorf("'%s' is not a time zone: use a Windows name such as 'Pacific Standard Time' or an IANA name such as 'Europe/Berlin'", name)
}

// Next returns the first time after t at which the trigger fires; zero
// when it never does again.
func (tr *Trigger) Next(t time.Time) time.Time {
	if !tr.start.IsZero() && t.Before(tr.start) {
		t = tr.start.Add(-time.Second)
	}
	for i := 0; i < 100000; i++ {
		t = tr.spec.Next(t)
		if t.IsZero() || tr.interval <= 1 || tr.units(t)%tr.interval == 0 {
			return t
		}
	}
	return time.Time{}
}

// units counts the trigger's frequency units from its anchor to t, in the
// trigger's zone: the interval of a recurrence is counted in them.
func (tr *Trigger) units(t time.Time) int {
	t, a := t.In(tr.loc), tr.anchor.In(tr.loc)
	days := func(t time.Time) int {
		// Calendar days, whatever the length of the day (DST).
		return int(time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400)
	}
	switch tr.unit {
	case "Minute":
		return int(t.Sub(a).Minutes())
	case "Hour":
		return int(t.Sub(a).Hours())
	case "Day":
		return days(t) - days(a)
	case "Week":
		monday := func(t time.Time) int { return days(t) - (int(t.Weekday())+6)%7 }
		return (monday(t) - monday(a)) / 7
	case "Month":
		return (t.Year()-a.Year())*12 + int(t.Month()) - int(a.Month())
	}
	return 0
}

// Latest returns the last time in (after, upto] at which the trigger
// fires, if any. It looks back from upto over a day, a week, a month, a
// year, then the whole span, so that neither a minute-by-minute schedule
// over a long span nor a monthly one over a short span costs many steps.
func (tr *Trigger) Latest(after, upto time.Time) (time.Time, bool) {
	for _, back := range []time.Duration{24 * time.Hour, 7 * 24 * time.Hour, 31 * 24 * time.Hour, 366 * 24 * time.Hour, 0} {
		from := after
		if back > 0 && upto.Add(-back).After(after) {
			from = upto.Add(-back)
		}
		var last time.Time
		for t := tr.Next(from); !t.IsZero() && !t.After(upto); t = tr.Next(t) {
			last = t
		}
		if !last.IsZero() || from.Equal(after) {
			return last, !last.IsZero()
		}
	}
	return time.Time{}, false
}
