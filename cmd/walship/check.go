package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

func checkCmd(c *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "prove the configuration works: store reachable, write/read/list/delete, missing objects read as not found, no overwrites, repository identity",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			step := func(name string, err error, detail string) error {
				if err != nil {
					fmt.Fprintf(out, "FAIL  %-11s %s\n", name, explain(err))
					return fmt.Errorf("check failed at %s", name)
				}
				fmt.Fprintf(out, "ok    %-11s %s\n", name, detail)
				return nil
			}
			warn := func(name, detail string) { fmt.Fprintf(out, "WARN  %-11s %s\n", name, detail) }
			ctx := cmd.Context()
			_, err := c.encoder()
			if err := step("settings", err, fmt.Sprintf("compression %s, encryption %s, repository key %s", c.compression, onOff(c.recipients != "" || c.keyFile != ""), onOff(c.repoKeyFile != ""))); err != nil {
				return err
			}
			st, err := c.openStore(ctx)
			if err := step("store", err, c.repo); err != nil {
				return err
			}
			key := ".walship-check/" + randomHex(8)
			probe := []byte("walship check " + randomHex(16))
			err = st.Put(ctx, key, probe, storage.PutOptions{IfNotExists: true})
			if err := step("write", err, key); err != nil {
				return err
			}
			if err := checkWithProbe(ctx, st, key, probe, step, warn); err != nil {
				st.Delete(context.WithoutCancel(ctx), key)
				return err
			}
			err = st.Delete(ctx, key)
			if err == nil {
				if _, serr := st.Stat(ctx, key); !errors.Is(serr, storage.ErrNotFound) {
					err = fmt.Errorf("probe object still present after delete (%v)", serr)
				}
			}
			if err := step("delete", err, "probe removed"); err != nil {
				return err
			}
			p, _, err := c.protection()
			if err != nil {
				return step("identity", err, "")
			}
			id, err := catalog.LoadIdentity(ctx, st)
			detail := fmt.Sprintf("database system %d, wal_segment_size %d, %s", id.SystemID, id.WALSegmentSize, protectionText(id))
			switch {
			case errors.Is(err, storage.ErrNotFound):
				err, detail = nil, "new repository: the first wal-push will claim it"
			case err == nil:
				err = id.CheckWriter(p)
			}
			if err := step("identity", err, detail); err != nil {
				return err
			}
			if c.pgdata == "" {
				return nil
			}
			sys, err := pg.ControlSystemID(c.pgdata)
			if err == nil && id.SystemID != 0 && sys != id.SystemID {
				err = catalog.WrongSystem(st, id.SystemID, sys)
			}
			return step("server", err, fmt.Sprintf("%s is database system %d", filepath.Clean(c.pgdata), sys))
		},
	}
	cmd.Flags().StringVarP(&c.pgdata, "pgdata", "D", "", "also check that this data directory's server may use the repository")
	return cmd
}

// checkWithProbe runs the steps that need the probe object in place: read
// it back, find it by listing, read a missing object, and prove that the
// store refuses to overwrite.
func checkWithProbe(ctx context.Context, st storage.Store, key string, probe []byte,
	step func(name string, err error, detail string) error, warn func(name, detail string)) error {
	err := readBack(ctx, st, key, probe)
	if err := step("read", err, fmt.Sprintf("%d bytes match", len(probe))); err != nil {
		return err
	}
	err = listed(ctx, st, key)
	if err := step("list", err, "the probe is listed"); err != nil {
		return err
	}
	err = missingIsNotFound(ctx, st, key+"-never-written")
	if err := step("missing", err, `a missing object reads as "not found"`); err != nil {
		return err
	}
	proven, err := storage.ProveConditionalPut(ctx, st)
	if err != nil || proven {
		return step("conditional", err, "writes: refused a second write (proven)")
	}
	warn("conditional", "writes: the store ignores If-None-Match and overwrote the probe object: wal-push falls back to "+
		"checking for an object before each write and reading it back after, which two writers at the same time can still race; "+
		"use a store that honours conditional writes (If-None-Match)")
	return nil
}

// listed proves the store lists what it holds: retention, backup list and
// restore find objects by listing.
func listed(ctx context.Context, st storage.Store, key string) error {
	objs, err := st.List(ctx, key)
	if err != nil {
		return err
	}
	if len(objs) != 1 || objs[0].Key != key {
		return fmt.Errorf("listing %s found %d objects, not the probe just written", key, len(objs))
	}
	return nil
}

// missingIsNotFound proves that a read of a missing object answers "not
// found": PostgreSQL asks for files that do not exist (history files of
// future timelines) throughout recovery, and anything else stops it. AWS
// answers 403 instead when the credentials lack s3:ListBucket.
func missingIsNotFound(ctx context.Context, st storage.Store, key string) error {
	_, err := st.Stat(ctx, key)
	if err == nil {
		return fmt.Errorf("%s exists though it was never written", key)
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("asking for a missing object did not answer \"not found\", so recovery would stop at the first file it probes for: %w", err)
	}
	rc, err := st.Get(ctx, key)
	if err == nil {
		rc.Close()
		return fmt.Errorf("%s can be read though it was never written", key)
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("reading a missing object did not answer \"not found\", so recovery would stop at the first file it probes for: %w", err)
	}
	return nil
}

func readBack(ctx context.Context, st storage.Store, key string, want []byte) error {
	same, err := storage.Holds(ctx, st, key, want)
	if err == nil && !same {
		err = fmt.Errorf("read back bytes that differ from the %d written", len(want))
	}
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// protectionText says how a repository protects its objects.
func protectionText(id catalog.Identity) string {
	enc := map[string]string{catalog.EncryptionAge: "encrypted (age)", catalog.EncryptionNone: "not encrypted", "": "encryption not recorded (created before December 2026)"}[id.Encryption]
	if id.Authentication == catalog.AuthenticationHMAC {
		return enc + ", authenticated with the repository key"
	}
	return enc + ", not authenticated"
}
