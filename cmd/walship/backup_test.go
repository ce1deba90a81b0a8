package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/catalog"
)

// A window whose last segment is the backup's own was stored before the
// backup recorded its stop time; the table must not show it ending before
// it starts.
func TestPrintWindowsNeverEndsBeforeItStarts(t *testing.T) {
	stop := time.Date(2026, 12, 1, 10, 0, 5, 0, time.UTC)
	var out bytes.Buffer
	printWindows(&out, []catalog.Window{
		{Timeline: 1, Backup: "b1", StartLSN: "0/2000100", StartTime: stop,
			EndWAL: "000000010000000000000002", EndLSN: "0/3000000", EndTime: stop.Add(-time.Second), Complete: true},
		{Timeline: 2, Backup: "b1", StartLSN: "0/2000100", StartTime: stop,
			EndWAL: "000000020000000000000009", EndLSN: "0/A000000", EndTime: stop.Add(time.Hour), Complete: true},
	})
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 4 {
		t.Fatalf("output:\n%s", out.String())
	}
	if f := strings.Fields(lines[2]); f[1] != "2026-12-01T10:00:05Z" || f[3] != "2026-12-01T10:00:05Z" {
		t.Errorf("window at the backup's end: FROM %s TO %s\n%s", f[1], f[3], out.String())
	}
	if f := strings.Fields(lines[3]); f[3] != "2026-12-01T11:00:05Z" {
		t.Errorf("later window: TO %s\n%s", f[3], out.String())
	}
}
