package main

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/repo"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/scheduler"
)

// The packages word their errors in the domain's words; the command line
// adds its flags and variables, as it did when the packages named them.
func TestExplainNamesFlags(t *testing.T) {
	target := func(f restore.TargetFlags) error { _, err := restore.ParseTarget(f); return err }
	st, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, noURL := storage.Open(context.Background(), "", storage.Options{})
	_, noKeyFile := repo.Settings{RepoKeyFile: filepath.Join(t.TempDir(), "missing.key")}.Key()
	for _, c := range []struct {
		err  error
		want string
	}{
		{target(restore.TargetFlags{Time: "2026-11-25T14:05:00Z", LSN: "0/1"}), "--target-time and --target-lsn given together: choose one recovery target"},
		{target(restore.TargetFlags{Action: "stop"}), `--target-action "stop": use promote, pause or shutdown`},
		{target(restore.TargetFlags{Time: "last tuesday"}), `--target-time "last tuesday" is not a time`},
		{target(restore.TargetFlags{LSN: "5000000"}), `--target-lsn: "5000000" is not a WAL location`},
		{target(restore.TargetFlags{Name: "a", Exclusive: true}), "--exclusive applies to --target-time, --target-lsn and --target-xid only"},
		{fmt.Errorf("restore failed: %w", target(restore.TargetFlags{Timeline: "0"})), `restore failed: --target-timeline "0": use latest`},
		{scheduler.Policy{IncompleteGrace: time.Hour}.Check(), "no retention policy: give --keep N (keep the N newest backups) or --recovery-window D (e.g. 30d)"},
		{scheduler.Policy{Keep: 1, Window: time.Hour, IncompleteGrace: time.Hour}.Check(), "give one retention policy, not both: --keep N or --recovery-window D"},
		{scheduler.Policy{Keep: 1}.Check(), "--incomplete-grace 0s: must be positive"},
		{fmt.Errorf("backup x is encrypted (age): %w", codec.ErrNoKey), "no decryption key (WALSHIP_ENCRYPTION_KEY_FILE or --encryption-key-file: the age identity file) is configured"},
		{noURL, "no repository URL (WALSHIP_REPO or --repo) given"},
		{catalog.WrongSystem(st, 1, 2), "point the repository URL (WALSHIP_REPO or --repo) at a new, empty location"},
		{noKeyFile, "missing.key: no such file or directory (WALSHIP_REPO_KEY_FILE or --repo-key-file)"},
		{fault.Settingf(pg.DataDir, "%s is not a PostgreSQL data directory (no PG_VERSION)", "/x"), "/x is not a PostgreSQL data directory (no PG_VERSION): set PGDATA or --pgdata"},
	} {
		if c.err == nil {
			t.Errorf("no error; want one explained as %q", c.want)
			continue
		}
		if got := explain(c.err); !strings.Contains(got, c.want) {
			t.Errorf("explain(%q) = %q; want it to contain %q", c.err, got, c.want)
		}
	}

	// Still the same error underneath.
	err = explained(fmt.Errorf("push: %w", catalog.WrongSystem(st, 1, 2)))
	if !errors.Is(err, catalog.ErrWrongSystem) || !errors.Is(err, fault.ErrIdentityMismatch) {
		t.Errorf("explained error %v no longer matches catalog.ErrWrongSystem", err)
	}
	if got := explained(nil); got != nil {
		t.Errorf("explained(nil) = %v", got)
	}
}

// Every setting a package declares has this command line's words.
func TestEverySettingHasFlags(t *testing.T) {
	root := "../.."
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (name == "cmd" || name == "e2e" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(src), "fault.Setting = ") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, src, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(node ast.Node) bool {
			vs, ok := node.(*ast.ValueSpec)
			if !ok {
				return true
			}
			if sel, ok := vs.Type.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Setting" {
				return true
			}
			for i, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok {
					continue
				}
				s, _ := strconv.Unquote(lit.Value)
				n++
				if w := settingFlags[fault.Setting(s)]; w.name == "" && w.advice == "" {
					t.Errorf("%s: setting %s (%q) has no flag in settingFlags", p, vs.Names[i].Name, s)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(settingFlags) {
		t.Errorf("found %d settings in the packages, settingFlags has %d", n, len(settingFlags))
	}
}
