package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
)

// ---------------------------------------------------------------------------
// Shared helpers of cli_test.go, conflict_test.go and fetch_failure_test.go.
// ---------------------------------------------------------------------------

// cliSegment is one real WAL file, read from a real server's pg_wal.
type cliSegment struct {
	name string
	data []byte
}

// cliWAL holds real WAL of two database systems (two initdbs), kept in
// memory so each test lays it out in its own pg_wal-like directory.
type cliWAL struct {
	sysA, sysB         uint64
	segA               []cliSegment // consecutive completed segments of system A
	segB               cliSegment   // a completed segment of system B
	controlA, controlB []byte       // global/pg_control of each server
}

var (
	cliWALOnce  sync.Once
	cliWALValue *cliWAL
)

// cliFixtures returns real WAL segments of two database systems. The first
// test that asks runs two PostgreSQL servers for a few seconds; the bytes
// outlive them.
func cliFixtures(t *testing.T) *cliWAL {
	t.Helper()
	cliWALOnce.Do(func() {
		start := time.Now()
		w := &cliWAL{}
		a := harness.NewPostgres(t, harness.PGOptions{})
		a.ExecAll("CREATE TABLE cli(i int, t text)",
			"INSERT INTO cli SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
		first := a.SwitchWal()
		a.Psql("INSERT INTO cli SELECT g, md5(g::text) FROM generate_series(20001, 40000) g")
		second := a.SwitchWal()
		w.sysA = cliSystemID(t, a)
		w.segA = []cliSegment{cliReadSegment(t, a, first), cliReadSegment(t, a, second)}
		w.controlA = cliReadFile(t, filepath.Join(a.DataDir, "global", "pg_control"))

		b := harness.NewPostgres(t, harness.PGOptions{})
		b.ExecAll("CREATE TABLE other(i int)", "INSERT INTO other SELECT generate_series(1, 1000)")
		w.segB = cliReadSegment(t, b, b.SwitchWal())
		w.sysB = cliSystemID(t, b)
		w.controlB = cliReadFile(t, filepath.Join(b.DataDir, "global", "pg_control"))
		if w.sysA == w.sysB {
			t.Fatalf("two initdbs gave the same system identifier %d", w.sysA)
		}
		a.Stop()
		b.Stop()
		t.Logf("cli: WAL fixtures of systems %d (%s, %s) and %d (%s) in %s", w.sysA, first, second,
			w.sysB, w.segB.name, time.Since(start).Round(time.Millisecond))
		cliWALValue = w
	})
	if cliWALValue == nil {
		t.Fatal("the WAL fixtures could not be made (see the first test that asked for them)")
	}
	return cliWALValue
}

func cliSystemID(t *testing.T, p *harness.Postgres) uint64 {
	t.Helper()
	out := p.Psql("SELECT system_identifier FROM pg_control_system()")
	id, err := strconv.ParseUint(out, 10, 64)
	if err != nil {
		t.Fatalf("system identifier %q: %v", out, err)
	}
	return id
}

func cliReadSegment(t *testing.T, p *harness.Postgres, name string) cliSegment {
	t.Helper()
	data := cliReadFile(t, filepath.Join(p.DataDir, "pg_wal", name))
	if len(data) != 16<<20 {
		t.Fatalf("segment %s has %d bytes, want 16 MiB", name, len(data))
	}
	return cliSegment{name: name, data: data}
}

func cliReadFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// cliDataDir makes a directory laid out like a data directory, as far as
// walship looks: global/pg_control (when control is given) and
// pg_wal/archive_status, all owned by the server user. walship runs in it the
// way PostgreSQL runs archive_command and restore_command.
func cliDataDir(t *testing.T, control []byte) string {
	t.Helper()
	dir := harness.NewServerDir(t)
	for _, d := range []string{"global", "pg_wal", filepath.Join("pg_wal", "archive_status")} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
		harness.GiveToServer(t, filepath.Join(dir, d))
	}
	if control != nil {
		cliWriteServerFile(t, filepath.Join(dir, "global", "pg_control"), control)
	}
	return dir
}

