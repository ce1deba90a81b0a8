package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

func checkCmd(c *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "prove the configuration works: store reachable, write/read/delete, repository identity",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			step := func(name string, err error, detail string) error {
				if err != nil {
					fmt.Fprintf(out, "FAIL  %-11s %v\n", name, err)
					return fmt.Errorf("check failed at %s", name)
				}
				fmt.Fprintf(out, "ok    %-11s %s\n", name, detail)
				return nil
			}
			ctx := cmd.Context()
			_, err := c.encoder()
			if err := step("settings", err, fmt.Sprintf("compression %s, encryption %s", c.compression, onOff(c.recipients != "" || c.keyFile != ""))); err != nil {
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
			err = readBack(ctx, st, key, probe)
			if err := step("read", err, fmt.Sprintf("%d bytes match", len(probe))); err != nil {
				st.Delete(ctx, key)
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
			id, err := catalog.LoadIdentity(ctx, st)
			detail := fmt.Sprintf("database system %d, wal_segment_size %d", id.SystemID, id.WALSegmentSize)
			if errors.Is(err, storage.ErrNotFound) {
				err, detail = nil, "new repository: the first wal-push will claim it"
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

func readBack(ctx context.Context, st storage.Store, key string, want []byte) error {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("read back %d bytes that differ from the %d written", len(got), len(want))
	}
	return nil
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
