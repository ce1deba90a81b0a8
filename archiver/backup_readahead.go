package archiver

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// readAheadObjects is how many objects past the one being started the
// kernel is asked to read ahead: enough that the disk never waits for a
// worker to finish compressing or uploading.
func readAheadObjects(jobs int) int { return 2 * jobs }

// fileRange is a byte range of a file in the data directory.
type fileRange struct {
	path      string
	off, size int64
}

// ranges lists where object n's bytes come from, in the object's order.
func (u *uploader) ranges(n int) []fileRange {
	rs := make([]fileRange, 0, len(u.parts[n]))
	for _, r := range u.parts[n] {
		f := &u.files[r.file]
		rs = append(rs, fileRange{path: filepath.Join(u.pgdata, filepath.FromSlash(f.Path)),
			off: r.fileOff, size: f.Parts[r.part].Length})
	}
	return rs
}

// readAhead asks the kernel to read every object up to n (inclusive) not
// asked for yet into the page cache, before a worker reads it
// (posix_fadvise WILLNEED, which only starts the reads). It is a hint:
// errors are ignored, and a file that vanished is the worker's business.
func (u *uploader) readAhead(n int) {
	for ; u.advised <= n && u.advised < len(u.objects); u.advised++ {
		for _, r := range u.ranges(u.advised) {
			willNeed(r)
		}
	}
}

func willNeed(r fileRange) {
	f, err := os.Open(r.path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.Fadvise(int(f.Fd()), r.off, r.size, unix.FADV_WILLNEED)
}
