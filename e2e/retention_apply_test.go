package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

// craftBackups stores complete backups (manifests, no WAL) under
// s3://bucket/prefix, one a minute, the last one ending an hour ago.
func craftBackups(t *testing.T, m *harness.MinIO, bucket, prefix string, ids ...string) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx := context.Background()
	st, err := storage.Open(ctx, "s3://"+bucket+"/"+prefix, storage.Options{
		S3: storage.S3Options{Endpoint: m.Endpoint, PathStyle: true, Region: m.Region}})
	if err != nil {
		t.Fatal(err)
	}
	const segSize = 16 << 20
	for i, id := range ids {
		stop := time.Now().Add(-time.Hour + time.Duration(i-len(ids))*time.Minute)
		seg := func(n int) string { return pg.Segment{Timeline: 1, Seg: uint32(2 + 2*i + n)}.Name() }
		man := &catalog.Manifest{BackupSummary: catalog.BackupSummary{ID: id, Status: catalog.StatusComplete,
			WALSegmentSize: segSize, Timeline: 1, StartWAL: seg(0), StopWAL: seg(1),
			StartLSN: pg.LSN(uint64(2+2*i) * segSize).String(), StopLSN: pg.LSN(uint64(3+2*i)*segSize + 100).String(),
			StartTime: stop.Add(-30 * time.Second), StopTime: stop}}
		for _, key := range []string{catalog.StartedKey(id), catalog.DataKey(id, 0)} {
			if err := st.Put(ctx, key, []byte("{}"), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := catalog.PutManifest(ctx, st, &codec.Encoder{}, man); err != nil {
			t.Fatal(err)
		}
	}
}

// runWalshipStdout runs walship like runWalship, with its stdout on out
// (a file, a pipe, a terminal); stderr is returned.
func runWalshipStdout(t *testing.T, env []string, out *os.File, args ...string) (code int, stderr string) {
	t.Helper()
	cmd := exec.Command(harness.Walship(t), args...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED=true"}, env...)
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errOut
	harness.AsServerUser(t, cmd)
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), errOut.String()
	} else if err != nil {
		t.Fatalf("running walship: %v", err)
	}
	return 0, errOut.String()
}

// stdoutKinds are the places cron, scripts and people send retention's output.
var stdoutKinds = []string{"/dev/null", "pipe", "terminal"}

// withStdout runs walship with its stdout on one kind and returns the exit
// code, stdout (nothing for /dev/null) and stderr.
func withStdout(t *testing.T, kind string, env []string, args ...string) (int, string, string) {
	t.Helper()
	switch kind {
	case "/dev/null":
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer null.Close()
		code, stderr := runWalshipStdout(t, env, null, args...)
		return code, "", stderr
	case "pipe":
		r := runWalship(t, "/", env, args...)
		return r.code, r.stdout, r.stderr
	}
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	defer ptmx.Close()
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0)
	}
	if err != nil {
		t.Fatalf("pseudo-terminal: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/pts/%d: %v", n, err)
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, ptmx); close(done) }() // ends with EIO once the terminal end is closed
	code, stderr := runWalshipStdout(t, env, tty, args...)
	tty.Close()
	<-done
	return code, out.String(), stderr
}

// Retention deletes when told to (--yes, WALSHIP_RETENTION_APPLY=true) and
// only then, wherever its output goes: /dev/null (cron), a pipe (| tee), a
// terminal. backup delete refuses the newest complete backup without --force.
func TestRetentionDeletesOnlyWithYes(t *testing.T) {
	const bucket = "apply"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	const older, newer = "20260101T000000Z", "20260102T000000Z"
	exists := func(prefix, id string) bool {
		_, ok := rawObject(t, m, bucket, prefix+"/"+catalog.ManifestKey(id))
		return ok
	}
	runs := []struct {
		name   string
		args   []string
		env    []string
		delete bool
	}{
		{"no --yes", nil, nil, false},
		{"--dry-run", []string{"--dry-run"}, nil, false},
		{"--yes", []string{"--yes"}, nil, true},
		{"WALSHIP_RETENTION_APPLY", nil, []string{"WALSHIP_RETENTION_APPLY=true"}, true},
		{"--dry-run wins over WALSHIP_RETENTION_APPLY", []string{"--dry-run"}, []string{"WALSHIP_RETENTION_APPLY=true"}, false},
	}
	n := 0
	for _, kind := range stdoutKinds {
		for _, run := range runs {
			n++
			prefix := fmt.Sprintf("r%d", n)
			craftBackups(t, m, bucket, prefix, older, newer)
			env := append(m.Env(bucket, prefix), run.env...)
			code, stdout, stderr := withStdout(t, kind, env, append([]string{"retention", "--keep", "1"}, run.args...)...)
			if code != 0 {
				t.Fatalf("stdout on %s, %s: exit %d\n%s%s", kind, run.name, code, stdout, stderr)
			}
			if got := !exists(prefix, older); got != run.delete {
				t.Errorf("stdout on %s, %s: deleted the expired backup: %v, want %v\n%s%s", kind, run.name, got, run.delete, stdout, stderr)
			}
			if !exists(prefix, newer) {
				t.Errorf("stdout on %s, %s: deleted the newest backup", kind, run.name)
			}
			if kind != "/dev/null" && !run.delete && !strings.Contains(stdout, "dry run: nothing deleted; add --yes to delete") {
				t.Errorf("stdout on %s, %s: the dry run does not say so:\n%s", kind, run.name, stdout)
			}
		}
	}

	// --dry-run=false used to delete; now it is refused rather than
	// silently not deleting.
	craftBackups(t, m, bucket, "f", older, newer)
	r := runWalship(t, "/", m.Env(bucket, "f"), "retention", "--keep", "1", "--dry-run=false")
	if r.code != 2 || !strings.Contains(r.stderr, "--yes") || !exists("f", older) {
		t.Errorf("retention --dry-run=false: exit %d, %q; want exit 2 naming --yes, nothing deleted", r.code, r.stderr)
	}

	env := m.Env(bucket, "f")
	r = runWalship(t, "/", env, "backup", "delete", newer)
	if r.code == 0 || !strings.Contains(r.stderr, "newest complete backup") || !strings.Contains(r.stderr, "--force") || !exists("f", newer) {
		t.Errorf("backup delete of the newest backup: exit %d, %q; want it refused, naming --force", r.code, r.stderr)
	}
	if r = runWalship(t, "/", env, "backup", "delete", older); r.code != 0 || exists("f", older) {
		t.Errorf("backup delete of an older backup: exit %d, %q", r.code, r.stderr)
	}
	if r = runWalship(t, "/", env, "backup", "delete", "--force", newer); r.code != 0 || exists("f", newer) {
		t.Errorf("backup delete --force of the newest backup: exit %d, %q", r.code, r.stderr)
	}
}
