#!/usr/bin/env bash
# Installs the system packages walship's tests need, if they are missing.
#
#   scripts/install-deps.sh           PostgreSQL 15 (server, client, contrib) from Debian
#   scripts/install-deps.sh --bench   also pgBackRest, barman-cli-cloud and zstd, for bench/
#
# Both also install what a region (scripts/region.sh) runs: containerd, runc,
# the CNI plugins, nftables and conntrack, and mmdebstrap for its images.
#
# Idempotent: a second run installs nothing and takes well under a second.
# Needs root, or sudo for a non-root user. Written for Debian 12 (bookworm).
set -euo pipefail

PG_BINDIR=/usr/lib/postgresql/15/bin
bench=false
for arg in "$@"; do
	case "$arg" in
	--bench) bench=true ;;
	-h | --help)
		sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "install-deps: unknown argument: $arg (try --help)" >&2
		exit 2
		;;
	esac
done

say() { echo "install-deps: $*"; }

# as_root runs a command as root: directly when we are root, else through sudo.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "install-deps: need to run '$*' as root, but this is user $(id -un) and sudo is not installed." >&2
		echo "install-deps: run this script as root, or install sudo, or install the packages yourself." >&2
		exit 1
	fi
}

updated=false
apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "install-deps: apt-get not found; this script supports Debian 12. Install by hand: $*" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	if [ "$updated" = false ]; then
		say "apt-get update"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
		updated=true
	fi
	say "apt-get install -y $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

if [ -x "$PG_BINDIR/postgres" ] && [ -x "$PG_BINDIR/pgbench" ]; then
	say "PostgreSQL 15 present ($PG_BINDIR)"
else
	say "PostgreSQL 15 missing; installing"
	apt_install postgresql-15 postgresql-contrib
fi

# The parts of a region's nodes, from Debian (DESIGN.md, "a region").
missing=()
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /usr/lib/cni/ptp ] || missing+=(containernetworking-plugins)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "${#missing[@]}" -eq 0 ]; then
	say "containerd, runc, CNI plugins, nftables, conntrack and mmdebstrap present"
else
	say "region parts missing (${missing[*]}); installing"
	apt_install "${missing[@]}"
fi

if [ "$bench" = true ]; then
	missing=()
	command -v pgbackrest >/dev/null 2>&1 || missing+=(pgbackrest)
	command -v barman-cloud-wal-archive >/dev/null 2>&1 || missing+=(barman-cli-cloud)
	command -v zstd >/dev/null 2>&1 || missing+=(zstd)
	if [ "${#missing[@]}" -eq 0 ]; then
		say "pgbackrest, barman-cli-cloud and zstd present"
	else
		say "bench tools missing (${missing[*]}); installing"
		apt_install "${missing[@]}"
	fi
fi

# PostgreSQL refuses to run as root; the tests then run it as the 'postgres'
# system user that the Debian package creates.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
	echo "install-deps: running as root but there is no 'postgres' user; reinstall postgresql-15" >&2
	exit 1
fi
say "done"
