#!/usr/bin/env bash
# Measures what regions cost on this machine (issue 23's budget): the time to
# come up, and the CPU (cpuacct of the region's cgroup over a minute of idling)
# and memory (RSS of its processes) of
#   1. one node with the operator and a client pod,
#   2. three nodes with the operator,
#   3. two three-node regions and the store, with three PostgreSQL pods each.
# Takes about ten minutes; needs root and the tools and images make test builds.
# Regions named ba and bb, and the store, are replaced.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REGION=$ROOT/scripts/region.sh
IDLE=${IDLE:-60}

usage_ns() { cat "/sys/fs/cgroup/cpuacct/wsr-$1/cpuacct.usage"; }
rss_mib() {
	local pids
	pids=$(find "/sys/fs/cgroup/pids/wsr-$1" -name cgroup.procs -exec cat {} + | sort -un)
	# shellcheck disable=SC2086
	ps -o rss= -p "$(echo $pids | tr ' ' ,)" | awk '{s += $1} END {printf "%d", s / 1024}'
}

# idle NAME... prints the CPU the regions used together over $IDLE seconds,
# as a percentage of one core, after 30 seconds to settle.
idle() {
	sleep 30
	local a=0 b=0 n
	for n in "$@"; do a=$((a + $(usage_ns "$n"))); done
	sleep "$IDLE"
	for n in "$@"; do b=$((b + $(usage_ns "$n"))); done
	awk -v d=$((b - a)) -v s="$IDLE" 'BEGIN {printf "%.1f %% of one core", d / (s * 1e9) * 100}'
}

up() {
	local start
	start=$(date +%s)
	bash "$REGION" up "$@" >/dev/null
	echo $(($(date +%s) - start))
}

pg_pods() {
	local name=$1 i
	for i in 1 2 3; do
		bash "$REGION" exec "$name" kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: pg$i}
spec:
  securityContext: {runAsUser: 26, runAsGroup: 26, fsGroup: 26}
  containers:
  - name: postgres
    image: ghcr.io/walship/walship:dev
    imagePullPolicy: IfNotPresent
    command: [bash, -c, 'initdb --auth=trust -D /tmp/pgdata >/dev/null && exec postgres -D /tmp/pgdata']
    readinessProbe: {exec: {command: [pg_isready, -q]}, periodSeconds: 10}
EOF
	done
	bash "$REGION" exec "$name" kubectl wait --for=condition=Ready pod/pg1 pod/pg2 pod/pg3 --timeout=180s >/dev/null
}

for n in ba bb; do bash "$REGION" down "$n" >/dev/null; done
bash "$REGION" store down >/dev/null

t=$(up ba --nodes 1)
bash "$REGION" exec ba kubectl run client --image=docker.io/library/postgres:15 \
	--image-pull-policy=IfNotPresent --command -- sleep infinity >/dev/null
bash "$REGION" exec ba kubectl wait --for=condition=Ready pod/client --timeout=120s >/dev/null
echo "one node, operator and a client pod: up in ${t}s, idle $(idle ba), $(rss_mib ba) MiB RSS"
bash "$REGION" down ba >/dev/null

t=$(up ba --nodes 3)
echo "three nodes and the operator: up in ${t}s, idle $(idle ba), $(rss_mib ba) MiB RSS"

bash "$REGION" store up >/dev/null
t=$(up bb --nodes 3)
pg_pods ba
pg_pods bb
echo "two three-node regions, the store, three PostgreSQL pods each: idle $(idle ba bb store)," \
	"$(($(rss_mib ba) + $(rss_mib bb) + $(rss_mib store))) MiB RSS; $(free -m | awk '/^Mem:/ {print $7}') MiB still available"
for n in ba bb; do bash "$REGION" down "$n" >/dev/null; done
bash "$REGION" store down >/dev/null
