#!/usr/bin/env bash
# bench/run.sh — archive and restore the same WAL with walship, pgBackRest and
# barman-cloud against one local MinIO (HTTPS), and print one table per workload.
# The method is described in bench/README.md.
#
#   bench/run.sh                      200 segments per workload (about 25 minutes on 2 busy cores)
#   BENCH_SEGMENTS=20 bench/run.sh    a quick smoke test
#
# Other knobs: BENCH_WORKLOADS="pgbench random", BENCH_TOOLS="walship walship-agent
# pgbackrest pgbackrest-async barman", BENCH_BARMAN_SEGMENTS=25 (barman-cloud
# takes seconds per segment, so it gets an evenly spread sample of the backlog),
# BENCH_PINGS=100, BENCH_KEEP=1 (keep the scratch directory),
# BENCH_TIMEOUT=1200 (seconds one archive run may take).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${BENCH_SEGMENTS:-200}
WORKLOADS=${BENCH_WORKLOADS:-pgbench random}
TOOLS=${BENCH_TOOLS:-walship walship-agent pgbackrest pgbackrest-async barman}
PINGS=${BENCH_PINGS:-100}
BARMAN_N=${BENCH_BARMAN_SEGMENTS:-25}
RUN_TIMEOUT=${BENCH_TIMEOUT:-1200}
PGBIN=/usr/lib/postgresql/15/bin
S3_KEY=benchadmin
S3_SECRET=benchadmin-secret
RESULTS=$ROOT/bench/results

WORK= MINIO_PID= AGENT_PID= SAMPLER_PID= PGDATA_UP=
declare -A R=() # results: R[workload,tool,metric]

# say, die, now_us, as_pg, install_deps, start_minio, make_bucket, psi_*
. "$ROOT/bench/lib.sh"
has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- setup

setup_work() {
	WORK=$(mktemp -d /tmp/walship-bench.XXXXXX)
	mkdir -p "$WORK"/{bin,home,sock,env,logs,certs,minio}
	cd "$ROOT"
	say "building walship"
	CGO_ENABLED=0 go build -o bin/walship ./cmd/walship
	# A private copy: others may rebuild bin/walship while the benchmark runs.
	cp bin/walship "$WORK/bin/walship"
	CGO_ENABLED=0 go build -o "$WORK/bin/zstdspeed" ./bench/cmd/zstdspeed
	WALSHIP=$WORK/bin/walship
	write_helpers
	chown -R postgres: "$WORK"
	chmod 755 "$WORK"
	cd "$WORK"
	say "scratch directory $WORK"
}

# write_helpers writes the two small scripts PostgreSQL and the restore loop call.
write_helpers() {
	# timed MEM LOG ENVFILE NAME CMD...: runs CMD with ENVFILE's variables and
	# appends "NAME start_us end_us exit_status -" to LOG. MEM=mem measures
	# CMD's peak RSS with /usr/bin/time, which appends "NAME - - - maxrss_kb"
	# to LOG.mem itself: no other process per call, whose CPU would be taken
	# from the tool measured.
	cat >"$WORK/bin/timed" <<'EOF'
#!/bin/bash
mem=$1 log=$2 envf=$3 name=$4
shift 4
. "$envf"
s=${EPOCHREALTIME/./}
if [ "$mem" = mem ]; then
	/usr/bin/time -a -o "$log.mem" -f "$name - - - %M" "$@"
else
	"$@"
fi
rc=$?
e=${EPOCHREALTIME/./}
echo "$name $s $e $rc -" >>"$log"
exit $rc
EOF
	# restore-loop DIR NAMES SRCWAL TIMED-ARGS... -- CMD...: calls CMD NAME
	# pg_wal/RECOVERYXLOG from DIR for each name in order, as recovery does,
	# checks the result against the original segment and removes it.
	cat >"$WORK/bin/restore-loop" <<'EOF'
#!/bin/bash
dir=$1 names=$2 src=$3
shift 3
timed=()
while [ "$1" != -- ]; do timed+=("$1"); shift; done
shift
cd "$dir" || exit 1
while read -r n <&3; do
	"${timed[@]}" "$n" "$@" "$n" pg_wal/RECOVERYXLOG </dev/null || { echo "restore-loop: fetching $n failed" >&2; exit 1; }
	cmp -s pg_wal/RECOVERYXLOG "$src/$n" || { echo "restore-loop: restored $n differs from the original" >&2; exit 1; }
	rm -f pg_wal/RECOVERYXLOG
done 3<"$names"
EOF
	# copy-fetch SRC NAME DEST: the cheapest restore_command there is, a local
	# copy of the uncompressed segment: the floor of the restore column.
	printf '#!/bin/sh\nexec cp "$1/$2" "$3"\n' >"$WORK/bin/copy-fetch"
	# copy-push DIR PATH: the cheapest archive_command, a local copy.
	printf '#!/bin/sh\nexec cp "$2" "$1/"\n' >"$WORK/bin/copy-push"
	chmod 755 "$WORK/bin/timed" "$WORK/bin/restore-loop" "$WORK/bin/copy-fetch" "$WORK/bin/copy-push"
}

