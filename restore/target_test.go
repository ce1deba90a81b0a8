package restore

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
)

func TestParseTarget(t *testing.T) {
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC()
	}
	good := []struct {
		f    TargetFlags
		want Target
	}{
		{TargetFlags{}, Target{Kind: TargetEnd, Action: "promote"}},
		{TargetFlags{Time: "2026-11-25T14:05:00Z"}, Target{Kind: TargetTime, Time: utc("2026-11-25T14:05:00Z"), Action: "promote"}},
		{TargetFlags{Time: "2026-11-25 14:05:00.123456+00"}, Target{Kind: TargetTime, Time: utc("2026-11-25T14:05:00.123456Z"), Action: "promote"}},
		{TargetFlags{Time: "2026-11-25 16:05:00+02:00"}, Target{Kind: TargetTime, Time: utc("2026-11-25T14:05:00Z"), Action: "promote"}},
		{TargetFlags{Time: "2026-11-25 14:05:00"}, Target{Kind: TargetTime, Time: utc("2026-11-25T14:05:00Z"), Action: "promote"}},
		{TargetFlags{LSN: "0/3000060", Exclusive: true}, Target{Kind: TargetLSN, LSN: 0x3000060, Exclusive: true, Action: "promote"}},
		{TargetFlags{XID: "1234", Action: "pause", Timeline: "current"}, Target{Kind: TargetXID, XID: 1234, Action: "pause", Timeline: "current"}},
		{TargetFlags{Name: "before-drop", Timeline: "2"}, Target{Kind: TargetName, Name: "before-drop", Action: "promote", Timeline: "2"}},
		{TargetFlags{Immediate: true, Action: "shutdown"}, Target{Kind: TargetImmediate, Action: "shutdown"}},
	}
	for _, g := range good {
		got, err := ParseTarget(g.f)
		if err != nil || got != g.want {
			t.Errorf("ParseTarget(%+v) = %+v, %v; want %+v", g.f, got, err, g.want)
		}
	}
	bad := []struct {
		f    TargetFlags
		want string
	}{
		{TargetFlags{Time: "yesterday"}, "is not a time"},
		{TargetFlags{Time: "2026-13-01 00:00:00"}, "is not a time"},
		{TargetFlags{LSN: "3000060"}, "not a WAL location"},
		{TargetFlags{XID: "-5"}, "not a transaction ID"},
		{TargetFlags{XID: "2"}, "not a transaction ID"},
		{TargetFlags{Name: strings.Repeat("x", 64)}, "at most 63"},
		{TargetFlags{Time: "2026-11-25T14:05:00Z", LSN: "0/1"}, "recovery_target_time and recovery_target_lsn given together"},
		{TargetFlags{XID: "10", Name: "a", Immediate: true}, "recovery_target_xid and recovery_target_name and recovery_target = immediate given together"},
		{TargetFlags{Name: "a", Exclusive: true}, "recovery_target_inclusive = off applies to"},
		{TargetFlags{Timeline: "newest"}, "recovery_target_timeline"},
		{TargetFlags{Timeline: "0"}, "recovery_target_timeline"},
		{TargetFlags{Action: "stop"}, "recovery_target_action"},
	}
	for _, b := range bad {
		_, err := ParseTarget(b.f)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("ParseTarget(%+v) error = %v; want one containing %q", b.f, err, b.want)
		}
		// cmd/walship names the flag instead: the setting must be known.
		var se *fault.SettingError
		if !errors.As(err, &se) {
			t.Errorf("ParseTarget(%+v) error = %v: not a *fault.SettingError", b.f, err)
		}
	}
}

func TestTargetSettings(t *testing.T) {
	tg, err := ParseTarget(TargetFlags{Time: "2026-11-25 16:05:00.5+02", Exclusive: true, Action: "pause"})
	if err != nil {
		t.Fatal(err)
	}
	got := tg.Settings()
	want := [][2]string{{"recovery_target_time", "2026-11-25 14:05:00.5+00"}, {"recovery_target_inclusive", "off"},
		{"recovery_target_timeline", "latest"}, {"recovery_target_action", "pause"}}
	if len(got) != len(want) {
		t.Fatalf("settings %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("setting %d = %v, want %v", i, got[i], want[i])
		}
	}
	end, _ := ParseTarget(TargetFlags{Timeline: "3"})
	if s := end.Settings(); len(s) != 1 || s[0] != [2]string{"recovery_target_timeline", "3"} {
		t.Errorf("end of archive settings: %v", s)
	}
	imm, _ := ParseTarget(TargetFlags{Immediate: true})
	if s := imm.Settings(); s[0] != [2]string{"recovery_target", "immediate"} {
		t.Errorf("immediate settings: %v", s)
	}
}