// cliPlace writes a file into dir/pg_wal and returns the path that
// PostgreSQL would pass as %p (relative to the data directory).
func cliPlace(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	cliWriteServerFile(t, filepath.Join(dir, "pg_wal", name), data)
	return filepath.Join("pg_wal", name)
}

func cliWriteServerFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	harness.GiveToServer(t, path)
}

// cliAgeSecretRe matches an age secret key (not the "AGE-SECRET-KEY-1..."
// hint in a message).
var cliAgeSecretRe = regexp.MustCompile(`(?i)AGE-SECRET-KEY-1[0-9A-Z]{16,}`)

// cliRun runs walship like runWalship, logs what happened, and fails the test
// when any output shows a secret: the value of a *SECRET* variable, any age
// secret key, or the contents of the configured age key file.
func cliRun(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	start := time.Now()
	r := runWalship(t, dir, env, args...)
	t.Logf("walship %s -> exit %d in %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code,
		time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stdout), strings.TrimSpace(r.stderr))
	out := r.stdout + r.stderr
	if cliAgeSecretRe.MatchString(out) {
		t.Errorf("walship %s printed an age secret key:\n%s", strings.Join(args, " "), out)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		secret := strings.Contains(strings.ToUpper(k), "SECRET") && len(v) >= 8
		if secret && strings.Contains(out, v) {
			t.Errorf("walship %s printed the value of %s:\n%s", strings.Join(args, " "), k, out)
		}
		if k == "WALSHIP_ENCRYPTION_KEY_FILE" {
			if key, err := os.ReadFile(v); err == nil {
				for _, line := range strings.Split(string(key), "\n") {
					line = strings.TrimSpace(line)
					if len(line) >= 8 && !strings.HasPrefix(line, "#") && strings.Contains(out, line) {
						t.Errorf("walship %s printed a line of the key file %s:\n%s", strings.Join(args, " "), v, out)
					}
				}
			}
		}
	}
	return r
}

// cliExpect fails the test unless walship exited with code and its stderr
// contains every one of want (case-insensitive).
func cliExpect(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(w)) {
			t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
		}
	}
}

// cliOneMessage fails unless stderr is exactly one "walship: ..." line.
func cliOneMessage(t *testing.T, r result) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "walship: ") {
		t.Errorf("want one error line starting with \"walship: \", got %d lines:\n%s", len(lines), r.stderr)
	}
}

// cliFinalMessage fails unless stderr ends with exactly one "walship: ..."
// line; warnings logged while retrying may come before it.
func cliFinalMessage(t *testing.T, r result) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "walship: ") {
			n++
		} else if !strings.Contains(l, "level=WARN") {
			t.Errorf("unexpected stderr line %q", l)
		}
	}
	if n != 1 || !strings.HasPrefix(lines[len(lines)-1], "walship: ") {
		t.Errorf("want stderr to end with one \"walship: \" error line:\n%s", r.stderr)
	}
}

// cliMinIO starts MinIO with one bucket and returns the environment of a
// walship process that uses it.
func cliMinIO(t *testing.T, bucket string) (*harness.MinIO, []string) {
	t.Helper()
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	return m, m.Env(bucket, "")
}

