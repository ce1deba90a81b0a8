package scheduler

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a backup schedule that cannot be misread. It accepts:
//
//   - standard 5-field cron, "minute hour day-of-month month day-of-week",
//     the default (0 3 * * * is every day at 03:00);
//   - 6 fields, read as CloudNativePG reads them, "second minute hour
//     day-of-month month day-of-week", only when the seconds field is one
//     plain number (0 0 3 * * *). A `*`, a list or a step there would start
//     a backup every second, which nobody means; it is what a 5-field line
//     with one field too many looks like, so it is refused;
//   - the descriptors @yearly (@annually), @monthly, @weekly, @daily
//     (@midnight), @hourly, and @every DURATION of at least a minute.
//
// It refuses what people misread: a day of the month together with a day
// of the week (cron runs when EITHER matches, not both), `?` outside those
// two fields, a time zone prefix (schedules are UTC; write the time in UTC),
// and a schedule that never fires (30 2 = February 30).
//
// Times are UTC. Backups run at most once a minute.
type Schedule struct {
	sched cron.Schedule
}

var (
	fiveFields = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	sixFields  = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)
	plainSec   = regexp.MustCompile(`^[0-5]?[0-9]$`)
)

// ParseSchedule reads a schedule; its errors say how to write it instead.
func ParseSchedule(text string) (Schedule, error) {
	fields := strings.Fields(text)
	s := strings.Join(fields, " ")
	bad := func(format string, a ...any) (Schedule, error) {
		return Schedule{}, fmt.Errorf("schedule %q: "+format, append([]any{text}, a...)...)
	}
	if s == "" {
		return bad("empty; write 5-field cron such as \"0 3 * * *\" (every day at 03:00 UTC)")
	}
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return bad("time zones are not accepted: schedules run in UTC; write the time in UTC and drop the prefix")
	}
	var (
		sched cron.Schedule
		err   error
	)
	switch {
	case strings.HasPrefix(s, "@"):
		sched, err = fiveFields.Parse(s)
		if err != nil {
			return bad("unknown descriptor; use @yearly, @monthly, @weekly, @daily, @hourly or @every 6h")
		}
	case len(fields) == 5:
		sched, err = fiveFields.Parse(s)
	case len(fields) == 6:
		if !plainSec.MatchString(fields[0]) {
			return bad("6 fields are read as \"second minute hour day-of-month month day-of-week\" and the seconds field must be one number (0 0 3 * * *); for 5-field cron remove a field (0 3 * * *)")
		}
		sched, err = sixFields.Parse(s)
	default:
		return bad("has %d fields; write 5-field cron \"minute hour day-of-month month day-of-week\" such as \"0 3 * * *\"", len(fields))
	}
	if err != nil {
		return bad("%v; the fields are \"minute hour day-of-month month day-of-week\" (with a leading second when there are 6), days of the week 0-6 or SUN-SAT", err)
	}
	switch c := sched.(type) {
	case *cron.SpecSchedule:
		c.Location = time.UTC
		if qs := questionMarks(fields); qs != "" {
			return bad("? is only allowed for the day of the month or of the week, not the %s; use * there", qs)
		}
		if n := len(fields); n >= 5 && !anyDay(fields[n-3]) && !anyDay(fields[n-1]) {
			return bad("sets both a day of the month and a day of the week; cron runs when EITHER matches, which is rarely meant: set one and put * in the other, or use two ScheduledBackups")
		}
		if c.Next(time.Now()).IsZero() {
			return bad("never runs (no such date, e.g. February 30); check the day of the month and the month")
		}
	case cron.ConstantDelaySchedule:
		if c.Delay < time.Minute {
			return bad("@every %s is too often: backups run at most once a minute", c.Delay)
		}
	}
	return Schedule{sched: sched}, nil
}

// anyDay is a day field written as "any day".
func anyDay(field string) bool { return field == "*" || field == "?" }

// questionMarks names the first field other than the days that is "?".
func questionMarks(fields []string) string {
	names := []string{"minute", "hour", "day of the month", "month", "day of the week"}
	if len(fields) == 6 {
		names = append([]string{"second"}, names...)
	}
	for i, f := range fields {
		if strings.Contains(f, "?") && i < len(names) && !strings.HasPrefix(names[i], "day of") {
			return names[i]
		}
	}
	return ""
}

// Next is the first activation strictly after t.
func (s Schedule) Next(t time.Time) time.Time { return s.sched.Next(t).UTC() }

// Due says what a check at now should do, given the last activation that
// was taken (or, before the first, when the schedule was created).
type Due struct {
	// At is the activation to run now: the newest one in (last, now]. Zero
	// when none is due.
	At time.Time
	// Missed counts the older activations in (last, At) that are not
	// replayed, so that a controller back from downtime takes one backup,
	// not a burst. Capped at 1000.
	Missed int
	// Next is the first activation after now.
	Next time.Time
}

// DueAt finds the activation to run at now, if any, after last.
func (s Schedule) DueAt(last, now time.Time) Due {
	if c, ok := s.sched.(cron.ConstantDelaySchedule); ok {
		// @every counts from the last run: its activations are last+k·delay.
		k := now.Sub(last) / c.Delay
		d := Due{Next: last.Add((k + 1) * c.Delay).UTC()}
		if k > 0 {
			d.At, d.Missed = last.Add(k*c.Delay).UTC(), int(min(k-1, 1000))
		}
		return d
	}
	d := Due{Next: s.Next(now)}
	first := s.Next(last)
	if first.After(now) {
		return d
	}
	d.At = s.newestBefore(last, now)
	for t := first; t.Before(d.At) && d.Missed < 1000; t = s.Next(t) {
		d.Missed++
	}
	return d
}

// newestBefore is the newest activation in (last, now], which exists. It
// searches back from now in doubling steps, so that a long downtime with a
// frequent schedule does not walk every missed activation.
func (s Schedule) newestBefore(last, now time.Time) time.Time {
	for back := time.Minute; ; back *= 2 {
		from := now.Add(-back)
		if !from.After(last) {
			from = last
		}
		if t := s.Next(from); !t.After(now) {
			for n := s.Next(t); !n.After(now); n = s.Next(t) {
				t = n
			}
			return t
		}
	}
}
