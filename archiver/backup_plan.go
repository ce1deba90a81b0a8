package archiver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/walship/walship/internal/catalog"
)

// Skip rules from PostgreSQL's documentation ("Making a Base Backup Using
// the Low Level API") and pg_basebackup's exclude lists.
var (
	// emptiedDirs are kept as empty directories: the server needs them to
	// start, but their contents are rebuilt or meaningless in a copy.
	emptiedDirs = map[string]bool{
		"pg_replslot": true, "pg_dynshmem": true, "pg_notify": true,
		"pg_serial": true, "pg_snapshots": true, "pg_stat_tmp": true, "pg_subtrans": true,
	}
	// skippedTop are files of the data directory's top level never copied.
	// backup_label and tablespace_map come from pg_backup_stop instead. The
	// signal files say what the backed-up server was (a standby's
	// standby.signal would keep every restored copy a standby forever); the
	// restore writes its own.
	skippedTop = map[string]bool{
		"postmaster.pid": true, "postmaster.opts": true,
		"backup_label": true, "tablespace_map": true, "backup_label.old": true,
		"standby.signal": true, "recovery.signal": true,
	}
)

// skipAction says what to do with one entry of the data directory.
type skipAction int

const (
	keep         skipAction = iota
	skip                    // leave it out (and, for a directory, everything in it)
	keepDirEmpty            // keep the directory, without its contents
)

// skipRule applies the rules to rel, a slash-separated path relative to PGDATA.
func skipRule(rel string, isDir bool) skipAction {
	base := path.Base(rel)
	switch {
	case strings.HasPrefix(base, "pgsql_tmp"), base == "pg_internal.init":
		return skip // temporary files and relation cache files, anywhere
	case !strings.Contains(rel, "/") && skippedTop[rel] && !isDir:
		return skip
	case rel == "pg_wal/archive_status" && isDir:
		return keepDirEmpty // restored servers expect it
	case strings.HasPrefix(rel, "pg_wal/"):
		return skip // WAL comes from the archive; pg_wal/walship is walship's own spool
	case emptiedDirs[rel] && isDir:
		return keepDirEmpty
	}
	return keep
}

// scanDataDir lists what a backup of pgdata contains, sorted by path, with
// the sizes seen now. Tablespace symlinks in pg_tblspc are followed, their
// contents listed under pg_tblspc/<oid>/ and marked with the OID.
func scanDataDir(pgdata string) ([]catalog.BackupFile, error) {
	var files []catalog.BackupFile
	var walk func(root, prefix string, tblspc uint32) error
	walk = func(root, prefix string, tblspc uint32) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p != root {
					return nil // removed by the server while we walked: not needed
				}
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if rel == "." {
				if prefix == "" {
					return nil
				}
				rel = ""
			}
			full := strings.TrimSuffix(path.Join(prefix, rel), "/")
			action := skipRule(full, d.IsDir())
			if action == skip {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			info, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if rel == "" {
				return nil // a tablespace's root is recorded as its symlink
			}
			f := catalog.BackupFile{Path: full, Mode: uint32(info.Mode().Perm()), MTime: info.ModTime().UTC(), Tablespace: tblspc}
			switch {
			case d.IsDir():
				f.Type = catalog.TypeDir
			case info.Mode()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				oid, isTblspc := tablespaceOID(full)
				if !isTblspc {
					return nil // PostgreSQL makes no other symlinks; pg_wal as a link is rebuilt as a directory
				}
				f.Type, f.Link, f.Tablespace = catalog.TypeLink, target, oid
				files = append(files, f)
				return walk(p+"/", full, oid)
			case info.Mode().IsRegular():
				f.Type, f.Size = catalog.TypeFile, info.Size()
			default:
				return nil // sockets and the like
			}
			files = append(files, f)
			if action == keepDirEmpty {
				return fs.SkipDir
			}
			return nil
		})
	}
	if err := walk(pgdata, "", 0); err != nil {
		return nil, fmt.Errorf("reading the data directory: %w", err)
	}
	// pg_wal may be a symlink (initdb --waldir): keep it as a directory.
	if fi, err := os.Lstat(filepath.Join(pgdata, "pg_wal")); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		files = append(files, catalog.BackupFile{Path: "pg_wal", Type: catalog.TypeDir, Mode: 0o700, MTime: fi.ModTime().UTC()},
			catalog.BackupFile{Path: "pg_wal/archive_status", Type: catalog.TypeDir, Mode: 0o700, MTime: fi.ModTime().UTC()})
	}
	return withoutUnloggedForks(files), nil
}

// tablespaceOID recognises pg_tblspc/<oid>.
func tablespaceOID(rel string) (uint32, bool) {
	dir, name := path.Split(rel)
	if dir != "pg_tblspc/" {
		return 0, false
	}
	oid, err := strconv.ParseUint(name, 10, 32)
	return uint32(oid), err == nil
}

// planObjects packs the regular files' bytes end to end into data objects
// of at most objSize bytes, filling in each file's Parts and returning the
// decoded size of every object. Small files share an object (a hundred
// thousand files do not become a hundred thousand objects); a big file
// spans several objects, which different workers read in parallel.
func planObjects(files []catalog.BackupFile, objSize int64) []int64 {
	var sizes []int64
	var fill int64 = objSize // forces a new object at the first byte
	for i := range files {
		f := &files[i]
		if f.Type != catalog.TypeFile {
			continue
		}
		f.Parts = nil
		for left := f.Size; left > 0; { // empty files have no parts
			if fill == objSize {
				sizes = append(sizes, 0)
				fill = 0
			}
			n := min(left, objSize-fill)
			f.Parts = append(f.Parts, catalog.Part{Object: len(sizes) - 1, Offset: fill, Length: n})
			fill += n
			sizes[len(sizes)-1] = fill
			left -= n
		}
	}
	return sizes
}

// withoutUnloggedForks drops the files of unlogged relations except their
// init fork, as pg_basebackup does: at the end of recovery PostgreSQL resets
// every unlogged relation from its init fork, so the rest is never used.
func withoutUnloggedForks(files []catalog.BackupFile) []catalog.BackupFile {
	unlogged := map[string]bool{}
	for _, f := range files {
		if rel, fork, ok := relationFile(f); ok && fork == "_init" {
			unlogged[rel] = true
		}
	}
	if len(unlogged) == 0 {
		return files
	}
	kept := files[:0]
	for _, f := range files {
		if rel, fork, ok := relationFile(f); ok && unlogged[rel] && fork != "_init" {
			continue
		}
		kept = append(kept, f)
	}
	return kept
}

// relationFile splits a relation's data file path like base/5/16384_fsm.2
// into the relation (base/5/16384) and its fork ("_fsm"; "" for the main
// fork); ok is false for any other file.
func relationFile(f catalog.BackupFile) (rel, fork string, ok bool) {
	if f.Type != catalog.TypeFile {
		return "", "", false
	}
	dir, name := path.Split(f.Path)
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name = name[:i] // segment number
	}
	node, fork, _ := strings.Cut(name, "_")
	if node == "" || strings.Trim(node, "0123456789") != "" {
		return "", "", false
	}
	if fork != "" {
		fork = "_" + fork
	}
	return dir + node, fork, true
}
