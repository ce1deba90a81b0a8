#!/usr/bin/env bash
# walship demo, the main job on one machine: a throwaway PostgreSQL 15
# archives its WAL with archive_command = 'walship wal-push %p' into a
# file:// repository (or the one WALSHIP_REPO names), `walship backup` takes a
# base backup while pgbench writes, and `walship restore` brings a new server
# back to a moment in the middle of the run; its rows are compared with what
# existed at that moment. Everything lives in a temporary folder that is
# removed at the end (KEEP=1 keeps it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=$( (pg_config --bindir 2>/dev/null | grep -q . && [ -x "$(pg_config --bindir)/initdb" ] && pg_config --bindir) || echo /usr/lib/postgresql/15/bin)
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL 15 is not installed: run 'make tools' (or apt-get install postgresql-15)"; exit 1; }

WORK=$(mktemp -d /tmp/walship-demo.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
REPO_DIR=$WORK/repo
export WALSHIP_REPO=${WALSHIP_REPO:-file://$REPO_DIR}

# PostgreSQL refuses to run as root: use Debian's postgres user then, keeping
# this environment (the WALSHIP_* and AWS_* settings).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -m -u postgres -- env HOME="$WORK" "$@"; else "$@"; fi; }
psql_() { as_pg "$PGBIN/psql" -X -q -At -h "$WORK" -p "$1" -d postgres -c "$2"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

cleanup() {
  for d in "$WORK/primary" "$WORK/restored"; do
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

step "pgbench: scale 20, then 30 s of transactions from 4 clients"
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT" -i -s 20 -q postgres 2>&1 | tail -1
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT" -T 30 -c 4 -j 2 postgres >"$WORK/pgbench.out" 2>&1 &
BENCH=$!
sleep 3

step "walship backup while pgbench writes"
export PGHOST=$WORK PGPORT=$PORT PGDATABASE=postgres
as_pg "$W" backup --pgdata "$WORK/primary" --fast-checkpoint | tee "$WORK/backup.out"

step "The moment to come back to, in the middle of the run"
sleep 5
# Under a brief lock on pgbench_history no pgbench transaction can commit
# (each ends with an insert there), so the rows counted and the time taken
# belong to exactly the same moment.
MOMENT=$(psql_ "$PORT" "BEGIN; LOCK pgbench_history IN EXCLUSIVE MODE;
  SELECT clock_timestamp() || '|' || (SELECT count(*) FROM pgbench_history) || ' pgbench_history rows, sum(abalance) = ' || (SELECT sum(abalance) FROM pgbench_accounts);
  COMMIT;")
TARGET=${MOMENT%%|*}
WANT=${MOMENT#*|}
echo "target time:    $TARGET"
echo "at that moment: $WANT"
wait "$BENCH"
grep -E "^(number of transactions actually processed|tps)" "$WORK/pgbench.out"
FINAL=$(psql_ "$PORT" "SELECT (SELECT count(*) FROM pgbench_history) || ' pgbench_history rows, sum(abalance) = ' || (SELECT sum(abalance) FROM pgbench_accounts)")
echo "at the end:     $FINAL"
LAST=$(psql_ "$PORT" "SELECT pg_walfile_name(pg_switch_wal())")
echo "waiting for $LAST to be archived..."
for _ in $(seq 1 120); do
  [ "$(psql_ "$PORT" "SELECT last_archived_wal >= '$LAST' FROM pg_stat_archiver")" = t ] && break
  sleep 0.5
done

step "The archiver's status (pg_stat_archiver)"
as_pg "$PGBIN/psql" -X -h "$WORK" -p "$PORT" -d postgres -c \
  "SELECT archived_count, failed_count, last_archived_wal, last_archived_time::time(0) FROM pg_stat_archiver"
SHIPPED=$(psql_ "$PORT" "SELECT archived_count FROM pg_stat_archiver")
FAILED=$(psql_ "$PORT" "SELECT failed_count FROM pg_stat_archiver")

if [[ $WALSHIP_REPO == file://* ]]; then
  step "What is in the repository"
  find "$REPO_DIR/wal" -type f | sort | head -5 | sed "s#$REPO_DIR/##"
  echo "... $(find "$REPO_DIR/wal" -type f | wc -l) files, $(du -sm "$REPO_DIR" | cut -f1) MB stored for $(( $(find "$REPO_DIR/wal" -type f | wc -l) * 16 )) MB of WAL"
fi

step "walship backup list: the backups and the recoverable window"
as_pg "$W" backup list

step "walship restore --target-time '$TARGET' into a new data directory"
as_pg "$PGBIN/pg_ctl" -D "$WORK/primary" -m fast stop >/dev/null
START=$(date +%s%N)
as_pg "$W" restore --pgdata "$WORK/restored" --target-time "$TARGET"
RESTORE_MS=$(ms_since "$START")
# The restored postgresql.conf is the primary's: another port, and no
# archiving from the new timeline into the same repository.
cat >>"$WORK/restored/postgresql.conf" <<EOF
port = $((PORT + 1))
archive_mode = off
EOF
START=$(date +%s%N)
as_pg "$PGBIN/pg_ctl" -D "$WORK/restored" -l "$WORK/restored.log" -w -t 300 start >/dev/null
# Recovery replays WAL through walship wal-fetch up to the target, then the
# server promotes itself.
for _ in $(seq 1 600); do
  [ "$(psql_ $((PORT + 1)) "SELECT pg_is_in_recovery()")" = f ] && break
  sleep 0.2
done
RECOVERY_MS=$(ms_since "$START")
GOT=$(psql_ $((PORT + 1)) "SELECT (SELECT count(*) FROM pgbench_history) || ' pgbench_history rows, sum(abalance) = ' || (SELECT sum(abalance) FROM pgbench_accounts)")
grep -E "recovery stopping|selected new timeline" "$WORK/restored.log" | sed 's/^.*LOG: *//'

step "Report"
echo "WAL shipped:    $SHIPPED segments (pg_stat_archiver failed_count $FAILED)"
echo "base backup:    $(sed -n 's/^backup \([^ ]*\) complete: \(.*\), WAL.*/\1: \2/p' "$WORK/backup.out")"
echo "restore:        files laid down in $RESTORE_MS ms; WAL replayed to the target and promoted in $RECOVERY_MS ms ($(grep -c 'restored log file' "$WORK/restored.log") files fetched)"
echo "at the target:  $WANT"
echo "restored:       $GOT"
echo "at the end:     $FINAL"
if [ "$WANT" = "$GOT" ] && [ "$GOT" != "$FINAL" ]; then
  echo "OK: the restored server holds exactly the rows that existed at the target time, and none of the later ones"
else
  echo "MISMATCH: the restored server does not hold what existed at the target time"
  exit 1
fi
