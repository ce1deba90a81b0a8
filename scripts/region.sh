#!/usr/bin/env bash
# A region: a Kubernetes cluster made of real parts on this machine, like kind
# without Docker (DESIGN.md, "The test bed for the Kubernetes half").
#
#   region.sh up NAME [--nodes N]   start a control plane and N nodes (default 1)
#   region.sh exec NAME CMD...      run CMD in the region, with its kubeconfig and kubectl
#   region.sh down NAME             stop everything the region started and remove it
#   region.sh kill NAME             the disaster: SIGKILL every process of the region at once
#   region.sh node NAME NODE kill|start
#                                   kill one node (kubelet, containerd, kube-proxy and every
#                                   container on it), or start it again
#   region.sh status [NAME]         list regions, or one region's processes
#   region.sh store up|down|exec CMD...
#                                   a MinIO in a namespace of its own, routed to every region
#
# Layout. Region NAME gets an index R (1..60) and the addresses 10.R.0.0/16:
# the control plane 10.R.0.1, node i 10.R.0.(10+i), services 10.R.64.0/18 (DNS
# at 10.R.64.10), pods 10.R.128.0/17 (node i: 10.R.(128+i).0/24). The control
# plane is a network namespace (wsr-NAME-cp) holding etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler; it routes between the nodes. Each
# node is a network namespace (wsr-NAME-nI) and a mount namespace of its own,
# where per-node folders are bound over /var/lib/kubelet, /var/lib/containerd,
# /run/containerd, /etc/cni/net.d, /var/lib/cni, /var/log/pods, /run/netns,
# /etc/resolv.conf and /opt/local-path-provisioner; it runs containerd (runc),
# kubelet and kube-proxy (nftables). No namespace has a default route: nothing
# leaves the region except to the store (10.250.0.1). Every process of the
# region runs in the cgroup /wsr-NAME (kubelet's cgroupRoot is /wsr-NAME/nI),
# which is how kill and down find them all.
#
# State lives in $WALSHIP_REGIONS (default /var/lib/walship-regions)/NAME.
# Needs root. Binaries come from scripts/ensure-kube.sh, images from
# scripts/images.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REGIONS=${WALSHIP_REGIONS:-/var/lib/walship-regions}
MANIFESTS=$ROOT/scripts/region
CGROUPS=/sys/fs/cgroup
STORE_IP=10.250.0.1
NODE_MONITOR_GRACE=20s

say() { echo "region: $*" >&2; }
die() {
	say "$*"
	exit 1
}

