#!/usr/bin/env bash
# Prints the path of the MinIO server binary the tests use, building it first
# from the Go module proxy when it is not cached under bin/ (about 3 minutes,
# once per version; then a second run takes well under a second).
#
# Everything but the final path goes to stderr, so callers can do
#   WALSHIP_MINIO=$(scripts/ensure-minio.sh)
set -euo pipefail

VER=v0.0.0-20260212201848-7aac2a2c5b7c
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/bin/minio-$VER
BIN=$DIR/minio

say() { echo "ensure-minio: $*" >&2; }

# A `go install` of the same version started by hand (or by an older copy of
# this script) may be running; wait for it instead of building twice.
other_build() {
	local pid
	command -v pgrep >/dev/null 2>&1 || return 1
	for pid in $(pgrep -f "install github.com/minio/minio@$VER" || true); do
		{ tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qx "GOBIN=$DIR" || continue
		echo "$pid"
		return 0
	done
	return 1
}

if [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi

mkdir -p "$DIR"
# Two runs of this script at once (parallel make, two sessions): the second
# waits for the first here.
exec 9>"$ROOT/bin/.minio-$VER.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi

if [ ! -x "$BIN" ] && pid=$(other_build); then
	say "MinIO $VER is being built by process $pid; waiting (up to 20 minutes)"
	for _ in $(seq 1 1200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 1
	done
fi

if [ ! -x "$BIN" ]; then
	command -v go >/dev/null 2>&1 || {
		say "go is not on PATH; install Go 1.26 first"
		exit 1
	}
	say "building MinIO $VER into $DIR (about 3 minutes)"
	# Build into a temporary GOBIN and move into place, so an interrupted build
	# never leaves a half-written binary at $BIN.
	tmp=$(mktemp -d "$ROOT/bin/.minio-build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	GOBIN=$tmp CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$VER" >&2
	mv -f "$tmp/minio" "$BIN"
	say "built $BIN"
fi

echo "$BIN"
