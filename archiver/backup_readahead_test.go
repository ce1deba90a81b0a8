package archiver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
)

// TestReadAheadRangesAreTheObjects: the ranges advised for an object are
// exactly the bytes a worker reads for it, in order, nothing more.
func TestReadAheadRangesAreTheObjects(t *testing.T) {
	up := fakeUploader(t, nil, 64<<10)
	for n := range up.objects {
		var got []byte
		for _, r := range up.ranges(n) {
			f, err := os.Open(r.path)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, r.size)
			if _, err := f.ReadAt(b, r.off); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			f.Close()
			got = append(got, b...)
		}
		raw, err := up.fill(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, raw) {
			t.Fatalf("object %d: the ranges hold %d bytes that differ from the %d bytes read for it", n, len(got), len(raw))
		}
	}
}

// TestReadAheadAdvisesEachObjectOnce: readAhead moves forward only, and stops
// at the last object.
func TestReadAheadAdvisesEachObjectOnce(t *testing.T) {
	up := fakeUploader(t, nil, 64<<10)
	for _, c := range []struct{ upTo, next int }{{3, 4}, {1, 4}, {5, 6}, {len(up.objects) + 10, len(up.objects)}} {
		up.readAhead(c.upTo)
		if up.advised != c.next {
			t.Errorf("after readAhead(%d): next object to advise %d, want %d", c.upTo, up.advised, c.next)
		}
	}
}

// TestUploadFailureStopsReadAhead: once an upload failed, the kernel is
// not asked to read the rest of the data directory for nothing.
func TestUploadFailureStopsReadAhead(t *testing.T) {
	up := fakeUploader(t, brokenStore(), 16<<10)
	if err := up.run(context.Background(), 1); err == nil {
		t.Fatal("run succeeded with a failing store")
	}
	// Object 0 fails; at most the next dispatch or two come before the
	// failure is seen, each advising readAheadObjects(1) further.
	if limit := 3 + 2*readAheadObjects(1); up.advised > limit || len(up.objects) <= 2*limit {
		t.Errorf("%d of %d objects advised after the first upload failed, want at most %d", up.advised, len(up.objects), limit)
	}
}

// TestCancelledUploadFails: a backup cancelled between objects reports it,
// rather than success with objects missing.
func TestCancelledUploadFails(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	up := fakeUploader(t, brokenStore(), 64<<10)
	if err := up.run(ctx, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("run: %v, want %v", err, context.Canceled)
	}
}
