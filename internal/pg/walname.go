// Package pg holds PostgreSQL facts walship relies on: WAL file names, the
// layout of a WAL segment's first page, and the control file.
package pg

import (
	"fmt"
	"regexp"
	"strconv"
)

// Kind is the kind of file PostgreSQL hands to archive_command/restore_command.
type Kind int

const (
	KindUnknown Kind = iota
	KindSegment      // 000000010000000000000001
	KindPartial      // 000000010000000000000001.partial (end of an old timeline)
	KindHistory      // 00000002.history
	KindBackup       // 000000010000000000000001.00000028.backup (backup history file)
)

func (k Kind) String() string {
	switch k {
	case KindSegment:
		return "WAL segment"
	case KindPartial:
		return "partial WAL segment"
	case KindHistory:
		return "timeline history file"
	case KindBackup:
		return "backup history file"
	}
	return "unknown file"
}

var (
	segmentRe = regexp.MustCompile(`^[0-9A-F]{24}$`)
	partialRe = regexp.MustCompile(`^[0-9A-F]{24}\.partial$`)
	historyRe = regexp.MustCompile(`^[0-9A-F]{8}\.history$`)
	backupRe  = regexp.MustCompile(`^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$`)
)

// KindOf classifies a file name (no directory).
func KindOf(name string) Kind {
	switch {
	case segmentRe.MatchString(name):
		return KindSegment
	case partialRe.MatchString(name):
		return KindPartial
	case historyRe.MatchString(name):
		return KindHistory
	case backupRe.MatchString(name):
		return KindBackup
	}
	return KindUnknown
}

// Segment identifies one WAL segment by its file name: a timeline and a
// position in the WAL. The name does not depend on the segment size, but
// its place in the WAL does: every method that counts or converts to an
// LSN takes the cluster's wal_segment_size.
type Segment struct {
	Timeline Timeline
	LogID    uint32 // the high 32 bits of the LSN
	Seg      uint32 // index within the 4 GiB "log", in segment-size units
}

// ParseSegmentName parses the 24 hex digits at the start of a segment,
// partial or backup file name.
func ParseSegmentName(name string) (Segment, error) {
	if len(name) < 24 || !segmentRe.MatchString(name[:24]) {
		return Segment{}, fmt.Errorf("%q is not a WAL segment name (24 upper-case hex digits)", name)
	}
	tli, _ := strconv.ParseUint(name[0:8], 16, 32)
	log, _ := strconv.ParseUint(name[8:16], 16, 32)
	seg, _ := strconv.ParseUint(name[16:24], 16, 32)
	return Segment{Timeline: Timeline(tli), LogID: uint32(log), Seg: uint32(seg)}, nil
}

// SegmentNo is segment number no (PostgreSQL's XLogSegNo: start LSN /
// segment size) of timeline tli.
func SegmentNo(tli Timeline, no uint64, segSize uint32) Segment {
	per := uint64(SegmentsPerLog(segSize))
	return Segment{Timeline: tli, LogID: uint32(no / per), Seg: uint32(no % per)}
}

// Name is the segment's file name.
func (s Segment) Name() string {
	return fmt.Sprintf("%08X%08X%08X", uint32(s.Timeline), s.LogID, s.Seg)
}

// String is the segment's file name.
func (s Segment) String() string { return s.Name() }

// SegmentsPerLog is how many segments of segSize fit in one 4 GiB log id.
func SegmentsPerLog(segSize uint32) uint32 {
	return uint32((uint64(1) << 32) / uint64(segSize))
}

// No is the segment's number (XLogSegNo): its start LSN / segment size.
func (s Segment) No(segSize uint32) uint64 {
	return uint64(s.LogID)*uint64(SegmentsPerLog(segSize)) + uint64(s.Seg)
}

// Next is the following segment on the same timeline.
func (s Segment) Next(segSize uint32) Segment {
	return SegmentNo(s.Timeline, s.No(segSize)+1, segSize)
}

// Prev is the segment before s on the same timeline; the very first
// segment is its own.
func (s Segment) Prev(segSize uint32) Segment {
	return SegmentNo(s.Timeline, max(s.No(segSize), 1)-1, segSize)
}

// StartLSN is the LSN at which the segment begins.
func (s Segment) StartLSN(segSize uint32) LSN {
	return LSN(s.No(segSize) * uint64(segSize))
}

// EndLSN is the LSN just after the segment's last byte: the start of the next.
func (s Segment) EndLSN(segSize uint32) LSN {
	return s.StartLSN(segSize) + LSN(segSize)
}

// Holds reports whether lsn lies in the segment (on any timeline).
func (s Segment) Holds(lsn LSN, segSize uint32) bool {
	return s.StartLSN(segSize) <= lsn && lsn < s.EndLSN(segSize)
}

// ValidSegmentSize reports whether n is a wal_segment_size PostgreSQL accepts:
// a power of two between 1 MiB and 1 GiB.
func ValidSegmentSize(n int64) bool {
	return n >= 1<<20 && n <= 1<<30 && n&(n-1) == 0
}
