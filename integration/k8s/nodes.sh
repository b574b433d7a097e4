#!/usr/bin/env bash
# integration/k8s/nodes.sh — N real Kubernetes v1.20.2 nodes on one machine,
# each in its own network namespace, joined to the control plane of
# integration/k8s/control-plane.sh (started with controllers).
#
# Usage:
#   nodes.sh up N     bring up nodes kn-node1..kn-nodeN (default 2) and wait
#                     until they are Ready; idempotent (running nodes are kept,
#                     missing ones started). The LAST stdout line is
#                     `export KUBECONFIG=<path>` (same as control-plane.sh).
#   nodes.sh down     stop every node this script started (by pid files), their
#                     pods, the segment, and delete the state directory. The
#                     control plane stays up (control-plane.sh down stops it).
#   nodes.sh crash K  node K fails as a machine does: its link to the segment is
#                     cut first (no goodbye packet leaves it), then its kubelet,
#                     kube-proxy, containerd, shims and every container are
#                     killed with -9. The Node object stays (NotReady later);
#                     the next `up` builds the node again from scratch.
#   nodes.sh status   list the nodes' processes and `kubectl get nodes -o wide`.
#   nodes.sh smoke    one HTTP pod per node + a dual-stack ClusterIP Service;
#                     requests from every node's namespace to every pod IP and
#                     to the Service (through kube-proxy). HTTP_IMAGE from
#                     images.env or ROUTELB_KN_HTTP_IMAGE; ROUTELB_KN_HTTP_PORT
#                     (default: HTTP_PORT of images.env, else 8080),
#                     ROUTELB_KN_HTTP_COMMAND (a YAML list body,
#                     e.g. '"/bin/serve"') if the image needs a command.
#
# Layout (all names start with `kn`):
#   * namespace kn-seg holds the bridge kn-br: the shared L2 segment
#     10.77.0.0/24 + fd00:77::/64. On it: node K (kn-nodeK, eth0) at 10.77.0.(10+K)
#     / fd00:77::(10+K), the router namespace kn-rtr (eth0) at .254 / ::fe (plain
#     forwarding now; FRR runs there later), and the host itself (veth kn-host)
#     at .1 / ::1 — the host carries the API server, which listens on 127.0.0.1
#     only: a socat on 10.77.0.1:<port> forwards to it, and the `kubernetes`
#     Service's Endpoints point there (pods reach 10.96.0.1:443 via kube-proxy).
#   * node K's pods: 10.244.K.0/24 + fd00:10:244:K::/64 on the node's bridge cni0
#     (Debian's CNI plugins bridge + host-local + portmap; loopback is added by
#     containerd). Every node, the router and the host route each other node's
#     pod CIDRs to that node's segment address; no masquerading between nodes.
#   * per node: its own containerd (root/state/socket under the node's dir, runc,
#     CRI plugin, cgroupfs), kubelet and kube-proxy (iptables mode). They run
#     with `nsenter --net=/run/netns/kn-nodeK` and NOT `ip netns exec`: the latter
#     remounts /sys for the namespace, which hides /sys/fs/cgroup (kubelet and
#     runc then find no cgroups). hostNetwork pods therefore see the node's eth0.
#   * per node also a private mount namespace (kept in STATE/mnt/nodeK) shared by
#     its containerd, kubelet and kube-proxy, so that
#       - /var/log/pods and /var/log/containers are per node: a kubelet deletes
#         every pod log directory of pods it does not know (container GC), so
#         kubelets sharing one /var/log/pods would delete each other's logs;
#       - the kubelet's volume mounts (secrets, ConfigMaps) and containerd's
#         rootfs mounts stay out of the host's mount table and vanish with it;
#       - the kernel sysctls the kubelet insists on (vm.overcommit_memory=1,
#         kernel.panic=10, kernel.panic_on_oops=1) are shown to it by files
#         bound over /proc/sys/..., so the host's real values are left alone
#         (ROUTELB_KN_REAL_SYSCTLS=1 lets the kubelet write the real ones).
#   * cgroups: per node /kn-nodeK in every cgroup-v1 hierarchy (--cgroup-root),
#     so kubelets never see (and clean up) each other's pod cgroups.
#   * images: every archive ~/.cache/routelb/images/images.env names (its
#     *_TAR= lines; written by integration/images/build.sh) is imported into
#     each node's containerd (namespace k8s.io), again when its mtime changes;
#     the sandbox image is its PAUSE_IMAGE. Overrides: ROUTELB_KN_PAUSE_IMAGE,
#     extra archives in ROUTELB_KN_IMAGE_TARS (space-separated).
#
# The control plane is control-plane.sh's (same ROUTELB_K8S_* variables, with
# ROUTELB_K8S_CONTROLLERS=1): a bare one already up in the same state dir is
# not restarted — control-plane.sh refuses; `down` it first or point
# ROUTELB_K8S_STATE/_PORT/_ETCD_PORT elsewhere. Only one nodes.sh cluster per
# machine (fixed names and addresses).
#
# Environment (optional): ROUTELB_KN_STATE (default /tmp/routelb-kn),
#   ROUTELB_KN_IMAGES_DIR (where images.env is; default ~/.cache/routelb/images),
#   ROUTELB_KN_TIMEOUT (seconds to Ready, default 180), ROUTELB_KN_IPV6 (1
#   default: dual-stack pods), plus control-plane.sh's ROUTELB_K8S_* variables
#   (ROUTELB_K8S_CONTROLLERS is forced to 1).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CP="$HERE/control-plane.sh"
export ROUTELB_K8S_CONTROLLERS=1

