package restore

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/walship/walship/internal/catalog"
)

// checkManifest refuses, before anything is written, a manifest that would
// make the restore write anywhere but into the data directory and the
// locations of its tablespaces, or lay down files no data directory holds.
// Whoever can write to the bucket can write a manifest (an unencrypted
// repository has no key that proves who wrote it), so every field that
// names a place or a mode is checked here, after catalog.Manifest.Validate
// (the WAL fields, the backup label, each file's parts inside the objects).
func checkManifest(m *catalog.Manifest) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%w; it was not written by walship backup: choose another backup (walship backup list)", err)
	}
	types := make(map[string]string, len(m.Files)) // path: type
	for _, f := range m.Files {
		if err := checkEntry(f); err != nil {
			return fmt.Errorf("manifest of backup %s: %w; it was not written by walship backup: choose another backup (walship backup list)", m.ID, err)
		}
		if _, dup := types[f.Path]; dup {
			return fmt.Errorf("manifest of backup %s lists %s twice; it was not written by walship backup: choose another backup (walship backup list)", m.ID, f.Path)
		}
		types[f.Path] = f.Type
	}
	for _, f := range m.Files {
		if err := checkParents(f, types); err != nil {
			return fmt.Errorf("manifest of backup %s: %w; it was not written by walship backup: choose another backup (walship backup list)", m.ID, err)
		}
	}
	return nil
}

// checkEntry checks one entry on its own: its path, type, mode and, for a
// link, that it is a tablespace's link in pg_tblspc.
func checkEntry(f catalog.BackupFile) error {
	if err := safePath(f.Path); err != nil {
		return err
	}
	// walship backup records permission bits only: a set-user-ID,
	// set-group-ID or sticky bit can only have been put there by hand.
	if f.Mode&^0o777 != 0 {
		return fmt.Errorf("%s has mode %#o, with bits beyond the permissions (set-user-ID, set-group-ID or sticky)", f.Path, f.Mode)
	}
	switch f.Type {
	case catalog.TypeFile:
		if f.Size < 0 {
			return fmt.Errorf("%s has a negative size", f.Path)
		}
	case catalog.TypeDir:
	case catalog.TypeLink:
		return checkTablespaceLink(f)
	default:
		return fmt.Errorf("%s has unknown type %q", f.Path, f.Type)
	}
	if oid, rest, ok := inTablespace(f.Path); ok && !tablespaceVersionDir.MatchString(strings.SplitN(rest, "/", 2)[0]) {
		return fmt.Errorf("%s is in tablespace %d but outside its PG_<version>_<catalog version> directory, where PostgreSQL keeps everything of a tablespace", f.Path, oid)
	}
	return nil
}

// tablespaceVersionDir is the one kind of entry PostgreSQL makes in a
// tablespace's location (PG_15_202209061). Requiring it keeps a manifest
// from laying down arbitrary names, such as .ssh/authorized_keys, in the
// tablespace's location, which lies outside the data directory.
var tablespaceVersionDir = regexp.MustCompile(`^PG_[0-9]+_[0-9]+$`)

// safePath keeps a manifest path inside its root: relative, clean, without
// ".." or a NUL byte.
func safePath(p string) error {
	if p == "" || p == "." || strings.HasPrefix(p, "/") || path.Clean(p) != p ||
		p == ".." || strings.HasPrefix(p, "../") || strings.ContainsRune(p, 0) {
		return fmt.Errorf("unsafe path %q", p)
	}
	return nil
}

// checkTablespaceLink allows a link only as pg_tblspc/<oid> of a tablespace,
// pointing to an absolute location: the one kind of link walship backup
// records and restore recreates.
func checkTablespaceLink(f catalog.BackupFile) error {
	dir, name := path.Split(f.Path)
	oid, err := strconv.ParseUint(name, 10, 32)
	if dir != "pg_tblspc/" || err != nil || oid == 0 || strconv.FormatUint(oid, 10) != name || uint32(oid) != f.Tablespace {
		return fmt.Errorf("%s is a link, but the only links a data directory may hold are pg_tblspc/<oid> of its tablespaces", f.Path)
	}
	if !path.IsAbs(f.Link) || strings.ContainsRune(f.Link, 0) {
		return fmt.Errorf("tablespace %d links to %q, not an absolute path", oid, f.Link)
	}
	return nil
}

// inTablespace splits a path under pg_tblspc/<oid>/ into the OID and the
// path inside the tablespace's location.
func inTablespace(p string) (oid uint32, rest string, ok bool) {
	after, found := strings.CutPrefix(p, "pg_tblspc/")
	if !found {
		return 0, "", false
	}
	name, rest, found := strings.Cut(after, "/")
	n, err := strconv.ParseUint(name, 10, 32)
	if !found || err != nil {
		return 0, "", false
	}
	return uint32(n), rest, true
}

// checkParents refuses an entry under a path the manifest declares a file
// (writing it would fail midway or, were the file a link, go through it),
// and an entry under a link other than its own tablespace's.
func checkParents(f catalog.BackupFile, types map[string]string) error {
	for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
		switch types[dir] {
		case catalog.TypeFile:
			return fmt.Errorf("%s is under %s, which is a file", f.Path, dir)
		case catalog.TypeLink:
			if oid, _, ok := inTablespace(f.Path); !ok || "pg_tblspc/"+strconv.FormatUint(uint64(oid), 10) != dir {
				return fmt.Errorf("%s is under the link %s", f.Path, dir)
			}
		}
	}
	return nil
}
