#!/usr/bin/env bash
# Prints the folder holding the Kubernetes binaries the tests run: etcd,
# kube-apiserver, kube-controller-manager and kubectl for the controller and API
# tests, and kube-scheduler, kubelet and kube-proxy for the regions
# (scripts/region.sh). Each is built from the Go module proxy when it is not
# cached under bin/ (about 25 CPU-minutes, 15-45 minutes on 2 cores, once per
# version; a tool added later builds in a minute or two from the build cache;
# then a second run takes well under a second).
#
# Everything but the final path goes to stderr, so callers can do
#   KUBEBUILDER_ASSETS=$(scripts/ensure-kube.sh)
#
# `go install` refuses k8s.io/kubernetes and go.etcd.io/etcd/server/v3 (their
# go.mod files have replace directives), so each is built from a scratch module:
# kubernetes with a replace for every staging module (k8s.io/api, ...) at the
# matching v0.x release, etcd with a plain require.
set -euo pipefail

KUBE_VER=v1.35.4
STAGING_VER=v0.35.4 # the staging modules (k8s.io/api, ...) released with KUBE_VER
ETCD_VER=v3.6.16
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/bin/kube-$KUBE_VER
TOOLS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

say() { echo "ensure-kube: $*" >&2; }

# missing lists the tools not yet in $DIR.
missing() {
	local t
	for t in "${TOOLS[@]}"; do
		[ -x "$DIR/$t" ] || echo "$t"
	done
}
complete() { [ -z "$(missing)" ]; }

if complete; then
	echo "$DIR"
	exit 0
fi

mkdir -p "$ROOT/bin"
# Two runs of this script at once (parallel make, two sessions): the second
# waits for the first here and then finds the binaries built.
exec 9>"$ROOT/bin/.kube-$KUBE_VER.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi

if complete; then
	echo "$DIR"
	exit 0
fi

command -v go >/dev/null 2>&1 || {
	say "go is not on PATH; install Go 1.26 first"
	exit 1
}

# Build into a temporary folder next to the final one and move each tool into
# place when all are built, so an interrupted build never leaves a half-built
# binary in $DIR.
mapfile -t want < <(missing)
tmp=$(mktemp -d "$ROOT/bin/.kube-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off GOTOOLCHAIN=local
start=$(date +%s)
mkdir -p "$tmp/out"
kube=()
for t in "${want[@]}"; do
	case $t in
	etcd) ;;
	kubectl) kube+=("k8s.io/kubernetes/cmd/kubectl") ;;
	*) kube+=("k8s.io/kubernetes/cmd/$t") ;;
	esac
done

# --- etcd -------------------------------------------------------------------
if [[ " ${want[*]} " == *" etcd "* ]]; then
	say "building etcd $ETCD_VER (a few minutes)"
	mkdir -p "$tmp/etcd-src"
	(
		cd "$tmp/etcd-src"
		cat >go.mod <<MOD
module walship.local/etcd-build

go 1.26
MOD
		go get "go.etcd.io/etcd/server/v3@$ETCD_VER" >&2
		go build -trimpath -o "$tmp/out/etcd" go.etcd.io/etcd/server/v3 >&2
	)
	say "etcd built after $(($(date +%s) - start))s"
fi

# --- kubernetes -------------------------------------------------------------
if [ ${#kube[@]} -gt 0 ]; then
	say "building ${kube[*]##*/} $KUBE_VER (15-45 minutes on 2 cores from nothing)"
	mkdir -p "$tmp/kube-src"
	(
		cd "$tmp/kube-src"
		# The replace directives of k8s.io/kubernetes point its staging modules at
		# ./staging/src/...; the scratch module points them at their releases.
		kmod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VER" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
		[ -f "$kmod" ] || {
			say "could not download k8s.io/kubernetes@$KUBE_VER"
			exit 1
		}
		{
			echo "module walship.local/kube-build"
			echo
			echo "go 1.26"
			echo
			echo "require k8s.io/kubernetes $KUBE_VER"
			echo
			sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9./-]*\) => \./staging/src/.*#replace \1 => \1 '"$STAGING_VER"'#p' "$kmod"
		} >go.mod
		grep -q '^replace k8s.io/api ' go.mod || {
			say "found no staging replace directives in $kmod"
			exit 1
		}
		go get "${kube[@]/%/@$KUBE_VER}" >&2
		minor=${KUBE_VER#v*.}
		minor=${minor%%.*}
		major=${KUBE_VER#v}
		major=${major%%.*}
		ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VER"
		ldflags+=" -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
		ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
		go build -trimpath -ldflags "$ldflags" -o "$tmp/out/" "${kube[@]}" >&2
	)
fi

for t in "${want[@]}"; do
	[ -x "$tmp/out/$t" ] || {
		say "the build did not produce $t"
		exit 1
	}
done
mkdir -p "$DIR"
for t in "${want[@]}"; do
	mv "$tmp/out/$t" "$DIR/$t"
done
say "built ${want[*]} into $DIR in $(($(date +%s) - start))s"
echo "$DIR"
