// Package fastpath answers PostgreSQL's two most frequent calls while walship
// is still starting:
//
//   - wal-fetch of a segment the prefetcher already spooled (a rename), and
//   - wal-push of a segment when a walship agent serves pg_wal (one
//     question on a Unix socket).
//
// Go initialises every linked package before main runs, and walship links
// the AWS SDK, pgx, age and more: about 14 ms of package initialisation and
// 25 ms per call in all, where /bin/true takes 4 ms. This package imports
// nothing that needs initialising after os (spool and agentsock follow the
// same rule; package net, fmt, path/filepath or even strings would delay it
// by about 10 ms), so the runtime initialises it early — before those heavy packages — and its init exits the
// process when it has answered. Anything unusual (a flag, a setting it does
// not read, no agent, nothing spooled) returns without a trace and lets the
// full command run, which reaches the same outcome the slow way.
//
// cmd/walship imports it for this side effect only.
package fastpath

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/walship/walship/internal/agentsock"
	"github.com/walship/walship/internal/spool"
)

func init() {
	if len(os.Args) < 3 || os.Getenv("WALSHIP_NO_FASTPATH") != "" {
		return
	}
	for _, a := range os.Args[2:] {
		if a == "" || a[0] == '-' {
			return // flags: leave them to the full command
		}
	}
	switch {
	case os.Args[1] == "wal-fetch" && len(os.Args) == 4:
		if Fetch(os.Args[2], os.Args[3]) {
			os.Exit(0)
		}
	case os.Args[1] == "wal-push" && len(os.Args) == 3:
		if answered, err := Push(os.Args[2]); answered {
			if err != nil {
				os.Stderr.WriteString("walship: " + err.Error() + "\n")
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
}

// Fetch moves segment name from a live prefetcher's spool to dest and
// reports whether it did. Without a live prefetcher it does nothing: the
// full command would start one.
func Fetch(name, dest string) bool {
	sp := spool.For(dest, spool.Location(os.Getenv("WALSHIP_REPO"), os.Getenv("WALSHIP_S3_ENDPOINT")))
	if !spool.IsSegment(name) || !sp.PrefetcherAlive() {
		return false
	}
	return sp.Take(context.Background(), name, dest)
}

// Push asks a running agent to archive the segment at path, configured by
// the environment alone, and reports whether the agent answered, with its
// answer.
func Push(path string) (answered bool, err error) {
	repo := os.Getenv("WALSHIP_REPO")
	if repo == "" || os.Getenv("WALSHIP_NO_AGENT") != "" || !spool.IsSegment(spool.Base(path)) {
		return false, nil
	}
	timeout := 10 * time.Minute // wal-push's --agent-timeout default
	if v := os.Getenv("WALSHIP_AGENT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return false, nil // the full command explains the bad value
		}
		timeout = d
	}
	if _, err := os.Stat(path); err != nil {
		return false, nil
	}
	target := agentsock.Target(repo, os.Getenv("WALSHIP_S3_ENDPOINT"), os.Getenv("WALSHIP_ENCRYPTION_RECIPIENT"),
		os.Getenv("WALSHIP_ENCRYPTION_KEY_FILE"), os.Getenv("WALSHIP_REPO_KEY_FILE"))
	err = agentsock.Ask(spool.Dir(path), target, spool.Base(path), timeout)
	if errors.Is(err, agentsock.ErrNoAgent) {
		return false, nil
	}
	return true, err
}
