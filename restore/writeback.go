package restore

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackAfter is how many bytes written to one file are handed to the
// disk at once. Without this hint the kernel starts writing only when the
// dirty pages reach a tenth of memory or 30 s old, so a restore smaller
// than that would write everything in the final syncfs, after the
// download instead of during it.
const writebackAfter = 8 << 20

// dirtyRange is the contiguous range of the open file written since its
// writeback was last started.
type dirtyRange struct {
	off, end int64
}

// add records n bytes written at off to f, starting the writeback of what
// came before when the range breaks or has grown large enough.
func (d *dirtyRange) add(f *os.File, off, n int64) {
	if off != d.end {
		d.flush(f)
		d.off = off
	}
	d.end = off + n
	if d.end-d.off >= writebackAfter {
		d.flush(f)
	}
}

// flush starts writing the range to disk without waiting for it
// (sync_file_range SYNC_FILE_RANGE_WRITE). It is only a hint that moves
// the work earlier: the restore's final syncfs is what makes the data
// durable, and reports any write error, so errors here are ignored.
func (d *dirtyRange) flush(f *os.File) {
	if d.end > d.off {
		startWriteback(f, d.off, d.end-d.off)
	}
	d.off = d.end
}

// startWriteback is a variable for the tests.
var startWriteback = func(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
