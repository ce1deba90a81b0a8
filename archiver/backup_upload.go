package archiver

import (
	"bytes"
	"context"
	"errors"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/storage"
)

// partRef locates one part of a file while its object is being filled.
type partRef struct {
	file, part int
	fileOff    int64 // where the part starts in the file
}

// uploader reads the planned objects from the data directory and stores
// them. Up to jobs objects are read and compressed at a time; an object
// gives its compression slot back as soon as it is encoded, so the cores
// keep compressing while earlier objects are being uploaded (and confirmed).
// Memory: jobs objects' original bytes, and encodedObjects(jobs) encoded
// ones being encoded, waiting for or in their upload.
type uploader struct {
	st      storage.Store
	enc     *codec.Encoder
	id      string
	pgdata  string
	files   []catalog.BackupFile
	objects []catalog.BackupObject
	parts   [][]partRef // per object, in offset order
	hashes  *hashOrder
	// vanished marks files deleted by the server while the backup ran.
	vanished []atomic.Bool
	stored   atomic.Int64 // encoded bytes so far
	advised  int          // objects before this one were read ahead (readAhead)
	done     atomic.Int64 // original bytes stored so far, for progress

	mu    sync.Mutex
	cause error
}

func newUploader(st storage.Store, enc *codec.Encoder, id, pgdata string, files []catalog.BackupFile, sizes []int64) *uploader {
	u := &uploader{st: st, enc: enc, id: id, pgdata: pgdata, files: files,
		objects: make([]catalog.BackupObject, len(sizes)), parts: make([][]partRef, len(sizes)),
		hashes: newHashOrder(len(files)), vanished: make([]atomic.Bool, len(files))}
	for i := range u.objects {
		u.objects[i].Size = sizes[i]
	}
	for i, f := range files {
		var off int64
		for j, p := range f.Parts {
			u.parts[p.Object] = append(u.parts[p.Object], partRef{file: i, part: j, fileOff: off})
			off += p.Length
		}
	}
	return u
}

// run stores every object. Objects start in order, which keeps the ordered
// hashing of files that span objects free of deadlock: the oldest object
// being read never waits for a younger one.
func (u *uploader) run(ctx context.Context, jobs int) error {
	g, gctx := errgroup.WithContext(ctx)
	stop := context.AfterFunc(gctx, u.hashes.abort)
	defer stop()
	// The two buffer pools are the limits: raws bounds the objects being
	// read and compressed, encs those encoded and not yet stored.
	raws := make(chan []byte, jobs)
	encs := make(chan *bytes.Buffer, encodedObjects(jobs))
	for range jobs {
		raws <- nil
	}
	for range cap(encs) {
		encs <- &bytes.Buffer{}
	}
	for n := range u.objects {
		if gctx.Err() != nil {
			break // failed or cancelled: read nothing more ahead
		}
		// The disk reads the next objects while the workers compress and
		// upload: the kernel's page cache holds them, not our memory.
		u.readAhead(n + readAheadObjects(jobs))
		enc := <-encs
		raw := <-raws
		g.Go(func() error {
			defer func() { encs <- enc }()
			err := gctx.Err()
			if err == nil {
				raw, err = u.fill(n, raw)
			}
			if err == nil {
				err = u.encode(n, raw, enc)
			}
			raws <- raw // the next object may be read and compressed now
			if err == nil {
				err = u.put(gctx, n, enc.Bytes())
			}
			if err != nil && !errors.Is(err, errAborted) {
				u.fail(err)
			}
			return err
		})
	}
	err := g.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cause != nil {
		return u.cause // the first real error, not a worker told to stop
	}
	if err != nil {
		return err
	}
	return ctx.Err() // cancelled between objects: some were never stored
}

// encodedObjects is how many encoded objects may exist at once: one per
// compressing worker, and as many again (at most 4) waiting for or in their
// upload. A few uploads in flight hide the store's latency; more would only
// hold memory on a machine with many cores.
func encodedObjects(jobs int) int { return jobs + min(jobs, 4) }

// fail records the first error and stops the other workers.
func (u *uploader) fail(err error) {
	u.mu.Lock()
	if u.cause == nil {
		u.cause = err
	}
	u.mu.Unlock()
	u.hashes.abort()
}

// fill reads object n's parts into raw (grown to the object's size, and
// returned) and feeds each file's checksum.
func (u *uploader) fill(n int, raw []byte) ([]byte, error) {
	size := u.objects[n].Size
	if int64(cap(raw)) < size {
		raw = make([]byte, size)
	}
	raw = raw[:size]
	for _, r := range u.parts[n] {
		f := &u.files[r.file]
		p := f.Parts[r.part]
		seg := raw[p.Offset : p.Offset+p.Length]
		gone, err := readPart(filepath.Join(u.pgdata, filepath.FromSlash(f.Path)), r.fileOff, seg)
		if err != nil {
			return raw, err
		}
		if gone {
			u.vanished[r.file].Store(true)
		}
		if len(f.Parts) > 1 {
			// Only this worker writes this part (see catalog.Part).
			f.Parts[r.part].Checksum = codec.Checksum(seg)
		}
		if err := u.hashes.write(r.file, r.part, r.part == len(f.Parts)-1, seg); err != nil {
			return raw, err
		}
	}
	return raw, nil
}