// cliKey is the object key of a WAL file in a repository without prefix.
func cliKey(t *testing.T, name string) string {
	t.Helper()
	key, err := catalog.WALKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func cliGetObject(t *testing.T, m *harness.MinIO, bucket, key string) []byte {
	t.Helper()
	data, ok := rawObject(t, m, bucket, key)
	if !ok {
		t.Fatalf("s3://%s/%s does not exist", bucket, key)
	}
	return data
}

func cliPutObject(t *testing.T, m *harness.MinIO, bucket, key string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.Client.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// cliObjects lists a bucket as "key size mtime" lines, to show that nothing changed.
func cliObjects(t *testing.T, m *harness.MinIO, bucket string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	for o := range m.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out = append(out, fmt.Sprintf("%s %d %s", o.Key, o.Size, o.LastModified.Format(time.RFC3339Nano)))
	}
	return out
}

// cliPayloadStart is where the payload starts in a stored object: after the
// 8-byte magic, the 4-byte header length and the JSON header.
func cliPayloadStart(t *testing.T, obj []byte) int {
	t.Helper()
	if len(obj) < 12 || !bytes.HasPrefix(obj, []byte("WALSHIP")) {
		t.Fatalf("stored object does not start with walship's magic: %q", obj[:min(len(obj), 16)])
	}
	return 12 + int(binary.LittleEndian.Uint32(obj[8:12]))
}

// cliAgeKeyFile writes a new age identity file the server user can read and
// returns its path and the identity.
func cliAgeKeyFile(t *testing.T) (string, *age.X25519Identity) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(harness.NewServerDir(t), "walship.agekey")
	cliWriteServerFile(t, path, []byte("# walship test key\n"+id.String()+"\n"))
	return path, id
}

// ---------------------------------------------------------------------------
// Bad input: one clear message, a non-zero exit.
// ---------------------------------------------------------------------------

// An unknown flag is a usage error (2) for wal-push, but for wal-fetch it
// must be above 125 so PostgreSQL stops recovery rather than ending it.
func TestCliUnknownFlag(t *testing.T) {
	dir := cliDataDir(t, nil)
	r := cliRun(t, dir, nil, "wal-push", "--bogus", "x")
	cliExpect(t, r, 2, "unknown flag", "--bogus", "walship wal-push --help")
	cliOneMessage(t, r)

	r = cliRun(t, dir, nil, "wal-fetch", "--bogus", "a", "b")
	cliExpect(t, r, 128, "unknown flag", "--bogus")
	cliOneMessage(t, r)

	r = cliRun(t, dir, nil, "no-such-command")
	if r.code == 0 || !strings.Contains(r.stderr, "unknown command") {
		t.Errorf("an unknown command: exit %d, stderr %q; want non-zero and \"unknown command\"", r.code, r.stderr)
	}
}

// Every way restore_command can be misconfigured must exit above 125 so that
// PostgreSQL stops recovery; exit 1 would read as "not in the archive" and
// end recovery early, at the wrong point.
func TestCliFetchMisuseIsFatal(t *testing.T) {
	dir := cliDataDir(t, nil)
	repo := "WALSHIP_REPO=file://" + harness.NewServerDir(t)
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"missing DEST (restore_command without %p)", []string{repo}, []string{"wal-fetch", "000000010000000000000001"}, "2 arg"},
		{"extra argument", []string{repo}, []string{"wal-fetch", "000000010000000000000001", "pg_wal/RECOVERYXLOG", "extra"}, "2 arg"},
		{"invalid WALSHIP_RETRY_BUDGET", []string{repo, "WALSHIP_RETRY_BUDGET=2"}, []string{"wal-fetch", "000000010000000000000001", "pg_wal/RECOVERYXLOG"}, "WALSHIP_RETRY_BUDGET"},
		{"invalid WALSHIP_WAL_PREFETCH", []string{repo, "WALSHIP_WAL_PREFETCH=many"}, []string{"wal-fetch", "000000010000000000000001", "pg_wal/RECOVERYXLOG"}, "WALSHIP_WAL_PREFETCH"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := cliRun(t, dir, c.env, c.args...)
			cliExpect(t, r, 128, c.want)
			cliOneMessage(t, r)
		})
	}
	// The same invalid variable for wal-push: a non-zero exit naming it.
	seg := cliPlace(t, dir, "000000010000000000000001", []byte("x"))
	r := cliRun(t, dir, []string{repo, "WALSHIP_TIMEOUT=soon"}, "wal-push", seg)
	if r.code == 0 || !strings.Contains(r.stderr, "WALSHIP_TIMEOUT") {
		t.Errorf("wal-push with WALSHIP_TIMEOUT=soon: exit %d, stderr %q; want non-zero naming the variable", r.code, r.stderr)
	}
}

