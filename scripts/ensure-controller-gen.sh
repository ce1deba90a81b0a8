#!/usr/bin/env bash
# Prints the path of the controller-gen binary `make generate` runs, building
# it first from the Go module proxy when it is not cached under bin/ (about a
# minute, once per version).
#
# controller-tools v0.20 is the release built against k8s.io v0.35 (v0.21
# moves to v0.36), matching the k8s.io modules in go.mod.
set -euo pipefail

VER=v0.20.1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/bin/controller-gen-$VER
BIN=$DIR/controller-gen

say() { echo "ensure-controller-gen: $*" >&2; }

if [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi

mkdir -p "$ROOT/bin"
exec 9>"$ROOT/bin/.controller-gen-$VER.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi

if [ ! -x "$BIN" ]; then
	command -v go >/dev/null 2>&1 || {
		say "go is not on PATH; install Go 1.26 first"
		exit 1
	}
	say "building controller-gen $VER into $DIR (about a minute)"
	tmp=$(mktemp -d "$ROOT/bin/.controller-gen-build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	GOBIN=$tmp CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off \
		go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$VER" >&2
	mkdir -p "$DIR"
	mv -f "$tmp/controller-gen" "$BIN"
	say "built $BIN"
fi

echo "$BIN"
