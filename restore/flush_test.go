package restore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/codec"
)

// stubSync replaces syncFilesystem for one test with fn, and records the
// directories it is called for.
func stubSync(t *testing.T, fn func(dir string) error) (calls func() []string) {
	var mu sync.Mutex
	var got []string
	saved := syncFilesystem
	t.Cleanup(func() { syncFilesystem = saved })
	syncFilesystem = func(f *os.File) error {
		mu.Lock()
		got = append(got, f.Name())
		mu.Unlock()
		return fn(f.Name())
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// TestFlusherFlushesAsDataArrives: once flushEvery bytes were written, every
// root's file system is flushed in the background, not only at the end.
func TestFlusherFlushesAsDataArrives(t *testing.T) {
	calls := stubSync(t, func(string) error { return nil })
	a, b := t.TempDir(), t.TempDir()
	fl, err := openFlusher([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.close()
	stop := fl.background()
	fl.wrote(flushEvery - 1)
	time.Sleep(50 * time.Millisecond)
	if got := calls(); len(got) != 0 {
		t.Fatalf("flushed %v before flushEvery bytes were written", got)
	}
	fl.wrote(1)
	deadline := time.Now().Add(5 * time.Second)
	for len(calls()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	if got := calls(); len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("background flushes: %v, want %s and %s", got, a, b)
	}
	if err := fl.sync(); err != nil || len(calls()) != 4 {
		t.Errorf("final flush: %v, calls %v", err, calls())
	}
}

// TestRestoreFailsWhenTheDiskCannotFlush: a write error the file system
// reports when it is flushed, in the background during the download or at
// the end, fails the restore, and what it wrote is removed: no directory
// that looks restorable is left on a disk that lost data.
func TestRestoreFailsWhenTheDiskCannotFlush(t *testing.T) {
	st, _, _ := setup(t, 3)
	ctx := context.Background()
	tmp := t.TempDir()
	storeBackup(t, st, "20261125T100000Z", testEntries(filepath.Join(tmp, "orig-ts")), "16385 x\n", 100)
	var failed sync.Once
	calls := stubSync(t, func(string) error {
		err := error(nil)
		failed.Do(func() { err = syscall.EIO }) // once: later flushes succeed
		return err
	})
	pgdata := filepath.Join(tmp, "data")
	_, err := Restore(ctx, st, &codec.Decoder{}, Options{PGData: pgdata, Jobs: 2,
		Tablespaces: map[uint32]string{16385: filepath.Join(tmp, "ts")}})
	if err == nil || !strings.Contains(err.Error(), "flushing") || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("restore on a disk that fails to flush: %v; want the flush's error", err)
	}
	if len(calls()) == 0 {
		t.Fatal("the restore never flushed")
	}
	if _, err := os.Stat(pgdata); !os.IsNotExist(err) {
		t.Errorf("%s, which the failed restore created, is still there: %v", pgdata, err)
	}
}

// TestFlusherKeepsABackgroundError: syncfs reports a write-back error once
// per descriptor, so an error a background flush met must be what the
// final flush returns, even though the file system says nothing more.
func TestFlusherKeepsABackgroundError(t *testing.T) {
	var failed sync.Once
	calls := stubSync(t, func(string) error {
		err := error(nil)
		failed.Do(func() { err = syscall.EIO })
		return err
	})
	dir := t.TempDir()
	fl, err := openFlusher([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.close()
	stop := fl.background()
	fl.wrote(flushEvery)
	deadline := time.Now().Add(5 * time.Second)
	for len(calls()) < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	if err := fl.sync(); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "input/output error") {
		t.Errorf("final flush after a failed background flush: %v", err)
	}
}
