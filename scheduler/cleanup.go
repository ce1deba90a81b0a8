package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/storage"
)

// NewestBackupError is DeleteBackup's refusal to delete the newest
// complete backup.
type NewestBackupError struct {
	ID       string
	Complete int // complete backups in all
}

func (e *NewestBackupError) Error() string {
	return fmt.Sprintf("backup %s is the newest complete backup, the newest one a restore can start from (%d complete backups in all)", e.ID, e.Complete)
}

// DeleteBackup deletes backup id, complete or not. Unless force, it
// refuses (with a *NewestBackupError) to delete the newest complete backup.
func DeleteBackup(ctx context.Context, st storage.Store, id string, force bool) error {
	if !force {
		if err := refuseNewest(ctx, st, id); err != nil {
			return err
		}
	}
	return catalog.DeleteBackup(ctx, st, id)
}

// refuseNewest refuses to delete the newest complete backup (by stop time,
// as retention orders them): it is the newest one a restore can start from,
// and without it recovery must replay WAL from an older one, if any.
func refuseNewest(ctx context.Context, st storage.Store, id string) error {
	list, _, err := catalog.ListBackups(ctx, st)
	if err != nil {
		return err
	}
	var newest *catalog.BackupSummary
	for i := range list {
		if newest == nil || !list[i].StopTime.Before(newest.StopTime) {
			newest = &list[i]
		}
	}
	if newest != nil && newest.ID == id {
		return &NewestBackupError{ID: id, Complete: len(list)}
	}
	return nil
}

// CleanLeftovers deletes the leftovers of incomplete backups before a
// backup (see CleanIncomplete); failing to is no reason to skip the
// backup, so it only warns.
func CleanLeftovers(ctx context.Context, st storage.Store, grace time.Duration, now time.Time, log *slog.Logger) {
	gone, err := CleanIncomplete(ctx, st, grace, now)
	for _, b := range gone {
		log.Warn("deleted the leftovers of an incomplete backup", "id", b.ID, "objects", b.Objects, "last_write", b.LastWrite.Format(time.RFC3339))
	}
	if err != nil {
		log.Warn("could not delete the leftovers of incomplete backups", "err", err)
	}
}
