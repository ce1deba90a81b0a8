// Package catalog knows the repository's layout: where each kind of file
// lives, and the identity record that ties a repository to one database system.
package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

// IdentityKey holds the repository's identity, written at the first push.
const IdentityKey = "walship.json"

// WALPrefix is where archived WAL lives.
const WALPrefix = "wal/"

// WALKey is the object key of a file PostgreSQL archives. Segments (and
// .partial and .backup files) are grouped by timeline and log id, 4 GiB of
// WAL per folder (256 segments of 16 MiB, 4096 of 1 MiB), so listing a
// range stays cheap; history files sit at the top of wal/.
func WALKey(name string) (string, error) {
	switch pg.KindOf(name) {
	case pg.KindSegment, pg.KindPartial, pg.KindBackup:
		return WALPrefix + name[:16] + "/" + name, nil
	case pg.KindHistory:
		return WALPrefix + name, nil
	}
	return "", fmt.Errorf("%q is not a WAL segment, .partial, .backup or .history file name", name)
}

// Identity ties a repository to the database system that writes to it.
type Identity struct {
	SystemID       uint64    `json:"system_identifier,string"`
	WALSegmentSize uint32    `json:"wal_segment_size"`
	Created        time.Time `json:"created"`
	// RepositoryID is random, drawn when the record is written: it tells
	// two repositories at the same location apart (one emptied or
	// recreated there), which the location alone cannot.
	RepositoryID string `json:"repository_id,omitempty"`
	// Encryption ("age" or "none") and Authentication ("hmac-sha256" or
	// empty) are the policy for every object, fixed at creation (empty
	// Encryption in records written before December 2026); MAC signs the
	// record with the repository key when there is one. See protection.go.
	Encryption     string `json:"encryption,omitempty"`
	Authentication string `json:"authentication,omitempty"`
	MAC            string `json:"mac,omitempty"`
}

// ID names this repository instance. Records written before RepositoryID
// existed are told apart by their creation time, to the nanosecond.
func (id Identity) ID() string {
	if id.RepositoryID != "" {
		return id.RepositoryID
	}
	return "created-" + id.Created.UTC().Format(time.RFC3339Nano)
}

func newRepositoryID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ErrWrongSystem: the repository belongs to another database system. A
// fault.ErrIdentityMismatch.
var ErrWrongSystem = fault.Sentinel(fault.ErrIdentityMismatch, "repository belongs to another database system")

// LoadIdentity reads the identity; storage.ErrNotFound means a new repository.
func LoadIdentity(ctx context.Context, st storage.Store) (Identity, error) {
	rc, err := st.Get(ctx, IdentityKey)
	if err != nil {
		return Identity{}, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return Identity{}, fmt.Errorf("reading %s: %w", IdentityKey, err)
	}
	var id Identity
	if err = json.Unmarshal(data, &id); err == nil {
		err = id.Validate()
	}
	if err != nil {
		return Identity{}, fmt.Errorf("%s in %s is not a walship identity record (%v); is this location used by something else?", IdentityKey, st, err)
	}
	return id, nil
}

// EnsureIdentity checks that the repository belongs to systemID and that
// p may write to it, claiming it when it is new (its policy then follows
// p). Two first pushes racing each other both end up comparing with the one
// record that won.
func EnsureIdentity(ctx context.Context, st storage.Store, systemID uint64, segSize uint32, p Protection) (Identity, error) {
	id, err := LoadIdentity(ctx, st)
	if errors.Is(err, storage.ErrNotFound) {
		id = newIdentity(Identity{SystemID: systemID, WALSegmentSize: segSize, Created: time.Now().UTC(), RepositoryID: newRepositoryID()}, p)
		data, _ := json.MarshalIndent(id, "", "  ")
		err = st.Put(ctx, IdentityKey, append(data, '\n'), storage.PutOptions{IfNotExists: true})
		if errors.Is(err, storage.ErrExists) {
			id, err = LoadIdentity(ctx, st)
		}
	}
	if err != nil {
		return Identity{}, err
	}
	if err := id.CheckWriter(p); err != nil {
		return id, fmt.Errorf("%s: %w", st, err)
	}
	if id.SystemID != systemID {
		return id, WrongSystem(st, id.SystemID, systemID)
	}
	return id, nil
}

// OpenIdentity reads the identity of a repository and checks it against the
// configuration that reads it (see Identity.Verify).
func OpenIdentity(ctx context.Context, st storage.Store, p Protection) (Identity, error) {
	id, err := LoadIdentity(ctx, st)
	if err != nil {
		return id, err
	}
	if err := id.Verify(p); err != nil {
		return id, fmt.Errorf("%s: %w", st, err)
	}
	return id, nil
}

// WrongSystem is the error for a server of system got using a repository of
// system owner: what is wrong and what to do (a *fault.SettingError about
// the repository's URL).
func WrongSystem(st storage.Store, owner, got uint64) error {
	return fault.Settingf(storage.RepositoryURL, "%w: %s belongs to database system %d, but this server is system %d. "+
		"Each database system needs its own repository: point the %s at a new, empty location "+
		"(every initdb creates a new system; a restored or streamed copy keeps its source's)",
		ErrWrongSystem, st, owner, got, storage.RepositoryURL)
}