// Malformed and missing repository URLs name the accepted forms.
func TestCliRepositoryURL(t *testing.T) {
	w := cliFixtures(t)
	dir := cliDataDir(t, w.controlA)
	seg := cliPlace(t, dir, w.segA[0].name, w.segA[0].data)
	forms := "s3://bucket/prefix or file:///"
	for _, c := range []struct{ repo, want string }{
		{"ftp://x", `unsupported repository URL "ftp://x"`},
		{"s3://", "has no bucket"},
		{"s3:///prefix", "has no bucket"},
		{"file://relative/path", `names host "relative"`},
		{"relative/path", "unsupported repository URL"},
	} {
		t.Run(c.repo, func(t *testing.T) {
			env := []string{"WALSHIP_REPO=" + c.repo}
			forms := forms
			if strings.HasPrefix(c.repo, "file:") {
				forms = "file:///absolute/path"
			}
			r := cliRun(t, dir, env, "wal-push", seg)
			cliExpect(t, r, 1, c.want, forms)
			cliOneMessage(t, r)
			r = cliRun(t, dir, env, "wal-fetch", w.segA[0].name, "pg_wal/RECOVERYXLOG")
			cliExpect(t, r, 128, c.want, forms)
			cliOneMessage(t, r)
		})
	}
	t.Run("no repository", func(t *testing.T) {
		r := cliRun(t, dir, nil, "wal-push", seg)
		cliExpect(t, r, 1, "no repository configured", "WALSHIP_REPO", forms)
		cliOneMessage(t, r)
		r = cliRun(t, dir, nil, "wal-fetch", w.segA[0].name, "pg_wal/RECOVERYXLOG")
		cliExpect(t, r, 128, "no repository configured", "WALSHIP_REPO")
		r = cliRun(t, dir, nil, "check")
		if r.code == 0 || !strings.Contains(r.stdout, "FAIL  store") || !strings.Contains(r.stdout, "no repository configured") {
			t.Errorf("check without a repository: exit %d, stdout %q; want FAIL at store", r.code, r.stdout)
		}
	})
	cliNoWALStored(t, dir)
}

// cliNoWALStored checks that nothing reached pg_wal's journal (nothing was shipped).
func cliNoWALStored(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(dir, "pg_wal", "walship", "journal"))
	if len(ents) != 0 {
		t.Errorf("the journal records shipped files although every push failed: %v", ents)
	}
}

// Without any credentials (and no instance metadata, no shared files, an
// empty HOME) walship says which variables to set, without contacting anything.
func TestCliMissingCredentials(t *testing.T) {
	w := cliFixtures(t)
	dir := cliDataDir(t, w.controlA)
	seg := cliPlace(t, dir, w.segA[0].name, w.segA[0].data)
	home := harness.NewServerDir(t)
	env := []string{
		"WALSHIP_REPO=s3://walship-nocreds",
		// A closed port: if walship called the store, the message would be
		// about the connection instead.
		fmt.Sprintf("WALSHIP_S3_ENDPOINT=http://127.0.0.1:%d", harness.FreePort(t)),
		"WALSHIP_S3_PATH_STYLE=true",
		"WALSHIP_S3_REGION=us-east-1",
		"WALSHIP_RETRY_BUDGET=2s",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-such-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-such-credentials"),
		"HOME=" + home,
	}
	want := []string{"no S3 credentials found", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
	r := cliRun(t, dir, env, "wal-push", seg)
	cliExpect(t, r, 1, want...)
	cliOneMessage(t, r)
	r = cliRun(t, dir, env, "wal-fetch", w.segA[0].name, "pg_wal/RECOVERYXLOG")
	cliExpect(t, r, 128, want...)
	cliOneMessage(t, r)
	r = cliRun(t, dir, env, "check")
	if r.code == 0 || !strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, "AWS_ACCESS_KEY_ID") {
		t.Errorf("check without credentials: exit %d, stdout %q; want FAIL naming AWS_ACCESS_KEY_ID", r.code, r.stdout)
	}
	cliNoWALStored(t, dir)
}

