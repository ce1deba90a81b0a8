package e2e

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
)

// TestVerify verifies a backup taken from a real server in MinIO, then
// damages the repository with minio-go in three ways (a flipped byte in a
// data object, a missing WAL segment (before the backup's end, and after
// it with --to-latest), an object re-encoded with one file's
// bytes changed so that only the file's checksum tells) and checks that
// walship verify names each culprit and exits 1; repaired, it exits 0.
func TestVerify(t *testing.T) {
	const bucket, prefix = "verify", "db"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := m.Env(bucket, prefix)
	srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	srv.ExecAll("CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 100000) g")
	sum := backupOf(t, srv, env)
	srv.Psql("INSERT INTO t SELECT g, 'after' FROM generate_series(1, 1000) g")
	mid := srv.SwitchWal()
	srv.Psql("INSERT INTO t SELECT g, 'later' FROM generate_series(1, 1000) g")
	last := srv.SwitchWal()
	srv.WaitArchived(t, last, time.Minute)
	if mid == sum.StopWAL || mid == last {
		t.Fatalf("segments: backup stops in %s, then %s and %s were archived; want three different ones", sum.StopWAL, mid, last)
	}

	verify := func(args ...string) result {
		t.Helper()
		return runWalship(t, "/", env, append([]string{"verify", "--jobs", "2"}, args...)...)
	}
	good := func(what string, args ...string) {
		t.Helper()
		r := verify(args...)
		if r.code != 0 || !strings.Contains(r.stdout, "backup "+sum.ID+": OK") || strings.Contains(r.stdout, "problem") {
			t.Errorf("%s: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
		}
		t.Logf("%s: %s", what, strings.TrimSpace(r.stdout))
	}
	// bad expects exit 1 and exactly the problem lines want.
	bad := func(what string, want []string, args ...string) {
		t.Helper()
		r := verify(args...)
		var got []string
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(line, "problem: ") {
				got = append(got, line)
			}
		}
		ok := r.code == 1 && len(got) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = strings.HasPrefix(got[i], "problem: backup "+sum.ID+": "+want[i])
		}
		if !ok {
			t.Errorf("%s: exit %d, problems:\n%s\nwant exit 1 and:\n%s\n%s", what, r.code, strings.Join(got, "\n"), strings.Join(want, "\n"), r.stderr)
		}
		t.Logf("%s: %s", what, strings.TrimSpace(r.stdout))
	}
	good("good backup")
	good("good backup, --backup latest --to-latest", "--backup", "latest", "--to-latest")
	r := verify("--backup", sum.ID, "--json")
	var rep struct {
		OK      bool `json:"ok"`
		Backups []struct {
			ID       string `json:"id"`
			Objects  int    `json:"objects"`
			WALFrom  string `json:"wal_from"`
			WALTo    string `json:"wal_to"`
			Problems []any  `json:"problems"`
		} `json:"backups"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || !rep.OK || len(rep.Backups) != 1 ||
		rep.Backups[0].Objects != sum.ObjectCount || rep.Backups[0].WALFrom != sum.StartWAL || rep.Backups[0].WALTo != sum.StopWAL {
		t.Errorf("verify --json: exit %d, %v\n%s", r.code, err, r.stdout)
	}

	// A flipped byte in a data object.
	objKey := catalog.DataKey(sum.ID, 0)
	obj, _ := rawObject(t, m, bucket, prefix+"/"+objKey)
	corrupt := bytes.Clone(obj)
	corrupt[len(corrupt)/2] ^= 0xff
	putObject(t, m, bucket, prefix+"/"+objKey, corrupt)
	bad("corrupt object", []string{"corrupt object: " + objKey})
	putObject(t, m, bucket, prefix+"/"+objKey, obj)

	// A WAL segment the backup needs.
	segKey := prefix + "/" + archWALObjectKey(t, "", sum.StartWAL)
	seg, _ := rawObject(t, m, bucket, segKey)
	removeObject(t, m, bucket, segKey)
	bad("missing WAL segment", []string{"missing WAL segment: " + sum.StartWAL})
	putObject(t, m, bucket, segKey, seg)
	// A segment after the backup's end matters only with --to-latest.
	midKey := prefix + "/" + archWALObjectKey(t, "", mid)
	midSeg, _ := rawObject(t, m, bucket, midKey)
	removeObject(t, m, bucket, midKey)
	good("segment after the backup missing, without --to-latest")
	bad("segment after the backup missing, --to-latest", []string{"missing WAL segment: " + mid}, "--to-latest")
	putObject(t, m, bucket, midKey, midSeg)

	// One file's bytes changed inside a valid object, the manifest updated
	// to the new object's checksum: only the file's checksum tells.
	manKey := prefix + "/" + catalog.ManifestKey(sum.ID)
	man, _ := rawObject(t, m, bucket, manKey)
	mf := decodeManifest(t, man, sum.ID)
	victim := ""
	var data []byte
	{
		var buf bytes.Buffer
		if _, err := (&codec.Decoder{}).Decode(bytes.NewReader(obj), &buf, objKey); err != nil {
			t.Fatal(err)
		}
		data = buf.Bytes()
	}
	for _, f := range mf.Files {
		if f.Type == catalog.TypeFile && len(f.Parts) > 0 && f.Parts[0].Object == 0 && f.Parts[0].Length > 100 {
			victim = f.Path
			data[f.Parts[0].Offset+f.Parts[0].Length/2] ^= 0x55
			break
		}
	}
	if victim == "" {
		t.Fatal("no file in object 0 to alter")
	}
	var reenc bytes.Buffer
	h := codec.Header{Name: objKey, Size: int64(len(data)), Checksum: codec.Checksum(data), Compression: "zstd"}
	if err := (&codec.Encoder{Compression: "zstd"}).Encode(&reenc, h, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	mf.Objects[0].Checksum, mf.Objects[0].StoredSize = h.Checksum, int64(reenc.Len())
	putObject(t, m, bucket, prefix+"/"+objKey, reenc.Bytes())
	putObject(t, m, bucket, manKey, encodeManifest(t, mf))
	bad("file checksum mismatch", []string{"file checksum mismatch: " + victim})

	putObject(t, m, bucket, prefix+"/"+objKey, obj)
	// The manifest itself damaged in the store: its checksum tells.
	damaged := bytes.Clone(man)
	damaged[len(damaged)-5] ^= 0xff
	putObject(t, m, bucket, manKey, damaged)
	bad("damaged manifest", []string{"bad manifest: " + catalog.ManifestKey(sum.ID)})

	putObject(t, m, bucket, manKey, man)
	good("repaired", "--to-latest")
}
