#!/usr/bin/env bash
# bench/backup.sh — full base backup and full restore of the same data with
# walship, pgBackRest (zst and lz4) and barman-cloud against one local MinIO
# (HTTPS), with the physical limits of this machine beside them: reading the
# data directory cold, and single-core zstd on the same files. Every restore is
# started and its data compared with the source. The method is described in
# bench/README.md.
#
#   bench/backup.sh                    pgbench -i -s 100 and a random data set of the same size
#                                      (about 1.6 GB each; 22 minutes on 2 busy cores)
#   BENCH_SCALE=5 bench/backup.sh      a quick smoke test (about 100 MB per data set, 5 minutes)
#
# Other knobs: BENCH_DATASETS="pgbench random", BENCH_BACKUP_TOOLS="walship
# pgbackrest-zst pgbackrest-lz4 barman", BENCH_KEEP=1 (keep the scratch
# directory), BENCH_COLD=0 (do not drop the page cache before each backup and
# restore).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALE=${BENCH_SCALE:-100}
DATASETS=${BENCH_DATASETS:-pgbench random}
TOOLS=${BENCH_BACKUP_TOOLS:-walship pgbackrest-zst pgbackrest-lz4 barman}
COLD=${BENCH_COLD:-1}
PGBIN=/usr/lib/postgresql/15/bin
S3_KEY=benchadmin
S3_SECRET=benchadmin-secret
RESULTS=$ROOT/bench/results
PGPORT_SRC=5432
PGPORT_RESTORED=5433

WORK= MINIO_PID= CAN_DROP=0
PG_UP=() # data directories of servers this script started and has not stopped
declare -A R=() # results: R[dataset,tool,metric]

# say, die, now_us, as_pg, install_deps, start_minio, make_bucket, psi_*
. "$ROOT/bench/lib.sh"
has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- setup

setup_work() {
	WORK=$(mktemp -d /tmp/walship-backup-bench.XXXXXX)
	mkdir -p "$WORK"/{bin,home,sock,env,logs,certs,minio,pgbackrest/log,pgbackrest/lock}
	cd "$ROOT"
	say "building walship, s3size and zstdspeed"
	CGO_ENABLED=0 go build -o bin/walship ./cmd/walship
	# A private copy: others may rebuild bin/walship while the benchmark runs.
	cp bin/walship "$WORK/bin/walship"
	CGO_ENABLED=0 go build -o "$WORK/bin/s3size" ./bench/cmd/s3size
	CGO_ENABLED=0 go build -o "$WORK/bin/zstdspeed" ./bench/cmd/zstdspeed
	WALSHIP=$WORK/bin/walship
	chown -R postgres: "$WORK"
	chmod 755 "$WORK"
	cd "$WORK"
	say "scratch directory $WORK"
	# Dropping the page cache needs root and a writable /proc/sys; some
	# containers refuse it. Without it, cold reads use O_DIRECT instead.
	if [ "$COLD" = 1 ] && sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
		CAN_DROP=1
	fi
}

# drop_caches: before each timed backup and restore, so every tool starts
# from the disk, not from what the previous one left in memory.
drop_caches() {
	sync
	[ "$CAN_DROP" = 1 ] && echo 3 >/proc/sys/vm/drop_caches
	return 0
}

cleanup() {
	local rc=$?
	set +e
	local d
	for d in "${PG_UP[@]}"; do
		as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1
	done
	finish_work "$rc"
	exit "$rc"
}


# ---------------------------------------------------------------- PostgreSQL

# pg_start DIR PORT LOG [ENVFILE]: start a server as postgres, with ENVFILE's
# variables in its environment (restore_command needs the S3 credentials).
pg_start() {
	local dir=$1 port=$2 log=$3 envf=${4:-/dev/null}
	PG_UP+=("$dir")
	as_pg bash -c '. "$1"; shift; exec "$@"' _ "$envf" \
		"$PGBIN/pg_ctl" -D "$dir" -l "$log" -w -t 1200 -o "-c port=$port" start >/dev/null ||
		die "PostgreSQL did not start on $dir: $(tail -5 "$log")"
}

