package restore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
)

// TestRestoreRefusesUnsafeManifest: a manifest written by someone with
// write access to the bucket cannot make restore write outside the data
// directory and the tablespace locations, nor lay down a set-user-ID
// program. Each is refused before anything is written.
func TestRestoreRefusesUnsafeManifest(t *testing.T) {
	st, _, _ := setup(t, 3)
	ctx := context.Background()
	tmp := t.TempDir()
	outside := filepath.Join(tmp, "outside") // where an attacker wants files
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	file := func(p string, mode uint32) entry {
		return entry{path: p, typ: catalog.TypeFile, data: "#!/bin/sh\nid\n", mode: mode}
	}
	cases := []struct {
		name  string
		extra []entry
		want  string
	}{
		{"link outside pg_tblspc", []entry{
			{path: "base/evil", typ: catalog.TypeLink, link: outside, mode: 0o777, oid: 16390},
			file("base/evil/pwned", 0o600),
		}, "base/evil is a link, but the only links a data directory may hold are pg_tblspc/<oid>"},
		{"link in pg_tblspc with a name that is no OID", []entry{
			{path: "pg_tblspc/x", typ: catalog.TypeLink, link: outside, mode: 0o777, oid: 16390},
		}, "pg_tblspc/x is a link, but the only links"},
		{"parent directory", []entry{file("../escaped", 0o600)}, `unsafe path "../escaped"`},
		{"parent directory inside", []entry{file("base/../../escaped", 0o600)}, `unsafe path "base/../../escaped"`},
		{"absolute path", []entry{file(filepath.Join(outside, "abs"), 0o600)}, "unsafe path"},
		{"NUL byte", []entry{file("base/a\x00b", 0o600)}, "unsafe path"},
		{"set-user-ID file", []entry{file("base/1/suid", 0o4755)}, "base/1/suid has mode 04755, with bits beyond the permissions"},
		{"set-group-ID directory", []entry{{path: "base/2", typ: catalog.TypeDir, mode: 0o2700}}, "base/2 has mode 02700"},
		{"file under a file", []entry{file("PG_VERSION/x", 0o600)}, "PG_VERSION/x is under PG_VERSION, which is a file"},
		{"twice", []entry{file("PG_VERSION", 0o600)}, "lists PG_VERSION twice"},
		{"tablespace file outside its version directory", []entry{file("pg_tblspc/16385/.ssh/authorized_keys", 0o600)},
			"pg_tblspc/16385/.ssh/authorized_keys is in tablespace 16385 but outside its PG_<version>_<catalog version> directory"},
		{"unknown type", []entry{{path: "base/fifo", typ: "fifo", mode: 0o600}}, `base/fifo has unknown type "fifo"`},
	}
	for i, c := range cases {
		id := fmt.Sprintf("20261125T1000%02dZ", i)
		storeBackup(t, st, id, append(testEntries(filepath.Join(tmp, "orig-ts")), c.extra...), "16385 x\n", 100)
		pgdata, ts := filepath.Join(tmp, "data"+id), filepath.Join(tmp, "ts"+id)
		_, err := Restore(ctx, st, &codec.Decoder{}, Options{PGData: pgdata, BackupID: id, Jobs: 2,
			Tablespaces: map[uint32]string{16385: ts}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: restore returned %v; want an error saying %q", c.name, err, c.want)
		}
		for _, d := range []string{pgdata, ts} {
			if _, err := os.Lstat(d); !os.IsNotExist(err) {
				t.Errorf("%s: %s was created (%v); nothing may be written before the manifest is checked", c.name, d, err)
			}
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Errorf("%s: restore wrote %s into %s", c.name, ents[0].Name(), outside)
			os.RemoveAll(outside)
			os.Mkdir(outside, 0o700)
		}
	}
}
