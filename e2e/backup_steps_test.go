package e2e

import (
	"context"
	"slices"
	"testing"

	"github.com/walship/walship/archiver"
	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

// archiver.Backup runs as named steps, in order, and says each as it
// begins: what the instance manager will report of a running backup. The
// backup it takes is complete and listed.
func TestBackupStepsInOrder(t *testing.T) {
	m0 := harness.StartMinIO(t)
	m0.MakeBucket(t, "steps")
	srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: m0.Env("steps", "")})
	srv.ExecAll("CREATE TABLE t (i int)", "INSERT INTO t SELECT generate_series(1, 1000)")
	t.Setenv("AWS_ACCESS_KEY_ID", m0.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m0.SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	st, err := storage.Open(context.Background(), "s3://steps", storage.Options{S3: storage.S3Options{Endpoint: m0.Endpoint, Region: m0.Region, PathStyle: true, CAFile: m0.CAFile}})
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	m, err := archiver.Backup(context.Background(), st, &codec.Encoder{}, archiver.BackupOptions{
		PGData: srv.DataDir, Conn: pg.ConnOptions{Host: "127.0.0.1", Port: uint16(srv.Port), User: "postgres", Database: "postgres"}, FastCheckpoint: true, Jobs: 2,
		OnStep: func(s string) { steps = append(steps, s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{archiver.StepConnect, archiver.StepStart, archiver.StepCopy, archiver.StepStop, archiver.StepWaitWAL, archiver.StepManifest}
	if !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
	list, _, err := catalog.ListBackups(context.Background(), st)
	if err != nil || len(list) != 1 || list[0].ID != m.ID || list[0].Status != catalog.StatusComplete {
		t.Errorf("backup list %+v (%v), want %s complete", list, err, m.ID)
	}
}