pg_stop() {
	local dir=$1 d keep=()
	as_pg "$PGBIN/pg_ctl" -D "$dir" -m fast -w -t 300 stop >/dev/null
	for d in "${PG_UP[@]}"; do [ "$d" = "$dir" ] || keep+=("$d"); done
	PG_UP=("${keep[@]}")
}

# sql [PORT] QUERY
sql() {
	local port=$PGPORT_SRC
	[ $# -eq 2 ] && port=$1 && shift
	as_pg "$PGBIN/psql" -h "$WORK/sock" -p "$port" -X -q -At -v ON_ERROR_STOP=1 -d postgres -c "$1"
}

set_archive_command() {
	echo "archive_command = '$1'" >"$PGDATA/bench-archive.conf"
	chown postgres: "$PGDATA/bench-archive.conf"
}

init_cluster() {
	as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync >"$DS_DIR/initdb.log"
	cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$WORK/sock'
shared_buffers = 512MB
synchronous_commit = off
max_wal_size = 4GB
checkpoint_timeout = 1h
archive_mode = on
include 'bench-archive.conf'
EOF
	# While the data is generated its WAL is thrown away: each tool archives
	# only from the start of its own backup on.
	set_archive_command "/bin/true"
}

# checksum_query DATASET: one line that changes if any row of the data set does.
checksum_query() {
	local tables t q=
	case $1 in
	pgbench) tables="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history" ;;
	random) tables="noise" ;;
	esac
	for t in $tables; do
		[ -n "$q" ] && q+=" || ' ' || "
		q+="(select '$t:' || count(*) || ':' || coalesce(sum(hashtext(x::text)), 0) from $t x)"
	done
	echo "select $q"
}

# datadir_bytes: the size of the data directory without pg_wal, which is
# what every tool backs up.
datadir_bytes() {
	echo $(($(du -sb "$PGDATA" | awk '{print $1}') - $(du -sb "$PGDATA/pg_wal" | awk '{print $1}')))
}

# make_dataset DATASET: a running server in $PGDATA holding the data set,
# vacuumed and checkpointed, so that every tool backs up the same files.
make_dataset() {
	local ds=$1 t0 target size base
	t0=$(now_us)
	init_cluster
	pg_start "$PGDATA" $PGPORT_SRC "$DS_DIR/pg.log"
	case $ds in
	pgbench)
		say "$ds: pgbench -i -s $SCALE"
		as_pg "$PGBIN/pgbench" -h "$WORK/sock" -p $PGPORT_SRC -i -q -s "$SCALE" postgres >"$DS_DIR/pgbench-init.log" 2>&1 ||
			die "pgbench -i failed: $(tail -5 "$DS_DIR/pgbench-init.log")"
		;;
	random)
		# As large as pgbench's data set in this run (else about 15 MB per
		# scale unit, as pgbench's with its indexes), in rows that zstd
		# compresses only a few times: random uuids, md5 hex text, and jsonb
		# with random values.
		sql "create extension pgcrypto"
		sql "create table noise (id bigserial primary key, u uuid not null, t text not null, j jsonb not null)"
		base=$(datadir_bytes)
		target=$((${R[pgbench,bytes]:-$((SCALE * 15 * 1000 * 1000 + base))} - base))
		say "$ds: random rows up to $((target / 1000000)) MB"
		while :; do
			sql "insert into noise (u, t, j)
			     select gen_random_uuid(), md5(random()::text),
			            jsonb_build_object('key', encode(gen_random_bytes(12), 'base64'),
			                               'n', (random() * 1000000)::int,
			                               'kind', (array['alpha', 'beta', 'gamma', 'delta'])[1 + (random() * 3)::int],
			                               'at', now() - random() * interval '365 days')
			     from generate_series(1, 100000)"
			size=$(sql "select pg_total_relation_size('noise')")
			[ "$size" -ge "$target" ] && break
		done
		;;
	*) die "unknown data set $ds" ;;
	esac
	# Set every hint bit and freeze now, so that no tool's backup or the
	# checksum query below changes a page afterwards.
	sql "vacuum (freeze, analyze)"
	say "$ds: checksum of the source"
	R[$ds,sum]=$(sql "$(checksum_query "$ds")")
	sql "checkpoint"
	R[$ds,bytes]=$(datadir_bytes)
	R[$ds,files]=$(find "$PGDATA" -path "$PGDATA/pg_wal" -prune -o -type f -print | wc -l)
	say "$ds: $(mb "${R[$ds,bytes]}") MB in ${R[$ds,files]} files (pg_wal left out), ready in $((($(now_us) - t0) / 1000000)) s"
}

