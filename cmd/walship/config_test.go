package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// flagsAfterEnv parses args for the command at path, applies the
// environment, and returns the command (or the error of applyEnv).
func flagsAfterEnv(t *testing.T, path string, args ...string) (*cobra.Command, error) {
	t.Helper()
	cmd, _, err := newRoot().Find(strings.Fields(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return cmd, applyEnv(cmd)
}

func flagValue(t *testing.T, cmd *cobra.Command, name string) string {
	t.Helper()
	f := cmd.Flags().Lookup(name)
	if f == nil {
		t.Fatalf("%s has no --%s", cmd.CommandPath(), name)
	}
	return f.Value.String()
}

// Each command reads its own variables: WALSHIP_BACKUP_JOBS sets backup's
// --jobs, not restore's; a flag on the command line wins.
func TestCommandSettingsFromTheEnvironment(t *testing.T) {
	t.Setenv("WALSHIP_BACKUP_JOBS", "3")
	t.Setenv("WALSHIP_RESTORE_JOBS", "5")
	t.Setenv("WALSHIP_RESTORE_ARCHIVE_MODE", "preserve")
	t.Setenv("WALSHIP_BACKUP_FAST_CHECKPOINT", "true")
	t.Setenv("WALSHIP_BACKUP_WAL_TIMEOUT", "90s")
	t.Setenv("WALSHIP_INCOMPLETE_GRACE", "2h")
	t.Setenv("WALSHIP_REPO", "file:///from/env")
	cases := []struct {
		path string
		args []string
		flag string
		want string
	}{
		{"backup", nil, "jobs", "3"},
		{"backup", []string{"--jobs", "7"}, "jobs", "7"},
		{"backup", nil, "fast-checkpoint", "true"},
		{"backup", nil, "wal-timeout", "1m30s"},
		{"backup", nil, "incomplete-grace", "2h0m0s"},
		{"backup", nil, "repo", "file:///from/env"},
		{"restore", nil, "jobs", "5"},
		{"restore", nil, "archive-mode", "preserve"},
		{"verify", nil, "jobs", flagValue(t, mustFind(t, "verify"), "jobs")}, // WALSHIP_VERIFY_JOBS unset: the default
		{"retention", nil, "incomplete-grace", "2h0m0s"},
	}
	for _, c := range cases {
		cmd, err := flagsAfterEnv(t, c.path, c.args...)
		if err != nil {
			t.Fatalf("%s %v: %v", c.path, c.args, err)
		}
		if got := flagValue(t, cmd, c.flag); got != c.want {
			t.Errorf("%s %v: --%s = %s, want %s", c.path, c.args, c.flag, got, c.want)
		}
	}
}

func mustFind(t *testing.T, path string) *cobra.Command {
	cmd, _, err := newRoot().Find(strings.Fields(path))
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// A retention policy given as a flag replaces the one in the environment;
// two policies in the environment, or a bad value, are refused by name.
func TestRetentionPolicyFromTheEnvironment(t *testing.T) {
	t.Setenv("WALSHIP_RETENTION_KEEP", "4")
	cmd, err := flagsAfterEnv(t, "retention")
	if err != nil || flagValue(t, cmd, "keep") != "4" {
		t.Fatalf("keep from the environment: %v, --keep %s", err, flagValue(t, cmd, "keep"))
	}
	cmd, err = flagsAfterEnv(t, "retention", "--recovery-window", "30d")
	if err != nil || flagValue(t, cmd, "keep") != "0" || flagValue(t, cmd, "recovery-window") != "30d" {
		t.Fatalf("--recovery-window with WALSHIP_RETENTION_KEEP set: %v, --keep %s", err, flagValue(t, cmd, "keep"))
	}

	t.Setenv("WALSHIP_RETENTION_RECOVERY_WINDOW", "30d")
	_, err = flagsAfterEnv(t, "retention")
	if err == nil || !strings.Contains(err.Error(), "WALSHIP_RETENTION_RECOVERY_WINDOW and WALSHIP_RETENTION_KEEP") {
		t.Errorf("both policies in the environment: %v", err)
	}
	if _, err := flagsAfterEnv(t, "retention", "--keep", "2"); err != nil {
		t.Errorf("both in the environment, one as a flag: %v", err)
	}

	t.Setenv("WALSHIP_RETENTION_KEEP", "many")
	t.Setenv("WALSHIP_RETENTION_RECOVERY_WINDOW", "")
	_, err = flagsAfterEnv(t, "retention")
	if err == nil || !strings.Contains(err.Error(), `WALSHIP_RETENTION_KEEP="many" is invalid for --keep`) {
		t.Errorf("bad value: %v", err)
	}
}