usage() {
	sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

valid_name() {
	[[ $1 =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "region name '$1': use 1 to 8 lower-case letters and digits, starting with a letter"
}

# --- cgroups ------------------------------------------------------------------

hierarchies() {
	local h
	for h in "$CGROUPS"/*; do
		[ -f "$h/cgroup.procs" ] && echo "$h"
	done
}

# cg_make PATH creates PATH in every hierarchy, copying cpuset from the parent
# (a cgroup v1 cpuset without cpus and mems takes no task).
cg_make() {
	local h dir parent
	for h in $(hierarchies); do
		dir=$h
		local IFS=/
		for part in $1; do
			[ -n "$part" ] || continue
			parent=$dir
			dir=$dir/$part
			if [ ! -d "$dir" ]; then
				mkdir "$dir"
				if [ -f "$dir/cpuset.cpus" ]; then
					cat "$parent/cpuset.cpus" >"$dir/cpuset.cpus"
					cat "$parent/cpuset.mems" >"$dir/cpuset.mems"
				fi
			fi
		done
	done
}

# cg_pids PATH prints every process in PATH and below.
cg_pids() {
	local d=$CGROUPS/pids$1
	[ -d "$d" ] || return 0
	find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un
}

# cg_kill PATH SIGKILLs every process below PATH at once: the freezer stops
# them all first, so none runs (or forks) after another died.
cg_kill() {
	local f=$CGROUPS/freezer$1 tries=0 pids
	while :; do
		pids=$(cg_pids "$1")
		[ -n "$pids" ] || return 0
		[ -f "$f/freezer.state" ] && echo FROZEN >"$f/freezer.state" 2>/dev/null || true
		kill -9 $pids 2>/dev/null || true
		[ -f "$f/freezer.state" ] && echo THAWED >"$f/freezer.state" 2>/dev/null || true
		tries=$((tries + 1))
		[ $tries -lt 50 ] || die "processes in $1 survive SIGKILL: $pids"
		sleep 0.1
	done
}

# cg_remove PATH removes PATH and its children from every hierarchy.
cg_remove() {
	local h
	for h in $(hierarchies); do
		[ -d "$h$1" ] || continue
		find "$h$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
		[ ! -d "$h$1" ] || say "could not remove cgroup $h$1"
	done
}

# spawn CGROUP LOG CMD... starts CMD in the background inside CGROUP, in a
# session of its own, and prints its pid.
spawn() {
	local cg=$1 log=$2
	shift 2
	(
		for h in $(hierarchies); do
			echo "$BASHPID" >"$h$cg/cgroup.procs"
		done
		exec setsid "$@" </dev/null >>"$log" 2>&1
	) &
	echo $!
}

# --- state --------------------------------------------------------------------

dir_of() { echo "$REGIONS/$1"; }
# is_up: the region came up and some process of it still runs (a region
# killed with kill is not up; up clears what it left).
is_up() { [ -f "$(dir_of "$1")/up" ] && [ -n "$(cg_pids "/wsr-$1")" ]; }
netns_cp() { echo "wsr-$1-cp"; }
netns_node() { echo "wsr-$1-n$2"; }

# region_index NAME prints the region's index, allocating the lowest free one.
region_index() {
	local d
	d=$(dir_of "$1")
	if [ -f "$d/index" ]; then
		cat "$d/index"
		return
	fi
	local used i
	used=$(cat "$REGIONS"/*/index 2>/dev/null || true)
	for i in $(seq 1 60); do
		if ! grep -qx "$i" <<<"$used"; then
			echo "$i" >"$d/index"
			echo "$i"
			return
		fi
	done
	die "no free region index (60 regions exist)"
}

in_cp() {
	local name=$1
	shift
	nsenter --net="/run/netns/$(netns_cp "$name")" "$@"
}

in_node() {
	local name=$1 i=$2
	shift 2
	nsenter --net="/run/netns/$(netns_node "$name" "$i")" --mount="$(dir_of "$name")/ns/n$i.mnt" "$@"
}

# wait_for SECONDS WHAT CMD... retries CMD until it succeeds.
wait_for() {
	local limit=$1 what=$2
	shift 2
	local deadline=$(($(date +%s) + limit))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || die "$what did not happen within ${limit}s"
		sleep 0.5
	done
}

# --- certificates -------------------------------------------------------------

pki() {
	local d=$1/pki r=$2
	mkdir -p "$d"
	(
		cd "$d"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout ca.key -out ca.crt -days 3650 -subj "/CN=walship-region-ca" 2>/dev/null
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out sa.key 2>/dev/null
		openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
	)
	cert "$d" apiserver "/CN=kube-apiserver" \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:10.$r.0.1,IP:10.$r.64.1"
	cert "$d" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
	cert "$d" admin "/O=system:masters/CN=kubernetes-admin"
	cert "$d" controller-manager "/CN=system:kube-controller-manager"
	cert "$d" scheduler "/CN=system:kube-scheduler"
	cert "$d" kube-proxy "/CN=system:kube-proxy"
}

# cert DIR NAME SUBJECT [SANS] writes NAME.key and NAME.crt signed by the CA.
cert() {
	local d=$1 name=$2 subj=$3 san=${4:-}
	(
		cd "$d"
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
		{
			echo "basicConstraints=CA:FALSE"
			echo "keyUsage=critical,digitalSignature,keyEncipherment"
			echo "extendedKeyUsage=serverAuth,clientAuth"
			[ -z "$san" ] || echo "subjectAltName=$san"
		} >"$name.ext"
		openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
			-days 3650 -out "$name.crt" -extfile "$name.ext" 2>/dev/null
		rm -f "$name.csr" "$name.ext"
	)
}

# kubeconfig FILE CERTNAME SERVER
kubeconfig() {
	local pki
	pki=$(dirname "$1")/pki
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: region
  cluster:
    server: $3
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: region
  context: {cluster: region, user: $2}
current-context: region
EOF
}

# --- network ------------------------------------------------------------------

# link NSA IFA ADDRA NSB IFB ADDRB joins two namespaces with a veth pair, each
# end holding a /32 and a route to the other end's address.
link() {
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
	ip -n "$1" addr add "$3/32" dev "$2"
	ip -n "$4" addr add "$6/32" dev "$5"
	ip -n "$1" link set "$2" up
	ip -n "$4" link set "$5" up
	ip -n "$1" route add "$6/32" dev "$2"
	ip -n "$4" route add "$3/32" dev "$5"
}

new_netns() {
	ip netns add "$1"
	ip -n "$1" link set lo up
}

# --- the control plane ----------------------------------------------------------

start_control_plane() {
	local name=$1 r=$2 d kube
	d=$(dir_of "$name")
	kube=$(cat "$d/kube")
	local cg=/wsr-$name/cp
	cg_make "$cg"
	mkdir -p "$d/etcd" "$d/logs"
	local pids=$d/pids
	echo "etcd $(spawn "$cg" "$d/logs/etcd.log" nsenter --net="/run/netns/$(netns_cp "$name")" \
		"$kube/etcd" --name region --data-dir "$d/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster region=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn)" >>"$pids"

	local p=$d/pki
	echo "kube-apiserver $(spawn "$cg" "$d/logs/kube-apiserver.log" nsenter --net="/run/netns/$(netns_cp "$name")" \
		"$kube/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
		--bind-address 0.0.0.0 --secure-port 6443 --advertise-address "10.$r.0.1" \
		--service-cluster-ip-range "10.$r.64.0/18" \
		--tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
		--client-ca-file "$p/ca.crt" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
		--authorization-mode Node,RBAC --allow-privileged=true \
		--kubelet-client-certificate "$p/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$p/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types InternalIP \
		--enable-admission-plugins NodeRestriction \
		--enable-aggregator-routing=true --profiling=false)" >>"$pids"

	wait_for 60 "kube-apiserver of region $name answering" \
		in_cp "$name" "$kube/kubectl" --kubeconfig "$d/admin.kubeconfig" get --raw /readyz

	echo "kube-controller-manager $(spawn "$cg" "$d/logs/kube-controller-manager.log" nsenter --net="/run/netns/$(netns_cp "$name")" \
		"$kube/kube-controller-manager" --kubeconfig "$d/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$d/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$d/controller-manager.kubeconfig" \
		--service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
		--use-service-account-credentials=true --leader-elect=false \
		--bind-address 127.0.0.1 --allocate-node-cidrs=false \
		--node-monitor-grace-period "$NODE_MONITOR_GRACE" --profiling=false)" >>"$pids"
	echo "kube-scheduler $(spawn "$cg" "$d/logs/kube-scheduler.log" nsenter --net="/run/netns/$(netns_cp "$name")" \
		"$kube/kube-scheduler" --kubeconfig "$d/scheduler.kubeconfig" \
		--authentication-kubeconfig "$d/scheduler.kubeconfig" \
		--authorization-kubeconfig "$d/scheduler.kubeconfig" \
		--leader-elect=false --bind-address 127.0.0.1 --profiling=false)" >>"$pids"
}

