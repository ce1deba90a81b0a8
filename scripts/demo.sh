#!/usr/bin/env bash
# walship demo: a throwaway PostgreSQL 15 archives its WAL with
# archive_command = 'walship wal-push %p' into a file:// repository, pgbench
# writes, and a second server recovers from that archive alone with
# restore_command = 'walship wal-fetch %f %p'. Everything lives in a temporary
# folder that is removed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=$( (pg_config --bindir 2>/dev/null | grep -q . && [ -x "$(pg_config --bindir)/initdb" ] && pg_config --bindir) || echo /usr/lib/postgresql/15/bin)
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL 15 is not installed: run 'make tools' (or apt-get install postgresql-15)"; exit 1; }

WORK=$(mktemp -d /tmp/walship-demo.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
REPO_DIR=$WORK/repo
export WALSHIP_REPO=${WALSHIP_REPO:-file://$REPO_DIR}

# PostgreSQL refuses to run as root: use Debian's postgres user then.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- env "PATH=$PATH" "WALSHIP_REPO=$WALSHIP_REPO" "$@"; else "$@"; fi; }
psql_() { as_pg "$PGBIN/psql" -X -q -At -h "$WORK" -p "$1" -d postgres -c "$2"; }

cleanup() {
  for d in "$WORK/primary" "$WORK/recovered"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
  [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Building walship"
(cd "$ROOT" && CGO_ENABLED=0 go build -o bin/walship ./cmd/walship)
cp "$ROOT/bin/walship" "$WORK/walship"
[ "$(id -u)" = 0 ] && chown -R postgres "$WORK"
W=$WORK/walship
echo "repository: $WALSHIP_REPO"

step "Starting a throwaway PostgreSQL with archive_command = 'walship wal-push %p'"
as_pg "$PGBIN/initdb" -D "$WORK/primary" -A trust --data-checksums >/dev/null
cat >>"$WORK/primary/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
wal_level = replica
archive_mode = on
archive_command = '$W wal-push %p'
max_wal_size = 1GB
EOF
as_pg "$PGBIN/pg_ctl" -D "$WORK/primary" -l "$WORK/primary.log" -w start >/dev/null
as_pg "$W" check --pgdata "$WORK/primary"

step "Generating WAL with pgbench (scale 20, then 15 s of transactions)"
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT" -i -s 20 -q postgres 2>&1 | tail -1
as_pg "$PGBIN/pg_basebackup" -h "$WORK" -p "$PORT" -D "$WORK/recovered" -X none -c fast
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT" -T 15 -c 4 -j 2 postgres 2>&1 | grep -E "^(number of transactions actually processed|tps)"
LAST=$(psql_ "$PORT" "SELECT pg_walfile_name(pg_switch_wal())")
echo "waiting for $LAST to be archived..."
for _ in $(seq 1 120); do
  [ "$(psql_ "$PORT" "SELECT last_archived_wal >= '$LAST' FROM pg_stat_archiver")" = t ] && break
  sleep 0.5
done

step "The archiver's status (pg_stat_archiver)"
as_pg "$PGBIN/psql" -X -h "$WORK" -p "$PORT" -d postgres -c \
  "SELECT archived_count, failed_count, last_archived_wal, last_archived_time::time(0) FROM pg_stat_archiver"

if [[ $WALSHIP_REPO == file://* ]]; then
  step "What is in the repository"
  find "$REPO_DIR/wal" -type f | sort | head -5 | sed "s#$REPO_DIR/##"
  echo "... $(find "$REPO_DIR/wal" -type f | wc -l) files, $(du -sm "$REPO_DIR" | cut -f1) MB stored for $(( $(find "$REPO_DIR/wal" -type f | wc -l) * 16 )) MB of WAL"
fi

step "Recovering a second server from the archive alone (restore_command = 'walship wal-fetch %f %p')"
WANT=$(psql_ "$PORT" "SELECT (SELECT count(*) FROM pgbench_history) || ' pgbench_history rows, sum(abalance) = ' || (SELECT sum(abalance) FROM pgbench_accounts)")
as_pg "$PGBIN/pg_ctl" -D "$WORK/primary" -m fast stop >/dev/null
cat >>"$WORK/recovered/postgresql.conf" <<EOF
port = $((PORT + 1))
archive_mode = off
restore_command = '$W wal-fetch %f %p'
EOF
as_pg touch "$WORK/recovered/recovery.signal"
START=$(date +%s%N)
as_pg "$PGBIN/pg_ctl" -D "$WORK/recovered" -l "$WORK/recovered.log" -w -t 300 start >/dev/null
# pg_ctl returns once read-only queries are possible; recovery ends when the
# archive has nothing more and the server promotes itself.
for _ in $(seq 1 600); do
  [ "$(psql_ $((PORT + 1)) "SELECT pg_is_in_recovery()")" = f ] && break
  sleep 0.2
done
GOT=$(psql_ $((PORT + 1)) "SELECT (SELECT count(*) FROM pgbench_history) || ' pgbench_history rows, sum(abalance) = ' || (SELECT sum(abalance) FROM pgbench_accounts)")
echo "recovered in $(( ($(date +%s%N) - START) / 1000000 )) ms, $(grep -c 'restored log file' "$WORK/recovered.log") files restored from the archive"
echo "primary:   $WANT"
echo "recovered: $GOT"
[ "$WANT" = "$GOT" ] && echo "OK: the recovered server holds exactly the primary's data" || { echo "MISMATCH"; exit 1; }
