package pg

import (
	"strings"
	"testing"
)

func TestKindOf(t *testing.T) {
	cases := map[string]Kind{
		"000000010000000000000001":                 KindSegment,
		"00000001000000000000000A.partial":         KindPartial,
		"00000002.history":                         KindHistory,
		"000000010000000000000002.00000028.backup": KindBackup,
		"00000001000000000000000a":                 KindUnknown, // lower case is not PostgreSQL's
		"RECOVERYXLOG":                             KindUnknown,
		"000000010000000000000001.gz":              KindUnknown,
		"../000000010000000000000001":              KindUnknown,
		"":                                         KindUnknown,
	}
	for name, want := range cases {
		if got := KindOf(name); got != want {
			t.Errorf("KindOf(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNextSegmentDependsOnSegmentSize(t *testing.T) {
	s, _ := ParseSegmentName("0000000100000000000000FF")
	if got := s.Next(16 << 20).Name(); got != "000000010000000100000000" {
		t.Errorf("16 MiB: after FF comes %s", got)
	}
	if got := s.Next(1 << 20).Name(); got != "000000010000000000000100" {
		t.Errorf("1 MiB: after FF comes %s", got)
	}
	s, _ = ParseSegmentName("000000030000000A00000003")
	if got := s.Next(1 << 30).Name(); got != "000000030000000B00000000" {
		t.Errorf("1 GiB: after 3 comes %s", got)
	}
}

func TestParseSegmentHeader(t *testing.T) {
	name := "000000010000000200000003"
	b := FakeSegment(name, 42, 1<<20, 1)
	h, err := ParseSegmentHeader(name, b)
	if err != nil || h.SystemID != 42 || h.SegSize != 1<<20 {
		t.Fatalf("got %+v, %v", h, err)
	}
	if _, err := ParseSegmentHeader("000000010000000200000004", b); err == nil || !strings.Contains(err.Error(), "another segment") {
		t.Errorf("renamed segment accepted: %v", err)
	}
	if _, err := ParseSegmentHeader(name, []byte(strings.Repeat("not wal ", 100))); err == nil || !strings.Contains(err.Error(), "not a WAL segment") {
		t.Errorf("text accepted: %v", err)
	}
	if _, err := ParseSegmentHeader(name, b[:20]); err == nil {
		t.Error("short file accepted")
	}
}
