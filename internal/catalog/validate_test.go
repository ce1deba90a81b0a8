package catalog

import (
	"strings"
	"testing"
)

func TestBackupSummaryValidate(t *testing.T) {
	good := func(segSize uint32, startLSN, stopLSN, startWAL, stopWAL string) BackupSummary {
		return BackupSummary{ID: "20261125T130405Z", Status: StatusComplete, SystemID: 7, WALSegmentSize: segSize, Timeline: 2,
			StartLSN: startLSN, StopLSN: stopLSN, StartWAL: startWAL, StopWAL: stopWAL}
	}
	valid := []BackupSummary{
		good(16<<20, "0/2000028", "0/3000100", "000000020000000000000002", "000000020000000000000003"),
		good(16<<20, "0/2000028", "0/3000000", "000000020000000000000002", "000000020000000000000002"), // stop on a boundary
		good(1<<20, "0/FFF00028", "1/100", "000000020000000000000FFF", "000000020000000100000000"),
		good(64<<20, "0/FC000028", "1/4000100", "00000002000000000000003F", "000000020000000100000001"),
		good(64<<20, "0/FC000028", "1/4000100", "00000002000000000000003F", "000000030000000100000001"), // stopped on a later timeline
	}
	for _, b := range valid {
		if err := b.Validate(); err != nil {
			t.Errorf("%+v: %v", b, err)
		}
	}
	b := valid[2]
	bad := map[string]func(*BackupSummary){
		"not a backup ID":                             func(b *BackupSummary) { b.ID = "../x" },
		"wal_segment_size 0":                          func(b *BackupSummary) { b.WALSegmentSize = 0 },
		"wal_segment_size 16777217":                   func(b *BackupSummary) { b.WALSegmentSize = 16<<20 + 1 },
		"timeline 0":                                  func(b *BackupSummary) { b.Timeline = 0 },
		`start LSN: "" is not`:                        func(b *BackupSummary) { b.StartLSN = "" },
		`stop LSN: "1:100" is not`:                    func(b *BackupSummary) { b.StopLSN = "1:100" },
		`start WAL "00000002" is not`:                 func(b *BackupSummary) { b.StartWAL = "00000002" },
		`stop WAL "000000020000000100000000.partial"`: func(b *BackupSummary) { b.StopWAL += ".partial" },
		"not after its start":                         func(b *BackupSummary) { b.StopLSN = b.StartLSN },
		"is not the segment of its start":             func(b *BackupSummary) { b.StartWAL = "000000020000000000000FFE" },
		"start LSN 0/FFF00028 on timeline 3":          func(b *BackupSummary) { b.Timeline = 3 },
		"last byte before its stop LSN":               func(b *BackupSummary) { b.StopWAL = "000000020000000100000001" },
		"stop WAL 000000010000000100000000 is not":    func(b *BackupSummary) { b.StopWAL = "000000010000000100000000" },
	}
	for want, change := range bad {
		c := b
		change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

func TestManifestValidate(t *testing.T) {
	m := &Manifest{
		BackupSummary: BackupSummary{ID: "20261125T130405Z", WALSegmentSize: 1 << 20, Timeline: 1,
			StartLSN: "0/100028", StopLSN: "0/180000", StartWAL: "000000010000000000000001", StopWAL: "000000010000000000000001"},
		BackupLabel: "START WAL LOCATION: 0/100028 (file 000000010000000000000001)\n",
		Objects:     []BackupObject{{Size: 100}, {Size: 50}},
		Files: []BackupFile{
			{Path: "base", Type: TypeDir},
			{Path: "a", Type: TypeFile, Size: 120, Parts: []Part{{Object: 0, Offset: 10, Length: 90}, {Object: 1, Offset: 0, Length: 30}}},
			{Path: "empty", Type: TypeFile},
		},
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for want, change := range map[string]func(m *Manifest){
		"no backup_label":                       func(m *Manifest) { m.BackupLabel = "" },
		"timeline 0":                            func(m *Manifest) { m.Timeline = 0 },
		"a: part 1 points outside":              func(m *Manifest) { m.Files[1].Parts[1].Object = 2 },
		"a: part 1 points outside the":          func(m *Manifest) { m.Files[1].Parts[1].Length = 51 },
		"a: part 0 points outside":              func(m *Manifest) { m.Files[1].Parts[0].Offset = -1 },
		"a: part 1 is not after part 0":         func(m *Manifest) { m.Files[1].Parts[1] = Part{Object: 0, Offset: 50, Length: 30} },
		"a: parts hold 120 bytes, the file 121": func(m *Manifest) { m.Files[1].Size = 121 },
		"empty: parts hold 0 bytes, the file 1": func(m *Manifest) { m.Files[2].Size = 1 },
	} {
		c := *m
		c.Files = append([]BackupFile(nil), m.Files...)
		c.Files[1].Parts = append([]Part(nil), m.Files[1].Parts...)
		change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

func TestWindowValidate(t *testing.T) {
	w := Window{Timeline: 2, Backup: "b", StartLSN: "0/3000100", EndWAL: "000000020000000000000005", EndLSN: "0/6000000", Complete: true}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if end, err := w.End(); err != nil || end.String() != "0/6000000" {
		t.Errorf("End = %v, %v", end, err)
	}
	if err := (Window{Timeline: 1, StartLSN: "0/3000100"}).Validate(); err != nil {
		t.Errorf("an incomplete window that reaches nothing: %v", err)
	}
	if _, err := (Window{Timeline: 1, StartLSN: "0/3000100"}).End(); err == nil {
		t.Error("End of a window that reaches nothing")
	}
	for want, change := range map[string]func(*Window){
		"timeline 0":              func(w *Window) { w.Timeline = 0 },
		"window start":            func(w *Window) { w.StartLSN = "3000100" },
		"window end":              func(w *Window) { w.EndLSN = "x/6000000" },
		"not a WAL segment name":  func(w *Window) { w.EndWAL = "00000002.history" },
		"before its start":        func(w *Window) { w.EndLSN = "0/3000000" },
		"complete window without": func(w *Window) { w.EndLSN, w.EndWAL = "", "" },
		"the window reaches no":   func(w *Window) { w.EndLSN = "" },
	} {
		c := w
		change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

func TestIdentityValidate(t *testing.T) {
	for _, size := range []uint32{1 << 20, 16 << 20, 64 << 20, 1 << 30} {
		if err := (Identity{SystemID: 7, WALSegmentSize: size}).Validate(); err != nil {
			t.Errorf("%d: %v", size, err)
		}
	}
	for want, id := range map[string]Identity{
		"no database system":  {WALSegmentSize: 16 << 20},
		"wal_segment_size 0":  {SystemID: 7},
		"wal_segment_size 10": {SystemID: 7, WALSegmentSize: 10},
	} {
		if err := id.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}