# ---------------------------------------------------------------- limits

# physical_limits DATASET: how fast this machine reads the data directory
# from disk, and how fast one core compresses it with walship's zstd settings.
physical_limits() {
	local ds=$1 out=$WORK/logs/$1-coldread user sys
	if [ "$CAN_DROP" = 1 ]; then
		R[$ds,coldhow]="tar of the data directory (pg_wal left out) through cat, after sync and drop_caches"
		drop_caches
		/usr/bin/time -f '%e %U %S %M' -o "$out.time" \
			bash -c 'tar -C "$1" --exclude=./pg_wal -cf - . 2>"$2" | cat >/dev/null' _ "$PGDATA" "$out.log"
	else
		R[$ds,coldhow]="dd iflag=direct bs=1M of every file (pg_wal left out), one at a time: drop_caches is not permitted here"
		/usr/bin/time -f '%e %U %S %M' -o "$out.time" \
			bash -c 'cd "$1" && find . -path ./pg_wal -prune -o -type f -print0 |
			         xargs -0 -n 1 sh -c '\''dd if="$0" of=/dev/null bs=1M iflag=direct status=none'\''' _ "$PGDATA"
	fi
	# (tar's complaints about files PostgreSQL removes meanwhile, such as
	# pg_internal.init, go to $out.log.)
	R[$ds,cold]=$(tail -n1 "$out.time" | awk '{print $1}')
	say "$ds: cold read ${R[$ds,cold]} s"
	# Now the files are in the page cache: the compressor alone.
	as_pg "$WORK/bin/zstdspeed" "$PGDATA" >"$WORK/logs/$ds-zstdspeed" || die "zstdspeed failed"
	read -r "R[$ds,zin]" "R[$ds,zout]" "R[$ds,zwall]" "R[$ds,zcpu]" <"$WORK/logs/$ds-zstdspeed"
	say "$ds: walship zstd, one core: $(rate "${R[$ds,zin]}" "${R[$ds,zcpu]}") MB/s per CPU second, ratio $(ratio "${R[$ds,zin]}" "${R[$ds,zout]}")"
	# The zstd program at level 1, one thread, on the same files.
	/usr/bin/time -f '%e %U %S' -o "$WORK/logs/$ds-zstdcli.time" bash -c \
		'cd "$1" && find . -path ./pg_wal -prune -o -type f -print0 | xargs -0 zstd -1 -T1 -q -c | wc -c' _ "$PGDATA" \
		>"$WORK/logs/$ds-zstdcli" || die "zstd -1 -T1 failed"
	R[$ds,cliout]=$(cat "$WORK/logs/$ds-zstdcli")
	# Writing the same files to the same disk with tar and syncing them: a
	# reference for the restores, which do the same and more (the files are
	# in the page cache by now, so this is the writing alone). Not a limit:
	# tar writes one file at a time.
	rm -rf "$DS_DIR/write-floor"
	/usr/bin/time -f '%e' -o "$WORK/logs/$ds-write.time" bash -c \
		'mkdir "$2" && tar -C "$1" --exclude=./pg_wal -cf - . 2>/dev/null | tar -C "$2" -xf - && sync -f "$2"' _ "$PGDATA" "$DS_DIR/write-floor" ||
		die "writing a copy of the data directory failed"
	rm -rf "$DS_DIR/write-floor"
	R[$ds,write]=$(tail -n1 "$WORK/logs/$ds-write.time")
	say "$ds: write and sync a copy: ${R[$ds,write]} s"
	read -r "R[$ds,cliwall]" user sys <"$WORK/logs/$ds-zstdcli.time"
	R[$ds,clicpu]=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')
	say "$ds: zstd -1 -T1: $(rate "${R[$ds,bytes]}" "${R[$ds,clicpu]}") MB/s per CPU second, ratio $(ratio "${R[$ds,bytes]}" "${R[$ds,cliout]}")"
}