func TestCheckSettingsRefusesNUL(t *testing.T) {
	if err := checkSettings([][2]string{{"recovery_target_name", "a\x00b"}}); err == nil || !strings.Contains(err.Error(), "NUL byte") {
		t.Errorf("a NUL byte in a setting: %v", err)
	}
}

func TestQuoting(t *testing.T) {
	got := RestoreCommand("/usr/bin/walship", "--repo", "s3://b/p", "--encryption-key-file", "/keys/it's 100%.key")
	want := `/usr/bin/walship wal-fetch %f %p --repo s3://b/p --encryption-key-file '/keys/it'\''s 100%%.key'`
	if got != want {
		t.Errorf("RestoreCommand:\n got %s\nwant %s", got, want)
	}
}

func summary(id string, tli pg.Timeline, startWAL, stopLSN string, stop time.Time) catalog.BackupSummary {
	return catalog.BackupSummary{ID: id, Timeline: tli, StartWAL: startWAL, StopLSN: stopLSN, StopTime: stop, WALSegmentSize: 16 << 20}
}

func TestChooseBackup(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	list := []catalog.BackupSummary{
		summary("20261125T095900Z", 1, "000000010000000000000002", "0/2000100", t0),
		summary("20261125T105900Z", 1, "000000010000000000000005", "0/5000100", t0.Add(time.Hour)),
		summary("20261125T115900Z", 1, "000000010000000000000009", "0/9000100", t0.Add(2*time.Hour)),
	}
	at := func(f TargetFlags) Target {
		tg, err := ParseTarget(f)
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	cases := []struct {
		id   string
		tg   Target
		want string // ID, or a fragment of the error
	}{
		{"", at(TargetFlags{}), "20261125T115900Z"},
		{"latest", at(TargetFlags{Name: "x"}), "20261125T115900Z"},
		{"", at(TargetFlags{Time: "2026-11-25T11:30:00Z"}), "20261125T105900Z"},
		{"", at(TargetFlags{Time: "2026-11-25T11:00:00Z"}), "20261125T095900Z"}, // StopTime < target, strictly
		{"", at(TargetFlags{Time: "2026-11-25T10:00:00Z"}), "before the recoverable window"},
		{"", at(TargetFlags{LSN: "0/9000100"}), "20261125T115900Z"}, // StopLSN <= target
		{"", at(TargetFlags{LSN: "0/90000FF"}), "20261125T105900Z"},
		{"", at(TargetFlags{LSN: "0/1000000"}), "before the recoverable window"},
		{"20261125T095900Z", at(TargetFlags{Time: "2026-11-25T12:30:00Z"}), "20261125T095900Z"},
		{"20261125T115900Z", at(TargetFlags{Time: "2026-11-25T11:30:00Z"}), "before the end of backup 20261125T115900Z"},
		{"20261125T115900Z", at(TargetFlags{LSN: "0/5000000"}), "before the end of backup"},
		{"20250101T000000Z", at(TargetFlags{}), "no complete backup 20250101T000000Z"},
	}
	for _, c := range cases {
		b, err := ChooseBackup(list, c.id, c.tg)
		got := b.ID
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, c.want) || (err == nil && got != c.want) {
			t.Errorf("ChooseBackup(%q, %s) = %q, want %q", c.id, c.tg, got, c.want)
		}
	}
	if _, err := ChooseBackup(nil, "", Target{}); err == nil || !strings.Contains(err.Error(), "no complete backup") {
		t.Errorf("empty repository: %v", err)
	}
}

func TestTargetTimeline(t *testing.T) {
	a := catalog.NewArchive(16<<20, nil)
	a.History[2] = []catalog.HistoryEntry{{Parent: 1, Switch: 0x4800000}}
	early := summary("early", 1, "000000010000000000000002", "0/3000100", time.Now())
	late := summary("late", 1, "000000010000000000000004", "0/4900000", time.Now())
	for _, c := range []struct {
		b    catalog.BackupSummary
		spec string
		want string
	}{
		{early, "", "2"}, {early, "latest", "2"}, {early, "current", "1"}, {early, "2", "2"}, {early, "1", "1"},
		{early, "3", "timeline 3 does not continue from backup early"},
		{late, "latest", "the latest timeline in the archive, 2, does not continue from backup late"},
		{late, "current", "1"},
		{late, "2", "timeline 2 does not continue from backup late"},
	} {
		n, err := TargetTimeline(a, c.b, c.spec)
		got := strconv.FormatUint(uint64(n), 10)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, c.want) || (err == nil && got != c.want) {
			t.Errorf("TargetTimeline(%s, %q) = %s, want %s", c.b.ID, c.spec, got, c.want)
		}
	}
}
