#!/usr/bin/env bash
# Builds the container images a region runs (scripts/region.sh), as archives
# that `ctr images import` loads, with no registry and no container engine:
#
#   bin/images/walship.tar   ghcr.io/walship/walship:dev and docker.io/library/postgres:15
#                            PostgreSQL 15 from Debian 12, walship and walship-k8s,
#                            the postgres user as uid/gid 26 (as CloudNativePG's images);
#                            postgres:15 is the walkthrough's client image (psql 15)
#   bin/images/pause.tar     walship.local/pause:1, the pod sandbox (images/pause)
#   bin/images/coredns.tar   walship.local/coredns:$COREDNS_VER, built from the Go module proxy
#   bin/images/local-path-provisioner.tar
#                            walship.local/local-path-provisioner:$LPP_VER, the same
#
# The Debian root filesystem comes from mmdebstrap (about a minute); each image
# is rebuilt only when its inputs change (a .key file beside it records them),
# so a second run takes a few seconds. images/Containerfile builds the same
# walship image where a registry is reachable. Prints bin/images on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bin/images
TOOLS=$ROOT/bin/region-tools
COREDNS_VER=v1.14.2
LPP_VER=v0.0.33
SUITE=bookworm
PACKAGES=postgresql-15,ca-certificates,procps,iproute2,netcat-openbsd,curl,less
WALSHIP_IMAGE=ghcr.io/walship/walship:dev
CLIENT_IMAGE=docker.io/library/postgres:15

say() { echo "images: $*" >&2; }

[ "$(id -u)" -eq 0 ] || {
	say "run as root: mmdebstrap builds the root filesystem with chroot"
	exit 1
}
mkdir -p "$OUT" "$TOOLS"
exec 9>"$OUT/.lock"
flock 9

if ! command -v mmdebstrap >/dev/null 2>&1; then
	say "installing mmdebstrap (Debian package)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >&2
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
# go_tool builds a command from the module proxy into $TOOLS/NAME-VERSION once.
go_tool() {
	local pkg=$1 ver=$2 bin=$3
	if [ ! -x "$TOOLS/$bin-$ver" ]; then
		say "building $pkg@$ver"
		local tmp
		tmp=$(mktemp -d "$TOOLS/.build.XXXXXX")
		GOBIN=$tmp GOWORK=off go install -trimpath -ldflags "-s -w" "$pkg@$ver" >&2
		mv "$tmp/$bin" "$TOOLS/$bin-$ver"
		rm -rf "$tmp"
	fi
	echo "$TOOLS/$bin-$ver"
}
coredns=$(go_tool github.com/coredns/coredns "$COREDNS_VER" coredns)
lpp=$(go_tool github.com/rancher/local-path-provisioner "$LPP_VER" local-path-provisioner)
(cd "$ROOT" && go build -o "$TOOLS/mkimage" ./images/mkimage && go build -trimpath -ldflags "-s -w" -o "$TOOLS/pause" ./images/pause)
for b in walship walship-k8s; do
	[ -x "$ROOT/bin/$b" ] || {
		say "bin/$b is missing: run make build first"
		exit 1
	}
done

# image NAME INPUTS... -- MKIMAGE-ARGS... rebuilds $OUT/NAME.tar when the hash
# of its inputs (file contents and the arguments) changed.
image() {
	local name=$1
	shift
	local inputs=()
	while [ "$1" != -- ]; do
		inputs+=("$1")
		shift
	done
	shift
	local key
	key=$({
		sha256sum "${inputs[@]}" | cut -d' ' -f1
		printf '%s\n' "$@"
	} | sha256sum | cut -d' ' -f1)
	if [ -f "$OUT/$name.tar" ] && [ "$(cat "$OUT/$name.key" 2>/dev/null)" = "$key" ]; then
		say "$name is up to date"
		return
	fi
	say "writing $name.tar"
	"$TOOLS/mkimage" -out "$OUT/$name.tar" "$@"
	echo "$key" >"$OUT/$name.key"
}

# The Debian root filesystem, keyed by what goes into it. The postgres user is
# written into /etc/passwd before PostgreSQL's packages are installed (which
# keep a user that exists), so it gets uid and gid 26. minbase has no useradd
# at that point.
recipe="$SUITE $PACKAGES postgres-uid-26 hooks-v1" # change the tail when the hooks below change
rootfs=$OUT/rootfs-$(echo "$recipe" | sha256sum | cut -c1-16).tar
if [ ! -f "$rootfs" ]; then
	say "building the Debian root filesystem ($PACKAGES) with mmdebstrap, about a minute"
	start=$(date +%s)
	mmdebstrap --quiet --format=tar --variant=minbase --include="$PACKAGES" \
		--essential-hook='echo "postgres:x:26:" >>"$1/etc/group"' \
		--essential-hook='echo "postgres:x:26:26:PostgreSQL administrator:/var/lib/postgresql:/bin/bash" >>"$1/etc/passwd"' \
		--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
		"$SUITE" "$rootfs.tmp" >&2
	mv "$rootfs.tmp" "$rootfs"
	find "$OUT" -name 'rootfs-*.tar' ! -path "$rootfs" -delete
	say "root filesystem built in $(($(date +%s) - start))s ($(du -h "$rootfs" | cut -f1))"
fi

image walship "$rootfs" "$TOOLS/mkimage" "$ROOT/bin/walship" "$ROOT/bin/walship-k8s" -- \
	-layer "$rootfs" \
	-file "$ROOT/bin/walship:/usr/local/bin/walship" \
	-file "$ROOT/bin/walship-k8s:/usr/local/bin/walship-k8s" \
	-dir /run/postgresql:2775:26:26 \
	-tag "$WALSHIP_IMAGE" -tag "$CLIENT_IMAGE" \
	-env PGDATA=/var/lib/postgresql/data/pgdata \
	-env "PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	-cmd '["bash"]'
image pause "$TOOLS/pause" -- \
	-file "$TOOLS/pause:/pause" -tag walship.local/pause:1 -entrypoint '["/pause"]'
image coredns "$coredns" -- \
	-file "$coredns:/coredns" -tag "walship.local/coredns:$COREDNS_VER" -entrypoint '["/coredns"]'
image local-path-provisioner "$lpp" -- \
	-file "$lpp:/usr/bin/local-path-provisioner" -tag "walship.local/local-path-provisioner:$LPP_VER" \
	-entrypoint '["/usr/bin/local-path-provisioner"]'
echo "$OUT"