# --- nodes ----------------------------------------------------------------------

# The folders bound over the standard paths in each node's mount namespace.
NODE_BINDS=(
	kubelet:/var/lib/kubelet
	containerd:/var/lib/containerd
	run-containerd:/run/containerd
	cni-conf:/etc/cni/net.d
	cni-state:/var/lib/cni
	pod-logs:/var/log/pods
	container-logs:/var/log/containers
	netns:/run/netns
	volumes:/opt/local-path-provisioner
	resolv.conf:/etc/resolv.conf
)

# make_node NAME R I writes node I's configuration and its namespaces.
make_node() {
	local name=$1 r=$2 i=$3 d nd
	d=$(dir_of "$name")
	nd=$d/nodes/n$i
	local node=$name-node$i ip=10.$r.0.$((10 + i))
	mkdir -p "$nd"
	local b src dst
	for b in "${NODE_BINDS[@]}"; do
		src=${b%%:*} dst=${b#*:}
		if [ "$src" = resolv.conf ]; then
			# Pods with dnsPolicy Default (CoreDNS itself) get this: no upstream.
			echo "# region $name: no DNS outside the cluster" >"$nd/$src"
		else
			mkdir -p "$nd/$src" "$dst"
		fi
	done

	cert "$d/pki" "kubelet-n$i" "/O=system:nodes/CN=system:node:$node"
	kubeconfig "$d/kubelet-n$i.kubeconfig" "kubelet-n$i" "https://10.$r.0.1:6443"

	cat >"$nd/containerd.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "walship.local/pause:1"
  # Sessions here lack CAP_SYS_RESOURCE: without this runc fails with
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF

	cat >"$nd/cni-conf/10-region.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "region",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.$r.$((128 + i)).0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

	cat >"$nd/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $d/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /wsr-$name/n$i
failCgroupV1: false
failSwapOn: false
clusterDNS: [10.$r.64.10]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
healthzBindAddress: 127.0.0.1
serializeImagePulls: false
EOF

	cat >"$nd/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $d/kube-proxy.kubeconfig}
clusterCIDR: 10.$r.128.0/17
hostnameOverride: $node
bindAddress: $ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0}
EOF

	# The network: a veth to the control plane, which routes between the nodes.
	local ns
	ns=$(netns_node "$name" "$i")
	new_netns "$ns"
	link "$(netns_cp "$name")" "n$i" "10.$r.0.1" "$ns" eth0 "$ip"
	ip -n "$(netns_cp "$name")" route add "10.$r.$((128 + i)).0/24" via "$ip"
	ip -n "$ns" route add "10.$r.0.0/16" via "10.$r.0.1"
	ip -n "$ns" route add "$STORE_IP/32" via "10.$r.0.1"
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0

	# The mount namespace: unshare binds it on a file, under a private mount
	# so that no namespace holds another's file.
	local nsdir=$d/ns
	mkdir -p "$nsdir"
	if ! mountpoint -q "$nsdir"; then
		mount --bind "$nsdir" "$nsdir"
		mount --make-private "$nsdir"
	fi
	touch "$nsdir/n$i.mnt"
	unshare --mount="$nsdir/n$i.mnt" --propagation slave true
	local script="umount -l '$nsdir'"
	for b in "${NODE_BINDS[@]}"; do
		src=${b%%:*} dst=${b#*:}
		script+=" && mount --bind '$nd/$src' '$dst'"
	done
	nsenter --mount="$nsdir/n$i.mnt" sh -c "$script"
	cg_make "/wsr-$name/n$i/system"
}

# start_node NAME I starts containerd, kubelet and kube-proxy of node I.
start_node() {
	local name=$1 i=$2 d kube nd
	d=$(dir_of "$name")
	kube=$(cat "$d/kube")
	nd=$d/nodes/n$i
	local cg=/wsr-$name/n$i/system r
	r=$(cat "$d/index")
	local node=$name-node$i ip=10.$r.0.$((10 + i))
	local enter=(nsenter --net="/run/netns/$(netns_node "$name" "$i")" --mount="$d/ns/n$i.mnt")
	echo "containerd-n$i $(spawn "$cg" "$d/logs/containerd-n$i.log" "${enter[@]}" containerd --config "$nd/containerd.toml")" >>"$d/pids"
	wait_for 30 "containerd of node $i" "${enter[@]}" ctr --address /run/containerd/containerd.sock version
	# The images live in the node's containerd root, which survives a node
	# kill: only the node's first start imports them.
	if [ ! -f "$nd/images-imported" ]; then
		local img
		for img in "$ROOT"/bin/images/{pause,coredns,local-path-provisioner,walship}.tar; do
			"${enter[@]}" ctr --address /run/containerd/containerd.sock -n k8s.io images import \
				"$img" >/dev/null || die "importing $img into node $i"
		done
		touch "$nd/images-imported"
	fi
	echo "kubelet-n$i $(spawn "$cg" "$d/logs/kubelet-n$i.log" "${enter[@]}" \
		"$kube/kubelet" --config "$nd/kubelet.yaml" --kubeconfig "$d/kubelet-n$i.kubeconfig" \
		--hostname-override "$node" --node-ip "$ip" --v 1)" >>"$d/pids"
	echo "kube-proxy-n$i $(spawn "$cg" "$d/logs/kube-proxy-n$i.log" "${enter[@]}" \
		"$kube/kube-proxy" --config "$nd/kube-proxy.yaml")" >>"$d/pids"
}

# --- commands -------------------------------------------------------------------

kubectl_in() {
	local name=$1
	shift
	local d
	d=$(dir_of "$name")
	in_cp "$name" "$(cat "$d/kube")/kubectl" --kubeconfig "$d/admin.kubeconfig" "$@"
}

# apply NAME FILE applies a manifest after replacing @R@ with the region's index.
apply() {
	local r
	r=$(cat "$(dir_of "$1")/index")
	sed "s/@R@/$r/g" "$2" | kubectl_in "$1" apply -f - >/dev/null
}

cmd_up() {
	local name=${1:-} nodes=1
	[ -n "$name" ] || usage
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--nodes)
			nodes=${2:-}
			shift 2 || usage
			;;
		--nodes=*)
			nodes=${1#--nodes=}
			shift
			;;
		*) die "up: unknown option '$1' (want --nodes N)" ;;
		esac
	done
	valid_name "$name"
	[[ $nodes =~ ^[1-9]$ ]] || die "up: --nodes wants 1 to 9, not '$nodes'"
	local d
	d=$(dir_of "$name")
	if is_up "$name"; then
		die "region $name is already up; run '$0 down $name' first"
	fi
	if [ -e "$d" ] || [ -d "$CGROUPS/pids/wsr-$name" ]; then
		say "region $name has leftovers from an earlier run (killed or crashed); removing them"
		cmd_down "$name" >/dev/null 2>&1
	fi
	local start kube images
	start=$(date +%s)
	kube=$(bash "$ROOT/scripts/ensure-kube.sh")
	images=$(bash "$ROOT/scripts/images.sh")
	mkdir -p "$REGIONS"
	exec 8>"$REGIONS/.lock"
	flock 8
	mkdir -p "$d/logs"
	echo "$kube" >"$d/kube"
	local r
	r=$(region_index "$name")
	flock -u 8
	echo "$nodes" >"$d/nodes-count"
	say "starting region $name (10.$r.0.0/16) with $nodes node(s)"

	pki "$d" "$r"
	local c
	for c in admin controller-manager scheduler kube-proxy; do
		kubeconfig "$d/$c.kubeconfig" "$c" "https://10.$r.0.1:6443"
	done
	new_netns "$(netns_cp "$name")"
	ip -n "$(netns_cp "$name")" addr add "10.$r.0.1/32" dev lo
	ip netns exec "$(netns_cp "$name")" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0
	cg_make "/wsr-$name"
	start_control_plane "$name" "$r"
	local i
	for i in $(seq 1 "$nodes"); do
		make_node "$name" "$r" "$i"
		start_node "$name" "$i"
	done
	link_store "$name" || true
	touch "$d/up"

	for f in "$MANIFESTS"/*.yaml; do
		apply "$name" "$f"
	done
	wait_for 120 "every node of region $name Ready" kubectl_in "$name" wait --for=condition=Ready node --all --timeout=5s
	wait_for 120 "CoreDNS of region $name ready" kubectl_in "$name" -n kube-system rollout status deploy/coredns --timeout=5s
	# The operator, installed from config/ as a user would (kubectl apply -k).
	kubectl_in "$name" apply -k "$MANIFESTS/operator" >/dev/null
	wait_for 120 "the walship operator of region $name ready" kubectl_in "$name" -n walship-system rollout status deploy/walship-operator --timeout=5s
	say "region $name is up in $(($(date +%s) - start))s: $0 exec $name kubectl get nodes"
}

cmd_exec() {
	local name=${1:-}
	[ -n "$name" ] && [ $# -ge 2 ] || die "exec: want NAME CMD..."
	shift
	valid_name "$name"
	is_up "$name" || die "region $name is not up (start it with '$0 up $name')"
	local d kube
	d=$(dir_of "$name")
	kube=$(cat "$d/kube")
	in_cp "$name" env KUBECONFIG="$d/admin.kubeconfig" PATH="$kube:$PATH" REGION="$name" "$@"
}

cmd_kill() {
	local name=${1:-}
	[ -n "$name" ] || usage
	valid_name "$name"
	[ -e "$(dir_of "$name")" ] || die "region $name does not exist"
	cg_kill "/wsr-$name"
	say "every process of region $name is killed; '$0 down $name' removes what is left"
}

cmd_node() {
	local name=${1:-} node=${2:-} what=${3:-}
	[ -n "$what" ] || die "node: want NAME NODE kill|start (NODE is 1, 2, ... or $name-node1, ...)"
	valid_name "$name"
	is_up "$name" || die "region $name is not up"
	node=${node#"$name"-node}
	node=${node#n}
	local d
	d=$(dir_of "$name")
	[ -d "$d/nodes/n$node" ] || die "region $name has no node $node"
	case $what in
	kill)
		cg_kill "/wsr-$name/n$node"
		say "node $name-node$node killed"
		;;
	start)
		[ -z "$(cg_pids "/wsr-$name/n$node/system")" ] || die "node $name-node$node is running; kill it first"
		start_node "$name" "$node"
		say "node $name-node$node started"
		;;
	*) die "node: unknown action '$what' (kill or start)" ;;
	esac
}

# stop_stage PIDFILE REGEX TICKS sends SIGTERM to the components matching
# REGEX and waits up to TICKS fifths of a second for them to exit.
stop_stage() {
	local comp pid pids=()
	while read -r comp pid; do
		[[ $comp =~ ^($2) ]] && pids+=("$pid")
	done <"$1"
	[ ${#pids[@]} -gt 0 ] || return 0
	kill -TERM "${pids[@]}" 2>/dev/null || true
	local i
	for i in $(seq 1 "$3"); do
		local p alive=false
		for p in "${pids[@]}"; do
			kill -0 "$p" 2>/dev/null && alive=true
		done
		$alive || return 0
		sleep 0.2
	done
}

cmd_down() {
	local name=${1:-}
	[ -n "$name" ] || usage
	valid_name "$name"
	local d
	d=$(dir_of "$name")
	if [ ! -e "$d" ] && ! ip netns list | grep -q "^wsr-$name-" && [ ! -d "$CGROUPS/pids/wsr-$name" ]; then
		say "region $name does not exist; nothing to do"
		return 0
	fi
	rm -f "$d/up"
	# Stop the nodes' daemons by pid with SIGTERM (5 seconds at most), then
	# the control plane (2 seconds: its state is deleted next, and
	# kube-apiserver and etcd each wait for the other while shutting down),
	# then whatever remains in the region's cgroups (containers, shims) gets
	# SIGKILL.
	if [ -f "$d/pids" ]; then
		stop_stage "$d/pids" 'containerd-|kubelet-|kube-proxy-' 25
		stop_stage "$d/pids" 'kube-scheduler|kube-controller-manager|kube-apiserver|etcd' 10
	fi
	cg_kill "/wsr-$name"
	# The mount namespaces (and with them kubelet's mounts and the pods'
	# network namespaces bound in their /run/netns), then the network ones.
	if [ -d "$d/ns" ]; then
		local f
		for f in "$d"/ns/*.mnt; do
			[ -e "$f" ] || continue
			umount "$f" 2>/dev/null || umount -l "$f" 2>/dev/null || true
		done
		umount "$d/ns" 2>/dev/null || umount -l "$d/ns" 2>/dev/null || true
	fi
	local ns
	for ns in $(ip netns list | awk '{print $1}' | grep "^wsr-$name-" || true); do
		ip netns del "$ns"
	done
	unlink_store "$name"
	cg_remove "/wsr-$name"
	# Anything still mounted below the region's folder (a crash between
	# mounting and recording) is unmounted before the folder goes.
	local m
	for m in $(awk -v d="$d/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$d"
	say "region $name is down"
}

cmd_status() {
	local name=${1:-}
	if [ -z "$name" ]; then
		local r
		for r in "$REGIONS"/*/; do
			[ -d "$r" ] || continue
			r=$(basename "$r")
			if is_up "$r"; then echo "$r up"; else echo "$r down (leftovers: run down $r)"; fi
		done
		return
	fi
	is_up "$name" || die "region $name is not up"
	local comp pid
	while read -r comp pid; do
		if kill -0 "$pid" 2>/dev/null; then echo "$comp $pid running"; else echo "$comp $pid exited"; fi
	done <"$(dir_of "$name")/pids"
}

