package pg

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a WAL location (PostgreSQL's XLogRecPtr): a byte position in the
// WAL a database system has written since initdb. Its text form is two
// hexadecimal halves, "16/B374D848".
type LSN uint64

// ParseLSN parses PostgreSQL's text form of a WAL location, "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a WAL location (like 16/B374D848)", s)
	}
	return LSN(h<<32 | l), nil
}

// String is PostgreSQL's text form, the inverse of ParseLSN.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l))
}

// SegNo is the number (XLogSegNo) of the segment that holds the byte at l.
func (l LSN) SegNo(segSize uint32) uint64 {
	return uint64(l) / uint64(segSize)
}

// Segment names the segment on timeline tli that holds the byte at l.
func (l LSN) Segment(tli Timeline, segSize uint32) Segment {
	return SegmentNo(tli, l.SegNo(segSize), segSize)
}

// Timeline is a timeline ID (PostgreSQL's TimeLineID): 1 after initdb, one
// more at each promotion or point-in-time recovery that ends.
type Timeline uint32

// HistoryFile is the name of the timeline's history file, 00000002.history.
func (t Timeline) HistoryFile() string {
	return fmt.Sprintf("%08X.history", uint32(t))
}