// Wrong credentials, a missing bucket, a read-only destination, an unknown
// compression and an invalid age recipient against a real MinIO.
func TestCliStoreErrors(t *testing.T) {
	w := cliFixtures(t)
	m, env := cliMinIO(t, "cli")
	dir := cliDataDir(t, w.controlA)
	seg := w.segA[0]
	path := cliPlace(t, dir, seg.name, seg.data)
	with := func(extra ...string) []string { return append(append([]string{}, env...), extra...) }

	t.Run("wrong credentials", func(t *testing.T) {
		bad := with("AWS_SECRET_ACCESS_KEY=not-the-" + m.SecretKey)
		r := cliRun(t, dir, bad, "wal-push", path)
		cliExpect(t, r, 1, "denied", `"cli"`, "credentials")
		cliOneMessage(t, r)
		r = cliRun(t, dir, bad, "wal-fetch", seg.name, "pg_wal/RECOVERYXLOG")
		cliExpect(t, r, 128, "denied")
		cliOneMessage(t, r)
		if _, err := os.Stat(filepath.Join(dir, "pg_wal", "RECOVERYXLOG")); err == nil {
			t.Error("RECOVERYXLOG exists after a denied fetch")
		}
		bad = with("AWS_ACCESS_KEY_ID=nobody")
		r = cliRun(t, dir, bad, "wal-push", path)
		cliExpect(t, r, 1, "denied")
		if len(m.ListObjects(t, "cli", "")) != 0 {
			t.Errorf("objects stored with wrong credentials: %v", m.ListObjects(t, "cli", ""))
		}
	})

	t.Run("bucket does not exist", func(t *testing.T) {
		missing := m.Env("no-such-bucket", "pfx")
		r := cliRun(t, dir, missing, "wal-push", path)
		cliExpect(t, r, 1, `bucket "no-such-bucket" does not exist`, m.Endpoint)
		cliOneMessage(t, r)
		// Not "not in the archive" (1): a wrong repository must stop recovery.
		r = cliRun(t, dir, missing, "wal-fetch", seg.name, "pg_wal/RECOVERYXLOG")
		cliExpect(t, r, 128, `bucket "no-such-bucket" does not exist`)
		cliOneMessage(t, r)
		r = cliRun(t, dir, missing, "wal-fetch", "00000002.history", "pg_wal/RECOVERYHISTORY")
		cliExpect(t, r, 128, `bucket "no-such-bucket" does not exist`)
		r = cliRun(t, dir, missing, "check")
		if r.code == 0 || !strings.Contains(r.stdout, "FAIL  write") || !strings.Contains(r.stdout, "does not exist") {
			t.Errorf("check of a missing bucket: exit %d, stdout %q; want FAIL at write saying it does not exist", r.code, r.stdout)
		}
	})

	t.Run("unknown compression", func(t *testing.T) {
		r := cliRun(t, dir, with("WALSHIP_COMPRESSION=lz5"), "wal-push", path)
		cliExpect(t, r, 1, `unknown compression "lz5"`, "zstd, s2, gzip, none")
		cliOneMessage(t, r)
		r = cliRun(t, dir, with("WALSHIP_COMPRESSION=lz5"), "check")
		if r.code == 0 || !strings.Contains(r.stdout, "FAIL  settings") || !strings.Contains(r.stdout, "zstd, s2, gzip, none") {
			t.Errorf("check with compression lz5: exit %d, stdout %q; want FAIL at settings listing the codecs", r.code, r.stdout)
		}
	})

	t.Run("invalid age recipient", func(t *testing.T) {
		_, id := cliAgeKeyFile(t)
		for _, v := range []string{"age1thisisnotarealkey0123456789", id.String()} {
			r := cliRun(t, dir, with("WALSHIP_ENCRYPTION_RECIPIENT="+v), "wal-push", path)
			cliExpect(t, r, 1, "WALSHIP_ENCRYPTION_RECIPIENT", "not an age public key")
			cliOneMessage(t, r)
			if strings.Contains(r.stdout+r.stderr, v) || strings.Contains(r.stdout+r.stderr, v[5:20]) {
				t.Errorf("the message echoes the recipient value:\n%s", r.stderr)
			}
		}
		if len(m.ListObjects(t, "cli", "")) != 0 {
			t.Errorf("objects stored despite bad settings: %v", m.ListObjects(t, "cli", ""))
		}
	})

	t.Run("read-only destination", func(t *testing.T) {
		r := cliRun(t, dir, env, "wal-push", path)
		cliExpect(t, r, 0)
		// Owned by root with mode 0555: the server user cannot create files in it.
		ro := filepath.Join(dir, "readonly")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(ro, 0o755) })
		start := time.Now()
		r = cliRun(t, dir, with("WALSHIP_WAL_PREFETCH=0", "WALSHIP_RETRY_BUDGET=10s"), "wal-fetch", seg.name, "readonly/RECOVERYXLOG")
		took := time.Since(start)
		cliExpect(t, r, 128, "permission denied", "readonly")
		cliFinalMessage(t, r)
		// A local permission problem does not heal: it should fail at once,
		// not be retried (and the object downloaded again) for the whole
		// retry budget (10s here, 1 minute by default).
		if took > 5*time.Second {
			t.Errorf("wal-fetch into a read-only directory took %s before failing: it retried a local permission error for the whole retry budget", took.Round(time.Second))
		}
	})
}