# --- the store ------------------------------------------------------------------

STORE_NS=wsr-store
store_dir() { echo "$REGIONS/.store"; }

# link_store NAME routes region NAME to the store when the store is up.
link_store() {
	local name=$1
	ip netns list | grep -q "^$STORE_NS\b" || return 0
	local r
	r=$(cat "$(dir_of "$name")/index")
	ip link add "r$r" netns "$STORE_NS" type veth peer name store netns "$(netns_cp "$name")"
	ip -n "$STORE_NS" addr add "$STORE_IP/32" dev "r$r"
	ip -n "$(netns_cp "$name")" addr add "10.$r.0.1/32" dev store
	ip -n "$STORE_NS" link set "r$r" up
	ip -n "$(netns_cp "$name")" link set store up
	ip -n "$STORE_NS" route add "10.$r.0.1/32" dev "r$r"
	ip -n "$STORE_NS" route add "10.$r.0.0/16" via "10.$r.0.1"
	ip -n "$(netns_cp "$name")" route add "$STORE_IP/32" dev store
}

unlink_store() {
	local r
	r=$(cat "$(dir_of "$1")/index" 2>/dev/null) || return 0
	ip -n "$STORE_NS" link del "r$r" 2>/dev/null || true
}

cmd_store() {
	local what=${1:-}
	shift || true
	local sd
	sd=$(store_dir)
	case $what in
	up)
		[ ! -f "$sd/up" ] || die "the store is already up"
		cmd_store down >/dev/null 2>&1 || true
		local minio
		minio=$(bash "$ROOT/scripts/ensure-minio.sh")
		mkdir -p "$sd/data" "$sd/logs"
		local key secret
		key=walship$(openssl rand -hex 4)
		secret=$(openssl rand -hex 20)
		printf 'S3_ENDPOINT=http://%s:9000\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$STORE_IP" "$key" "$secret" >"$sd/env"
		new_netns "$STORE_NS"
		ip netns exec "$STORE_NS" sysctl -qw net.ipv4.ip_forward=0
		ip -n "$STORE_NS" addr add "$STORE_IP/32" dev lo
		cg_make /wsr-store
		echo "minio $(spawn /wsr-store "$sd/logs/minio.log" env MINIO_ROOT_USER="$key" MINIO_ROOT_PASSWORD="$secret" \
			MINIO_BROWSER=off nsenter --net="/run/netns/$STORE_NS" "$minio" server "$sd/data" \
			--address "$STORE_IP:9000" --quiet)" >"$sd/pids"
		wait_for 30 "MinIO answering" ip netns exec "$STORE_NS" curl -sf "http://$STORE_IP:9000/minio/health/live"
		ip netns exec "$STORE_NS" curl -sf -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
			"http://$STORE_IP:9000/walship" >/dev/null || die "creating the bucket walship"
		local n
		for n in "$REGIONS"/*/up; do
			[ -f "$n" ] || continue
			link_store "$(basename "$(dirname "$n")")"
		done
		touch "$sd/up"
		cat "$sd/env"
		;;
	down)
		if [ ! -d "$sd" ] && ! ip netns list | grep -q "^$STORE_NS\b"; then
			say "the store does not exist; nothing to do"
			return 0
		fi
		cg_kill /wsr-store
		ip netns del "$STORE_NS" 2>/dev/null || true
		cg_remove /wsr-store
		rm -rf "$sd"
		say "the store is down"
		;;
	exec)
		[ -f "$sd/up" ] || die "the store is not up (start it with '$0 store up')"
		[ $# -gt 0 ] || die "store exec: want CMD..."
		env $(cat "$sd/env") nsenter --net="/run/netns/$STORE_NS" "$@"
		;;
	*) die "store: want up, down or exec" ;;
	esac
}

main() {
	[ "$(id -u)" -eq 0 ] || die "run as root: a region makes namespaces, mounts and cgroups"
	local cmd=${1:-}
	shift || true
	case $cmd in
	up) cmd_up "$@" ;;
	exec) cmd_exec "$@" ;;
	down) cmd_down "$@" ;;
	kill) cmd_kill "$@" ;;
	node) cmd_node "$@" ;;
	status) cmd_status "$@" ;;
	store) cmd_store "$@" ;;
	"" | -h | --help | help) usage ;;
	*) die "unknown command '$cmd' (up, exec, down, kill, node, status, store)" ;;
	esac
}

main "$@"