cleanup() {
	local rc=$?
	set +e
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
	[ -n "$PGDATA_UP" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA_UP" -m immediate stop >/dev/null 2>&1
	[ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null
	finish_work "$rc"
	exit "$rc"
}

# ---------------------------------------------------------------- PostgreSQL

pg_start() {
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WL_DIR/pg.log" -w -t 120 start >/dev/null ||
		die "PostgreSQL did not start: $(tail -5 "$WL_DIR/pg.log")"
	PGDATA_UP=$PGDATA
}

pg_stop() {
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 300 stop >/dev/null
	PGDATA_UP=
}

sql() { as_pg "$PGBIN/psql" -h "$WORK/sock" -X -q -At -v ON_ERROR_STOP=1 -d postgres -c "$1"; }

# set_archive_command CMD: the only setting that changes between runs.
set_archive_command() {
	echo "archive_command = '$1'" >"$PGDATA/bench-archive.conf"
	chown postgres: "$PGDATA/bench-archive.conf"
}

ready_count() { find "$PGDATA/pg_wal/archive_status" -name '*.ready' | wc -l; }

init_cluster() {
	as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync >"$WL_DIR/initdb.log"
	local keep_mb=$((N * 16 * 3 + 4096))
	cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$WORK/sock'
port = 5432
shared_buffers = 512MB
synchronous_commit = off
archive_mode = on
# Nothing is recycled: every run archives the same backlog from the same files.
wal_keep_size = ${keep_mb}MB
max_wal_size = ${keep_mb}MB
checkpoint_timeout = 1h
include 'bench-archive.conf'
EOF
	# Empty archive_command with archive_mode=on: segments stay .ready.
	set_archive_command ""
}

# make_backlog WORKLOAD: a stopped cluster in $PGDATA whose first $N finished
# segments are listed in $WL_DIR/backlog (the files every run archives).
make_backlog() {
	local wl=$1 t0
	t0=$(now_us)
	init_cluster
	pg_start
	say "$wl: generating at least $N segments of WAL"
	case $wl in
	pgbench)
		as_pg "$PGBIN/pgbench" -h "$WORK/sock" -i -q -s $((N / 8 > 10 ? N / 8 : 10)) postgres >"$WL_DIR/pgbench-init.log" 2>&1
		# Checkpoints between short runs make pgbench write full-page images,
		# as a busy server does, which fills segments quickly.
		while [ "$(ready_count)" -le "$N" ]; do
			sql checkpoint
			as_pg "$PGBIN/pgbench" -h "$WORK/sock" -n -c 4 -j 2 -T 5 postgres >>"$WL_DIR/pgbench-run.log" 2>&1
		done
		;;
	random)
		sql "create extension pgcrypto"
		sql "create table noise (id bigserial primary key, u uuid, t text, b bytea, n float8)"
		# uuids, hex text and random bytes: WAL that compresses far less than pgbench's.
		while [ "$(ready_count)" -le "$N" ]; do
			sql "insert into noise (u, t, b, n)
			     select gen_random_uuid(), md5(random()::text) || md5(random()::text),
			            gen_random_bytes(200), random()
			     from generate_series(1, 100000)"
		done
		;;
	*) die "unknown workload $wl" ;;
	esac
	sql "select pg_switch_wal()" >/dev/null
	sleep 1
	(cd "$PGDATA/pg_wal/archive_status" && ls | sed -n 's/^\([0-9A-F]\{24\}\)\.ready$/\1/p' | sort | head -n "$N") >"$WL_DIR/backlog"
	[ "$(wc -l <"$WL_DIR/backlog")" -eq "$N" ] || die "$wl: only $(wc -l <"$WL_DIR/backlog") segments are ready"
	# barman-cloud archives and restores every STRIDE-th segment of the backlog.
	local stride=$(((N + BARMAN_N - 1) / BARMAN_N))
	awk -v s="$stride" '(NR - 1) % s == 0' "$WL_DIR/backlog" >"$WL_DIR/sample"
	R[$wl,barman,stride]=$stride
	if has_tool pgbackrest || has_tool pgbackrest-async; then pgbackrest_stanzas "$wl"; fi
	pg_stop
	chown postgres: "$WL_DIR"/backlog "$WL_DIR"/sample
	R[$wl,first]=$(head -1 "$WL_DIR/backlog")
	R[$wl,last]=$(tail -1 "$WL_DIR/backlog")
	say "$wl: backlog ${R[$wl,first]} .. ${R[$wl,last]} ready in $(((($(now_us) - t0)) / 1000000)) s"
}