// readPart reads len(dst) bytes at off. PostgreSQL changes files during an
// online backup: a file that shrank reads as zeros, as in pg_basebackup, and
// replaying WAL from the backup's start repairs it; a file that vanished
// (gone) is left out of the manifest, as pg_basebackup does.
func readPart(path string, off int64, dst []byte) (gone bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		clear(dst)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	n, err := f.ReadAt(dst, off)
	clear(dst[n:]) // the buffer holds an earlier object's bytes
	if err != nil && err != io.EOF {
		return false, err
	}
	return false, nil
}

// encode turns object n's original bytes into its stored form in buf.
func (u *uploader) encode(n int, raw []byte, buf *bytes.Buffer) (err error) {
	u.objects[n], err = encodeObject(u.enc, catalog.DataKey(u.id, n), raw, u.knownChecksum(n, raw), buf)
	return err
}

// knownChecksum is object n's checksum when fill computed it already: an
// object that is one part of a split file (most of a large database) is
// that part. Else "".
func (u *uploader) knownChecksum(n int, raw []byte) string {
	if len(u.parts[n]) != 1 {
		return ""
	}
	r := u.parts[n][0]
	if p := u.files[r.file].Parts[r.part]; len(u.files[r.file].Parts) > 1 && p.Offset == 0 && p.Length == int64(len(raw)) {
		return p.Checksum
	}
	return ""
}

// put stores object n, encoded by encode.
func (u *uploader) put(ctx context.Context, n int, obj []byte) error {
	if err := u.st.Put(ctx, u.objects[n].Key, obj, storage.PutOptions{}); err != nil {
		return err
	}
	u.stored.Add(u.objects[n].StoredSize)
	u.done.Add(u.objects[n].Size)
	return nil
}

// encodeObject encodes raw, to be stored under key, with its header into
// buf. sum is raw's checksum, or "" to compute it.
func encodeObject(enc *codec.Encoder, key string, raw []byte, sum string, buf *bytes.Buffer) (catalog.BackupObject, error) {
	if sum == "" {
		sum = codec.Checksum(raw)
	}
	h := codec.Header{Name: key, Size: int64(len(raw)), Checksum: sum}
	buf.Reset()
	if err := enc.Encode(buf, h, bytes.NewReader(raw)); err != nil {
		return catalog.BackupObject{}, err
	}
	return catalog.BackupObject{Key: key, Size: h.Size, StoredSize: int64(buf.Len()), Checksum: h.Checksum}, nil
}

// storeObject encodes raw and stores it under key.
func storeObject(ctx context.Context, st storage.Store, enc *codec.Encoder, key string, raw []byte) (catalog.BackupObject, error) {
	var buf bytes.Buffer
	obj, err := encodeObject(enc, key, raw, "", &buf)
	if err != nil {
		return obj, err
	}
	return obj, st.Put(ctx, key, buf.Bytes(), storage.PutOptions{})
}

// hashOrder computes each file's checksum from parts that different workers
// read: a part waits until the file's previous parts were hashed.
type hashOrder struct {
	mu      sync.Mutex
	cond    *sync.Cond
	aborted bool
	next    []int
	h       []hash.Hash
	sums    []string
}

var errAborted = errors.New("backup aborted")

func newHashOrder(n int) *hashOrder {
	o := &hashOrder{next: make([]int, n), h: make([]hash.Hash, n), sums: make([]string, n)}
	o.cond = sync.NewCond(&o.mu)
	return o
}

func (o *hashOrder) write(file, part int, last bool, b []byte) error {
	o.mu.Lock()
	for o.next[file] != part && !o.aborted {
		o.cond.Wait()
	}
	aborted := o.aborted
	o.mu.Unlock()
	if aborted {
		return errAborted
	}
	// Only this worker touches the file's hash until next moves on.
	switch {
	case part == 0 && last:
		o.sums[file] = codec.Checksum(b) // one part: no streaming hasher to copy into
	case part == 0:
		o.h[file] = codec.NewChecksum()
		fallthrough
	default:
		o.h[file].Write(b)
		if last {
			o.sums[file] = codec.ChecksumOf(o.h[file])
			o.h[file] = nil
		}
	}
	o.mu.Lock()
	o.next[file]++
	o.cond.Broadcast()
	o.mu.Unlock()
	return nil
}

func (o *hashOrder) abort() {
	o.mu.Lock()
	o.aborted = true
	o.cond.Broadcast()
	o.mu.Unlock()
}