# ---------------------------------------------------------------- tools

# env_file TOOL: the variables TOOL needs (for its commands and for the
# server's archive_command); prints the path.
env_file() { write_env "$WORK/env/$1-$DS.env" "$1" walship "$DS"; }

# pgbackrest_conf TOOL: pgbackrest-zst or pgbackrest-lz4; prints the path.
pgbackrest_conf() {
	local tool=$1 f=$WORK/env/$1-$DS.conf
	{
		pgbackrest_global "$tool" "/$DS" "$WORK/pgbackrest/spool-$tool-$DS"
		case $tool in
		pgbackrest-zst) printf 'compress-type=zst\ncompress-level=1\n' ;;
		pgbackrest-lz4) echo compress-type=lz4 ;;
		esac
		printf 'repo1-retention-full=9\nprocess-max=2\nstart-fast=y\n'
		printf '\n[bench]\npg1-path=%s\npg1-socket-path=%s\npg1-port=%s\n' "$PGDATA" "$WORK/sock" "$PGPORT_SRC"
	} >"$f"
	chown -R postgres: "$f" "$WORK/pgbackrest"
	echo "$f"
}

# push_cmd TOOL: archive_command, before %p.
push_cmd() {
	case $1 in
	walship) echo ". $WORK/env/walship-$DS.env && $WALSHIP wal-push" ;;
	pgbackrest-*) echo "pgbackrest --config=$WORK/env/$1-$DS.conf --stanza=bench archive-push" ;;
	barman) echo ". $WORK/env/barman-$DS.env && barman-cloud-wal-archive --gzip --endpoint-url $ENDPOINT s3://barman/$DS bench" ;;
	esac
}

# backup_cmd TOOL: the full backup.
backup_cmd() {
	case $1 in
	walship) echo "$WALSHIP backup --pgdata $PGDATA --pghost $WORK/sock --pgport $PGPORT_SRC --pguser postgres --fast-checkpoint" ;;
	pgbackrest-*) echo "pgbackrest --config=$WORK/env/$1-$DS.conf --stanza=bench --type=full backup" ;;
	barman) echo "barman-cloud-backup --gzip --immediate-checkpoint --endpoint-url $ENDPOINT -h $WORK/sock -p $PGPORT_SRC -U postgres -n bench s3://barman/$DS bench" ;;
	esac
}

# restore_cmd TOOL DIR: the full restore into the empty DIR.
restore_cmd() {
	case $1 in
	walship) echo "$WALSHIP restore --pgdata $2" ;;
	pgbackrest-*) echo "pgbackrest --config=$WORK/env/$1-$DS.conf --stanza=bench --pg1-path=$2 restore" ;;
	barman) echo "barman-cloud-restore --endpoint-url $ENDPOINT s3://barman/$DS bench bench $2" ;;
	esac
}

# stored TOOL: "BYTES OBJECTS" of TOOL's base backup in the bucket (its WAL
# left out), listed by the benchmark itself.
stored() {
	local bucket=$1 prefix
	case $1 in
	walship) prefix=$DS/backups/ ;;
	pgbackrest-*) prefix=$DS/backup/bench/ ;;
	barman) prefix=$DS/bench/base/ ;;
	esac
	AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET \
		"$WORK/bin/s3size" -endpoint "$ENDPOINT" -ca "$CERT" "$bucket" "$prefix"
}

