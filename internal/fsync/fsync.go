// Package fsync makes renames and new files durable: a rename is on disk
// only once its folder is synced.
package fsync

import (
	"fmt"
	"os"
)

// Dir syncs the folder dir, so that renames and new entries in it survive a
// crash of the machine.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
