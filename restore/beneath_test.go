package restore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/storage/storagetest"
)

// TestRestoreFollowsNoPlantedLink: a link planted midway, in place of a
// directory or of a file, cannot redirect a write or a chmod outside the
// data directory; the restore fails and says why. Checked with openat2 and
// with the walk one directory at a time that older kernels get.
func TestRestoreFollowsNoPlantedLink(t *testing.T) {
	st, _, _ := setup(t, 3)
	ctx := context.Background()
	tmp := t.TempDir()
	m := storeBackup(t, st, "20261125T100000Z", testEntries(filepath.Join(tmp, "orig-ts")), "16385 x\n", 100)
	defer noOpenat2.Store(false)
	for i, c := range []struct {
		name   string
		entry  string // replaced by a link
		target string // in outside, what the link points to
	}{
		{"directory", "base/1", "."},
		{"file", "PG_VERSION", "PG_VERSION"},
	} {
		for _, walk := range []bool{false, true} {
			name := fmt.Sprintf("%s (walk %v)", c.name, walk)
			noOpenat2.Store(walk)
			outside := filepath.Join(tmp, fmt.Sprintf("outside%d%v", i, walk))
			os.Mkdir(outside, 0o755)
			for _, f := range []string{"1259", "PG_VERSION"} {
				os.WriteFile(filepath.Join(outside, f), []byte("precious"), 0o644)
			}
			pgdata := filepath.Join(tmp, fmt.Sprintf("data%d%v", i, walk))
			// A symbolic link is planted in the data directory when the
			// restore asks for the first object, after restore created
			// every entry: as someone with access to the directory could
			// while the restore runs.
			ps := storagetest.Wrap(st, &storagetest.Rule{Op: storagetest.Get, Key: m.Objects[0].Key, Times: 1, Before: func(context.Context, string) {
				p := filepath.Join(pgdata, c.entry)
				if err := os.Rename(p, p+".moved"); err != nil {
					t.Error(err)
				}
				if err := os.Symlink(filepath.Join(outside, c.target), p); err != nil {
					t.Error(err)
				}
			}})
			_, err := Restore(ctx, ps, &codec.Decoder{}, Options{PGData: pgdata, Jobs: 1,
				Tablespaces: map[uint32]string{16385: filepath.Join(tmp, fmt.Sprintf("ts%d%v", i, walk))}})
			if err == nil || !strings.Contains(err.Error(), "a symbolic link is in the way") {
				t.Errorf("%s: restore returned %v; want an error saying a symbolic link is in the way", name, err)
			}
			for _, f := range []string{"1259", "PG_VERSION"} {
				p := filepath.Join(outside, f)
				got, _ := os.ReadFile(p)
				fi, _ := os.Stat(p)
				if string(got) != "precious" || fi.Mode() != 0o644 {
					t.Errorf("%s: %s outside the data directory now holds %q, mode %v", name, f, got, fi.Mode())
				}
			}
		}
	}
}