# measure NAME ENVFILE CMD...: runs CMD as postgres with ENVFILE's variables
# under /usr/bin/time; sets R[$DS,$TOOL,NAME-wall|cpu|rss] (s, s, KB) and
# R[$DS,$TOOL,NAME-store], MinIO's CPU s meanwhile: the store shares the
# cores, so its work is in the tool's wall time but not in the tool's CPU.
measure() {
	local name=$1 envf=$2 out=$WORK/logs/$DS-$TOOL-$1
	shift 2
	local rc=0 store0
	store0=$(proc_ticks "$MINIO_PID")
	/usr/bin/time -f '%e %U %S %M' -o "$out.time" \
		setpriv --reuid=postgres --regid=postgres --init-groups -- env HOME="$WORK/home" \
		bash -c '. "$1"; shift; exec "$@"' _ "$envf" "$@" >"$out.log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		say "$DS/$TOOL: $name FAILED (exit $rc): $(tail -5 "$out.log")"
		return 1
	fi
	local wall user sys rss
	read -r wall user sys rss < <(tail -n1 "$out.time")
	R[$DS,$TOOL,$name-wall]=$wall
	R[$DS,$TOOL,$name-cpu]=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')
	R[$DS,$TOOL,$name-rss]=$rss
	R[$DS,$TOOL,$name-store]=$(awk -v d=$(($(proc_ticks "$MINIO_PID") - store0)) -v t="$TICK_MS" 'BEGIN {printf "%.2f", d * t / 1000}')
}

wait_no_ready() {
	local deadline=$(($(date +%s) + 600))
	while find "$PGDATA/pg_wal/archive_status" -name '*.ready' | grep -q .; do
		[ "$(date +%s)" -lt "$deadline" ] || die "$DS/$TOOL: WAL still not archived after 600 s; see $DS_DIR/pg.log"
		sleep 0.2
	done
}

# run_backup TOOL: switch archiving to TOOL, then one timed full backup.
run_backup() {
	TOOL=$1
	local envf
	envf=$(env_file "$TOOL")
	case $TOOL in
	pgbackrest-*)
		pgbackrest_conf "$TOOL" >/dev/null
		as_pg pgbackrest --config="$WORK/env/$TOOL-$DS.conf" --stanza=bench stanza-create >>"$WORK/logs/$DS-$TOOL-stanza.log" 2>&1 ||
			die "pgBackRest stanza-create ($TOOL) failed: $(tail -5 "$WORK/logs/$DS-$TOOL-stanza.log")"
		;;
	esac
	set_archive_command "$(push_cmd "$TOOL") %p"
	sql "select pg_reload_conf()" >/dev/null
	sleep 1
	# The segment in progress goes to this tool's archive, and nothing is
	# left for the archiver when the clock starts.
	sql "select pg_switch_wal()" >/dev/null
	wait_no_ready
	sql "checkpoint"
	drop_caches
	say "$DS: full backup with $TOOL"
	# shellcheck disable=SC2046 # backup_cmd's words are the command line
	if measure backup "$envf" $(backup_cmd "$TOOL"); then
		read -r "R[$DS,$TOOL,stored]" "R[$DS,$TOOL,objects]" < <(stored "$TOOL")
		say "$DS/$TOOL: backup ${R[$DS,$TOOL,backup-wall]} s, CPU ${R[$DS,$TOOL,backup-cpu]} s (MinIO ${R[$DS,$TOOL,backup-store]} s), RSS $(mbk "${R[$DS,$TOOL,backup-rss]}") MB, stored $(mb "${R[$DS,$TOOL,stored]}") MB in ${R[$DS,$TOOL,objects]} objects"
	else
		R[$DS,$TOOL,backup-wall]=failed
	fi
}