// Files that are not WAL are refused with a clear message.
func TestCliNotWAL(t *testing.T) {
	w := cliFixtures(t)
	repo := harness.NewServerDir(t)
	env := []string{"WALSHIP_REPO=file://" + repo}
	dir := cliDataDir(t, w.controlA)
	tiny := cliPlace(t, dir, "000000010000000000000004", []byte("this is not WAL\n"))
	text := cliPlace(t, dir, "000000010000000000000005", bytes.Repeat([]byte("this is a text file, not WAL\n"), 1000))
	foo := cliPlace(t, dir, "foo.txt", []byte("hello\n"))
	short := cliPlace(t, dir, w.segA[0].name, w.segA[0].data[:1<<20])
	// A real segment under the name of another one.
	renamed := cliPlace(t, dir, "000000010000000000000042", w.segA[0].data)
	badHistory := cliPlace(t, dir, "00000003.history", []byte("this is not a history file\n"))

	for _, c := range []struct {
		path string
		want []string
	}{
		{tiny, []string{"000000010000000000000004", "too short to be a WAL segment"}},
		{text, []string{"000000010000000000000005", "not a WAL segment"}},
		{foo, []string{"foo.txt", "is not a file walship archives"}},
		{short, []string{w.segA[0].name, "does not match the segment size"}},
		{renamed, []string{"000000010000000000000042", "belong to another segment"}},
		{badHistory, []string{"00000003.history", "not a valid timeline history file"}},
		{"pg_wal/000000010000000000000007", []string{"000000010000000000000007", "no such file"}},
	} {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			r := cliRun(t, dir, env, "wal-push", c.path)
			cliExpect(t, r, 1, c.want...)
			cliOneMessage(t, r)
		})
	}
	r := cliRun(t, dir, env, "wal-fetch", "foo.txt", "pg_wal/RECOVERYXLOG")
	cliExpect(t, r, 128, `"foo.txt" is not a WAL segment`)
	cliOneMessage(t, r)
	var stored []string
	filepath.Walk(repo, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.Contains(p, "/wal/") {
			stored = append(stored, p)
		}
		return nil
	})
	if len(stored) != 0 {
		t.Errorf("refused files were stored: %v", stored)
	}
}