STATE=${ROUTELB_KN_STATE:-/tmp/routelb-kn}
TIMEOUT=${ROUTELB_KN_TIMEOUT:-180}
IPV6=${ROUTELB_KN_IPV6:-1}
REAL_SYSCTLS=${ROUTELB_KN_REAL_SYSCTLS:-0}
CACHE_DIR=${ROUTELB_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/routelb}
IMAGES_DIR=${ROUTELB_KN_IMAGES_DIR:-$CACHE_DIR/images}
APISERVER_PORT=${ROUTELB_K8S_PORT:-6444}

SEG_NS=kn-seg
RTR_NS=kn-rtr
BR=kn-br
HOST_IF=kn-host
SEG4=10.77.0
SEG6=fd00:77:
HOST4=$SEG4.1
HOST6=${SEG6}:1
RTR4=$SEG4.254
RTR6=${SEG6}:fe
CLUSTER_CIDR4=10.244.0.0/16
CLUSTER_CIDR6=fd00:10:244::/56
CNI_BIN_DIR=/usr/lib/cni

log() { printf '[nodes] %s\n' "$*" >&2; }
die() { printf '[nodes] ERROR: %s\n' "$*" >&2; exit 1; }

node_name() { echo "kn-node$1"; }
node_dir()  { echo "$STATE/node$1"; }
node_ip4()  { echo "$SEG4.$((10 + $1))"; }
node_ip6()  { echo "${SEG6}:$((10 + $1))"; }
pod_cidr4() { echo "10.244.$1.0/24"; }
pod_cidr6() { echo "fd00:10:244:$1::/64"; }

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "apt-get install ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# live_pid: integration/k8s/proc.sh

# start_detached: integration/k8s/proc.sh
# shellcheck source=integration/k8s/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# Gone, or a zombie waiting for this machine's init to reap it.
pid_gone() {
  local st
  st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
  [[ -z $st || $st == Z ]]
}

stop_pid() {
  local name=$1 pid=$2
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do pid_gone "$pid" && return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
}

stop_one() {
  local name=$1 pidfile=$2 expect=$3 pid
  if pid=$(live_pid "$pidfile" "$expect"); then stop_pid "$name" "$pid"; fi
  rm -f "$pidfile"
}

# Run in node K's network + mount namespaces.
in_node() {
  local k=$1; shift
  nsenter --net="/run/netns/$(node_name "$k")" --mount="$STATE/mnt/node$k" -- "$@"
}

kubectl_() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# cgroup-v1 hierarchies (cpu, memory, ..., name=systemd); not the v2 one.
cgroup_v1_dirs() {
  awk '$3 == "cgroup" { print $2 }' /proc/self/mounts
}
# all hierarchies, v2 too (runc also makes the node's dirs in the hybrid
# layout's cgroup2 tree)
cgroup_all_dirs() {
  awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts
}

# ---------------------------------------------------------------- segment --
netns_exists() { [[ -e /run/netns/$1 ]]; }

setup_segment() {
  if ! netns_exists "$SEG_NS"; then
    log "creating segment $SEG_NS/$BR ($SEG4.0/24, ${SEG6}:/64)"
    ip netns add "$SEG_NS"
    ip -n "$SEG_NS" link set lo up
    ip -n "$SEG_NS" link add "$BR" type bridge
    ip -n "$SEG_NS" link set "$BR" up
  fi
  # The host's leg on the segment.
  if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
    ip link add "$HOST_IF" type veth peer name kn-host-s
    ip link set kn-host-s netns "$SEG_NS"
    ip -n "$SEG_NS" link set kn-host-s master "$BR" up
    sysctl -qw "net.ipv6.conf.$HOST_IF.accept_dad=0"
    ip addr add "$HOST4/24" dev "$HOST_IF"
    [[ $IPV6 == 1 ]] && ip addr add "$HOST6/64" dev "$HOST_IF" nodad
    ip link set "$HOST_IF" up
  fi
  # The router (FRR later).
  if ! netns_exists "$RTR_NS"; then
    log "creating router $RTR_NS ($RTR4, $RTR6)"
    ip netns add "$RTR_NS"
    ip -n "$RTR_NS" link set lo up
    ip link add kn-rtr-e type veth peer name kn-rtr-s
    ip link set kn-rtr-s netns "$SEG_NS"
    ip -n "$SEG_NS" link set kn-rtr-s master "$BR" up
    ip link set kn-rtr-e netns "$RTR_NS"
    ip -n "$RTR_NS" link set kn-rtr-e name eth0
    ip netns exec "$RTR_NS" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
      net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.eth0.accept_dad=0
    ip -n "$RTR_NS" addr add "$RTR4/24" dev eth0
    [[ $IPV6 == 1 ]] && ip -n "$RTR_NS" addr add "$RTR6/64" dev eth0 nodad
    ip -n "$RTR_NS" link set eth0 up
  fi
  # The API server's door on the segment.
  if ! live_pid "$STATE/apiproxy.pid" "bind=$HOST4" >/dev/null; then
    log "forwarding $HOST4:$APISERVER_PORT -> 127.0.0.1:$APISERVER_PORT (socat)"
    start_detached "$STATE/apiproxy.pid" "$STATE/logs/apiproxy.log" \
      socat "TCP-LISTEN:$APISERVER_PORT,bind=$HOST4,reuseaddr,fork" "TCP:127.0.0.1:$APISERVER_PORT"
  fi
}