# run_restore TOOL: one timed full restore into an empty directory, then
# start the restored server, let it recover from TOOL's archive, and compare
# its data with the source's.
run_restore() {
	TOOL=$1
	local envf dir=$DS_DIR/restore-$1 t0 t1 got
	envf=$(env_file "$TOOL")
	rm -rf "$dir"
	if [ "$TOOL" = pgbackrest-zst ] || [ "$TOOL" = pgbackrest-lz4 ]; then
		# pgBackRest restores into an existing directory only.
		mkdir -m 700 "$dir"
		chown postgres: "$dir"
	fi
	drop_caches
	say "$DS: full restore with $TOOL"
	# shellcheck disable=SC2046 # restore_cmd's words are the command line
	if ! measure restore "$envf" $(restore_cmd "$TOOL" "$dir"); then
		R[$DS,$TOOL,restore-wall]=failed
		return
	fi
	if [ "$TOOL" = barman ]; then
		# barman-cloud-restore lays down the files only; recovery is ours to set up.
		cat >>"$dir/postgresql.auto.conf" <<EOF
restore_command = '. $envf && barman-cloud-wal-restore --endpoint-url $ENDPOINT s3://barman/$DS bench %f %p'
EOF
		touch "$dir/recovery.signal"
		mkdir -p "$dir/pg_wal/archive_status"
		chown -R postgres: "$dir"
		chmod 700 "$dir"
	fi
	# Recover with the restore_command the tool wrote (or, for barman, we did),
	# without archiving anything of the restored server's own.
	t0=$(now_us)
	echo "archive_mode = off" >"$dir/bench-archive.conf"
	chown postgres: "$dir/bench-archive.conf"
	pg_start "$dir" $PGPORT_RESTORED "$DS_DIR/pg-restored-$TOOL.log" "$envf"
	local deadline=$(($(date +%s) + 1200))
	while [ "$(sql $PGPORT_RESTORED "select pg_is_in_recovery()")" = t ]; do
		[ "$(date +%s)" -lt "$deadline" ] || die "$DS/$TOOL: the restored server is still recovering after 1200 s; see $DS_DIR/pg-restored-$TOOL.log"
		sleep 0.2
	done
	t1=$(now_us)
	R[$DS,$TOOL,recovery]=$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.1f", d / 1e6}')
	got=$(sql $PGPORT_RESTORED "$(checksum_query "$DS")")
	if [ "$got" = "${R[$DS,sum]}" ]; then
		R[$DS,$TOOL,verified]=yes
	else
		R[$DS,$TOOL,verified]=NO
		say "$DS/$TOOL: the restored data DIFFERS from the source: $got, want ${R[$DS,sum]}"
	fi
	pg_stop "$dir"
	[ "$TOOL" = walship ] && stop_prefetchers
	say "$DS/$TOOL: restore ${R[$DS,$TOOL,restore-wall]} s, CPU ${R[$DS,$TOOL,restore-cpu]} s, RSS $(mbk "${R[$DS,$TOOL,restore-rss]}") MB; recovery ${R[$DS,$TOOL,recovery]} s; data equal to the source: ${R[$DS,$TOOL,verified]}"
	# At most two copies of the data at a time: keep only a restore that differs.
	[ "${R[$DS,$TOOL,verified]}" = yes ] && rm -rf "$dir"
	return 0
}

# ---------------------------------------------------------------- report

mb() { awk -v b="${1:-0}" 'BEGIN {printf "%.0f", b / 1e6}'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { if (s + 0 > 0) printf "%.0f", b / 1e6 / s; else print "-" }'; }
# ratio A B: A / B with two decimals; verdicts compare this value, so 1.98 must not print (and pass) as 2.0
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
# verdict VALUE OP TARGET: met or MISSED (n/a without a value)
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "-" || v == "") print "n/a"; else if ((op == ">=" && v + 0 >= t) || (op == "<=" && v + 0 <= t) || (op == "<" && v + 0 < t)) print "met"; else print "MISSED" }'; }

label() {
	case $1 in
	walship) echo "walship (zstd, --jobs default $(nproc))" ;;
	pgbackrest-zst) echo "pgBackRest (zst level 1, process-max 2)" ;;
	pgbackrest-lz4) echo "pgBackRest (lz4, process-max 2)" ;;
	barman) echo "barman-cloud (--gzip)" ;;
	esac
}

