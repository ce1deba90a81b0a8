package catalog

import (
	"cmp"
	"errors"
	"fmt"

	"github.com/walship/walship/internal/pg"
)

// The records of a repository keep PostgreSQL's identities as text, the
// way PostgreSQL prints them: LSNs as "16/B374D848", segments as their file
// names. The methods here are the one place that parses them; Validate
// checks a whole record where it enters (loaded from the store, or about
// to be written).

// Start is the LSN where the backup began (pg_backup_start).
func (b BackupSummary) Start() (pg.LSN, error) {
	return parseLSN(b.ID, "start LSN", b.StartLSN)
}

// Stop is the LSN where the backup ended (pg_backup_stop): recovery from
// the backup is consistent once it has replayed that far.
func (b BackupSummary) Stop() (pg.LSN, error) {
	return parseLSN(b.ID, "stop LSN", b.StopLSN)
}

// FirstSegment is the segment the backup's WAL starts with (StartWAL), on
// the backup's timeline.
func (b BackupSummary) FirstSegment() (pg.Segment, error) {
	return parseSegment(b.ID, "start WAL", b.StartWAL)
}

// LastSegment is the segment holding the last byte before the stop LSN
// (StopWAL), on the timeline where the backup stopped.
func (b BackupSummary) LastSegment() (pg.Segment, error) {
	return parseSegment(b.ID, "stop WAL", b.StopWAL)
}

func parseLSN(id, what, s string) (pg.LSN, error) {
	lsn, err := pg.ParseLSN(s)
	if err != nil {
		return 0, fmt.Errorf("backup %s: %s: %w", id, what, err)
	}
	return lsn, nil
}

func parseSegment(id, what, s string) (pg.Segment, error) {
	seg, err := pg.ParseSegmentName(s)
	if err != nil || len(s) != 24 {
		return pg.Segment{}, fmt.Errorf("backup %s: %s %q is not a WAL segment name", id, what, s)
	}
	return seg, nil
}

// Validate checks what the summary says of the backup's place in the WAL: each field well-formed, and the fields
// consistent with each other.
func (b BackupSummary) Validate() error {
	if !validID(b.ID) {
		return fmt.Errorf("%q is not a backup ID (like 20261125T130405Z)", b.ID)
	}
	switch {
	case !pg.ValidSegmentSize(int64(b.WALSegmentSize)):
		return fmt.Errorf("backup %s records wal_segment_size %d, which PostgreSQL does not allow (a power of two from 1 MiB to 1 GiB)", b.ID, b.WALSegmentSize)
	case b.Timeline == 0:
		return fmt.Errorf("backup %s records timeline 0", b.ID)
	}
	start, err1 := b.Start()
	stop, err2 := b.Stop()
	first, err3 := b.FirstSegment()
	last, err4 := b.LastSegment()
	if err := cmp.Or(err1, err2, err3, err4); err != nil {
		return err
	}
	seg := b.WALSegmentSize
	switch {
	case stop <= start:
		return fmt.Errorf("backup %s stops at LSN %s, not after its start %s", b.ID, b.StopLSN, b.StartLSN)
	case first.Timeline != b.Timeline || !first.Holds(start, seg):
		return fmt.Errorf("backup %s: start WAL %s is not the segment of its start LSN %s on timeline %d", b.ID, b.StartWAL, b.StartLSN, b.Timeline)
	case last.Timeline < b.Timeline || !last.Holds(stop-1, seg):
		return fmt.Errorf("backup %s: stop WAL %s is not the segment of the last byte before its stop LSN %s", b.ID, b.StopWAL, b.StopLSN)
	}
	return nil
}

// Validate checks the manifest's summary (BackupSummary.Validate), that
// it holds the backup label, and that the parts of each file lie inside
// its objects (CheckParts).
func (m *Manifest) Validate() error {
	if err := m.BackupSummary.Validate(); err != nil {
		return err
	}
	if m.BackupLabel == "" {
		return fmt.Errorf("manifest of backup %s has no backup_label", m.ID)
	}
	for _, f := range m.Files {
		if err := m.CheckParts(f); err != nil {
			return fmt.Errorf("manifest of backup %s: %s: %w", m.ID, f.Path, err)
		}
	}
	return nil
}

// CheckParts checks that the parts of f lie inside m's objects, each after
// the one before, and add up to f's size.
func (m *Manifest) CheckParts(f BackupFile) error {
	var sum int64
	for i, p := range f.Parts {
		if p.Object < 0 || p.Object >= len(m.Objects) || p.Offset < 0 || p.Length < 0 || p.Offset+p.Length > m.Objects[p.Object].Size {
			return fmt.Errorf("part %d points outside the backup's objects", i)
		}
		if i > 0 {
			q := f.Parts[i-1]
			if p.Object < q.Object || (p.Object == q.Object && p.Offset < q.Offset+q.Length) {
				return fmt.Errorf("part %d is not after part %d", i, i-1)
			}
		}
		sum += p.Length
	}
	if sum != f.Size {
		return fmt.Errorf("parts hold %d bytes, the file %d", sum, f.Size)
	}
	return nil
}

// End is where the window ends: the end of EndWAL.
func (w Window) End() (pg.LSN, error) {
	if w.EndLSN == "" {
		return 0, errors.New("the window reaches no archived WAL")
	}
	lsn, err := pg.ParseLSN(w.EndLSN)
	if err != nil {
		return 0, fmt.Errorf("window end: %w", err)
	}
	return lsn, nil
}

// Validate checks the window's fields: its timeline, its start LSN, and an
// end (LSN and segment) that does not come before the start when the
// window is complete.
func (w Window) Validate() error {
	if w.Timeline == 0 {
		return errors.New("window on timeline 0")
	}
	start, err := pg.ParseLSN(w.StartLSN)
	if err != nil {
		return fmt.Errorf("window start: %w", err)
	}
	if w.EndWAL == "" && w.EndLSN == "" {
		if w.Complete {
			return errors.New("a complete window without an end")
		}
		return nil
	}
	end, err := w.End()
	if err != nil {
		return err
	}
	if _, err := pg.ParseSegmentName(w.EndWAL); err != nil {
		return fmt.Errorf("window end: %w", err)
	}
	if w.Complete && end < start {
		return fmt.Errorf("a complete window ending at %s, before its start %s", w.EndLSN, w.StartLSN)
	}
	return nil
}

// Validate checks an identity record: a database system, and the segment
// size of its WAL, which every reader of the archive counts segments with.
func (id Identity) Validate() error {
	switch {
	case id.SystemID == 0:
		return errors.New("no database system identifier")
	case !pg.ValidSegmentSize(int64(id.WALSegmentSize)):
		return fmt.Errorf("wal_segment_size %d, which PostgreSQL does not allow (a power of two from 1 MiB to 1 GiB)", id.WALSegmentSize)
	}
	return nil
}
