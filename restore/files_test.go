package restore

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A restored file gets its blocks when it is created: written into, it
// needs no allocation page by page, and a disk too small fails at once.
func TestAllocateReservesBlocks(t *testing.T) {
	fh, err := os.Create(filepath.Join(t.TempDir(), "16384"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := allocate(fh, 8<<20); err != nil {
		t.Fatal(err)
	}
	fi, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Size() != 8<<20 || st.Blocks*512 < 8<<20 {
		t.Errorf("size %d with %d bytes of blocks, want 8 MiB reserved", fi.Size(), st.Blocks*512)
	}
	if err := allocate(fh, 0); err != nil {
		t.Errorf("an empty file: %v", err)
	}
}