// walship check proves a working configuration step by step and fails
// loudly, naming both systems, for a server of another system.
func TestCliCheck(t *testing.T) {
	w := cliFixtures(t)
	m, env := cliMinIO(t, "check")
	dir := cliDataDir(t, w.controlA)

	r := cliRun(t, dir, env, "check")
	cliExpect(t, r, 0)
	for _, step := range []string{"settings", "store", "write", "read", "delete", "identity"} {
		if !cliHasLine(r.stdout, "ok    "+step) {
			t.Errorf("check on a new repository: no ok line for %s:\n%s", step, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "new repository") {
		t.Errorf("check does not say the repository is new:\n%s", r.stdout)
	}
	if keys := m.ListObjects(t, "check", ""); len(keys) != 0 {
		t.Errorf("check left objects behind: %v", keys)
	}

	// Claim the repository for system A.
	path := cliPlace(t, dir, w.segA[0].name, w.segA[0].data)
	cliExpect(t, cliRun(t, dir, env, "wal-push", path), 0)

	r = cliRun(t, dir, env, "check", "--pgdata", dir)
	cliExpect(t, r, 0)
	want := fmt.Sprintf("database system %d", w.sysA)
	if !cliHasLine(r.stdout, "ok    identity") || !strings.Contains(r.stdout, want) || !cliHasLine(r.stdout, "ok    server") {
		t.Errorf("check --pgdata of the repository's own server: want ok identity and server naming %q:\n%s", want, r.stdout)
	}

	other := cliDataDir(t, w.controlB)
	r = cliRun(t, dir, env, "check", "--pgdata", other)
	if r.code == 0 {
		t.Errorf("check --pgdata of another system exited 0:\n%s", r.stdout)
	}
	if !cliHasLine(r.stdout, "FAIL  server") || !strings.Contains(r.stdout, strconv.FormatUint(w.sysA, 10)) ||
		!strings.Contains(r.stdout, strconv.FormatUint(w.sysB, 10)) || !strings.Contains(r.stdout, "new, empty location") {
		t.Errorf("check --pgdata of another system: want FAIL server naming %d and %d and the fix:\n%s", w.sysA, w.sysB, r.stdout)
	}

	bad := append(append([]string{}, env...), "AWS_SECRET_ACCESS_KEY=wrong-secret-for-check")
	r = cliRun(t, dir, bad, "check")
	if r.code == 0 || !cliHasLine(r.stdout, "FAIL  write") || !strings.Contains(r.stdout, "denied") {
		t.Errorf("check with wrong credentials: exit %d; want non-zero and FAIL at write saying denied:\n%s", r.code, r.stdout)
	}
	if cliHasLine(r.stdout, "ok    write") {
		t.Errorf("check with wrong credentials claims the write worked:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "check failed at write") {
		t.Errorf("check with wrong credentials: stderr %q lacks the summary", r.stderr)
	}
}

func cliHasLine(out, prefix string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// Encrypted archiving: wrong or missing keys give clear messages, and no key
// material (nor the S3 secret) appears in any output, verbose included.
func TestCliNoSecretsInOutput(t *testing.T) {
	w := cliFixtures(t)
	m, env := cliMinIO(t, "secrets")
	keyFile, _ := cliAgeKeyFile(t)
	otherKey, _ := cliAgeKeyFile(t)
	dir := cliDataDir(t, w.controlA)
	seg := w.segA[0]
	path := cliPlace(t, dir, seg.name, seg.data)
	with := func(extra ...string) []string {
		return append(append([]string{"WALSHIP_VERBOSE=true"}, env...), extra...)
	}

	cliExpect(t, cliRun(t, dir, with("WALSHIP_ENCRYPTION_KEY_FILE="+keyFile), "wal-push", path), 0, seg.name)
	raw := cliGetObject(t, m, "secrets", cliKey(t, seg.name))
	if !bytes.Contains(raw[:cliPayloadStart(t, raw)], []byte(`"encryption":"age"`)) {
		t.Fatalf("the stored object is not age-encrypted: header %q", raw[:cliPayloadStart(t, raw)])
	}

	r := cliRun(t, dir, with("WALSHIP_WAL_PREFETCH=0"), "wal-fetch", seg.name, "pg_wal/RECOVERYXLOG")
	cliExpect(t, r, 128, "encrypted", "WALSHIP_ENCRYPTION_KEY_FILE")
	began := time.Now()
	r = cliRun(t, dir, with("WALSHIP_WAL_PREFETCH=0", "WALSHIP_RETRY_BUDGET=10s", "WALSHIP_ENCRYPTION_KEY_FILE="+otherKey), "wal-fetch", seg.name, "pg_wal/RECOVERYXLOG")
	cliExpect(t, r, 128, "does not match")
	cliFinalMessage(t, r)
	// The wrong key stays wrong: no point retrying for the whole budget.
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("wal-fetch with the wrong decryption key took %s before failing: it retried for the whole retry budget", took.Round(time.Second))
	}
	if _, err := os.Stat(filepath.Join(dir, "pg_wal", "RECOVERYXLOG")); err == nil {
		t.Error("RECOVERYXLOG exists after fetches that failed")
	}
	r = cliRun(t, dir, with("WALSHIP_WAL_PREFETCH=0", "WALSHIP_ENCRYPTION_KEY_FILE="+keyFile), "wal-fetch", seg.name, "pg_wal/RECOVERYXLOG")
	cliExpect(t, r, 0)
	if got := cliReadFile(t, filepath.Join(dir, "pg_wal", "RECOVERYXLOG")); !bytes.Equal(got, seg.data) {
		t.Error("the decrypted segment differs from the original")
	}

	// A key file that is damaged: named, not printed.
	broken := filepath.Join(harness.NewServerDir(t), "broken.agekey")
	cliWriteServerFile(t, broken, []byte("AGE-SECRET-KEY-1DAMAGEDDAMAGEDDAMAGED\n"))
	r = cliRun(t, dir, with("WALSHIP_ENCRYPTION_KEY_FILE="+broken), "wal-push", path)
	cliExpect(t, r, 1, broken, "does not hold an age identity")
	if strings.Contains(r.stderr, "DAMAGED") {
		t.Errorf("the message echoes the key file's contents:\n%s", r.stderr)
	}
	r = cliRun(t, dir, with("WALSHIP_ENCRYPTION_KEY_FILE="+keyFile), "check")
	cliExpect(t, r, 0)
	if !strings.Contains(r.stdout, "encryption on") {
		t.Errorf("check does not report encryption on:\n%s", r.stdout)
	}
}

// The fast path (internal/fastpath) only helps while Go initialises it before
// the heavy packages: an import of net, fmt or strings in it, spool or
// agentsock would quietly cost ~10 ms on every archive_command and
// restore_command call. GODEBUG=inittrace=1 prints the real order.
func TestCLIFastPathInitialisesBeforeHeavyPackages(t *testing.T) {
	r := runWalship(t, harness.NewServerDir(t), []string{"GODEBUG=inittrace=1"}, "wal-fetch", "000000010000000000000001", "/nonexistent/RECOVERYXLOG")
	order := map[string]int{}
	n := 0
	for _, line := range strings.Split(r.stderr, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "init" {
			order[f[1]] = n
			n++
		}
	}
	fp, ok := order["github.com/walship/walship/internal/fastpath"]
	if !ok {
		t.Fatalf("fastpath does not initialise:\n%s", r.stderr)
	}
	for _, heavy := range []string{"unicode", "net", "net/http", "crypto/tls", "github.com/aws/aws-sdk-go-v2/service/s3/internal/endpoints", "github.com/walship/walship/internal/pg"} {
		if at, ok := order[heavy]; !ok || at < fp {
			t.Errorf("%s initialises before the fast path (position %d of %d, fast path %d)", heavy, at, n, fp)
		}
	}
}
