package scheduler

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/catalog"
)

// DeleteBackup refuses the newest complete backup by stop time (not start
// time) unless forced; older and incomplete backups go without force.
func TestDeleteBackupRefusesTheNewest(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	// The backup that started last ended first: the other is the newest.
	r.backupAt("20261101T000000Z", 1, 2, 2, now.Add(-3*time.Hour), now.Add(-time.Hour))
	r.backupAt("20261102T000000Z", 1, 4, 4, now.Add(-2*time.Hour), now.Add(-90*time.Minute))
	r.incomplete("20261103T000000Z", now.Add(-time.Minute))

	err := DeleteBackup(ctx, r.st, "20261101T000000Z", false)
	var newest *NewestBackupError
	if !errors.As(err, &newest) || newest.ID != "20261101T000000Z" || newest.Complete != 2 ||
		err.Error() != "backup 20261101T000000Z is the newest complete backup, the newest one a restore can start from (2 complete backups in all)" {
		t.Fatalf("delete of the newest backup: %v", err)
	}
	if got := r.keys(catalog.BackupPrefix + "20261101T000000Z/"); len(got) == 0 {
		t.Error("the refused backup lost its objects")
	}
	for _, id := range []string{"20261102T000000Z", "20261103T000000Z"} {
		if err := DeleteBackup(ctx, r.st, id, false); err != nil {
			t.Errorf("delete of %s: %v", id, err)
		}
		if got := r.keys(catalog.BackupPrefix + id + "/"); len(got) != 0 {
			t.Errorf("%s left %v", id, got)
		}
	}
	if err := DeleteBackup(ctx, r.st, "20261101T000000Z", true); err != nil {
		t.Fatalf("forced delete of the newest backup: %v", err)
	}
	if list, inc, err := catalog.ListBackups(ctx, r.st); err != nil || len(list)+len(inc) != 0 {
		t.Errorf("after deleting every backup: %v %v %v", list, inc, err)
	}
}

// CleanLeftovers deletes idle incomplete backups and says so; a failure is
// only a warning.
func TestCleanLeftoversWarns(t *testing.T) {
	r := newRepo(t)
	r.incomplete("20261120T000000Z", now.Add(-2*time.Hour))
	r.incomplete("20261125T114500Z", now.Add(-10*time.Minute))
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	CleanLeftovers(context.Background(), r.st, time.Hour, now, log)
	if !strings.Contains(logged.String(), `msg="deleted the leftovers of an incomplete backup" id=20261120T000000Z objects=3`) ||
		strings.Contains(logged.String(), "20261125T114500Z") {
		t.Errorf("log:\n%s", logged.String())
	}
	if _, inc, _ := catalog.ListBackups(context.Background(), r.st); len(inc) != 1 || inc[0] != "20261125T114500Z" {
		t.Errorf("incomplete backups left: %v", inc)
	}
	logged.Reset()
	CleanLeftovers(context.Background(), r.st, 0, now, log)
	if !strings.Contains(logged.String(), "could not delete the leftovers of incomplete backups") {
		t.Errorf("log of a failed cleanup:\n%s", logged.String())
	}
}