# segments TOOL: the file listing the segments TOOL archives and restores.
segments() { if [ "$1" = barman ]; then echo "$WL_DIR/sample"; else echo "$WL_DIR/backlog"; fi; }

# reset_status LIST: LIST's segments back to .ready, every other one .done, and
# walship's own state (journal, identity cache, spool) gone, so each run starts alike.
reset_status() {
	local st=$PGDATA/pg_wal/archive_status f n want
	local -A wanted=()
	while read -r n; do wanted[$n]=1; done <"$1"
	for f in "$st"/*; do
		[ -e "$f" ] || continue
		n=${f##*/}
		n=${n%.*}
		want=done
		[ -n "${wanted[$n]:-}" ] && want=ready
		[ "$f" = "$st/$n.$want" ] || mv "$f" "$st/$n.$want"
	done
	rm -rf "$PGDATA/pg_wal/walship"
}

# ---------------------------------------------------------------- tools

# env_file TOOL WORKLOAD: writes the variables TOOL needs and prints the path.
env_file() { write_env "$WORK/env/$1-$2.env" "$1" "$1" "$2"; }

# pgbackrest_conf MODE WORKLOAD: one configuration per bucket; prints its path.
pgbackrest_conf() {
	local mode=$1 wl=$2 f=$WORK/env/pgbackrest-$1-$2.conf bucket=pgbackrest
	[ "$mode" = async ] && bucket=pgbackrest-async
	{
		pgbackrest_global "$bucket" "/$wl" "$WORK/pgbackrest/spool-$mode-$wl"
		echo compress-type=zst
		[ "$mode" = async ] && printf 'archive-async=y\nprocess-max=2\n'
		printf '\n[bench]\npg1-path=%s\npg1-socket-path=%s\npg1-port=5432\n' "$PGDATA" "$WORK/sock"
	} >"$f"
	chown -R postgres: "$f" "$WORK/pgbackrest"
	echo "$f"
}

pgbackrest_stanzas() {
	local mode
	for mode in sync async; do
		if [ $mode = sync ]; then has_tool pgbackrest || continue; else has_tool pgbackrest-async || continue; fi
		as_pg pgbackrest --config="$(pgbackrest_conf $mode "$1")" --stanza=bench stanza-create >>"$WORK/logs/pgbackrest-stanza.log" 2>&1 ||
			die "pgBackRest stanza-create ($mode, $1) failed: $(tail -5 "$WORK/logs/pgbackrest-stanza.log")"
	done
}

# push_cmd TOOL WORKLOAD: the command archive_command runs, before %p.
push_cmd() {
	case $1 in
	walship | walship-agent) echo "$WALSHIP wal-push" ;;
	pgbackrest) echo "pgbackrest --config=$WORK/env/pgbackrest-sync-$2.conf --stanza=bench archive-push" ;;
	pgbackrest-async) echo "pgbackrest --config=$WORK/env/pgbackrest-async-$2.conf --stanza=bench archive-push" ;;
	barman) echo "barman-cloud-wal-archive --gzip --endpoint-url $ENDPOINT s3://barman/$2 bench" ;;
	copy) echo "$WORK/bin/copy-push $WL_DIR/copy-archive" ;;
	esac
}

