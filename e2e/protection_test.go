package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
)

// An encrypted or authenticated repository refuses what someone who can
// write to the bucket puts there: an unencrypted object planted in an
// encrypted repository, an object altered or minted without the repository
// key, a manifest replaced by a plain one, an identity record rewritten to
// drop the policy. wal-fetch exits 128 and restore fails, both saying the
// object was altered; the untouched repository recovers exactly.
func TestProtectedRepositoryRefusesAlteredObjects(t *testing.T) {
	ageKey, ageID := cliAgeKeyFile(t)
	repoKey := filepath.Join(harness.NewServerDir(t), "repo.key")
	cliWriteServerFile(t, repoKey, []byte(codec.NewRepositoryKey()))
	for _, mode := range []struct {
		name  string
		env   []string
		keys  []age.Identity
		authn bool
	}{
		{"encrypted", []string{"WALSHIP_ENCRYPTION_KEY_FILE=" + ageKey}, []age.Identity{ageID}, false},
		{"authenticated", []string{"WALSHIP_REPO_KEY_FILE=" + repoKey}, nil, true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			const bucket = "protected"
			m := harness.StartMinIO(t)
			m.MakeBucket(t, bucket)
			env := append(m.Env(bucket, ""), mode.env...)
			srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
			srv.ExecAll("CREATE TABLE t (i int)", "INSERT INTO t SELECT generate_series(1, 1000)")
			sum := backupOf(t, srv, env)
			srv.Psql("INSERT INTO t SELECT generate_series(1001, 1500)")
			last := srv.SwitchWal()
			srv.WaitArchived(t, last, 2*time.Minute)
			srv.Stop()

			ident := cliGetObject(t, m, bucket, catalog.IdentityKey)
			var id catalog.Identity
			if err := json.Unmarshal(ident, &id); err != nil {
				t.Fatal(err)
			}
			wantEnc := map[bool]string{true: catalog.EncryptionNone, false: catalog.EncryptionAge}[mode.authn]
			if id.Encryption != wantEnc || (id.Authentication == catalog.AuthenticationHMAC) != mode.authn || id.RepositoryID == "" {
				t.Fatalf("identity record %s does not state the policy", ident)
			}

			// The untouched repository restores and recovers every row.
			dir := harness.NewPGDataDir(t)
			r := runWalship(t, "/", env, "restore", "--pgdata", dir)
			if r.code != 0 {
				t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			restored := harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: env})
			restored.WaitRecovered(t, 2*time.Minute)
			if got := restored.Psql("SELECT count(*) FROM t"); got != "1500" {
				t.Fatalf("restored %s rows, want 1500", got)
			}
			restored.Stop()

			fetch := func(t *testing.T, name string) result {
				t.Helper()
				fdir := cliDataDir(t, nil)
				return cliRun(t, fdir, cliFetchEnv(env), "wal-fetch", name, "pg_wal/RECOVERYXLOG")
			}
			key := cliKey(t, last)
			orig := cliGetObject(t, m, bucket, key)
			var plain bytes.Buffer
			if _, err := (&codec.Decoder{Identities: mode.keys}).Decode(bytes.NewReader(orig), &plain, last); err != nil {
				t.Fatal(err)
			}
			mint := func(enc *codec.Encoder) []byte {
				var obj bytes.Buffer
				h := codec.Header{Name: last, Size: int64(plain.Len()), Checksum: checksumOf(plain.Bytes())}
				if err := enc.Encode(&obj, h, bytes.NewReader(plain.Bytes())); err != nil {
					t.Fatal(err)
				}
				return obj.Bytes()
			}
			flipped := bytes.Clone(orig)
			flipped[len(flipped)/2] ^= 0x20
			planted := map[string][]byte{
				"unencrypted object planted": mint(&codec.Encoder{}),
				"byte flipped":               flipped,
			}
			if mode.authn {
				planted["minted with another key"] = mint(&codec.Encoder{MACKey: bytes.Repeat([]byte{7}, 32)})
			}
			for what, obj := range planted {
				t.Run(what, func(t *testing.T) {
					cliPutObject(t, m, bucket, key, obj)
					cliExpect(t, fetch(t, last), 128, last, "altered")
				})
			}
			cliPutObject(t, m, bucket, key, orig)
			cliExpect(t, fetch(t, last), 0)

			t.Run("plain manifest planted", func(t *testing.T) {
				mkey := catalog.ManifestKey(sum.ID)
				raw := cliGetObject(t, m, bucket, mkey)
				cliPutObject(t, m, bucket, mkey, encodeManifest(t, decodeManifest(t, raw, sum.ID, mode.keys...)))
				defer cliPutObject(t, m, bucket, mkey, raw)
				dir := harness.NewPGDataDir(t)
				r := runWalship(t, "/", env, "restore", "--pgdata", dir)
				if r.code == 0 || !strings.Contains(r.stderr, "altered") {
					t.Fatalf("restore from a planted manifest: exit %d\n%s%s", r.code, r.stdout, r.stderr)
				}
				if ents, _ := os.ReadDir(dir); len(ents) != 0 {
					t.Errorf("restore left %d entries in %s", len(ents), dir)
				}
			})
			if mode.authn {
				t.Run("identity record without its policy", func(t *testing.T) {
					forged := id
					forged.Authentication, forged.MAC = "", ""
					b, _ := json.Marshal(forged)
					cliPutObject(t, m, bucket, catalog.IdentityKey, b)
					defer cliPutObject(t, m, bucket, catalog.IdentityKey, ident)
					cliExpect(t, fetch(t, last), 128, "not signed with the configured repository key")
				})
			}
		})
	}
}

func checksumOf(b []byte) string {
	h := codec.NewChecksum()
	h.Write(b)
	return codec.ChecksumOf(h)
}
