package pg

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The first page of every WAL segment starts with XLogLongPageHeaderData
// (src/include/access/xlog_internal.h):
//
//	uint16 xlp_magic; uint16 xlp_info; uint32 xlp_tli; uint64 xlp_pageaddr;
//	uint32 xlp_rem_len; (4 bytes padding) uint64 xlp_sysid;
//	uint32 xlp_seg_size; uint32 xlp_xlog_blcksz
//
// It tells which database system wrote the segment and its segment size,
// without asking the server.
const (
	longHeaderSize = 40
	xlpLongHeader  = 0x0002
)

// SegmentHeader is what walship reads from a segment's first page.
type SegmentHeader struct {
	Magic         uint16 // XLOG_PAGE_MAGIC, changes with each major version
	PageAddr      LSN    // of the first page; must match the file name
	SystemID      uint64
	SegSize       uint32
	XLogBlockSize uint32
}

// ParseSegmentHeader decodes and sanity-checks the long page header at the
// start of a segment named name. It rejects files that are not WAL.
func ParseSegmentHeader(name string, page []byte) (SegmentHeader, error) {
	if len(page) < longHeaderSize {
		return SegmentHeader{}, fmt.Errorf("%s: too short to be a WAL segment (%d bytes)", name, len(page))
	}
	le := binary.LittleEndian
	h := SegmentHeader{
		Magic:         le.Uint16(page[0:]),
		PageAddr:      LSN(le.Uint64(page[8:])),
		SystemID:      le.Uint64(page[24:]),
		SegSize:       le.Uint32(page[32:]),
		XLogBlockSize: le.Uint32(page[36:]),
	}
	info := le.Uint16(page[2:])
	// Every release since 9.x uses 0xD0xx/0xD1xx; an exact list would reject
	// the next major version for no benefit.
	if h.Magic&0xFE00 != 0xD000 || info&xlpLongHeader == 0 {
		return h, fmt.Errorf("%s: not a WAL segment (no WAL page header: magic %#04x, info %#04x)", name, h.Magic, info)
	}
	if !ValidSegmentSize(int64(h.SegSize)) {
		return h, fmt.Errorf("%s: not a WAL segment (implausible segment size %d)", name, h.SegSize)
	}
	if h.XLogBlockSize < 1024 || h.XLogBlockSize > 65536 || h.XLogBlockSize&(h.XLogBlockSize-1) != 0 {
		return h, fmt.Errorf("%s: not a WAL segment (implausible WAL block size %d)", name, h.XLogBlockSize)
	}
	seg, err := ParseSegmentName(name)
	if err != nil {
		return h, err
	}
	if want := seg.StartLSN(h.SegSize); h.PageAddr != want {
		return h, fmt.Errorf("%s: contents belong to another segment (page address %X/%08X, expected %X/%08X)",
			name, uint64(h.PageAddr)>>32, uint32(h.PageAddr), uint64(want)>>32, uint32(want))
	}
	return h, nil
}

// ReadSegmentHeader reads the first page's header of the segment file at
// path, named name, and checks it (ParseSegmentHeader).
func ReadSegmentHeader(path, name string) (SegmentHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return SegmentHeader{}, err
	}
	defer f.Close()
	page := make([]byte, 64)
	n, _ := io.ReadFull(f, page)
	return ParseSegmentHeader(name, page[:n])
}

// ControlSystemID reads the database system identifier from
// PGDATA/global/pg_control: the first field of ControlFileData.
func ControlSystemID(pgdata string) (uint64, error) {
	f, err := os.Open(filepath.Join(pgdata, "global", "pg_control"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return 0, fmt.Errorf("reading pg_control: %w", err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}