report_dataset() {
	local ds=$1 t v bytes=${R[$1,bytes]}
	local what
	case $ds in
	pgbench) what="pgbench -i -s $SCALE" ;;
	random) what="uuid, md5 text and jsonb of random values" ;;
	esac
	echo
	echo "### Data set: $ds ($what): $(mb "$bytes") MB in ${R[$ds,files]} files (pg_wal left out)"
	echo
	echo "| tool | backup wall s | backup CPU s | backup MinIO CPU s | backup cores busy | backup peak RSS MB | stored MB | ratio | restore wall s | restore CPU s | restore MinIO CPU s | restore peak RSS MB | recovery s | data equal |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for t in walship pgbackrest-zst pgbackrest-lz4 barman; do
		has_tool "$t" || continue
		echo "| $(label "$t") | ${R[$ds,$t,backup-wall]:--} | ${R[$ds,$t,backup-cpu]:--} | ${R[$ds,$t,backup-store]:--} | $(busy "$ds" "$t" backup) | $(mbk "${R[$ds,$t,backup-rss]:-}") | $(mbq "${R[$ds,$t,stored]:-}") | $(ratio "$bytes" "${R[$ds,$t,stored]:-}")× | ${R[$ds,$t,restore-wall]:--} | ${R[$ds,$t,restore-cpu]:--} | ${R[$ds,$t,restore-store]:--} | $(mbk "${R[$ds,$t,restore-rss]:-}") | ${R[$ds,$t,recovery]:--} | ${R[$ds,$t,verified]:--} |"
	done
	echo
	echo "Backup cores busy: (the tool's CPU + MinIO's CPU) / (wall × $(nproc) cores). Near 100%, the run is bound by the machine's CPU: the tool can go faster only by spending less CPU, its own or the store's."
	echo
	echo "Physical limits on the same files:"
	echo
	echo "- cold read: ${R[$ds,cold]} s = $(rate "$bytes" "${R[$ds,cold]}") MB/s (${R[$ds,coldhow]})"
	echo "- walship's zstd (internal/codec: klauspost/compress SpeedFastest, 1 MiB window; bench/cmd/zstdspeed), one goroutine, files in the page cache: $(rate "${R[$ds,zin]}" "${R[$ds,zcpu]}") MB/s per CPU second ($(rate "${R[$ds,zin]}" "${R[$ds,zwall]}") MB/s by wall time: ${R[$ds,zwall]} s wall, ${R[$ds,zcpu]} s CPU), ratio $(ratio "${R[$ds,zin]}" "${R[$ds,zout]}")×"
	echo "- \`zstd -1 -T1\` (Debian's zstd $(zstd -V | grep -o 'v[0-9.]*')), files in the page cache: $(rate "$bytes" "${R[$ds,clicpu]}") MB/s per CPU second ($(rate "$bytes" "${R[$ds,cliwall]}") MB/s by wall time), ratio $(ratio "$bytes" "${R[$ds,cliout]}")×"
	echo "- writing a copy of the data directory to the same disk and syncing it (tar | tar, one file at a time, then sync -f; the files read from the page cache): ${R[$ds,write]} s = $(rate "$bytes" "${R[$ds,write]}") MB/s, a reference for the restores (which also make their files durable)"
	echo "- so on 2 cores, compressing with walship's zstd alone takes at least $(awk -v b="$bytes" -v r="$(rate "${R[$ds,zin]}" "${R[$ds,zcpu]}")" 'BEGIN { if (r + 0 > 0) printf "%.1f", b / 1e6 / r / 2; else print "-" }') s (both cores, no other load)"
	echo
	local w=${R[$ds,walship,backup-wall]:-} wr=${R[$ds,walship,restore-wall]:-} r peak
	echo "| target (walship vs, same run) | value | target | |"
	echo "|---|---:|---:|---|"
	r=$(ratio "${R[$ds,pgbackrest-zst,backup-wall]:-}" "$w")
	echo "| backup: pgBackRest zst wall / walship wall | ${r}× | ≥ 2× | $(verdict "$r" '>=' 2) |"
	r=$(ratio "${R[$ds,barman,backup-wall]:-}" "$w")
	echo "| backup: barman-cloud wall / walship wall | ${r}× | ≥ 10× | $(verdict "$r" '>=' 10) |"
	r=$(ratio "${R[$ds,pgbackrest-zst,restore-wall]:-}" "$wr")
	echo "| restore: pgBackRest zst wall / walship wall | ${r}× | ≥ 2× | $(verdict "$r" '>=' 2) |"
	r=$(ratio "$wr" "${R[$ds,write]}")
	echo "| restore: walship wall / writing a copy with tar (reference, no target) | ${r}× | - | - |"
	r=$(ratio "${R[$ds,pgbackrest-zst,restore-wall]:-}" "${R[$ds,write]}")
	echo "| restore: pgBackRest zst wall / writing a copy with tar (reference, no target) | ${r}× | - | - |"
	r=$(ratio "$w" "${R[$ds,cold]}")
	echo "| backup: walship wall / cold read of the data directory | ${r}× | ≤ 1.5× | $(verdict "$r" '<=' 1.5) |"
	peak=$(printf '%s\n' "${R[$ds,walship,backup-rss]:-0}" "${R[$ds,walship,restore-rss]:-0}" | sort -n | tail -1)
	v=$(awk -v k="$peak" 'BEGIN {printf "%.0f", k / 1024}')
	echo "| walship peak RSS (backup, restore) | $v MB | < 200 MB | $(verdict "$v" '<' 200) |"
}

