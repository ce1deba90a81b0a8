package restore

import (
	"strconv"
	"strings"
	"time"

	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
)

// Target kinds: where recovery stops.
const (
	TargetEnd       = ""          // replay every archived segment
	TargetTime      = "time"      // recovery_target_time
	TargetLSN       = "lsn"       // recovery_target_lsn
	TargetXID       = "xid"       // recovery_target_xid
	TargetName      = "name"      // recovery_target_name (pg_create_restore_point)
	TargetImmediate = "immediate" // recovery_target = 'immediate': as soon as consistent
)

// The settings restore's messages name (see fault.Setting): PostgreSQL's
// own names for the recovery target, and restore's options.
const (
	SettingTargetTime      fault.Setting = "recovery_target_time"
	SettingTargetLSN       fault.Setting = "recovery_target_lsn"
	SettingTargetXID       fault.Setting = "recovery_target_xid"
	SettingTargetName      fault.Setting = "recovery_target_name"
	SettingTargetImmediate fault.Setting = "recovery_target = immediate"
	SettingExclusive       fault.Setting = "recovery_target_inclusive = off"
	SettingTargetTimeline  fault.Setting = "recovery_target_timeline"
	SettingTargetAction    fault.Setting = "recovery_target_action"
	// SettingDeleteExisting: Options.DeleteExisting.
	SettingDeleteExisting fault.Setting = "deleting the existing contents"
	// SettingTablespaceLocation: an entry of Options.Tablespaces.
	SettingTablespaceLocation fault.Setting = "a new location"
)

// Target is a recovery target and what to do on reaching it.
type Target struct {
	Kind      string
	Time      time.Time
	LSN       pg.LSN
	XID       uint64
	Name      string
	Exclusive bool   // stop just before the target instead of just after it
	Timeline  string // "latest", "current" or a timeline number
	Action    string // promote, pause or shutdown
}

// TargetFlags are the command-line spellings of a target, unparsed.
type TargetFlags struct {
	Time, LSN, XID, Name string
	Immediate, Exclusive bool
	Timeline, Action     string
}

// timeLayouts are the accepted spellings of --target-time: RFC 3339 and
// PostgreSQL's own output (as printed by now()), with or without a zone.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTime parses a target time; without a zone it is UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fault.Settingf(SettingTargetTime, "%s %q is not a time: use RFC 3339 (2026-11-25T14:05:00Z) or PostgreSQL's form (2026-11-25 14:05:00.123456+00); without a zone it is UTC", SettingTargetTime, s)
}

// ParseTarget checks the flags: at most one target, each well formed.
func ParseTarget(f TargetFlags) (Target, error) {
	t := Target{Exclusive: f.Exclusive, Timeline: f.Timeline, Action: f.Action}
	var given []any
	if f.Time != "" {
		given = append(given, SettingTargetTime)
		tm, err := ParseTime(f.Time)
		if err != nil {
			return t, err
		}
		t.Kind, t.Time = TargetTime, tm
	}
	if f.LSN != "" {
		given = append(given, SettingTargetLSN)
		lsn, err := pg.ParseLSN(f.LSN)
		if err != nil {
			return t, fault.Settingf(SettingTargetLSN, "%s: %w", SettingTargetLSN, err)
		}
		t.Kind, t.LSN = TargetLSN, lsn
	}
	if f.XID != "" {
		given = append(given, SettingTargetXID)
		xid, err := strconv.ParseUint(f.XID, 10, 64)
		if err != nil || xid < 3 { // 0-2 are PostgreSQL's special transaction IDs
			return t, fault.Settingf(SettingTargetXID, "%s %q is not a transaction ID (a number of 3 or more, as txid_current() returns)", SettingTargetXID, f.XID)
		}
		t.Kind, t.XID = TargetXID, xid
	}
	if f.Name != "" {
		given = append(given, SettingTargetName)
		if len(f.Name) >= 64 {
			return t, fault.Settingf(SettingTargetName, "%s is %d bytes long; restore point names have at most 63", SettingTargetName, len(f.Name))
		}
		t.Kind, t.Name = TargetName, f.Name
	}
	if f.Immediate {
		given = append(given, SettingTargetImmediate)
		t.Kind = TargetImmediate
	}
	if len(given) > 1 {
		together := strings.Repeat(" and %s", len(given))[len(" and "):]
		return t, fault.Settingf(given[0].(fault.Setting), together+" given together: choose one recovery target", given...)
	}
	if t.Exclusive && t.Kind != TargetTime && t.Kind != TargetLSN && t.Kind != TargetXID {
		return t, fault.Settingf(SettingExclusive, "%s applies to %s, %s and %s only",
			SettingExclusive, SettingTargetTime, SettingTargetLSN, SettingTargetXID)
	}
	if err := checkTimeline(t.Timeline); err != nil {
		return t, err
	}
	switch t.Action {
	case "":
		t.Action = "promote"
	case "promote", "pause", "shutdown":
	default:
		return t, fault.Settingf(SettingTargetAction, "%s %q: use promote, pause or shutdown", SettingTargetAction, t.Action)
	}
	return t, nil
}

func checkTimeline(s string) error {
	switch s {
	case "", "latest", "current":
		return nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err != nil || n == 0 {
		return fault.Settingf(SettingTargetTimeline, "%s %q: use latest, current or a timeline number (1, 2, ...)", SettingTargetTimeline, s)
	}
	return nil
}

// String describes the target for messages.
func (t Target) String() string {
	switch t.Kind {
	case TargetTime:
		return "time " + t.Time.Format("2006-01-02 15:04:05.999999Z07:00")
	case TargetLSN:
		return "LSN " + t.LSN.String()
	case TargetXID:
		return "transaction " + strconv.FormatUint(t.XID, 10)
	case TargetName:
		return "restore point " + strconv.Quote(t.Name)
	case TargetImmediate:
		return "the end of the backup (immediate)"
	}
	return "the end of the archived WAL"
}

// Settings are the recovery settings for postgresql.auto.conf, in order.
func (t Target) Settings() [][2]string {
	var s [][2]string
	switch t.Kind {
	case TargetTime:
		// PostgreSQL's own form with an explicit zone: the server's TimeZone
		// setting cannot change its meaning.
		s = append(s, [2]string{"recovery_target_time", t.Time.UTC().Format("2006-01-02 15:04:05.999999") + "+00"})
	case TargetLSN:
		s = append(s, [2]string{"recovery_target_lsn", t.LSN.String()})
	case TargetXID:
		s = append(s, [2]string{"recovery_target_xid", strconv.FormatUint(t.XID, 10)})
	case TargetName:
		s = append(s, [2]string{"recovery_target_name", t.Name})
	case TargetImmediate:
		s = append(s, [2]string{"recovery_target", "immediate"})
	}
	if t.Exclusive {
		s = append(s, [2]string{"recovery_target_inclusive", "off"})
	}
	tl := t.Timeline
	if tl == "" {
		tl = "latest"
	}
	s = append(s, [2]string{"recovery_target_timeline", tl})
	if t.Kind != TargetEnd {
		s = append(s, [2]string{"recovery_target_action", t.Action})
	}
	return s
}
