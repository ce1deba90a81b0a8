# bench/lib.sh — setup shared by bench/run.sh (WAL archive and restore) and
# bench/backup.sh (base backup and restore): logging, running as postgres,
# installing the tools, one HTTPS MinIO, CPU pressure. Sourced, not run; the
# functions use the caller's ROOT, WORK, PGBIN, S3_KEY and S3_SECRET and set
# CERT, PORT, ENDPOINT and MINIO_PID.
# shellcheck shell=bash

say() { echo "bench: $*" >&2; }
die() {
	say "FAILED: $*"
	exit 1
}
now_us() { echo "${EPOCHREALTIME/./}"; }

# as_pg runs a command as the postgres user, which PostgreSQL and therefore
# every archive_command and restore_command run as. setpriv execs (no fork),
# so $! of a background as_pg is the program's own pid.
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- env HOME="$WORK/home" "$@"; }

# ---------------------------------------------------------------- setup

install_deps() {
	local missing=()
	command -v pgbackrest >/dev/null || missing+=(pgbackrest)
	command -v barman-cloud-wal-archive >/dev/null || missing+=(barman-cli-cloud)
	[ -x /usr/bin/time ] || missing+=(time)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v curl >/dev/null || missing+=(curl)
	command -v zstd >/dev/null || missing+=(zstd)
	[ -x "$PGBIN/pgbench" ] || missing+=(postgresql-15 postgresql-contrib)
	if [ "${#missing[@]}" -gt 0 ]; then
		[ "$(id -u)" -eq 0 ] || die "run as root (needs apt-get install ${missing[*]}, and runs PostgreSQL as user postgres)"
		say "installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	fi
	[ "$(id -u)" -eq 0 ] || die "run as root: PostgreSQL and the tools run as user postgres through setpriv"
	id postgres >/dev/null 2>&1 || die "no 'postgres' user; install postgresql-15"
}

# ---------------------------------------------------------------- MinIO

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		ss -Htln "sport = :$p" | grep -q . || {
			echo "$p"
			return
		}
	done
}

start_minio() {
	local minio
	minio=$("$ROOT/scripts/ensure-minio.sh")
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
		-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
		-keyout "$WORK/certs/private.key" -out "$WORK/certs/public.crt" 2>/dev/null
	chmod 644 "$WORK/certs/public.crt"
	CERT=$WORK/certs/public.crt
	PORT=$(free_port)
	ENDPOINT=https://127.0.0.1:$PORT
	MINIO_ROOT_USER=$S3_KEY MINIO_ROOT_PASSWORD=$S3_SECRET MINIO_BROWSER=off \
		"$minio" server "$WORK/minio" --address "127.0.0.1:$PORT" \
		--console-address "127.0.0.1:$(free_port)" --certs-dir "$WORK/certs" \
		>"$WORK/logs/minio.log" 2>&1 &
	MINIO_PID=$!
	for _ in $(seq 100); do
		curl -sf --cacert "$CERT" "$ENDPOINT/minio/health/live" && break
		kill -0 "$MINIO_PID" 2>/dev/null || die "MinIO exited: $(tail -5 "$WORK/logs/minio.log")"
		sleep 0.2
	done
	curl -sf --cacert "$CERT" "$ENDPOINT/minio/health/live" || die "MinIO did not become ready on $ENDPOINT"
	say "MinIO on $ENDPOINT (HTTPS, self-signed)"
}

make_bucket() {
	curl -sSf --cacert "$CERT" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_KEY:$S3_SECRET" \
		-X PUT "$ENDPOINT/$1" >/dev/null || die "could not create bucket $1"
}

# write_env FILE TOOL BUCKET PREFIX: the variables TOOL's commands need to
# reach MinIO; prints FILE. pgBackRest reads its configuration file instead.
write_env() {
	local f=$1
	case $2 in
	walship*)
		cat >"$f" <<EOF
export WALSHIP_REPO=s3://$3/$4 WALSHIP_S3_ENDPOINT=$ENDPOINT WALSHIP_S3_PATH_STYLE=true
export WALSHIP_S3_REGION=us-east-1 WALSHIP_S3_CA_FILE=$CERT
export AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_EC2_METADATA_DISABLED=true
EOF
		;;
	barman)
		cat >"$f" <<EOF
export AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_DEFAULT_REGION=us-east-1
export AWS_CA_BUNDLE=$CERT AWS_EC2_METADATA_DISABLED=true
EOF
		;;
	*) : >"$f" ;;
	esac
	chown postgres: "$f"
	echo "$f"
}

# pgbackrest_global BUCKET PATH SPOOL: the [global] lines of a pgBackRest
# configuration that reach MinIO; the callers add compression and the rest.
pgbackrest_global() {
	mkdir -p "$WORK/pgbackrest/log" "$WORK/pgbackrest/lock" "$3"
	cat <<EOF
[global]
repo1-type=s3
repo1-s3-bucket=$1
repo1-path=$2
repo1-s3-endpoint=localhost
repo1-storage-port=$PORT
repo1-storage-ca-file=$CERT
repo1-s3-uri-style=path
repo1-s3-region=us-east-1
repo1-s3-key=$S3_KEY
repo1-s3-key-secret=$S3_SECRET
log-path=$WORK/pgbackrest/log
lock-path=$WORK/pgbackrest/lock
spool-path=$3
log-level-console=warn
log-level-file=info
EOF
}

# stop_prefetchers waits for the detached prefetchers of walship wal-fetch
# (they stop once recovery is over), then ends any left, by pid.
stop_prefetchers() {
	local pids p
	for _ in $(seq 100); do
		pids=$(pgrep -f -- "$WORK/bin/walship wal-fetch" || true)
		[ -z "$pids" ] && return
		sleep 0.1
	done
	for p in $pids; do kill "$p" 2>/dev/null || true; done
}

# finish_work RC: the end of both benchmarks' cleanup: prefetchers, MinIO,
# and the scratch directory, kept when the run failed or BENCH_KEEP is set.
finish_work() {
	[ -n "$WORK" ] && stop_prefetchers
	[ -n "$MINIO_PID" ] && kill "$MINIO_PID" 2>/dev/null && wait "$MINIO_PID" 2>/dev/null
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ "$1" -ne 0 ] || [ -n "${BENCH_KEEP:-}" ]; then
			say "kept $WORK (logs in $WORK/logs and the data sets' folders)"
		else
			rm -rf "$WORK"
		fi
	fi
}

# publish_report TEXT FILE: writes a benchmark's report under bench/results
# and prints it.
publish_report() {
	mkdir -p "$RESULTS"
	echo "$1" >"$RESULTS/$2"
	echo
	echo "$1"
	echo
	say "written to $RESULTS/$2"
}

# ---------------------------------------------------------------- load

# proc_ticks PID: the process's own CPU time (user + system) so far, in clock
# ticks of TICK_MS milliseconds; 0 once it is gone.
TICK_MS=$((1000 / $(getconf CLK_TCK)))
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

psi_total() { awk -F'total=' '/^some/ {print $2}' /proc/pressure/cpu 2>/dev/null || echo 0; }
psi_since() { # psi_since "START_US START_TOTAL": percent of wall time some task waited for a CPU
	local now total
	now=$(now_us) total=$(psi_total)
	awk -v a="$1" -v n="$now" -v t="$total" 'BEGIN {split(a, s, " "); if (t == 0) print "?"; else printf "%.0f", 100 * (t - s[2]) / (n - s[1])}'
}