# fetch_cmd TOOL WORKLOAD DIR: the command restore_command runs, before %f %p.
fetch_cmd() {
	case $1 in
	walship) echo "$WALSHIP wal-fetch" ;;
	pgbackrest) echo "pgbackrest --config=$WORK/env/pgbackrest-sync-$2.conf --stanza=bench --pg1-path=$3 archive-get" ;;
	pgbackrest-async) echo "pgbackrest --config=$WORK/env/pgbackrest-async-$2.conf --stanza=bench --pg1-path=$3 archive-get" ;;
	barman) echo "barman-cloud-wal-restore --endpoint-url $ENDPOINT s3://barman/$2 bench" ;;
	copy) echo "$WORK/bin/copy-fetch $PGDATA/pg_wal" ;;
	esac
}

start_agent() {
	local envf=$1
	local pidf=$WL_DIR/agent.pid
	rm -f "$pidf"
	# The agent writes its own pid: $! would be a subshell's.
	as_pg bash -c "echo \$\$ >'$pidf'; . '$envf'; exec '$WALSHIP' agent --pgdata '$PGDATA'" >"$WL_DIR/agent.log" 2>&1 &
	for _ in $(seq 100); do
		[ -z "$AGENT_PID" ] && [ -s "$pidf" ] && AGENT_PID=$(cat "$pidf")
		[ -n "$AGENT_PID" ] && [ -S "$PGDATA/pg_wal/walship/agent.sock" ] && return
		[ -n "$AGENT_PID" ] && ! kill -0 "$AGENT_PID" 2>/dev/null && die "walship agent exited: $(tail -5 "$WL_DIR/agent.log")"
		sleep 0.1
	done
	die "walship agent did not open its socket"
}

stop_agent() {
	R[$WL,walship-agent,rss]=$(awk '/^VmHWM/ {print $2}' "/proc/$AGENT_PID/status")
	kill "$AGENT_PID"
	for _ in $(seq 100); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
	AGENT_PID=
}

# ---------------------------------------------------------------- measuring

# stats LOG: "p50 p95 mean count" of call durations in ms.
stats() {
	awk '{print ($3 - $2) / 1000}' "$1" | sort -n | awk '
		{ a[NR] = $1; s += $1 }
		END {
			if (NR == 0) { print "- - - 0"; exit }
			i50 = int(0.50 * NR + 0.9999); i95 = int(0.95 * NR + 0.9999)
			printf "%.1f %.1f %.1f %d\n", a[i50], a[i95], s / NR, NR
		}'
}

# CPU accounting, in clock ticks (proc_ticks and TICK_MS: lib.sh): the whole
# machine's busy time, and MinIO's own. Per segment, they say where the time
# goes and what the store itself costs every tool alike.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
cpu_start() { CPU0="$(busy_ticks) $(proc_ticks "$MINIO_PID")"; }
cpu_stop() { # cpu_stop KEY SEGMENTS: R[KEY,cpu] and R[KEY,miniocpu] in ms per segment
	local b0 m0 b1 m1
	read -r b0 m0 <<<"$CPU0"
	b1=$(busy_ticks) m1=$(proc_ticks "$MINIO_PID")
	R[$1,cpu]=$(awk -v d=$((b1 - b0)) -v n="$2" -v t="$TICK_MS" 'BEGIN {printf "%.0f", d * t / n}')
	R[$1,miniocpu]=$(awk -v d=$((m1 - m0)) -v n="$2" -v t="$TICK_MS" 'BEGIN {printf "%.0f", d * t / n}')
}