# busy DS TOOL PHASE: how much of the machine's cores the tool and MinIO kept busy, in %.
busy() {
	awk -v w="${R[$1,$2,$3-wall]:-}" -v c="${R[$1,$2,$3-cpu]:-}" -v m="${R[$1,$2,$3-store]:-}" -v n="$(nproc)" \
		'BEGIN { if (w + 0 > 0 && c != "") printf "%.0f%%", 100 * (c + m) / (w * n); else print "-" }'
}
mbk() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}' || echo -; }
mbq() { [ -n "${1:-}" ] && mb "$1" || echo -; }

report() {
	local out
	out=$(
		echo "## walship backup benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo
		echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); PostgreSQL $("$PGBIN/postgres" -V | awk '{print $3}'), $(pgbackrest version), barman-cloud $(barman-cloud-backup --version 2>&1 | awk '{print $2}'), walship $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); one MinIO over HTTPS on loopback, on the same disk."
		echo "Other load on the machine: load average $LOAD0 when the run started; CPU pressure (PSI some) $(psi_since "$PSI0")% of the run's wall time, this benchmark's own work included."
		if [ "$CAN_DROP" = 1 ]; then
			echo "The page cache was dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every backup and every restore."
		else
			echo "The page cache was NOT dropped between runs (not permitted here, or BENCH_COLD=0): later runs may read from memory."
		fi
		echo
		echo "Wall, CPU (user + system, the tool and the processes it waited for) and peak RSS (of its largest process) from /usr/bin/time. Backup: from the command's start to its exit, including the checkpoint (each tool's fast/immediate option) and waiting for its last WAL segment where the tool does. Stored: the sum of the sizes of the backup's objects (not its WAL), listed in the bucket by bench/cmd/s3size. Ratio: data set size / stored. Restore: the tool's restore command into an empty directory; recovery: starting the restored server until it left recovery (fetching WAL with the tool's restore_command). Data equal: a count and hashtext sum of every row of every table matches the source."
		for ds in $DATASETS; do report_dataset "$ds"; done
	)
	publish_report "$out" backup-latest.md
}

# ---------------------------------------------------------------- main

main() {
	local started t
	started=$(date +%s)
	LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
	PSI0="$(now_us) $(psi_total)"
	install_deps
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	setup_work
	start_minio
	for t in $TOOLS; do make_bucket "$t"; done
	for DS in $DATASETS; do
		DS_DIR=$WORK/$DS PGDATA=$WORK/$DS/data
		mkdir -p "$DS_DIR"
		chown postgres: "$DS_DIR"
		make_dataset "$DS"
		physical_limits "$DS"
		for t in $TOOLS; do run_backup "$t"; done
		for t in $TOOLS; do
			[ "${R[$DS,$t,backup-wall]:-failed}" != failed ] && run_restore "$t"
		done
		pg_stop "$PGDATA"
		# The next data set needs the disk more than this one's files.
		[ -n "${BENCH_KEEP:-}" ] || rm -rf "$PGDATA" "$WORK/pgbackrest/spool-"*"-$DS"
	done
	report
	say "done in $(($(date +%s) - started)) s"
}

main "$@"
