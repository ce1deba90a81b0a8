// Command mkimage writes a container image archive (the `docker save` format,
// which `ctr images import` reads) from root filesystem tarballs and single
// files, with no registry and no container engine. scripts/images.sh uses it to
// make the images a region runs (scripts/region.sh).
//
//	mkimage -out walship.tar -layer rootfs.tar -file bin/walship:/usr/local/bin/walship:0755 \
//	    -tag ghcr.io/walship/walship:dev -user postgres -cmd '["bash"]'
//
// Each -layer is one layer, in order; all -file entries together make one more
// layer on top. Every -tag names the same image.
package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	var layers, files, dirs, tags, env list
	out := fs.String("out", "", "archive to write")
	user := fs.String("user", "", "user the image runs as")
	workdir := fs.String("workdir", "", "working directory")
	entrypoint := fs.String("entrypoint", "", "entrypoint, a JSON array")
	cmd := fs.String("cmd", "", "command, a JSON array")
	fs.Var(&layers, "layer", "a tarball to add as a layer (repeatable)")
	fs.Var(&files, "file", "SRC:DST[:MODE], a file for the top layer (repeatable)")
	fs.Var(&dirs, "dir", "DST:MODE:UID:GID, a folder for the top layer (repeatable)")
	fs.Var(&tags, "tag", "a name for the image (repeatable)")
	fs.Var(&env, "env", "KEY=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || len(tags) == 0 {
		return errors.New("-out and at least one -tag are required")
	}

	img := empty.Image
	for _, l := range layers {
		layer, err := tarball.LayerFromFile(l, tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			return fmt.Errorf("layer %s: %w", l, err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return err
		}
	}
	if len(files) > 0 || len(dirs) > 0 {
		tmp, err := os.CreateTemp(filepath.Dir(*out), ".files-*.tar")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if err := writeFiles(tmp, files, dirs); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		layer, err := tarball.LayerFromFile(tmp.Name(), tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			return err
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return err
		}
	}

	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()} // the same inputs give the same image
	cf.Config.User = *user
	cf.Config.WorkingDir = *workdir
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	if cf.Config.Entrypoint, err = jsonList(*entrypoint); err != nil {
		return fmt.Errorf("-entrypoint: %w", err)
	}
	if cf.Config.Cmd, err = jsonList(*cmd); err != nil {
		return fmt.Errorf("-cmd: %w", err)
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}

	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		ref, err := name.NewTag(t)
		if err != nil {
			return fmt.Errorf("-tag %s: %w", t, err)
		}
		refs[ref] = img
	}
	tmp := *out + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, *out)
}

func jsonList(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var l []string
	err := json.Unmarshal([]byte(s), &l)
	return l, err
}

// writeFiles writes a tarball holding each SRC:DST[:MODE], with the folders
// above each DST, owned by root, and each folder DST:MODE:UID:GID.
func writeFiles(w io.Writer, files, folders []string) error {
	tw := tar.NewWriter(w)
	for _, spec := range folders {
		parts := strings.Split(spec, ":")
		if len(parts) != 4 || !path.IsAbs(parts[0]) {
			return fmt.Errorf("-dir %q: want /DST:MODE:UID:GID", spec)
		}
		mode, err1 := strconv.ParseInt(parts[1], 8, 32)
		uid, err2 := strconv.Atoi(parts[2])
		gid, err3 := strconv.Atoi(parts[3])
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("-dir %q: %w", spec, err)
		}
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(path.Clean(parts[0]), "/") + "/", Mode: mode, Uid: uid, Gid: gid}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	}
	dirs := map[string]bool{}
	for _, spec := range files {
		parts := strings.Split(spec, ":")
		if len(parts) < 2 || len(parts) > 3 || !path.IsAbs(parts[1]) {
			return fmt.Errorf("-file %q: want SRC:/DST[:MODE]", spec)
		}
		src, dst := parts[0], path.Clean(parts[1])
		mode := int64(0o755)
		if len(parts) == 3 {
			m, err := strconv.ParseInt(parts[2], 8, 32)
			if err != nil {
				return fmt.Errorf("-file %q: mode: %w", spec, err)
			}
			mode = m
		}
		var parents []string
		for d := path.Dir(dst); d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755}); err != nil {
				return err
			}
		}
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: mode, Size: st.Size()}); err != nil {
			f.Close()
			return err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}