# measure_compression DIR: the CPU that compressing the backlog costs on one
# core, with nothing else (no reading from disk: the segments were just
# written there, so they are in the page cache): walship's zstd
# (bench/cmd/zstdspeed, one object per segment) and Debian's zstd -1.
# Sets R[$WL,zstd] and R[$WL,zstdc] in CPU ms per segment.
measure_compression() {
	local n user sys cpu
	n=$(find "$1" -type f | wc -l)
	[ "$n" -gt 0 ] || return 0
	read -r _ _ _ cpu <<<"$("$WORK/bin/zstdspeed" -skip '' "$1")"
	R[$WL,zstd]=$(awk -v c="$cpu" -v n="$n" 'BEGIN {printf "%.0f", c * 1000 / n}')
	# zstd reads the files itself (one frame each): a cat in front would add
	# its own copying to the time.
	/usr/bin/time -f '%U %S' -o "$WORK/logs/$WL-zstd-cli.time" zstd -1 -T1 -q -c "$1"/* >/dev/null
	read -r user sys <"$WORK/logs/$WL-zstd-cli.time"
	R[$WL,zstdc]=$(awk -v u="$user" -v s="$sys" -v n="$n" 'BEGIN {printf "%.0f", (u + s) * 1000 / n}')
	say "$WL: compressing one segment on one core: walship's zstd ${R[$WL,zstd]} ms, zstd -1 ${R[$WL,zstdc]} ms of CPU"
}

max_rss_kb() { awk '$5 != "-" && $5 > m {m = $5} END {print m + 0}' "$@"; }

# wait_archived LIST: until PostgreSQL has seen every segment of LIST archived.
# Shell built-ins only, apart from sleep: the CPU this loop takes is taken
# from the tool being measured.
wait_archived() {
	local deadline=$((EPOCHSECONDS + RUN_TIMEOUT)) names i=0
	mapfile -t names <"$1"
	while :; do
		while [ "$i" -lt "${#names[@]}" ] && [ -e "$PGDATA/pg_wal/archive_status/${names[$i]}.done" ]; do
			i=$((i + 1))
		done
		[ "$i" -ge "${#names[@]}" ] && return 0
		[ "$EPOCHSECONDS" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

# run_archive TOOL: archive the backlog with TOOL and record the numbers.
run_archive() {
	local tool=$1 envf log t0 t1 mem=- calls list n
	envf=$(env_file "$tool" "$WL")
	list=$(segments "$tool")
	n=$(wc -l <"$list")
	log=$WORK/logs/$WL-$tool-push.log
	: >"$log"
	: >"$log.mem"
	chown postgres: "$log" "$log.mem"
	[[ $tool == walship* ]] && mem=mem
	if [ "$tool" = copy ]; then
		rm -rf "$WL_DIR/copy-archive"
		mkdir -p "$WL_DIR/copy-archive"
		chown postgres: "$WL_DIR/copy-archive"
	fi
	reset_status "$list"
	set_archive_command "$WORK/bin/timed $mem $log $envf %f $(push_cmd "$tool" "$WL") %p"
	say "$WL: archiving $n segments with $tool"
	t0=$(now_us)
	cpu_start
	[ "$tool" = walship-agent ] && start_agent "$envf"
	pg_start
	local archived=0
	wait_archived "$list" && archived=1
	cpu_stop "$WL,$tool" "$n"
	if [ "$archived" = 0 ]; then
		say "$WL/$tool: not done after $RUN_TIMEOUT s; see $log and $WL_DIR/pg.log"
		R[$WL,$tool,sps]=timeout
	else
		# The last backlog segment PostgreSQL saw archived, from the shim's clock.
		t1=$(grep -Ff "$list" "$log" | awk '$4 == 0 && $3 > m {m = $3} END {print m}')
		R[$WL,$tool,sps]=$(awk -v n="$n" -v d=$((t1 - t0)) 'BEGIN {printf "%.2f", n / (d / 1e6)}')
		R[$WL,$tool,secs]=$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.1f", d / 1e6}')
	fi
	grep -Ff "$list" "$log" >"$log.backlog" || true
	read -r "R[$WL,$tool,p50]" "R[$WL,$tool,p95]" _ calls < <(stats "$log.backlog")
	R[$WL,$tool,fails]=$(awk '$4 != 0' "$log.backlog" | wc -l)
	[ "$mem" = mem ] && R[$WL,$tool,pushrss]=$(max_rss_kb "$log.mem")
	# Size on MinIO's disk against 16 MiB per segment: the compression achieved.
	[ "$tool" = copy ] || R[$WL,$tool,ratio]=$(du -sk "$WORK/minio/$tool/$WL" | awk -v n="$n" '{printf "%.2f", n * 16384 / $1}')
	[ "$tool" = walship-agent ] && ping_agent "$envf"
	pg_stop
	[ "$tool" = walship-agent ] && stop_agent
	say "$WL/$tool: ${R[$WL,$tool,sps]} segments/s, archive_command p50 ${R[$WL,$tool,p50]} ms p95 ${R[$WL,$tool,p95]} ms ($calls calls, ${R[$WL,$tool,fails]} failed)"
}

# ping_agent: wal-push of segments the agent already shipped, as PostgreSQL
# would call it again after a crash: the thin client's own latency.
ping_agent() {
	local envf=$1 log=$WORK/logs/$WL-agent-ping.log i=0 n
	: >"$log"
	chown postgres: "$log"
	while [ "$i" -lt "$PINGS" ]; do
		while read -r n <&3 && [ "$i" -lt "$PINGS" ]; do
			(cd "$PGDATA" && as_pg "$WORK/bin/timed" - "$log" "$envf" "$n" "$WALSHIP" wal-push "pg_wal/$n" </dev/null) ||
				say "$WL: agent wal-push of $n failed"
			i=$((i + 1))
		done 3<"$WL_DIR/backlog"
	done
	read -r "R[$WL,ping,p50]" "R[$WL,ping,p95]" _ _ < <(stats "$log")
	say "$WL: wal-push via the agent for shipped segments: p50 ${R[$WL,ping,p50]} ms p95 ${R[$WL,ping,p95]} ms"
	# The floor: the same shim starting /bin/true. Starting any process
	# costs this much on the machine; the rest is walship's own.
	local floor=$WORK/logs/$WL-process-floor.log
	: >"$floor"
	chown postgres: "$floor"
	for ((i = 0; i < PINGS; i++)); do
		(cd "$PGDATA" && as_pg "$WORK/bin/timed" - "$floor" "$envf" true /bin/true </dev/null)
	done
	read -r "R[$WL,floor,p50]" "R[$WL,floor,p95]" _ _ < <(stats "$floor")
}

# sample_rss LOG: records the peak RSS (VmHWM) of every walship wal-fetch
# process, the detached prefetchers included, until killed. VmHWM is the
# peak since the process started, so a sample every quarter second misses
# nothing of a prefetcher (it idles 2 s before it exits); sampling every
# 50 ms cost 6% of the machine's CPU (pgrep), taken from walship's restore.
sample_rss() {
	local pid k v _
	while :; do
		for pid in $(pgrep -f -- "$WALSHIP wal-fetch" || true); do
			while read -r k v _; do
				[ "$k" = VmHWM: ] && echo "x 0 0 0 $v" >>"$1"
			done 2>/dev/null <"/proc/$pid/status" || true
		done
		sleep 0.25
	done
}


# run_restore TOOL: fetch the backlog in WAL order, one call per segment.
run_restore() {
	local tool=$1 envf log dir mem=- rc=0 list
	envf=$(env_file "$tool" "$WL")
	list=$(segments "$tool")
	[ "$tool" = walship ] && mem=mem
	log=$WORK/logs/$WL-$tool-fetch.log
	dir=$WL_DIR/restore-$tool
	rm -rf "$dir"
	mkdir -p "$dir/global" "$dir/pg_wal"
	cp "$PGDATA/PG_VERSION" "$dir/"
	cp "$PGDATA/global/pg_control" "$dir/global/"
	: >"$log"
	: >"$log.mem"
	chown -R postgres: "$dir" "$log" "$log.mem"
	say "$WL: restoring $(wc -l <"$list") segments with $tool"
	if [ "$tool" = walship ]; then
		sample_rss "$log.rss" &
		SAMPLER_PID=$!
	fi
	cpu_start
	# shellcheck disable=SC2046 # fetch_cmd's words are the command line
	as_pg "$WORK/bin/restore-loop" "$dir" "$list" "$PGDATA/pg_wal" \
		"$WORK/bin/timed" "$mem" "$log" "$envf" -- $(fetch_cmd "$tool" "$WL" "$dir") || rc=$?
	cpu_stop "$WL,$tool,fetch" "$(wc -l <"$list")"
	if [ "$tool" = walship ]; then
		stop_prefetchers
		kill "$SAMPLER_PID"
		wait "$SAMPLER_PID" 2>/dev/null || true
		SAMPLER_PID=
		R[$WL,walship,fetchrss]=$(max_rss_kb "$log.mem" "$log.rss")
	fi
	if [ "$rc" -ne 0 ]; then
		say "$WL/$tool: restore FAILED (see $log)"
		R[$WL,$tool,fetch]=failed
		return
	fi
	read -r "R[$WL,$tool,fetch50]" "R[$WL,$tool,fetch95]" "R[$WL,$tool,fetch]" _ < <(stats "$log")
	say "$WL/$tool: ${R[$WL,$tool,fetch]} ms per segment (p50 ${R[$WL,$tool,fetch50]}, p95 ${R[$WL,$tool,fetch95]})"
	rm -rf "$dir"
}

# ---------------------------------------------------------------- report

mb() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}' || echo -; }
# ratio A B: A / B with two decimals; verdicts compare this value, so 1.98 must not print (and pass) as 2.0
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
verdict() { # verdict RATIO TARGET
	[ "$2" = - ] && { echo "-"; return; }
	awk -v r="$1" -v t="$2" 'BEGIN { if (r == "-") print "n/a"; else if (r + 0 >= t) print "met"; else print "MISSED" }'
}

report_workload() {
	local wl=$1 t best bestname sps rss label
	echo
	echo "### Workload: $wl ($N segments of 16 MiB, ${R[$wl,first]} .. ${R[$wl,last]})"
	echo
	echo "| tool | archive seg/s | archive_command p50 ms | p95 ms | archive CPU ms/seg (all / MinIO) | restore ms/segment | restore p95 ms | restore CPU ms/seg (all / MinIO) | compression | walship peak RSS MB |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for t in walship walship-agent pgbackrest pgbackrest-async barman; do
		has_tool "$t" || continue
		case $t in
		walship)
			label="walship wal-push (parallel 4) / wal-fetch (prefetch 8)"
			rss="push $(mb "${R[$wl,walship,pushrss]:-}"), fetch $(mb "${R[$wl,walship,fetchrss]:-}")"
			;;
		walship-agent)
			label="walship agent + wal-push client"
			rss="agent $(mb "${R[$wl,walship-agent,rss]:-}"), client $(mb "${R[$wl,walship-agent,pushrss]:-}")"
			;;
		pgbackrest) label="pgBackRest sync (zst)" rss= ;;
		pgbackrest-async) label="pgBackRest async, process-max 2 (zst)" rss= ;;
		barman)
			label="barman-cloud (gzip)"
			[ "${R[$wl,barman,stride]}" -gt 1 ] && label+=", every ${R[$wl,barman,stride]}th segment ($(wc -l <"$WORK/$wl/sample"))"
			rss=
			;;
		esac
		echo "| $label | ${R[$wl,$t,sps]:--} | ${R[$wl,$t,p50]:--} | ${R[$wl,$t,p95]:--} | ${R[$wl,$t,cpu]:--} / ${R[$wl,$t,miniocpu]:--} | ${R[$wl,$t,fetch]:--} | ${R[$wl,$t,fetch95]:--} | ${R[$wl,$t,fetch,cpu]:--} / ${R[$wl,$t,fetch,miniocpu]:--} | ${R[$wl,$t,ratio]:--}× | ${rss:--} |"
	done
	best=0 bestname=-
	for t in walship walship-agent; do
		sps=${R[$wl,$t,sps]:-0}
		if awk -v a="$sps" -v b="$best" 'BEGIN {exit !(a + 0 > b + 0)}'; then best=$sps bestname=$t; fi
	done
	echo
	echo "process start floor on this machine (/bin/true through the same shim): p50 ${R[$wl,floor,p50]:--} ms, p95 ${R[$wl,floor,p95]:--} ms"
	echo
	echo "archive floor on this machine (cp of each segment to a local folder, through the same shim): ${R[$wl,copy,sps]:--} segments/s, CPU ${R[$wl,copy,cpu]:--} ms per segment"
	echo
	echo "restore floor on this machine (cp of the uncompressed segment from a local folder, through the same shim and loop): ${R[$wl,copy,fetch]:--} ms per segment (p95 ${R[$wl,copy,fetch95]:--} ms), CPU ${R[$wl,copy,fetch,cpu]:--} ms per segment"
	echo
	# What 3× pgBackRest async would leave per segment, against two costs
	# every zstd-compressing archiver pays on this machine.
	if [ -n "${R[$wl,zstdc]:-}" ] && [ -n "${R[$wl,pgbackrest-async,sps]:-}" ]; then
		local budget
		budget=$(awk -v s="${R[$wl,pgbackrest-async,sps]}" -v c="$(nproc)" 'BEGIN {printf "%.0f", c * 1000 / (3 * s)}')
		echo "compressing alone, one core, files in the page cache: walship's zstd ${R[$wl,zstd]} ms of CPU per segment, Debian's \`zstd -1\` ${R[$wl,zstdc]} ms. Archiving at 3× pgBackRest async ($(awk -v s="${R[$wl,pgbackrest-async,sps]}" 'BEGIN {printf "%.1f", 3 * s}') segments/s) leaves $(nproc) × 1000 / that = $budget ms of machine CPU per segment; MinIO alone used ${R[$wl,walship-agent,miniocpu]:--} ms per segment storing walship's objects, and \`zstd -1\` needs ${R[$wl,zstdc]}: $(awk -v b="$budget" -v m="${R[$wl,walship-agent,miniocpu]:-0}" -v z="${R[$wl,zstdc]}" 'BEGIN { r = b - m - z; if (r <= 0) printf "%d ms over budget before reading, hashing or sending a byte", -r; else printf "%d ms left for reading, hashing, sending and everything else", r }')."
		echo
	fi
	echo "walship agent, wal-push of an already shipped segment: p50 ${R[$wl,ping,p50]:--} ms, p95 ${R[$wl,ping,p95]:--} ms (target p95 < 20 ms: $(awk -v p="${R[$wl,ping,p95]:-}" 'BEGIN { if (p == "") print "n/a"; else if (p + 0 < 20) print "met"; else print "MISSED" }'))"
	echo
	echo "| walship ($bestname for archive) vs | archive throughput | target | | restore speed | target | |"
	echo "|---|---:|---:|---|---:|---:|---|"
	local other at rt ar rr
	for other in pgbackrest-async pgbackrest barman; do
		has_tool "$other" || continue
		case $other in
		pgbackrest-async) at=3 rt=3 ;;
		pgbackrest) at=- rt=3 ;;
		barman) at=20 rt=3 ;;
		esac
		ar=$(ratio "$best" "${R[$wl,$other,sps]:-}")
		rr=$(ratio "${R[$wl,$other,fetch]:-}" "${R[$wl,walship,fetch]:-}")
		echo "| $other | ${ar}× | $([ "$at" = - ] && echo - || echo "≥${at}×") | $(verdict "$ar" "$at") | ${rr}× | ≥${rt}× | $(verdict "$rr" "$rt") |"
	done
	local peak
	peak=$(printf '%s\n' "${R[$wl,walship,pushrss]:-0}" "${R[$wl,walship,fetchrss]:-0}" "${R[$wl,walship-agent,rss]:-0}" "${R[$wl,walship-agent,pushrss]:-0}" | sort -n | tail -1)
	echo
	echo "walship peak RSS (any wal-push, wal-fetch, prefetcher or agent): $(mb "$peak") MB (target < 150 MB: $(awk -v k="$peak" 'BEGIN { print (k / 1024 < 150) ? "met" : "MISSED" }'))"
}

report() {
	local out
	out=$(
		echo "## walship benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo
		echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); PostgreSQL $("$PGBIN/postgres" -V | awk '{print $3}'), $(pgbackrest version), barman-cloud $(barman-cloud-wal-archive --version 2>&1 | awk '{print $2}'), walship $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); one MinIO over HTTPS on loopback."
		echo "Other load on the machine: load average $LOAD0 when the run started; CPU pressure (PSI some) $(psi_since "$PSI0")% of the run's wall time, this benchmark's own work included."
		echo
		echo "Archive: segments / wall time from turning the tool on to PostgreSQL seeing the last segment archived. Restore: mean time of one restore_command call, in WAL order. Compression: 16 MiB per segment / bytes on MinIO's disk. CPU: busy time of the whole machine (every process, other load included) and of MinIO alone, per segment, during the archive or restore run; with $(nproc) cores no tool can go faster than $(nproc) × 1000 / CPU-per-segment segments per second."
		for wl in $WORKLOADS; do report_workload "$wl"; done
	)
	publish_report "$out" latest.md
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
	for WL in $WORKLOADS; do
		WL_DIR=$WORK/$WL PGDATA=$WORK/$WL/data
		mkdir -p "$WL_DIR"
		chown postgres: "$WL_DIR"
		make_backlog "$WL"
		for t in $TOOLS; do run_archive "$t"; done
		for t in walship pgbackrest pgbackrest-async barman; do
			has_tool "$t" && [ "${R[$WL,$t,sps]:-timeout}" != timeout ] && run_restore "$t"
		done
		# The floors: the cheapest archive_command and restore_command there
		# are, local copies, through the same shim.
		if has_tool walship; then
			run_archive copy
			run_restore copy
			measure_compression "$WL_DIR/copy-archive"
		fi
		# The next workload needs the disk more than this one's files.
		[ -n "${BENCH_KEEP:-}" ] || rm -rf "$PGDATA" "$WL_DIR/copy-archive" "$WORK/pgbackrest/spool-"*"-$WL"
	done
	report
	say "done in $(($(date +%s) - started)) s"
}

main "$@"
