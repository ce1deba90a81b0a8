// Command zstdspeed measures single-core compression throughput on the files
// of a directory with walship's own codec and settings (internal/codec:
// zstd at its default level, klauspost/compress SpeedFastest, one goroutine,
// 1 MiB window). It reads every regular file under DIR in one goroutine,
// skipping the directories named by -skip, as one stream cut into objects of
// 16 MiB (one encoder each, as walship's backup stores them; an encoder per
// small file would measure setting encoders up), and prints
//
//	BYTES_IN BYTES_OUT SECONDS CPU_SECONDS
//
// CPU seconds are the process's user+system time, so reading the files is
// included: run it on files in the page cache to see the compressor alone.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/walship/walship/archiver"
	"github.com/walship/walship/internal/codec"
)

// objectSize is the size of the objects walship's backup stores.
const objectSize = archiver.DefaultObjectSize

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func main() {
	skip := flag.String("skip", "pg_wal", "comma-separated directory names (relative to DIR) to leave out")
	compression := flag.String("compression", "zstd", "walship compression: zstd, s2, gzip, none")
	level := flag.Int("level", 0, "compression level (0: walship's default)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: zstdspeed [-skip pg_wal] [-compression zstd] [-level 0] DIR")
		os.Exit(2)
	}
	in, out, wall, err := run(flag.Arg(0), strings.Split(*skip, ","), &codec.Encoder{Compression: *compression, Level: *level})
	if err != nil {
		fmt.Fprintln(os.Stderr, "zstdspeed:", err)
		os.Exit(1)
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("%d %d %.3f %.3f\n", in, out, wall.Seconds(), cpu.Seconds())
}

func run(dir string, skip []string, enc *codec.Encoder) (in, out int64, wall time.Duration, err error) {
	skipped := map[string]bool{}
	for _, s := range skip {
		if s != "" {
			skipped[filepath.Join(dir, s)] = true
		}
	}
	var paths []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// Files PostgreSQL removes while we walk are not an error.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && skipped[path] {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}
	// The files in walk order form one stream, cut into objects of up to
	// 16 MiB as walship's backup stores them; each object is one Encode.
	src := &counter{}
	r := io.TeeReader(&files{paths: paths}, src)
	start := time.Now()
	for {
		var c counter
		before := src.n
		if err := enc.Encode(&c, codec.Header{Name: "object"}, io.LimitReader(r, objectSize)); err != nil {
			return 0, 0, 0, err
		}
		if src.n == before {
			break
		}
		out += c.n
	}
	in = src.n
	return in, out, time.Since(start), nil
}

// files reads the files one after the other, skipping any removed meanwhile.
type files struct {
	paths []string
	cur   *os.File
}

func (f *files) Read(p []byte) (int, error) {
	for {
		if f.cur == nil {
			if len(f.paths) == 0 {
				return 0, io.EOF
			}
			fh, err := os.Open(f.paths[0])
			f.paths = f.paths[1:]
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return 0, err
			}
			f.cur = fh
		}
		n, err := f.cur.Read(p)
		if err == io.EOF {
			f.cur.Close()
			f.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}
