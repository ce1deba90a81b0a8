package pg

import (
	"fmt"
	"testing"
)

func TestParseLSN(t *testing.T) {
	for s, want := range map[string]LSN{
		"0/0":               0,
		"16/B374D848":       0x16_B374D848,
		"0/1000028":         0x1000028,
		"FFFFFFFF/FFFFFFFF": ^LSN(0),
		"a/b":               0xA_0000000B, // PostgreSQL accepts lower case too
	} {
		got, err := ParseLSN(s)
		if err != nil || got != want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "16", "16/", "/B374D848", "16/B374D848/1", "1 /2", "G/0", "100000000/0", "0/100000000", "-1/0"} {
		if got, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) = %v, want an error", s, got)
		}
	}
	for _, l := range []LSN{0, 1, 0x16_B374D848, 0xFFFFFFFF, 0x1_00000000, ^LSN(0)} {
		if back, err := ParseLSN(l.String()); err != nil || back != l {
			t.Errorf("%#x formats as %q, which parses to %v, %v", uint64(l), l.String(), back, err)
		}
	}
	if got := LSN(0x16_000000A0).String(); got != "16/A0" {
		t.Errorf("String = %q, want 16/A0 (no padding, as PostgreSQL prints it)", got)
	}
}

// TestSegmentArithmetic checks LSN and segment arithmetic against what
// PostgreSQL computes (pg_walfile_name, XLByteToSeg, XLogFileName) for the
// default 16 MiB and for other wal_segment_size values, across the 4 GiB
// boundaries where the log id of a file name changes.
func TestSegmentArithmetic(t *testing.T) {
	const MiB = 1 << 20
	cases := []struct {
		segSize     uint32
		lsn         string // a location in the segment
		name        string // of the segment holding it, on timeline 1
		no          uint64
		start, end  string
		prev, next  string
		perLog      uint32
		description string
	}{
		{16 * MiB, "0/1000028", "000000010000000000000001", 1, "0/1000000", "0/2000000",
			"000000010000000000000000", "000000010000000000000002", 256, "16 MiB, the second segment"},
		{16 * MiB, "0/FFFFFFFF", "0000000100000000000000FF", 255, "0/FF000000", "1/0",
			"0000000100000000000000FE", "000000010000000100000000", 256, "16 MiB, the last byte of log 0"},
		{16 * MiB, "1/0", "000000010000000100000000", 256, "1/0", "1/1000000",
			"0000000100000000000000FF", "000000010000000100000001", 256, "16 MiB, the first of log 1"},
		{1 * MiB, "0/FF00123", "0000000100000000000000FF", 0xFF, "0/FF00000", "0/10000000",
			"0000000100000000000000FE", "000000010000000000000100", 4096, "1 MiB: after FF comes 100"},
		{1 * MiB, "0/FFFFFFFF", "000000010000000000000FFF", 0xFFF, "0/FFF00000", "1/0",
			"000000010000000000000FFE", "000000010000000100000000", 4096, "1 MiB, the last of log 0"},
		{1 * MiB, "2/300028", "000000010000000200000003", 2*4096 + 3, "2/300000", "2/400000",
			"000000010000000200000002", "000000010000000200000004", 4096, "1 MiB, log 2"},
		{64 * MiB, "0/FC000100", "00000001000000000000003F", 0x3F, "0/FC000000", "1/0",
			"00000001000000000000003E", "000000010000000100000000", 64, "64 MiB, the last of log 0"},
		{64 * MiB, "1/4000000", "000000010000000100000001", 65, "1/4000000", "1/8000000",
			"000000010000000100000000", "000000010000000100000002", 64, "64 MiB, the second of log 1"},
		{1 << 30, "A/C0000000", "000000010000000A00000003", 10*4 + 3, "A/C0000000", "B/0",
			"000000010000000A00000002", "000000010000000B00000000", 4, "1 GiB"},
		{16 * MiB, "0/100", "000000010000000000000000", 0, "0/0", "0/1000000",
			"000000010000000000000000", "000000010000000000000001", 256, "the very first segment is its own previous"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s at %s", c.description, c.lsn), func(t *testing.T) {
			if !ValidSegmentSize(int64(c.segSize)) {
				t.Fatalf("%d is a valid segment size", c.segSize)
			}
			if got := SegmentsPerLog(c.segSize); got != c.perLog {
				t.Errorf("SegmentsPerLog = %d, want %d", got, c.perLog)
			}
			lsn, err := ParseLSN(c.lsn)
			if err != nil {
				t.Fatal(err)
			}
			s := lsn.Segment(1, c.segSize)
			if s.Name() != c.name || s.String() != c.name {
				t.Errorf("segment of %s = %s, want %s", c.lsn, s.Name(), c.name)
			}
			parsed, err := ParseSegmentName(c.name)
			if err != nil || parsed != s {
				t.Errorf("ParseSegmentName(%s) = %+v, %v; want %+v", c.name, parsed, err, s)
			}
			if got := s.No(c.segSize); got != c.no || lsn.SegNo(c.segSize) != c.no {
				t.Errorf("No = %d (LSN.SegNo %d), want %d", got, lsn.SegNo(c.segSize), c.no)
			}
			if got := SegmentNo(1, c.no, c.segSize); got != s {
				t.Errorf("SegmentNo(%d) = %s, want %s", c.no, got, s)
			}
			if got := s.StartLSN(c.segSize).String(); got != c.start {
				t.Errorf("StartLSN = %s, want %s", got, c.start)
			}
			if got := s.EndLSN(c.segSize).String(); got != c.end {
				t.Errorf("EndLSN = %s, want %s", got, c.end)
			}
			if !s.Holds(lsn, c.segSize) || !s.Holds(s.StartLSN(c.segSize), c.segSize) || !s.Holds(s.EndLSN(c.segSize)-1, c.segSize) ||
				s.Holds(s.EndLSN(c.segSize), c.segSize) {
				t.Errorf("Holds is wrong at the edges of %s", s)
			}
			if got := s.Prev(c.segSize).Name(); got != c.prev {
				t.Errorf("Prev = %s, want %s", got, c.prev)
			}
			if got := s.Next(c.segSize).Name(); got != c.next {
				t.Errorf("Next = %s, want %s", got, c.next)
			}
			if s.No(c.segSize) > 0 && s.Prev(c.segSize).Next(c.segSize) != s {
				t.Errorf("Prev then Next does not come back to %s", s)
			}
			if got := s.Next(c.segSize).StartLSN(c.segSize); got != s.EndLSN(c.segSize) {
				t.Errorf("the next segment starts at %s, not where %s ends", got, s)
			}
			on3 := lsn.Segment(3, c.segSize)
			if on3.Timeline != 3 || on3.Name() != "00000003"+c.name[8:] {
				t.Errorf("on timeline 3: %s", on3)
			}
		})
	}
}

func TestTimelineHistoryFile(t *testing.T) {
	for tli, want := range map[Timeline]string{1: "00000001.history", 0x1A: "0000001A.history"} {
		if got := tli.HistoryFile(); got != want || KindOf(got) != KindHistory {
			t.Errorf("HistoryFile(%d) = %s, want %s", tli, got, want)
		}
	}
}

func TestValidSegmentSize(t *testing.T) {
	for n, want := range map[int64]bool{1 << 20: true, 16 << 20: true, 64 << 20: true, 1 << 30: true,
		0: false, 1 << 19: false, 2 << 30: false, 3 << 20: false, -1 << 20: false} {
		if ValidSegmentSize(n) != want {
			t.Errorf("ValidSegmentSize(%d) = %v", n, !want)
		}
	}
}
