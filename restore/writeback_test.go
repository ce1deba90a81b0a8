package restore

import (
	"os"
	"slices"
	"testing"
)

// TestWritebackRanges: writes are handed to the disk in contiguous runs of
// about writebackAfter bytes, a jump starts a new run, and flush hands over
// the rest; every byte written is handed over exactly once.
func TestWritebackRanges(t *testing.T) {
	var got [][2]int64
	defer func(f func(*os.File, int64, int64)) { startWriteback = f }(startWriteback)
	startWriteback = func(_ *os.File, off, n int64) { got = append(got, [2]int64{off, n}) }

	const mib = 1 << 20
	var d dirtyRange
	for i := range int64(5) { // 0-10 MiB: one run of 8, then 2 pending
		d.add(nil, i*2*mib, 2*mib)
	}
	d.add(nil, 20*mib, mib) // a jump: the pending 2 MiB go first
	d.add(nil, 21*mib, mib)
	d.flush(nil)
	d.flush(nil) // nothing left: no call
	want := [][2]int64{{0, 8 * mib}, {8 * mib, 2 * mib}, {20 * mib, 2 * mib}}
	if !slices.Equal(got, want) {
		t.Errorf("writeback of %v, want %v", got, want)
	}
}
