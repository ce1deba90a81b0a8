package restore

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/walship/walship/internal/pg"
)

// writeRecoveryFiles writes the recovery settings, tablespace_map and
// backup_label, flushes the file systems, and then recovery.signal: a
// directory holding recovery.signal was restored completely.
func (l *layout) writeRecoveryFiles(settings [][2]string) error {
	if err := l.writeAutoConf(settings); err != nil {
		return err
	}
	if l.m.TablespaceMap != "" {
		if err := l.writeEntry(tablespaceMap, []byte(l.tablespaceMap())); err != nil {
			return err
		}
	}
	if err := l.writeEntry(backupLabel, []byte(l.m.BackupLabel)); err != nil {
		return err
	}
	if err := l.flush.sync(); err != nil {
		return err
	}
	if err := l.writeEntry("recovery.signal", nil); err != nil {
		return err
	}
	return l.flush.sync()
}

// tablespaceMap is the backup's tablespace_map with each location replaced
// by where the tablespace was restored: PostgreSQL recreates the links in
// pg_tblspc from this file when it starts.
func (l *layout) tablespaceMap() string {
	var b strings.Builder
	for _, sp := range l.spaces {
		// The escaping read_tablespace_map undoes: a backslash before a newline, a carriage return or a backslash.
		loc := strings.NewReplacer("\\", "\\\\", "\n", "\\\n", "\r", "\\\r").Replace(sp.location)
		fmt.Fprintf(&b, "%d %s\n", sp.oid, loc)
	}
	return b.String()
}

// replacedKey matches the settings of the backup's postgresql.auto.conf
// that the restore replaces: the ones it writes, and every recovery target
// a previous restore of the source server may have left (two recovery
// targets would stop the server from starting).
func replacedKey(key string, settings [][2]string) bool {
	key = strings.ToLower(key)
	if strings.HasPrefix(key, "recovery_target") {
		return true
	}
	for _, s := range settings {
		if key == s[0] {
			return true
		}
	}
	return false
}

// writeAutoConf rewrites postgresql.auto.conf: the backup's settings without
// the ones replaced, then ours.
func (l *layout) writeAutoConf(settings [][2]string) error {
	old, err := l.readEntry(autoConf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(old), "\n") {
		key, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		if replacedKey(strings.TrimSpace(key), settings) {
			continue
		}
		b.WriteString(line)
	}
	if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "# walship restore of backup %s at %s\n", l.m.ID, time.Now().UTC().Format(time.RFC3339))
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s[0], pg.ConfQuote(s[1]))
	}
	return l.writeEntry(autoConf, []byte(b.String()))
}

// checkSettings refuses a value postgresql.auto.conf cannot hold: PostgreSQL
// reads a NUL byte as the end of the value.
func checkSettings(settings [][2]string) error {
	for _, s := range settings {
		if strings.ContainsRune(s[1], 0) {
			return fmt.Errorf("the value of %s holds a NUL byte, which PostgreSQL's configuration cannot hold", s[0])
		}
	}
	return nil
}

// RestoreCommand builds restore_command: exe wal-fetch %f %p, then args,
// each quoted for sh (PostgreSQL runs it with sh -c) and with % doubled
// (PostgreSQL replaces %f, %p and %% in it).
func RestoreCommand(exe string, args ...string) string {
	words := []string{shellQuote(exe), "wal-fetch", "%f", "%p"}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

func shellQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
