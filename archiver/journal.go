package archiver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/walshipdir"
)

// Journal remembers which files in pg_wal are already safely in the
// repository, so that PostgreSQL's later archive_command calls for segments a
// look-ahead or the agent shipped return at once. One small file per entry
// under pg_wal/walship/journal: concurrent writers never clash, and it
// survives restarts. It is only a shortcut: a lost entry means one more
// (idempotent) push, and an entry is trusted only while it still matches the
// file on disk. Each repository has its own journal: a file shipped to one
// says nothing about another.
type Journal struct {
	dir string
}

// Entry describes the file that was shipped.
type Entry struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	Inode   uint64 `json:"inode"`
	// Sum is the codec checksum (XXH3-128) of the whole file, as stored:
	// computed while encoding, and cheap to recompute (0.4 ms per 16 MiB).
	// Entries written before it replaced a CRC32C have none and no
	// longer match: one more (idempotent) push each.
	Sum    string    `json:"xxh3"`
	Stored time.Time `json:"stored"`
}

// OpenJournal opens the journal of shipments from walDir to one repository
// instance: the one at location (URL and endpoint, see storage.Location)
// whose identity record carries repositoryID. A repository emptied or
// recreated at the same location gets a new identifier, hence an empty
// journal: every file is shipped there again.
func OpenJournal(walDir, location, repositoryID string) (*Journal, error) {
	sum := sha256.Sum256([]byte(location + "\n" + repositoryID))
	dir := walshipdir.Journal(walDir, hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Journal{dir: dir}, nil
}

// Has reports whether an entry exists, without checking the file.
func (j *Journal) Has(name string) bool {
	_, err := os.Stat(filepath.Join(j.dir, name))
	return err == nil
}

// Matches reports whether name was shipped and the file at path is still the
// file that was shipped.
func (j *Journal) Matches(name, path string) bool {
	data, err := os.ReadFile(filepath.Join(j.dir, name))
	if err != nil {
		return false
	}
	var e Entry
	if json.Unmarshal(data, &e) != nil {
		return false
	}
	cur, err := Snapshot(path)
	if err != nil || cur.Size != e.Size || cur.ModTime != e.ModTime || cur.Inode != e.Inode {
		return false
	}
	sum, err := fileChecksum(path)
	return err == nil && e.Sum != "" && sum == e.Sum
}

// Record notes that the file described by e (see Snapshot) was stored.
func (j *Journal) Record(name string, e Entry) error {
	e.Stored = time.Now().UTC()
	data, _ := json.Marshal(e)
	tmp := filepath.Join(j.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(j.dir, name))
}

// Prune drops entries whose file is gone from walDir (PostgreSQL removed or
// recycled it), keeping the journal as small as pg_wal.
func (j *Journal) Prune(walDir string) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if _, err := os.Lstat(filepath.Join(walDir, name)); os.IsNotExist(err) {
			os.Remove(filepath.Join(j.dir, name))
		}
	}
}

// Snapshot describes the file at path by size, modification time and inode;
// the caller adds the checksums.
func Snapshot(path string) (Entry, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.Inode = st.Ino
	}
	return e, nil
}

func fileChecksum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// 1 MiB reads: 16 system calls per 16 MiB segment instead of 512 with
	// io.Copy's 32 KiB, on the path of every wal-push the agent answers.
	h := codec.NewChecksum()
	if _, err := io.CopyBuffer(struct{ io.Writer }{h}, struct{ io.Reader }{f}, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return codec.ChecksumOf(h), nil
}

// conditionalWritesFile records, per repository instance, whether the store
// was shown to refuse a second conditional write (storage.ProveConditionalPut):
// proven once, trusted by every later push to the same repository.
const conditionalWritesFile = ".conditional-writes"

// ConditionalWrites returns what was recorded of the store: proven, and
// whether anything was recorded at all.
func (j *Journal) ConditionalWrites() (proven, known bool) {
	b, err := os.ReadFile(filepath.Join(j.dir, conditionalWritesFile))
	if err != nil {
		return false, false
	}
	return string(b) == "proven", true
}

// RecordConditionalWrites notes what ProveConditionalPut found.
func (j *Journal) RecordConditionalWrites(proven bool) error {
	v := "ignored"
	if proven {
		v = "proven"
	}
	tmp := filepath.Join(j.dir, "."+conditionalWritesFile+".tmp")
	if err := os.WriteFile(tmp, []byte(v), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(j.dir, conditionalWritesFile))
}
