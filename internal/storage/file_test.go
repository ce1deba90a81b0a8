package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileStore(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo") // does not exist yet: first Put creates it
	s, err := Open(ctx, "file://"+root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	testStoreContract(t, s)

	// No temporary files may survive, and the root was created private.
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tmpPrefix) {
			t.Errorf("temporary file left behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(root); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("root: %v, mode %v; want 0700", err, st.Mode().Perm())
	}
}

// testStoreContract checks the behaviour every backend must share. The store
// must be empty.
func testStoreContract(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	put := func(key, body string, opts PutOptions) error {
		t.Helper()
		return s.Put(ctx, key, []byte(body), opts)
	}
	for _, k := range []string{
		"wal/0000000100000000/000000010000000000000001",
		"wal/0000000100000000/000000010000000000000002",
		"wal/0000000200000000/000000020000000000000003",
		"wal/00000002.history",
		"wal-other/x",
		"backups/b1/manifest.json",
	} {
		if err := put(k, "body of "+k, PutOptions{}); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}

	// Get and Stat.
	key := "wal/0000000100000000/000000010000000000000001"
	rc, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "body of "+key {
		t.Fatalf("get: %q, %v", got, err)
	}
	info, err := s.Stat(ctx, key)
	if err != nil || info.Key != key || info.Size != int64(len("body of "+key)) || info.ModTime.IsZero() {
		t.Fatalf("stat: %+v, %v", info, err)
	}

	// Missing objects are ErrNotFound, also where a "directory" exists.
	for _, k := range []string{"wal/nope", "wal", "nope/deeper/x", key + "/below"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Errorf("get %s: %v, want ErrNotFound", k, err)
		}
		if _, err := s.Stat(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Errorf("stat %s: %v, want ErrNotFound", k, err)
		}
	}

	// Overwrite is allowed; IfNotExists refuses a taken key, keeps the old body.
	if err := put(key, "new", PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := put(key, "newer", PutOptions{IfNotExists: true}); !errors.Is(err, ErrExists) {
		t.Fatalf("put IfNotExists on a taken key: %v, want ErrExists", err)
	}
	if b := readAll(t, s, key); b != "new" {
		t.Fatalf("body after refused put: %q", b)
	}
	if err := put("fresh/key", "x", PutOptions{IfNotExists: true}); err != nil {
		t.Fatalf("put IfNotExists on a free key: %v", err)
	}

	// List: a prefix is a key prefix, not a directory.
	listKeys := func(prefix string) string {
		t.Helper()
		infos, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		var keys []string
		for _, i := range infos {
			keys = append(keys, i.Key)
		}
		return strings.Join(keys, " ")
	}
	for prefix, want := range map[string]string{
		"wal/00000001": "wal/0000000100000000/000000010000000000000001 wal/0000000100000000/000000010000000000000002",
		"wal/00000002": "wal/00000002.history wal/0000000200000000/000000020000000000000003",
		"wal/":         "wal/0000000100000000/000000010000000000000001 wal/0000000100000000/000000010000000000000002 wal/00000002.history wal/0000000200000000/000000020000000000000003",
		"wal":          "wal-other/x wal/0000000100000000/000000010000000000000001 wal/0000000100000000/000000010000000000000002 wal/00000002.history wal/0000000200000000/000000020000000000000003",
		"backups/b1/":  "backups/b1/manifest.json",
		"nothing/":     "",
		"zzz":          "",
	} {
		if got := listKeys(prefix); got != want {
			t.Errorf("list %q:\n got %s\nwant %s", prefix, got, want)
		}
	}
	if got := listKeys(""); !strings.HasPrefix(got, "backups/b1/manifest.json fresh/key wal-other/x wal/") {
		t.Errorf("list everything: %s", got)
	}

	// ListDir: one level, objects and sub-folders, however deep the keys.
	listDir := func(dir string) string {
		t.Helper()
		objs, dirs, err := s.ListDir(ctx, dir)
		if err != nil {
			t.Fatalf("list folder %q: %v", dir, err)
		}
		var out []string
		for _, o := range objs {
			if o.Size == 0 || o.ModTime.IsZero() {
				t.Errorf("list folder %q: %+v has no size or time", dir, o)
			}
			out = append(out, o.Key)
		}
		return strings.Join(out, " ") + " | " + strings.Join(dirs, " ")
	}
	for dir, want := range map[string]string{
		"wal/":                  "wal/00000002.history | wal/0000000100000000/ wal/0000000200000000/",
		"wal/0000000100000000/": "wal/0000000100000000/000000010000000000000001 wal/0000000100000000/000000010000000000000002 | ",
		"backups/":              " | backups/b1/",
		"nothing/":              " | ",
	} {
		if got := listDir(dir); got != want {
			t.Errorf("list folder %q:\n got %s\nwant %s", dir, got, want)
		}
	}
	if got := listDir(""); got != " | backups/ fresh/ wal-other/ wal/" {
		t.Errorf("list the top folder: %s", got)
	}
	for _, dir := range []string{"../", "wal", "/wal/"} {
		if _, _, err := s.ListDir(ctx, dir); err == nil {
			t.Errorf("list folder %q: accepted, want rejection (a folder is a relative key prefix ending in /)", dir)
		}
	}

	// Delete, twice: the second is not an error.
	for range 2 {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat after delete: %v", err)
	}

	// DeleteMany: present and missing keys alike; DeleteAll splits a long
	// list into batches.
	var many []string
	for i := range 2*MaxDeleteBatch + 5 {
		many = append(many, fmt.Sprintf("many/%05d", i))
	}
	for _, k := range many[:20] {
		if err := put(k, "x", PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := put(many[len(many)-1], "x", PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMany(ctx, many); err == nil {
		t.Errorf("DeleteMany of %d keys: accepted, the most is %d", len(many), MaxDeleteBatch)
	}
	if err := s.DeleteMany(ctx, many[:10]); err != nil {
		t.Fatalf("delete many: %v", err)
	}
	if got := listKeys("many/"); got != strings.Join(append(many[10:20:20], many[len(many)-1]), " ") {
		t.Errorf("after deleting 10: %s", got)
	}
	if err := DeleteAll(ctx, s, many); err != nil {
		t.Fatalf("delete all: %v", err)
	}
	if got := listKeys("many/"); got != "" {
		t.Errorf("after deleting all: %s", got)
	}
	if err := s.DeleteMany(ctx, []string{"ok", "../x"}); err == nil {
		t.Error("DeleteMany with a bad key: accepted")
	}

	// Keys cannot escape the root; such errors are not retried.
	for _, k := range []string{"../x", "a/../../x", "/abs", "", "a//b", "./a", "a/.."} {
		if err := put(k, "x", PutOptions{}); err == nil {
			t.Errorf("put %q: accepted, want rejection", k)
		}
		if _, err := s.Get(ctx, k); err == nil {
			t.Errorf("get %q: accepted, want rejection", k)
		}
	}
	if _, err := s.List(ctx, "../"); err == nil {
		t.Errorf("list ../: accepted, want rejection")
	}
}

func readAll(t *testing.T, s Store, key string) string {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return string(b)
}

func TestFileStoreEmptyRepository(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "none"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if infos, err := s.List(context.Background(), "wal/"); err != nil || len(infos) != 0 {
		t.Fatalf("list of a repository never written: %v, %v", infos, err)
	}
	if _, err := s.Get(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get: %v", err)
	}
}

// A reader never sees a partial object: temp files are skipped by List, and
// their reserved names cannot be used as keys.
func TestFileStoreSkipsTempFiles(t *testing.T) {
	root := t.TempDir()
	s, _ := newFileStore(root)
	ctx := context.Background()
	if err := s.Put(ctx, "a/b", []byte("x"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a", tmpPrefix+"123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(ctx, "a/")
	if err != nil || len(infos) != 1 || infos[0].Key != "a/b" {
		t.Fatalf("list: %+v, %v", infos, err)
	}
	if err := s.Put(ctx, "a/"+tmpPrefix+"1", []byte("x"), PutOptions{}); err == nil {
		t.Fatal("a reserved temp name was accepted as a key")
	}
}

func TestOpenURLs(t *testing.T) {
	ctx := context.Background()
	hermeticAWS(t)
	dir := t.TempDir()
	for _, ok := range []string{"file://" + dir, dir, "file://localhost" + dir, "s3://bucket", "s3://bucket/some/prefix/"} {
		if s, err := Open(ctx, ok, Options{}); err != nil {
			t.Errorf("Open(%q): %v", ok, err)
		} else if !strings.Contains(ok, strings.TrimSuffix(strings.TrimPrefix(s.String(), "file://"), "/")) {
			t.Errorf("Open(%q).String() = %q", ok, s.String())
		}
	}
	for raw, want := range map[string]string{
		"ftp://x":                  `unsupported repository URL "ftp://x": use s3://bucket/prefix or file:///absolute/path`,
		"relative/path":            `unsupported repository URL "relative/path"`,
		"":                         "no repository URL given",
		"s3://":                    "has no bucket",
		"s3:///prefix":             "has no bucket",
		"file://relative/path":     "three slashes",
		"file:relative":            "unsupported repository URL",
		"s3://key:secret@bucket/p": "contains credentials",
		"s3://bucket/a/../b":       "bad prefix",
	} {
		_, err := Open(ctx, raw, Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want error containing %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error leaks the password: %v", raw, err)
		}
	}
	for name, o := range map[string]S3Options{
		"unknown S3 checksum":             {Checksum: "crc64"},
		"unknown S3 server-side":          {SSE: "aes"},
		"needs S3 server-side encryption": {SSEKMSKeyID: "k"},
		"is not a URL":                    {Endpoint: "minio:9000"},
		"cannot read the S3 CA bundle":    {CAFile: filepath.Join(dir, "missing.pem")},
	} {
		_, err := Open(ctx, "s3://bucket", Options{S3: o})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Open with %+v = %v, want error containing %q", o, err, name)
		}
	}
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	if _, err := Open(ctx, "s3://bucket", Options{S3: S3Options{CAFile: notPEM}}); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("Open with a CA file without certificates: %v", err)
	}
}

// A filesystem cannot hold both "a/b" and "a/b/c"; that is a permanent error,
// not something to retry for a minute.
func TestFileStoreKeyConflict(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "a/b", []byte("x"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, k := range []string{"a/b/c", "a"} {
		if err := s.Put(ctx, k, []byte("y"), PutOptions{}); !errors.Is(err, ErrPermanent) {
			t.Errorf("put %s: %v, want a permanent error", k, err)
		}
	}
	if time.Since(start) > time.Second {
		t.Errorf("took %v: retried", time.Since(start))
	}
}