# Routes to node K's pod CIDRs on the host, the router and every other node.
route_pods_to() {
  local k=$1 n ns
  ip route replace "$(pod_cidr4 "$k")" via "$(node_ip4 "$k")" dev "$HOST_IF"
  ip -n "$RTR_NS" route replace "$(pod_cidr4 "$k")" via "$(node_ip4 "$k")" dev eth0
  if [[ $IPV6 == 1 ]]; then
    ip -6 route replace "$(pod_cidr6 "$k")" via "$(node_ip6 "$k")" dev "$HOST_IF"
    ip -n "$RTR_NS" -6 route replace "$(pod_cidr6 "$k")" via "$(node_ip6 "$k")" dev eth0
  fi
  for ns in /run/netns/kn-node*; do
    [[ -e $ns ]] || continue
    n=${ns##*/kn-node}
    [[ $n == "$k" ]] && continue
    # a node not set up yet gets these routes when it is
    ip -n "kn-node$n" link show eth0 >/dev/null 2>&1 || continue
    ip -n "kn-node$n" route replace "$(pod_cidr4 "$k")" via "$(node_ip4 "$k")" dev eth0
    ip -n "kn-node$k" route replace "$(pod_cidr4 "$n")" via "$(node_ip4 "$n")" dev eth0
    if [[ $IPV6 == 1 ]]; then
      ip -n "kn-node$n" -6 route replace "$(pod_cidr6 "$k")" via "$(node_ip6 "$k")" dev eth0
      ip -n "kn-node$k" -6 route replace "$(pod_cidr6 "$n")" via "$(node_ip6 "$n")" dev eth0
    fi
  done
}

# ------------------------------------------------------------------ nodes --
setup_node_net() {
  local k=$1 name
  name=$(node_name "$k")
  # (a namespace without eth0 is what an interrupted setup leaves, and a crashed node's dying
  # processes may still hold its old link: both finished here)
  netns_exists "$name" && ip -n "$name" link show eth0 >/dev/null 2>&1 && return 0
  log "creating $name ($(node_ip4 "$k"), pods $(pod_cidr4 "$k"))"
  netns_exists "$name" || ip netns add "$name"
  ip -n "$name" link set lo up
  ip -n "$SEG_NS" link del "kn-n$k-s" 2>/dev/null || true
  ip link del "kn-n$k-e" 2>/dev/null || true
  ip link add "kn-n$k-e" type veth peer name "kn-n$k-s"
  ip link set "kn-n$k-s" netns "$SEG_NS"
  ip -n "$SEG_NS" link set "kn-n$k-s" master "$BR" up
  ip link set "kn-n$k-e" netns "$name"
  ip -n "$name" link set "kn-n$k-e" name eth0
  # bridge-nf-call-*: kube-proxy's rules must also see pod-to-pod traffic on
  # the node's own bridge (a pod reaching a Service backed by a local pod)
  ip netns exec "$name" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.eth0.accept_dad=0 \
    net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 >/dev/null
  ip -n "$name" addr add "$(node_ip4 "$k")/24" dev eth0
  [[ $IPV6 == 1 ]] && ip -n "$name" addr add "$(node_ip6 "$k")/64" dev eth0 nodad
  ip -n "$name" link set eth0 up
  ip -n "$name" route add default via "$RTR4" dev eth0
  [[ $IPV6 == 1 ]] && ip -n "$name" -6 route add default via "$RTR6" dev eth0
  return 0
}

setup_node_cgroups() {
  local k=$1 d
  for d in $(cgroup_v1_dirs); do
    mkdir -p "$d/kn-node$k"
    # a cpuset child starts with no cpus/mems: nothing could join it
    if [[ -f $d/cpuset.cpus ]]; then
      [[ -n $(<"$d/kn-node$k/cpuset.cpus") ]] || cat "$d/cpuset.cpus" >"$d/kn-node$k/cpuset.cpus"
      [[ -n $(<"$d/kn-node$k/cpuset.mems") ]] || cat "$d/cpuset.mems" >"$d/kn-node$k/cpuset.mems"
    fi
  done
}

# The node's mount namespace, persisted in $STATE/mnt/nodeK (like ip netns).
setup_node_mntns() {
  local k=$1 dir ns
  dir=$(node_dir "$k")
  ns="$STATE/mnt/node$k"
  mkdir -p "$STATE/mnt"
  # the persisting bind mount needs a non-shared parent mount
  if ! mountpoint -q "$STATE/mnt"; then
    mount --bind "$STATE/mnt" "$STATE/mnt"
    mount --make-private "$STATE/mnt"
  fi
  mountpoint -q "$ns" && return 0
  mkdir -p "$dir/log/pods" "$dir/log/containers" "$dir/sysctl" /var/log/pods /var/log/containers
  touch "$ns"
  local binds="mount --bind '$dir/log/pods' /var/log/pods && mount --bind '$dir/log/containers' /var/log/containers"
  if [[ $REAL_SYSCTLS != 1 ]]; then
    local s v f
    for s in vm/overcommit_memory=1 kernel/panic=10 kernel/panic_on_oops=1; do
      v=${s#*=}; f=${s%=*}
      if [[ $(cat "/proc/sys/$f") != "$v" ]]; then
        echo "$v" >"$dir/sysctl/${f//\//.}"
        binds+=" && mount --bind '$dir/sysctl/${f//\//.}' /proc/sys/$f"
      fi
    done
  fi
  unshare --mount="$ns" --propagation slave sh -c "$binds"
}

write_node_config() {
  local k=$1 dir name ca token ranges routes
  dir=$(node_dir "$k")
  name=$(node_name "$k")
  mkdir -p "$dir/cni" "$dir/logs" "$dir/containerd/root" "$dir/containerd/state" "$dir/kubelet"

  cat >"$dir/containerd.toml" <<EOF
# containerd for $name (written by integration/k8s/nodes.sh)
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$dir/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # no AppArmor on this kernel; runc must not try to apply a profile
  disable_apparmor = true
  # the host lacks CAP_SYS_RESOURCE: pods' negative oom_score_adj (-998 for
  # the sandbox) would fail in runc; bound them by containerd's own (0)
  restrict_oom_score_adj = true
  # pod netns bind mounts under the state dir (our mount namespace) instead of
  # the shared /var/run/netns
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = false
  enable_unprivileged_icmp = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$dir/cni"
    max_conf_num = 1
EOF

  ranges="[{\"subnet\": \"$(pod_cidr4 "$k")\"}]"
  routes='{"dst": "0.0.0.0/0"}'
  if [[ $IPV6 == 1 ]]; then
    ranges+=", [{\"subnet\": \"$(pod_cidr6 "$k")\"}]"
    routes+=', {"dst": "::/0"}'
  fi
  cat >"$dir/cni/10-kn.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "kn",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni-ipam",
        "ranges": [ $ranges ],
        "routes": [ $routes ]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF

  # kubelet + kube-proxy reach the API server through the host's socat on the
  # segment; the serving cert names 127.0.0.1/localhost, not 10.77.0.1.
  ca=$(grep 'certificate-authority-data:' "$KUBECONFIG_PATH" | awk '{print $2}')
  token=$(grep ' token:' "$KUBECONFIG_PATH" | awk '{print $2}')
  umask 077
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: routelb-test
  cluster:
    server: https://$HOST4:$APISERVER_PORT
    certificate-authority-data: $ca
    tls-server-name: localhost
users:
- name: routelb-admin
  user:
    token: $token
contexts:
- name: routelb-test
  context: {cluster: routelb-test, user: routelb-admin}
current-context: routelb-test
EOF
  umask 022
}

start_containerd() {
  local k=$1 dir name
  dir=$(node_dir "$k")
  name=$(node_name "$k")
  if ! live_pid "$dir/containerd.pid" "$dir/containerd.toml" >/dev/null; then
    log "$name: starting containerd"
    start_detached "$dir/containerd.pid" "$dir/logs/containerd.log" \
      nsenter --net="/run/netns/$name" --mount="$STATE/mnt/node$k" -- \
      containerd --config "$dir/containerd.toml"
  fi
  local deadline=$((SECONDS + 30))
  until ctr --address "$dir/containerd.sock" version >/dev/null 2>&1; do
    live_pid "$dir/containerd.pid" "$dir/containerd.toml" >/dev/null || {
      tail -n 30 "$dir/logs/containerd.log" >&2; die "$name: containerd exited"; }
    ((SECONDS < deadline)) || die "$name: containerd socket not answering (log $dir/logs/containerd.log)"
    sleep 0.2
  done
  # import every image tar not yet imported (marker per tar + mtime)
  local tar mark
  for tar in "${IMAGE_TARS[@]}"; do
    mark="$dir/imported.$(basename "$tar").$(stat -c %Y "$tar")"
    [[ -f $mark ]] && continue
    # only image archives (OCI or docker-archive), not e.g. rootfs tarballs
    # (no grep -q: under pipefail, tar's SIGPIPE would read as "no")
    if ! tar -tf "$tar" 2>/dev/null | grep -xE '(\./)?(index|manifest)\.json' >/dev/null; then
      touch "$mark"; continue
    fi
    log "$name: importing $(basename "$tar")"
    ctr --address "$dir/containerd.sock" -n k8s.io images import --all-platforms "$tar" >>"$dir/logs/import.log" 2>&1 \
      || { tail -n 5 "$dir/logs/import.log" >&2; die "$name: import of $tar failed"; }
    touch "$mark"
  done
}

start_kubelet() {
  local k=$1 dir name
  dir=$(node_dir "$k")
  name=$(node_name "$k")
  live_pid "$dir/kubelet.pid" "--root-dir=$dir/kubelet" >/dev/null && return 0
  log "$name: starting kubelet"
  # Flag notes (v1.20, this host):
  #  --cgroup-root=/kn-nodeK     per-node pod cgroups (see header); must exist
  #  --fail-swap-on=false        harmless here (no swap), keeps CI hosts with swap working
  #  --container-runtime=remote  containerd's CRI; the dockershim is not used
  #  --volume-plugin-dir         the default /usr/libexec/... would be created
  #  --image-gc-high-threshold=100, --eviction-hard in bytes: the images are imported, and
  #                              no registry can give them back. The kubelet measures the
  #                              host's disk (usage = 1 - available/size, 92% on this host
  #                              with 22 GB free): above its threshold it deleted the images
  #                              no pod used at that moment (the FRR image while the BIRD
  #                              overlay ran) and the next pod waited in PodInitializing
  #                              for ever (CI, stop 31). 100 = never; 256Mi = a full disk.
  start_detached "$dir/kubelet.pid" "$dir/logs/kubelet.log" \
    nsenter --net="/run/netns/$name" --mount="$STATE/mnt/node$k" -- \
    "$KUBELET" \
    --kubeconfig="$dir/kubeconfig" \
    --root-dir="$dir/kubelet" \
    --cert-dir="$dir/kubelet/pki" \
    --volume-plugin-dir="$dir/kubelet/volume-plugins" \
    --hostname-override="$name" \
    --node-ip="$(node_ip4 "$k")" \
    --container-runtime=remote \
    --container-runtime-endpoint="unix://$dir/containerd.sock" \
    --image-service-endpoint="unix://$dir/containerd.sock" \
    --runtime-request-timeout=5m \
    --pod-infra-container-image="$PAUSE_IMAGE" \
    --cgroup-driver=cgroupfs \
    --cgroup-root="/$name" \
    --fail-swap-on=false \
    --feature-gates=IPv6DualStack=true \
    --cluster-domain=cluster.local \
    --read-only-port=0 \
    --healthz-port=10248 \
    --serialize-image-pulls=false \
    --image-gc-high-threshold=100 --image-gc-low-threshold=99 \
    --eviction-hard='memory.available<100Mi,nodefs.available<256Mi,imagefs.available<256Mi' \
    --v=1
}

start_kube_proxy() {
  local k=$1 dir name cidrs=$CLUSTER_CIDR4
  dir=$(node_dir "$k")
  name=$(node_name "$k")
  [[ $IPV6 == 1 ]] && cidrs+=",$CLUSTER_CIDR6"
  live_pid "$dir/kube-proxy.pid" "--hostname-override=$name" >/dev/null && return 0
  log "$name: starting kube-proxy"
  #  --conntrack-*=0   leave the (host-wide) conntrack sysctls alone
  start_detached "$dir/kube-proxy.pid" "$dir/logs/kube-proxy.log" \
    nsenter --net="/run/netns/$name" --mount="$STATE/mnt/node$k" -- \
    "$KUBE_PROXY" \
    --kubeconfig="$dir/kubeconfig" \
    --hostname-override="$name" \
    --proxy-mode=iptables \
    --cluster-cidr="$cidrs" \
    --feature-gates=IPv6DualStack=true \
    --conntrack-max-per-core=0 \
    --conntrack-tcp-timeout-established=0 \
    --conntrack-tcp-timeout-close-wait=0 \
    --metrics-bind-address=127.0.0.1:10249 \
    --healthz-bind-address=0.0.0.0:10256 \
    --oom-score-adj=0 \
    --v=1
}

# The `kubernetes` Service: its Endpoints are ours to write (the apiserver runs
# with --endpoint-reconciler-type=none); pods reach it via the host's socat.
write_kubernetes_endpoints() {
  kubectl_ apply -f - >&2 <<EOF
apiVersion: v1
kind: Endpoints
metadata:
  name: kubernetes
  namespace: default
subsets:
- addresses:
  - ip: $HOST4
  ports:
  - name: https
    port: $APISERVER_PORT
    protocol: TCP
EOF
}

# Give the Node object its pod CIDRs (settable once while empty).
set_pod_cidrs() {
  local k=$1 name cur cidrs
  name=$(node_name "$k")
  cur=$(kubectl_ get node "$name" -o 'jsonpath={.spec.podCIDR}' 2>/dev/null || true)
  [[ -n $cur ]] && return 0
  cidrs="\"$(pod_cidr4 "$k")\""
  [[ $IPV6 == 1 ]] && cidrs+=",\"$(pod_cidr6 "$k")\""
  kubectl_ patch node "$name" --type merge \
    -p "{\"spec\":{\"podCIDR\":\"$(pod_cidr4 "$k")\",\"podCIDRs\":[$cidrs]}}" >&2
}

# ----------------------------------------------------------------- teardown --
# Every process whose cgroup (pids hierarchy) is under /kn-nodeK: the node's
# containers, all started by its containerd.
node_cgroup_pids() {
  local k=$1 d
  d=$(awk '$3 == "cgroup" && $4 ~ /(^|,)pids(,|$)/ { print $2 }' /proc/self/mounts | head -n1)
  [[ -n $d && -d $d/kn-node$k ]] || return 0
  find "$d/kn-node$k" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u
}

# containerd shims of node K (their command line names its socket).
node_shim_pids() {
  local k=$1 p sock
  sock="$(node_dir "$k")/containerd.sock"
  for p in /proc/[0-9]*; do
    [[ -r $p/cmdline ]] || continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -E "(^|/)containerd-shim-runc-v2 .*-address $sock \$" >/dev/null; then
      echo "${p#/proc/}"
    fi
  done
}

rm_cgroup_tree() {
  local top=$1
  [[ -d $top ]] || return 0
  find "$top" -depth -type d -exec rmdir {} \; 2>/dev/null || true
}

node_down() {
  local k=$1 dir name pid d
  dir=$(node_dir "$k")
  name=$(node_name "$k")
  stop_one "$name kubelet" "$dir/kubelet.pid" "--root-dir=$dir/kubelet"
  stop_one "$name kube-proxy" "$dir/kube-proxy.pid" "--hostname-override=$name"
  for pid in $(node_cgroup_pids "$k"); do kill -KILL "$pid" 2>/dev/null || true; done
  stop_one "$name containerd" "$dir/containerd.pid" "$dir/containerd.toml"
  for pid in $(node_shim_pids "$k"); do stop_pid "$name shim" "$pid"; done
  for _ in $(seq 20); do [[ -z $(node_cgroup_pids "$k") ]] && break; sleep 0.2; done
  for d in $(cgroup_all_dirs); do rm_cgroup_tree "$d/kn-node$k"; done
  if mountpoint -q "$STATE/mnt/node$k" 2>/dev/null; then umount "$STATE/mnt/node$k"; fi
  netns_exists "$name" && ip netns del "$name"
  ip route del "$(pod_cidr4 "$k")" 2>/dev/null || true
  ip -6 route del "$(pod_cidr6 "$k")" 2>/dev/null || true
  rm -rf "$dir"
}

cmd_crash() {
  local k=${1:-} dir pid
  [[ $k =~ ^[1-9]$ ]] || die "crash: node number 1..9"
  netns_exists "$(node_name "$k")" || die "crash: no $(node_name "$k")"
  dir=$(node_dir "$k")
  touch "$dir/crashed"
  ip -n "$SEG_NS" link set "kn-n$k-s" down
  for pid in $(live_pid "$dir/kubelet.pid" "--root-dir=$dir/kubelet") \
             $(live_pid "$dir/kube-proxy.pid" "--hostname-override=$(node_name "$k")") \
             $(live_pid "$dir/containerd.pid" "$dir/containerd.toml") \
             $(node_shim_pids "$k") $(node_cgroup_pids "$k"); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  log "$(node_name "$k") crashed: link down, processes killed"
}

cmd_down() {
  mkdir -p "$(dirname "$STATE")"
  exec 9>"$STATE.lock"
  flock 9
  local ns k
  for ns in /run/netns/kn-node*; do
    [[ -e $ns ]] || continue
    k=${ns##*/kn-node}
    node_down "$k"
  done
  for d in "$STATE"/node*; do
    [[ -d $d ]] || continue
    node_down "${d##*/node}"
  done
  if [[ -d $STATE ]]; then
    stop_one "apiserver forwarder" "$STATE/apiproxy.pid" "bind=$HOST4"
    if mountpoint -q "$STATE/mnt" 2>/dev/null; then umount "$STATE/mnt"; fi
  fi
  ip link del "$HOST_IF" 2>/dev/null || true
  netns_exists "$RTR_NS" && ip netns del "$RTR_NS"
  netns_exists "$SEG_NS" && ip netns del "$SEG_NS"
  # Node objects of a previous run would otherwise linger NotReady.
  if KUBECONFIG_PATH=$(bash "$CP" env 2>/dev/null | sed -n 's/^export KUBECONFIG=//p') &&
     [[ -f $KUBECONFIG_PATH ]] && KUBECTL=$(bash "$CP" kubectl-path 2>/dev/null); then
    kubectl_ delete node -l routelb.test/kn-node=true --wait=false 2>&1 | grep -v '^No resources found' >&2 || true
  fi
  rm -rf "$STATE"
  log "down"
}

# -------------------------------------------------------------------- up --
cmd_up() {
  local n=${1:-2} k t0=$SECONDS
  [[ $n =~ ^[1-9]$ ]] || die "N must be 1..9"
  ensure_pkgs containerd runc containernetworking-plugins iptables conntrack socat iproute2 util-linux curl kmod tar

  # control plane with controllers (builds/caches binaries on first use)
  local env_line
  env_line=$(bash "$CP" up | tail -n1)
  KUBECONFIG_PATH=${env_line#export KUBECONFIG=}
  [[ -f $KUBECONFIG_PATH ]] || die "control-plane.sh up gave no kubeconfig"
  KUBECTL=$(bash "$CP" kubectl-path)
  local bins
  mapfile -t bins < <(bash "$CP" node-binaries)
  KUBELET=${bins[0]}
  KUBE_PROXY=${bins[1]}

  # images
  PAUSE_IMAGE=${ROUTELB_KN_PAUSE_IMAGE:-}
  if [[ -z $PAUSE_IMAGE && -f $IMAGES_DIR/images.env ]]; then
    PAUSE_IMAGE=$(sed -n 's/^PAUSE_IMAGE=//p' "$IMAGES_DIR/images.env" | tr -d '"'"'" | tail -n1)
  fi
  [[ -n $PAUSE_IMAGE ]] || die "no pause image: run integration/images/build.sh (or set ROUTELB_KN_PAUSE_IMAGE)"
  # the archives images.env names (*_TAR=...), plus ROUTELB_KN_IMAGE_TARS
  IMAGE_TARS=()
  local t listed=()
  if [[ -f $IMAGES_DIR/images.env ]]; then
    mapfile -t listed < <(sed -n 's/^[A-Z0-9_]*_TAR=//p' "$IMAGES_DIR/images.env" | tr -d '"'"'")
  fi
  # shellcheck disable=SC2206  # a space-separated list by design
  listed+=(${ROUTELB_KN_IMAGE_TARS:-})
  for t in "${listed[@]}"; do
    [[ -f $t ]] || die "image archive $t (images.env / ROUTELB_KN_IMAGE_TARS) is missing"
    IMAGE_TARS+=("$t")
  done

  # kernel modules a fresh machine may not have loaded yet
  [[ -d /proc/sys/net/bridge ]] || modprobe br_netfilter || die "br_netfilter not available"
  grep -qw overlay /proc/filesystems || modprobe overlay || die "overlayfs not available"

  mkdir -p "$STATE/logs"
  exec 9>"$STATE.lock"
  flock 9
  setup_segment
  write_kubernetes_endpoints
  for k in $(seq "$n"); do
    # a crashed node (cmd_crash) is rebuilt from scratch
    if [[ -f $(node_dir "$k")/crashed ]]; then node_down "$k"; fi
    setup_node_net "$k"
    setup_node_cgroups "$k"
    setup_node_mntns "$k"
    write_node_config "$k"
    route_pods_to "$k"
  done
  # containerds start and import their images in parallel (each in a subshell)
  local jobs=() j
  for k in $(seq "$n"); do start_containerd "$k" & jobs+=($!); done
  for j in "${jobs[@]}"; do wait "$j" || die "a containerd failed to start (logs in $STATE/node*/logs)"; done
  for k in $(seq "$n"); do start_kubelet "$k"; done

  local deadline=$((SECONDS + TIMEOUT)) name
  for k in $(seq "$n"); do
    name=$(node_name "$k")
    until kubectl_ get node "$name" >/dev/null 2>&1; do
      live_pid "$(node_dir "$k")/kubelet.pid" "--root-dir=" >/dev/null || {
        tail -n 30 "$(node_dir "$k")/logs/kubelet.log" >&2; die "$name: kubelet exited"; }
      ((SECONDS < deadline)) || die "$name never registered (log $(node_dir "$k")/logs/kubelet.log)"
      sleep 1
    done
    kubectl_ label node "$name" routelb.test/kn-node=true --overwrite >/dev/null
    set_pod_cidrs "$k"
    # only now: kube-proxy takes its node IP from the Node object and, if
    # that is missing for ~15 s, assumes 127.0.0.1
    start_kube_proxy "$k"
  done
  for k in $(seq "$n"); do
    name=$(node_name "$k")
    until [[ $(kubectl_ get node "$name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]; do
      live_pid "$(node_dir "$k")/kubelet.pid" "--root-dir=" >/dev/null || {
        tail -n 30 "$(node_dir "$k")/logs/kubelet.log" >&2; die "$name: kubelet exited"; }
      ((SECONDS < deadline)) || die "$name not Ready after ${TIMEOUT}s (log $(node_dir "$k")/logs/kubelet.log)"
      sleep 1
    done
  done
  log "$n node(s) Ready in $((SECONDS - t0)) s"
  kubectl_ get nodes -o wide >&2
  printf 'export KUBECONFIG=%s\n' "$KUBECONFIG_PATH"
}

cmd_status() {
  local d k
  for d in "$STATE"/node*; do
    [[ -d $d ]] || continue
    k=${d##*/node}
    printf 'kn-node%s: containerd %s, kubelet %s, kube-proxy %s\n' "$k" \
      "$(live_pid "$d/containerd.pid" containerd || echo down)" \
      "$(live_pid "$d/kubelet.pid" kubelet || echo down)" \
      "$(live_pid "$d/kube-proxy.pid" kube-proxy || echo down)"
  done
  KUBECONFIG_PATH=$(bash "$CP" env | sed -n 's/^export KUBECONFIG=//p')
  KUBECTL=$(bash "$CP" kubectl-path)
  kubectl_ get nodes -o wide
}

# A pod of the HTTP image pinned on every node, a dual-stack ClusterIP Service
# over them, and requests to the Service's addresses (and to every pod IP)
# from every node's namespace: pod networking, routes between nodes and
# kube-proxy together. Leaves nothing behind on success.
cmd_smoke() {
  KUBECONFIG_PATH=$(bash "$CP" env | sed -n 's/^export KUBECONFIG=//p')
  KUBECTL=$(bash "$CP" kubectl-path)
  local image=${ROUTELB_KN_HTTP_IMAGE:-} port=${ROUTELB_KN_HTTP_PORT:-8080} cmd=${ROUTELB_KN_HTTP_COMMAND:-}
  if [[ -z $image && -f $IMAGES_DIR/images.env ]]; then
    image=$(sed -n 's/^HTTP_IMAGE=//p' "$IMAGES_DIR/images.env" | tr -d '"'"'" | tail -n1)
    if [[ -z ${ROUTELB_KN_HTTP_PORT:-} ]] && grep -q '^HTTP_PORT=' "$IMAGES_DIR/images.env"; then
      port=$(sed -n 's/^HTTP_PORT=//p' "$IMAGES_DIR/images.env" | tr -d '"'"'" | tail -n1)
    fi
  fi
  [[ -n $image ]] || die "no HTTP image: run integration/images/build.sh (or set ROUTELB_KN_HTTP_IMAGE)"
  local nodes=() k d name ns=kn-smoke
  for d in "$STATE"/node*; do [[ -d $d ]] && nodes+=("${d##*/node}"); done
  [[ ${#nodes[@]} -gt 0 ]] || die "no nodes (nodes.sh up N first)"
  # a fresh namespace (a previous run's may still be terminating)
  kubectl_ delete namespace "$ns" --ignore-not-found --wait=true >&2
  kubectl_ create namespace "$ns" >&2
  local cmdline="" family=PreferDualStack
  [[ $IPV6 == 1 ]] || family=SingleStack
  [[ -n $cmd ]] && cmdline="    command: [$cmd]"
  for k in "${nodes[@]}"; do
    name=$(node_name "$k")
    kubectl_ -n "$ns" apply -f - >&2 <<EOF
apiVersion: v1
kind: Pod
metadata: {name: http-$name, labels: {app: kn-smoke}}
spec:
  nodeName: $name
  terminationGracePeriodSeconds: 1
  containers:
  - name: http
    image: $image
    imagePullPolicy: Never
$cmdline
    ports: [{containerPort: $port}]
    readinessProbe: {tcpSocket: {port: $port}, periodSeconds: 1}
EOF
  done
  kubectl_ -n "$ns" apply -f - >&2 <<EOF
apiVersion: v1
kind: Service
metadata: {name: http}
spec:
  ipFamilyPolicy: $family
  selector: {app: kn-smoke}
  ports: [{port: 80, targetPort: $port}]
EOF
  local t0=$SECONDS
  kubectl_ -n "$ns" wait --for=condition=Ready pod -l app=kn-smoke --timeout=120s >&2 ||
    { kubectl_ -n "$ns" describe pods >&2; die "smoke pods not Ready"; }
  log "pods Ready in $((SECONDS - t0)) s"
  kubectl_ -n "$ns" get pods -o wide >&2
  local ips podips fails=0 ip url seen from out
  ips=$(kubectl_ -n "$ns" get svc http -o 'jsonpath={.spec.clusterIPs[*]}')
  podips=$(kubectl_ -n "$ns" get pods -o 'jsonpath={.items[*].status.podIPs[*].ip}')
  log "service addresses: $ips; pod addresses: $podips"
  for k in "${nodes[@]}"; do
    from=$(node_name "$k")
    for ip in $podips; do
      url="http://$ip:$port/"; [[ $ip == *:* ]] && url="http://[$ip]:$port/"
      if out=$(ip netns exec "$from" curl -fsS --max-time 3 "$url" 2>&1); then
        log "$from -> pod $ip: $out"
      else log "FAIL $from -> pod $ip: $out"; fails=$((fails + 1)); fi
    done
    for ip in $ips; do
      url="http://$ip/"; [[ $ip == *:* ]] && url="http://[$ip]/"
      seen=""
      # kube-proxy programs the Service a moment after the EndpointSlices
      # appear (until then it rejects): wait for a first answer
      local until=$((SECONDS + 30))
      until ip netns exec "$from" curl -fsS --max-time 2 "$url" >/dev/null 2>&1; do
        ((SECONDS < until)) || break
        sleep 0.5
      done
      # every pod must answer through the Service (kube-proxy picks at
      # random; the last pod's endpoint may still be on its way)
      local nseen=0 tries=0
      while ((nseen < ${#nodes[@]} && tries < 60)); do
        tries=$((tries + 1))
        if out=$(ip netns exec "$from" curl -fsS --max-time 3 "$url" 2>&1); then
          [[ " $seen " == *" $out "* ]] || { seen+=" $out"; nseen=$((nseen + 1)); }
        else log "FAIL $from -> service $ip: $out"; fails=$((fails + 1)); break; fi
        ((nseen < ${#nodes[@]})) && sleep 0.2
      done
      log "$from -> service $ip answered by:$seen ($tries requests)"
      if ((nseen < ${#nodes[@]})); then
        log "FAIL $from -> service $ip: not every pod answered"; fails=$((fails + 1))
      fi
    done
  done
  if [[ $fails -gt 0 ]]; then
    die "$fails request(s) failed (namespace $ns kept for inspection)"
  fi
  kubectl_ delete namespace "$ns" --wait=false >&2
  log "smoke OK"
}

case ${1:-} in
  up)     shift; cmd_up "$@" ;;
  down)   cmd_down ;;
  status) cmd_status ;;
  smoke)  cmd_smoke ;;
  crash)  cmd_crash "${2:-}" ;;
  *)      echo "usage: $0 up [N]|down|crash K|status|smoke" >&2; exit 2 ;;
esac
