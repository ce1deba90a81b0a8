package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

// checkSteps runs Check and returns its steps as "name: detail" lines,
// "name FAIL: err" and "name WARN: detail".
func checkSteps(t *testing.T, s Settings, pgdata string) ([]string, error) {
	t.Helper()
	var steps []string
	err := Check(context.Background(), s, pgdata, func(st Step) {
		switch {
		case st.Err != nil:
			steps = append(steps, st.Name+" FAIL: "+st.Err.Error())
		case st.Warning:
			steps = append(steps, st.Name+" WARN: "+st.Detail)
		default:
			steps = append(steps, st.Name+": "+st.Detail)
		}
	})
	return steps, err
}

func names(steps []string) string {
	var out []string
	for _, s := range steps {
		out = append(out, strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ' ' })[0])
	}
	return strings.Join(out, " ")
}

func fileSettings(t *testing.T) (Settings, storage.Store) {
	t.Helper()
	dir := t.TempDir()
	s := Settings{URL: "file://" + dir, Compression: "zstd"}
	st, err := s.OpenStore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// writeControl writes a data directory whose pg_control names systemID.
func writeControl(t *testing.T, systemID uint64) string {
	t.Helper()
	pgdata := t.TempDir()
	os.MkdirAll(filepath.Join(pgdata, "global"), 0o700)
	b := make([]byte, 512)
	binary.LittleEndian.PutUint64(b, systemID)
	if err := os.WriteFile(filepath.Join(pgdata, "global", "pg_control"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return pgdata
}

// Check on a working store passes every step in order, leaves no probe
// behind, and says a new repository is unclaimed.
func TestCheckPassesEveryStep(t *testing.T) {
	s, st := fileSettings(t)
	steps, err := checkSteps(t, s, "")
	if err != nil {
		t.Fatalf("check: %v\n%s", err, strings.Join(steps, "\n"))
	}
	if got, want := names(steps), "settings store write read list missing conditional delete identity"; got != want {
		t.Errorf("steps %q, want %q", got, want)
	}
	for _, want := range []string{
		"settings: compression zstd, encryption off, repository key off",
		"conditional: writes: refused a second write (proven)",
		"identity: new repository: the first wal-push will claim it",
	} {
		if !strings.Contains(strings.Join(steps, "\n"), want) {
			t.Errorf("no step %q:\n%s", want, strings.Join(steps, "\n"))
		}
	}
	if objs, err := st.List(context.Background(), ""); err != nil || len(objs) != 0 {
		t.Errorf("check left objects behind: %v %v", objs, err)
	}
}

// With a data directory, Check proves that its server is the system the
// repository belongs to, and fails at "server" for another.
func TestCheckServer(t *testing.T) {
	s, st := fileSettings(t)
	if _, err := catalog.EnsureIdentity(context.Background(), st, 7, 16<<20, catalog.Protection{}); err != nil {
		t.Fatal(err)
	}
	pgdata := writeControl(t, 7)
	steps, err := checkSteps(t, s, pgdata)
	if err != nil || !strings.HasPrefix(steps[len(steps)-1], "server: "+pgdata+" is database system 7") ||
		!strings.Contains(strings.Join(steps, "\n"), "identity: database system 7, wal_segment_size 16777216, not encrypted, not authenticated") {
		t.Errorf("check of the repository's own server: %v\n%s", err, strings.Join(steps, "\n"))
	}
	steps, err = checkSteps(t, s, writeControl(t, 8))
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Step != "server" || err.Error() != "check failed at server" ||
		!strings.HasPrefix(steps[len(steps)-1], "server FAIL: ") {
		t.Errorf("check of another system's server: %v\n%s", err, strings.Join(steps, "\n"))
	}
}

// Without a repository URL, Check fails at "store" with ErrNoURL, after
// the settings.
func TestCheckWithoutRepository(t *testing.T) {
	steps, err := checkSteps(t, Settings{Compression: "zstd"}, "")
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Step != "store" || !errors.Is(err, ErrNoURL) || names(steps) != "settings store" {
		t.Errorf("check without a URL: %v\n%s", err, strings.Join(steps, "\n"))
	}
	steps, err = checkSteps(t, Settings{URL: "file:///x", Compression: "lz4"}, "")
	if !errors.As(err, &ce) || ce.Step != "settings" || names(steps) != "settings" {
		t.Errorf("check with a bad compression: %v\n%s", err, strings.Join(steps, "\n"))
	}
}

// The probe steps stop at the first store fault, name it, and remove the
// probe; a store that overwrites is a warning, not a failure.
func TestCheckStoreFaults(t *testing.T) {
	denied := errors.New("403 Forbidden")
	cases := []struct {
		name   string
		store  func(storage.Store) *storagetest.Store
		failAt string // "" for a check that passes
		warn   string
	}{
		{"list denied", func(in storage.Store) *storagetest.Store {
			return storagetest.Wrap(in, &storagetest.Rule{Op: storagetest.List, Err: denied})
		}, "list", ""},
		{"missing reads as denied", func(in storage.Store) *storagetest.Store {
			return storagetest.Wrap(in, &storagetest.Rule{Op: storagetest.Stat, Match: func(k string) bool { return strings.HasSuffix(k, "-never-written") }, Err: denied})
		}, "missing", ""},
		{"read fails", func(in storage.Store) *storagetest.Store {
			return storagetest.Wrap(in, &storagetest.Rule{Op: storagetest.Get, Prefix: ".walship-check/", Err: denied})
		}, "read", ""},
		{"overwrites", func(in storage.Store) *storagetest.Store {
			return &storagetest.Store{Store: in, IgnoreIfNotExists: true}
		}, "", "ignores If-None-Match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, inner := fileSettings(t)
			var steps []string
			var warned string
			step := func(name string, err error, detail string) error {
				if err != nil {
					steps = append(steps, name+" FAIL")
					return &CheckError{Step: name, Err: err}
				}
				steps = append(steps, name)
				return nil
			}
			warn := func(name, detail string) { steps = append(steps, name+" WARN"); warned = detail }
			err := checkStore(context.Background(), c.store(inner), step, warn)
			var ce *CheckError
			switch {
			case c.failAt != "" && (!errors.As(err, &ce) || ce.Step != c.failAt || !errors.Is(err, denied)):
				t.Errorf("failed with %v, want at %s: %v", err, c.failAt, steps)
			case c.failAt == "" && err != nil:
				t.Errorf("failed: %v (%v)", err, steps)
			case c.warn != "" && !strings.Contains(warned, c.warn):
				t.Errorf("warning %q, want %q", warned, c.warn)
			}
			if objs, err := inner.List(context.Background(), ""); err != nil || len(objs) != 0 {
				t.Errorf("check left objects behind: %v %v", objs, err)
			}
		})
	}
}
