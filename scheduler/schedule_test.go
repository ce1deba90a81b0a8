package scheduler

import (
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseScheduleAccepts(t *testing.T) {
	from := at("2026-11-25T10:20:30Z")
	for _, c := range []struct{ in, next string }{
		{"0 3 * * *", "2026-11-26T03:00:00Z"},
		{"  0   3 * * *  ", "2026-11-26T03:00:00Z"},
		{"*/15 * * * *", "2026-11-25T10:30:00Z"},
		{"0 0 3 * * *", "2026-11-26T03:00:00Z"}, // CloudNativePG's 6 fields, seconds first
		{"30 0 3 * * *", "2026-11-26T03:00:30Z"},
		{"0 0 3 * * ?", "2026-11-26T03:00:00Z"},
		{"0 22 * * MON-FRI", "2026-11-25T22:00:00Z"},
		{"0 22 * * sat", "2026-11-28T22:00:00Z"},
		{"0 1 1 * *", "2026-12-01T01:00:00Z"},
		{"0 1 ? * 0", "2026-11-29T01:00:00Z"},
		{"0 4 29 2 *", "2028-02-29T04:00:00Z"},
		{"0 0 * JAN,JUL *", "2027-01-01T00:00:00Z"},
		{"@daily", "2026-11-26T00:00:00Z"},
		{"@hourly", "2026-11-25T11:00:00Z"},
		{"@weekly", "2026-11-29T00:00:00Z"},
		{"@every 6h", "2026-11-25T16:20:30Z"},
	} {
		s, err := ParseSchedule(c.in)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", c.in, err)
			continue
		}
		if got := s.Next(from); !got.Equal(at(c.next)) {
			t.Errorf("%q after %s: next %s, want %s", c.in, from, got, c.next)
		}
	}
}

func TestParseScheduleRejects(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"0 3 * *", "has 4 fields"},
		{"0 0 3 * * * *", "has 7 fields"},
		{"* 0 3 * * *", "seconds field must be one number"}, // a backup every second
		{"*/5 * * * * *", "seconds field must be one number"},
		{"0,30 0 3 * * *", "seconds field must be one number"},
		{"60 0 3 * * *", "seconds field must be one number"},
		{"0 3 * * ? 2026", "above maximum"}, // AWS-style trailing year
		{"0 3 1 * MON", "EITHER matches"},
		{"0 0 3 15 * 1-5", "EITHER matches"},
		{"0 3 * ? *", "not the month"},
		{"? 3 * * *", "not the minute"},
		{"0 3 30 2 *", "never runs"},
		{"0 3 31 4 *", "never runs"},
		{"60 3 * * *", "above maximum"},
		{"0 24 * * *", "above maximum"},
		{"0 3 * * 7", "above maximum"},
		{"0 3 0 * *", "below minimum"},
		{"0 3 * 13 *", "above maximum"},
		{"*/0 * * * *", "step"},
		{"0 3 * * FUNDAY", "SUN-SAT"},
		{"CRON_TZ=Europe/Paris 0 3 * * *", "UTC"},
		{"TZ=UTC 0 3 * * *", "UTC"},
		{"@fortnightly", "unknown descriptor"},
		{"@every 30s", "at most once a minute"},
		{"@every banana", "unknown descriptor"},
		{"0 3 * * * # daily", "fields"},
	} {
		_, err := ParseSchedule(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSchedule(%q) = %v; want an error containing %q", c.in, err, c.want)
		}
	}
}

func TestScheduleDue(t *testing.T) {
	daily, _ := ParseSchedule("0 3 * * *")
	created := at("2026-11-20T12:00:00Z")

	// Before the first activation nothing is due.
	d := daily.DueAt(created, at("2026-11-21T02:59:59Z"))
	if !d.At.IsZero() || !d.Next.Equal(at("2026-11-21T03:00:00Z")) {
		t.Fatalf("before the first run: %+v", d)
	}
	// On the dot, it is due.
	d = daily.DueAt(created, at("2026-11-21T03:00:00Z"))
	if !d.At.Equal(at("2026-11-21T03:00:00Z")) || d.Missed != 0 || !d.Next.Equal(at("2026-11-22T03:00:00Z")) {
		t.Fatalf("on the dot: %+v", d)
	}
	// Once taken, not again.
	d = daily.DueAt(at("2026-11-21T03:00:00Z"), at("2026-11-21T03:00:05Z"))
	if !d.At.IsZero() {
		t.Fatalf("taken twice: %+v", d)
	}
	// Back after four days of downtime: one backup for the newest run, the
	// three older runs are counted as missed, not replayed.
	d = daily.DueAt(at("2026-11-21T03:00:00Z"), at("2026-11-25T10:00:00Z"))
	if !d.At.Equal(at("2026-11-25T03:00:00Z")) || d.Missed != 3 || !d.Next.Equal(at("2026-11-26T03:00:00Z")) {
		t.Fatalf("after downtime: %+v", d)
	}

	// A frequent schedule after a year of downtime answers at once.
	minutely, _ := ParseSchedule("* * * * *")
	start := time.Now()
	d = minutely.DueAt(at("2025-11-25T10:00:00Z"), at("2026-11-25T10:00:30Z"))
	if !d.At.Equal(at("2026-11-25T10:00:00Z")) || d.Missed != 1000 {
		t.Fatalf("minutely after a year: %+v", d)
	}
	if time.Since(start) > time.Second {
		t.Errorf("took %s", time.Since(start))
	}

	// An irregular schedule: only in the hour after 01:00.
	night, _ := ParseSchedule("*/10 1 * * *")
	d = night.DueAt(at("2026-11-24T01:50:00Z"), at("2026-11-25T23:00:00Z"))
	if !d.At.Equal(at("2026-11-25T01:50:00Z")) || d.Missed != 5 {
		t.Fatalf("irregular: %+v", d)
	}

	// @every counts from the last run.
	every, _ := ParseSchedule("@every 6h")
	d = every.DueAt(at("2026-11-25T00:00:00Z"), at("2026-11-25T13:00:00Z"))
	if !d.At.Equal(at("2026-11-25T12:00:00Z")) || d.Missed != 1 || !d.Next.Equal(at("2026-11-25T18:00:00Z")) {
		t.Fatalf("@every: %+v", d)
	}
	d = every.DueAt(at("2026-11-25T12:00:00Z"), at("2026-11-25T13:00:00Z"))
	if !d.At.IsZero() || !d.Next.Equal(at("2026-11-25T18:00:00Z")) {
		t.Fatalf("@every not due: %+v", d)
	}
}
