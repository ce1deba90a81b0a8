package restore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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
	return time.Time{}, fmt.Errorf("--target-time %q is not a time: use RFC 3339 (2026-11-25T14:05:00Z) or PostgreSQL's form (2026-11-25 14:05:00.123456+00); without a zone it is UTC", s)
}

// ParseTarget checks the flags: at most one target, each well formed.
func ParseTarget(f TargetFlags) (Target, error) {
	t := Target{Exclusive: f.Exclusive, Timeline: f.Timeline, Action: f.Action}
	var given []string
	if f.Time != "" {
		given = append(given, "--target-time")
		tm, err := ParseTime(f.Time)
		if err != nil {
			return t, err
		}
		t.Kind, t.Time = TargetTime, tm
	}
	if f.LSN != "" {
		given = append(given, "--target-lsn")
		lsn, err := pg.ParseLSN(f.LSN)
		if err != nil {
			return t, fmt.Errorf("--target-lsn: %w", err)
		}
		t.Kind, t.LSN = TargetLSN, lsn
	}
	if f.XID != "" {
		given = append(given, "--target-xid")
		xid, err := strconv.ParseUint(f.XID, 10, 64)
		if err != nil || xid < 3 { // 0-2 are PostgreSQL's special transaction IDs
			return t, fmt.Errorf("--target-xid %q is not a transaction ID (a number of 3 or more, as txid_current() returns)", f.XID)
		}
		t.Kind, t.XID = TargetXID, xid
	}
	if f.Name != "" {
		given = append(given, "--target-name")
		if len(f.Name) >= 64 {
			return t, fmt.Errorf("--target-name is %d bytes long; restore point names have at most 63", len(f.Name))
		}
		t.Kind, t.Name = TargetName, f.Name
	}
	if f.Immediate {
		given = append(given, "--target-immediate")
		t.Kind = TargetImmediate
	}
	if len(given) > 1 {
		return t, fmt.Errorf("%s given together: choose one recovery target", strings.Join(given, " and "))
	}
	if t.Exclusive && t.Kind != TargetTime && t.Kind != TargetLSN && t.Kind != TargetXID {
		return t, errors.New("--exclusive applies to --target-time, --target-lsn and --target-xid only")
	}
	if err := checkTimeline(t.Timeline); err != nil {
		return t, err
	}
	switch t.Action {
	case "":
		t.Action = "promote"
	case "promote", "pause", "shutdown":
	default:
		return t, fmt.Errorf("--target-action %q: use promote, pause or shutdown", t.Action)
	}
	return t, nil
}

func checkTimeline(s string) error {
	switch s {
	case "", "latest", "current":
		return nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err != nil || n == 0 {
		return fmt.Errorf("--target-timeline %q: use latest, current or a timeline number (1, 2, ...)", s)
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
