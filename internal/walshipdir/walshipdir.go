// Package walshipdir knows walship's own folder inside PostgreSQL's WAL
// directory, pg_wal/walship, and where each thing in it lives:
//
//	pg_wal/walship/agent.sock         the socket `walship agent` answers wal-push on
//	pg_wal/walship/journal-<key>/     what wal-push stored in one repository instance
//	pg_wal/walship/prefetch-<key>/    segments wal-fetch downloaded ahead from one repository
//
// Keeping it beside the WAL puts the prefetch spool on the same filesystem
// as PostgreSQL's restore destination (taking a file is a rename) and lets
// every process started for the same server find the same socket.
//
// It imports nothing: walship's fast path (internal/fastpath, through
// internal/spool and internal/agentsock) uses it before the program has
// finished starting.
package walshipdir

// Dir is walship's folder in the WAL directory walDir (PGDATA/pg_wal).
func Dir(walDir string) string { return walDir + "/walship" }

// AgentSocket is where the agent serving walDir listens.
func AgentSocket(walDir string) string { return Dir(walDir) + "/agent.sock" }

// Journal is the folder of the push journal to one repository instance,
// named by key (a digest of its location and identifier).
func Journal(walDir, key string) string { return Dir(walDir) + "/journal-" + key }

// Prefetch is the folder of the prefetch spool of one repository, named by
// key (a digest of its location).
func Prefetch(walDir, key string) string { return Dir(walDir) + "/prefetch-" + key }
