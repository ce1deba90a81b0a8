package e2e

import (
	"strings"
	"testing"

	"github.com/walship/walship/e2e/harness"
)

// withEnv is env with later settings that win.
func withEnv(env []string, extra ...string) []string {
	return append(append([]string{}, env...), extra...)
}

// noListBucket allows what a naive policy for walship would: read, write
// and delete objects, but not list the bucket.
const noListBucket = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
 "Action":["s3:GetObject","s3:PutObject","s3:DeleteObject"],"Resource":["arn:aws:s3:::nolist/*"]}]}`

// Credentials without s3:ListBucket: walship check fails and names the
// permission to add; a read of a missing file that AWS answers with 403
// (as it does without s3:ListBucket) stops recovery (exit 128) and names
// the permission too, never reads as "not in the archive" (exit 1).
func TestCheckNoListBucket(t *testing.T) {
	m, rootEnv := cliMinIO(t, "nolist")
	env := m.EnvWithPolicy(t, "nolist", "", noListBucket)
	dir := cliDataDir(t, nil)

	r := cliRun(t, dir, env, "check")
	if r.code == 0 || !cliHasLine(r.stdout, "FAIL  list") || !strings.Contains(r.stdout, "s3:ListBucket on arn:aws:s3:::nolist") {
		t.Errorf("check without s3:ListBucket: exit %d; want FAIL at list naming s3:ListBucket on the bucket:\n%s", r.code, r.stdout)
	}
	if keys := m.ListObjects(t, "nolist", ""); len(keys) != 0 {
		t.Errorf("check left objects behind: %v", keys)
	}

	// A repository (walship.json) that lacks the file: MinIO answers 404 to
	// signed requests whatever the policy, so missing is missing.
	w := cliFixtures(t)
	dir = cliDataDir(t, w.controlA)
	cliExpect(t, cliRun(t, dir, rootEnv, "wal-push", cliPlace(t, dir, w.segA[0].name, w.segA[0].data)), 0)
	r = cliRun(t, dir, env, "wal-fetch", "000000010000000000000009", "pg_wal/RECOVERYXLOG")
	cliExpect(t, r, 1)

	// AWS answers 403: that must stop recovery, with the likely cause.
	aws := withEnv(env, "WALSHIP_S3_ENDPOINT="+m.DenyMissingLikeAWS(t))
	for _, name := range []string{"000000010000000000000009", "00000002.history"} {
		r = cliRun(t, dir, aws, "wal-fetch", name, "pg_wal/RECOVERYXLOG")
		cliExpect(t, r, 128, "denied", "s3:ListBucket on arn:aws:s3:::nolist", "403 instead of 404")
		cliOneMessage(t, r)
	}

	// Credentials that may list but a store that answers 403 for a
	// missing object: check fails at the read of a missing object.
	r = cliRun(t, dir, withEnv(rootEnv, "WALSHIP_S3_ENDPOINT="+m.DenyMissingLikeAWS(t)), "check")
	if r.code == 0 || !cliHasLine(r.stdout, "FAIL  missing") || !strings.Contains(r.stdout, "s3:ListBucket") {
		t.Errorf("check on a store that answers 403 for a missing object: exit %d; want FAIL at missing naming s3:ListBucket:\n%s", r.code, r.stdout)
	}
}

// walship check proves that the store refuses a second conditional write,
// or warns that it does not and what wal-push does instead.
func TestCheckConditionalWrites(t *testing.T) {
	m, env := cliMinIO(t, "cond")
	dir := cliDataDir(t, nil)
	const proven = "ok    conditional writes: refused a second write (proven)"
	for name, env := range map[string][]string{
		"minio": env,
		"file":  {"WALSHIP_REPO=file://" + harness.NewServerDir(t)},
	} {
		r := cliRun(t, dir, env, "check")
		if r.code != 0 || !cliHasLine(r.stdout, proven) {
			t.Errorf("check on %s: exit %d; want %q:\n%s", name, r.code, proven, r.stdout)
		}
	}

	ignoring := withEnv(env, "WALSHIP_S3_ENDPOINT="+m.IgnoreIfNoneMatch(t))
	r := cliRun(t, dir, ignoring, "check")
	if r.code != 0 || cliHasLine(r.stdout, "ok    conditional") || !cliHasLine(r.stdout, "WARN  conditional") ||
		!strings.Contains(r.stdout, "ignores If-None-Match") || !strings.Contains(r.stdout, "wal-push falls back") {
		t.Errorf("check on a store that ignores If-None-Match: exit %d; want a WARN line saying so and what wal-push does:\n%s", r.code, r.stdout)
	}
	if keys := m.ListObjects(t, "cond", ""); len(keys) != 0 {
		t.Errorf("check left objects behind: %v", keys)
	}
}
