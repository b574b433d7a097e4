#!/usr/bin/env bash
# integration/k8s/control-plane.sh — a real, throw-away Kubernetes control
# plane (etcd + kube-apiserver, no controllers, no nodes) for routelb's
# integration tests, built entirely from Debian packages.
#
# Usage:
#   control-plane.sh up     start etcd + kube-apiserver (building the apiserver
#                           once, cached); the LAST line on stdout is exactly
#                           `export KUBECONFIG=<path>`, so
#                             eval "$(integration/k8s/control-plane.sh up | tail -n1)"
#                           works. Idempotent: if it is already up, it only
#                           prints that line again.
#   control-plane.sh down   stop the processes this script started (by its pid
#                           files only) and delete the state directory. Safe
#                           when nothing is running.
#   control-plane.sh env    print `export KUBECONFIG=<path>` and nothing else.
#   control-plane.sh kubectl-path
#                           print the path of a kubectl v1.20.2 built from the
#                           same source (building it once, cached) and nothing
#                           else on stdout. Needs no running control plane.
#   control-plane.sh node-binaries
#                           print the paths of kubelet, kube-proxy,
#                           kube-controller-manager and kube-scheduler v1.20.2
#                           (one per line, that order), building all missing
#                           ones once in one `make` (cached). Needs no running
#                           control plane.
#
#   With ROUTELB_K8S_CONTROLLERS=1, `up` also runs kube-controller-manager and
#   kube-scheduler (a cluster with nodes: integration/k8s/nodes.sh), and the
#   apiserver keeps its ServiceAccount admission plugin (pods get their
#   token) and reaches kubelets by InternalIP. The mode is part of the state:
#   `up` in the other mode refuses to touch a healthy control plane (`down`
#   it first). Default 0: exactly the bare apiserver above.
#
# Why it looks like this:
#   * The only way to get a kube-apiserver here (no internet besides the Debian
#     mirrors and language registries) is Debian 12's `kubernetes` *source*
#     package (upstream v1.20.2), built with Debian's golang-go.
#   * That source vendors github.com/modern-go/reflect2 v1.0.1, which crashes
#     under Go >= 1.18 on the first custom-resource write. We swap the vendored
#     copy for Debian's golang-github-modern-go-reflect2-dev (v1.0.2) and
#     update go.mod / vendor/modules.txt so `-mod=vendor` stays consistent.
#   * The built binaries are cached outside the repository
#     (${ROUTELB_K8S_CACHE:-~/.cache/routelb}/kube-apiserver-v1.20.2 and
#     kubectl-v1.20.2). Each is moved into place atomically only after a
#     successful build, under a flock, so a half-finished build is never used
#     and two concurrent `up`s / `kubectl-path`s never build twice.
#   * One build makes every binary that is missing from one extraction of the
#     source, one Go build cache and one `make`: a fresh machine's first `up`
#     builds kubectl alongside the apiserver (kubectl shares most packages with
#     it, so that costs little extra). `up` never builds for kubectl alone: a
#     machine whose apiserver is already cached gets kubectl from the first
#     `kubectl-path`. That kubectl (with the reflect2 fix too) embeds
#     kustomize v2.0.3, the oldest kustomize deploy/ must keep working with:
#     integration/deploy-check.sh checks deploy/ with it.
#   * Authentication is a static token file (admin in group system:masters);
#     authorization is real RBAC. Services get a dual-stack range
#     (IPv6DualStack feature gate, alpha in v1.20) so that
#     `ipFamilyPolicy: RequireDualStack` Services can be created.
#
# All chatter goes to stderr or to log files; stdout carries only the final
# `export KUBECONFIG=...` line.
#
# Environment overrides (all optional):
#   ROUTELB_K8S_STATE      state dir (certs, etcd data, logs, pids, kubeconfig)
#                          default /tmp/routelb-k8s
#   ROUTELB_K8S_CACHE      build cache dir, default ${XDG_CACHE_HOME:-~/.cache}/routelb
#   ROUTELB_K8S_PORT       apiserver secure port, default 6444
#   ROUTELB_K8S_ETCD_PORT  etcd client port, default 23790 (peer port: +10)
#   ROUTELB_K8S_TIMEOUT    seconds to wait for readiness, default 60
#   ROUTELB_K8S_CONTROLLERS  1: also controller-manager + scheduler (see above)
#   ROUTELB_K8S_AUDIT      1: an audit log at $STATE/logs/audit.log (Metadata level,
#                          every user but routelb-load, whose token is load.token: the
#                          scale harness's own load), to count each component's requests

set -euo pipefail

# ---------------------------------------------------------------- settings --
K8S_VERSION=v1.20.2
STATE_DIR=${ROUTELB_K8S_STATE:-/tmp/routelb-k8s}
CACHE_DIR=${ROUTELB_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/routelb}
APISERVER_PORT=${ROUTELB_K8S_PORT:-6444}
ETCD_CLIENT_PORT=${ROUTELB_K8S_ETCD_PORT:-23790}
ETCD_PEER_PORT=$((ETCD_CLIENT_PORT + 10))
READY_TIMEOUT=${ROUTELB_K8S_TIMEOUT:-60}
CONTROLLERS=${ROUTELB_K8S_CONTROLLERS:-0}
AUDIT=${ROUTELB_K8S_AUDIT:-0}
[[ $CONTROLLERS == 0 || $CONTROLLERS == 1 ]] || { echo "ROUTELB_K8S_CONTROLLERS must be 0 or 1" >&2; exit 2; }

APISERVER_BIN="$CACHE_DIR/kube-apiserver-$K8S_VERSION"
KUBECTL_BIN="$CACHE_DIR/kubectl-$K8S_VERSION"
KCM_BIN="$CACHE_DIR/kube-controller-manager-$K8S_VERSION"
SCHEDULER_BIN="$CACHE_DIR/kube-scheduler-$K8S_VERSION"
KUBECONFIG_PATH="$STATE_DIR/kubeconfig"
PKI_DIR="$STATE_DIR/pki"
LOG_DIR="$STATE_DIR/logs"
ETCD_DATA_DIR="$STATE_DIR/etcd"
ETCD_URL="http://127.0.0.1:$ETCD_CLIENT_PORT"
APISERVER_URL="https://127.0.0.1:$APISERVER_PORT"

# Service ClusterIP ranges: IPv4 primary, IPv6 secondary (v1.20 caps the IPv6
# range at /108, i.e. 20 bits).
SERVICE_CIDRS=10.96.0.0/16,fd00:10:96::/108
SERVICE_ACCOUNT_ISSUER=https://kubernetes.default.svc.cluster.local

# ------------------------------------------------------------------ helpers --
log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { printf '[control-plane] ERROR: %s\n' "$*" >&2; exit 1; }

# Run a command as root (we are root on CI/dev machines; fall back to sudo).
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

print_env() { printf 'export KUBECONFIG=%s\n' "$KUBECONFIG_PATH"; }

# Is Debian package $1 installed?
pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=0
apt_update_once() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    as_root apt-get update -qq >&2
    APT_UPDATED=1
  fi
}

# Install whichever of the given Debian packages are missing.
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  apt_update_once
  log "apt-get install ${missing[*]}"
  # etcd-server's maintainer script tries to start the system etcd service;
  # under policy-rc.d / no systemd that is refused, which is what we want.
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# live_pid: integration/k8s/proc.sh

# Readiness probe of the apiserver with the admin token.
apiserver_ready() {
  [[ -f $PKI_DIR/ca.crt && -f $STATE_DIR/admin.token ]] || return 1
  curl -fsS --max-time 3 --cacert "$PKI_DIR/ca.crt" \
    -H "Authorization: Bearer $(<"$STATE_DIR/admin.token")" \
    "$APISERVER_URL/readyz" >/dev/null 2>&1
}

etcd_healthy() {
  curl -fsS --max-time 3 "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"'
}

# Fail early (with a clear message) if someone else holds one of our ports.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_detached: integration/k8s/proc.sh
# shellcheck source=integration/k8s/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# ------------------------------------------------------------------- build --
# Binaries this script can build: name -> cache path (name = cmd/<name>).
k8s_bin_path() {
  case $1 in
    kube-apiserver) echo "$APISERVER_BIN" ;;
    kubectl)        echo "$KUBECTL_BIN" ;;
    kubelet|kube-proxy|kube-controller-manager|kube-scheduler)
                    echo "$CACHE_DIR/$1-$K8S_VERSION" ;;
    *)              die "unknown binary $1" ;;
  esac
}

# Build v1.20.2 binaries from Debian's source package (once, cached): every
# name given whose cache file is missing, all in one `make`.
#   build_k8s kube-apiserver kubectl
build_k8s() {
  local name want=()
  for name in "$@"; do [[ -x $(k8s_bin_path "$name") ]] || want+=("$name"); done
  [[ ${#want[@]} -eq 0 ]] && return 0
  mkdir -p "$CACHE_DIR"

  # Serialise builds: a second `up` (or `kubectl-path`) waits for the first
  # one's build, then finds its binaries cached.
  exec 9>"$CACHE_DIR/build.lock"
  flock 9
  want=()
  for name in "$@"; do [[ -x $(k8s_bin_path "$name") ]] || want+=("$name"); done
  if [[ ${#want[@]} -eq 0 ]]; then flock -u 9; return 0; fi

  local build_log="$CACHE_DIR/build.log"
  log "${want[*]} $K8S_VERSION not cached; building from Debian's source package (apiserver: 4-6 min on 2 cores, kubectl alone: about 3 min; log: $build_log)"
  : >"$build_log"

  ensure_pkgs golang-go golang-github-modern-go-reflect2-dev dpkg-dev make rsync jq ca-certificates

  # `apt-get source` needs deb-src entries; add them (in a separate file) for
  # the Debian suites already configured, if none are present.
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
    enable_deb_src
    APT_UPDATED=0
    apt_update_once
    apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes' \
      || die "no source package 'kubernetes' available even after enabling deb-src"
  fi

  # Fresh scratch dir (a previous interrupted build is simply discarded).
  local work="$CACHE_DIR/build"
  rm -rf "$work"
  mkdir -p "$work"
  local started=$SECONDS
  (
    cd "$work"
    # apt-get source drops privileges to _apt when it can; a root-owned dir
    # just yields a harmless warning.
    apt-get source --only-source kubernetes
  ) >>"$build_log" 2>&1 || { tail -n 30 "$build_log" >&2; die "apt-get source kubernetes failed"; }

  local src
  src=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)
  [[ -n $src && -f $src/go.mod ]] || die "unpacked kubernetes source not found in $work"
  # The release tarball embeds its tag in hack/lib/version.sh ('tag: v1.20.2').
  grep -qF "tag: $K8S_VERSION" "$src/hack/lib/version.sh" \
    || log "warning: source in $src does not look like $K8S_VERSION"

  # --- reflect2 swap (see header) ---
  local r2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [[ -f $r2/reflect2.go ]] || die "$r2 missing (package golang-github-modern-go-reflect2-dev)"
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -a "$r2" "$src/vendor/github.com/modern-go/reflect2"
  # vendored module dirs never carry their go.mod
  rm -f "$src/vendor/github.com/modern-go/reflect2/go.mod"
  sed -i 's#github.com/modern-go/reflect2 v1\.0\.1#github.com/modern-go/reflect2 v1.0.2#g' \
    "$src/go.mod" "$src/vendor/modules.txt"
  grep -q 'modern-go/reflect2 v1.0.2' "$src/vendor/modules.txt" \
    || die "could not patch vendor/modules.txt for reflect2 v1.0.2"

  # --- build (same recipe as debian/rules, only the binaries we want) ---
  local what=()
  for name in "${want[@]}"; do what+=("cmd/$name"); done
  log "compiling ${what[*]} (this is the slow part)"
  (
    cd "$src"
    export GOPATH="$src/.go" GOCACHE="$work/gocache" HOME="$work/home"
    export CGO_ENABLED=0 GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local
    export PATH="/usr/lib/go/bin:$PATH"
    mkdir -p "$HOME" .go/src/k8s.io
    ln -sfn ../../.. .go/src/k8s.io/kubernetes
    make WHAT="${what[*]}"
  ) >>"$build_log" 2>&1 || { tail -n 40 "$build_log" >&2; die "build of ${what[*]} failed (full log: $build_log)"; }

  # Check every binary first, then publish each atomically: a cache path
  # exists only once its build is complete.
  local out outs=() dest
  for name in "${want[@]}"; do
    out="$src/_output/bin/$name"
    [[ -x $out ]] || out=$(find "$src/_output" -type f -name "$name" -perm -u+x | head -n1)
    [[ -n $out && -x $out ]] || die "build finished but no $name binary found"
    if [[ $name == kubectl ]]; then
      "$out" version --client >>"$build_log" 2>&1 || die "built kubectl does not run"
    else
      "$out" --version >>"$build_log" 2>&1 || die "built $name does not run"
    fi
    outs+=("$out")
  done
  local i
  for i in "${!want[@]}"; do
    dest=$(k8s_bin_path "${want[$i]}")
    cp "${outs[$i]}" "$dest.tmp.$$"
    chmod 0755 "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
  done
  rm -rf "$work"   # source + go build cache are ~2 GB; the binaries are all we keep
  log "built ${want[*]} $K8S_VERSION in $((SECONDS - started)) s -> $CACHE_DIR"
  flock -u 9
}

# `up` builds only when the apiserver is missing, and then kubectl with it
# (same source, one make); a cached apiserver is never held up by kubectl.
build_apiserver() {
  [[ -x $APISERVER_BIN ]] && return 0
  build_k8s kube-apiserver kubectl
}

# Write /etc/apt/sources.list.d/routelb-deb-src.sources mirroring the
# existing Debian `deb` entries as `deb-src` (existing files stay untouched).
enable_deb_src() {
  local out=/etc/apt/sources.list.d/routelb-deb-src.sources tmp
  tmp=$(mktemp)
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    # deb822: same stanzas, Types rewritten to deb-src.
    sed -E 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$tmp"
    log "enabling deb-src entries in $out"
    as_root install -m 0644 "$tmp" "$out"
  elif [[ -f /etc/apt/sources.list ]] && grep -qE '^deb ' /etc/apt/sources.list; then
    # legacy one-line format
    out=/etc/apt/sources.list.d/routelb-deb-src.list
    sed -nE 's/^deb (.*)/deb-src \1/p' /etc/apt/sources.list >"$tmp"
    log "enabling deb-src entries in $out"
    as_root install -m 0644 "$tmp" "$out"
  else
    rm -f "$tmp"
    die "cannot find Debian apt sources to derive deb-src entries from"
  fi
  rm -f "$tmp"
}

# -------------------------------------------------------------------- pki --
# CA, apiserver serving cert (127.0.0.1 / ::1 / localhost / the kubernetes
# Service IPs), service-account signing key pair and a static admin token.
generate_pki() {
  mkdir -p "$PKI_DIR"
  chmod 0700 "$PKI_DIR"
  [[ -f $PKI_DIR/apiserver.crt && -f $STATE_DIR/tokens.csv ]] && return 0
  (
    cd "$PKI_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -keyout ca.key -out ca.crt -subj "/CN=routelb-test-ca"
    openssl req -newkey rsa:2048 -nodes -sha256 \
      -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    cat >apiserver.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, IP:10.96.0.1, IP:fd00:10:96::1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
EOF
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -sha256 -days 3650 -extfile apiserver.ext -out apiserver.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) >>"$LOG_DIR/pki.log" 2>&1 || { tail -n 20 "$LOG_DIR/pki.log" >&2; die "certificate generation failed"; }

  # Static token auth: token,user,uid,"group1,group2"
  local token
  token=$(openssl rand -hex 24)
  umask 077
  printf '%s\n' "$token" >"$STATE_DIR/admin.token"
  printf '%s,routelb-admin,routelb-admin,"system:masters"\n' "$token" >"$STATE_DIR/tokens.csv"
  umask 022
}

# The load harness's own user (benches/scale_api.rs), left out of the audit log; added to
# state directories made before it existed.
ensure_load_token() {
  grep -q ',routelb-load,' "$STATE_DIR/tokens.csv" && return 0
  umask 077
  openssl rand -hex 24 >"$STATE_DIR/load.token"
  printf '%s,routelb-load,routelb-load,"system:masters"\n' "$(<"$STATE_DIR/load.token")" >>"$STATE_DIR/tokens.csv"
  umask 022
}

# The audit policy of ROUTELB_K8S_AUDIT=1: one line per request of everyone but the load.
audit_flags() {
  [[ $AUDIT == 1 ]] || return 0
  cat >"$STATE_DIR/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["routelb-load"]
- level: Metadata
POLICY
  printf '%s\n' --audit-policy-file="$STATE_DIR/audit-policy.yaml" \
    --audit-log-path="$LOG_DIR/audit.log" --audit-log-maxsize=0
}

write_kubeconfig() {
  local ca_data tmp
  ca_data=$(base64 -w0 <"$PKI_DIR/ca.crt")
  tmp="$KUBECONFIG_PATH.tmp"
  umask 077
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: routelb-test
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $ca_data
users:
- name: routelb-admin
  user:
    token: $(<"$STATE_DIR/admin.token")
contexts:
- name: routelb-test
  context:
    cluster: routelb-test
    user: routelb-admin
    namespace: default
current-context: routelb-test
EOF
  umask 022
  mv -f "$tmp" "$KUBECONFIG_PATH"
}

# ---------------------------------------------------------------- processes --
start_etcd() {
  port_free "$ETCD_CLIENT_PORT" || die "port $ETCD_CLIENT_PORT is in use by another process (set ROUTELB_K8S_ETCD_PORT)"
  port_free "$ETCD_PEER_PORT" || die "port $ETCD_PEER_PORT is in use by another process (set ROUTELB_K8S_ETCD_PORT)"
  mkdir -p "$ETCD_DATA_DIR"
  chmod 0700 "$ETCD_DATA_DIR"
  log "starting etcd on $ETCD_URL"
  start_detached "$STATE_DIR/etcd.pid" "$LOG_DIR/etcd.log" \
    /usr/bin/etcd \
    --name routelb-test \
    --data-dir "$ETCD_DATA_DIR" \
    --listen-client-urls "$ETCD_URL" \
    --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "routelb-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state new \
    --logger zap --log-outputs stderr
  local deadline=$((SECONDS + READY_TIMEOUT))
  until etcd_healthy; do
    startup_alive etcd "$STATE_DIR/etcd.pid" "$ETCD_DATA_DIR" "$LOG_DIR/etcd.log"
    startup_in_time etcd "$deadline" "not healthy" "$LOG_DIR/etcd.log"
    sleep 0.2
  done
}

start_apiserver() {
  port_free "$APISERVER_PORT" || die "port $APISERVER_PORT is in use by another process (set ROUTELB_K8S_PORT)"
  log "starting kube-apiserver $K8S_VERSION on $APISERVER_URL"
  local mode_flags=(--disable-admission-plugins=ServiceAccount) audit
  ensure_load_token
  mapfile -t audit < <(audit_flags)
  # with nodes: reach kubelets (logs, exec) by their InternalIP, not by their
  # host name (the default order's first choice), which no DNS resolves here
  # shellcheck disable=SC2054  # one flag whose value is a comma list
  [[ $CONTROLLERS == 1 ]] && mode_flags=(--kubelet-preferred-address-types=InternalIP,Hostname)
  # Notes on flags:
  #  --insecure-port=0            v1.20 still opens an unauthenticated :8080 otherwise
  #  --endpoint-reconciler-type=none
  #                               the `kubernetes` Endpoints would carry 127.0.0.1,
  #                               which Endpoints validation rejects (loopback)
  #  --disable-admission-plugins=ServiceAccount
  #                               no controller-manager creates the `default`
  #                               ServiceAccount, so Pods would be rejected
  #                               (kept enabled with ROUTELB_K8S_CONTROLLERS=1:
  #                               then the token controller runs)
  #  --feature-gates=IPv6DualStack=true + two service CIDRs
  #                               dual-stack Services (ipFamilyPolicy)
  #  ServiceLBNodePortControl / MixedProtocolLBService (alpha in v1.20)
  #                               make spec.allocateLoadBalancerNodePorts and
  #                               TCP+UDP LoadBalancer Services accepted
  #  NOT available in v1.20 at all: spec.loadBalancerClass (1.21; silently
  #  dropped), status.loadBalancer.ingress[].ipMode (1.29; dropped by
  #  merge patches, rejected by server-side apply), discovery.k8s.io/v1
  #  (1.21; only v1beta1 EndpointSlices here).
  start_detached "$STATE_DIR/apiserver.pid" "$LOG_DIR/apiserver.log" \
    "$APISERVER_BIN" \
    --etcd-servers="$ETCD_URL" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --insecure-port=0 \
    --tls-cert-file="$PKI_DIR/apiserver.crt" \
    --tls-private-key-file="$PKI_DIR/apiserver.key" \
    --client-ca-file="$PKI_DIR/ca.crt" \
    --token-auth-file="$STATE_DIR/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer="$SERVICE_ACCOUNT_ISSUER" \
    --api-audiences="$SERVICE_ACCOUNT_ISSUER" \
    --service-account-key-file="$PKI_DIR/sa.pub" \
    --service-account-signing-key-file="$PKI_DIR/sa.key" \
    --feature-gates=IPv6DualStack=true,ServiceLBNodePortControl=true,MixedProtocolLBService=true \
    --service-cluster-ip-range="$SERVICE_CIDRS" \
    --endpoint-reconciler-type=none \
    "${mode_flags[@]}" \
    "${audit[@]}" \
    --allow-privileged=true \
    --profiling=false \
    --v=1

  # Wait for /readyz, then for the bootstrap controller's namespaces.
  local deadline=$((SECONDS + READY_TIMEOUT)) ns
  until apiserver_ready; do
    startup_alive kube-apiserver "$STATE_DIR/apiserver.pid" "$APISERVER_BIN" "$LOG_DIR/apiserver.log"
    startup_in_time kube-apiserver "$deadline" "not ready" "$LOG_DIR/apiserver.log"
    sleep 0.5
  done
  for ns in default kube-system; do
    until curl -fsS --max-time 3 --cacert "$PKI_DIR/ca.crt" \
        -H "Authorization: Bearer $(<"$STATE_DIR/admin.token")" \
        "$APISERVER_URL/api/v1/namespaces/$ns" >/dev/null 2>&1; do
      ((SECONDS < deadline)) || {
        tail -n 40 "$LOG_DIR/apiserver.log" >&2; die "namespace $ns never appeared (bootstrap controller)"; }
      sleep 0.5
    done
  done
}

# kube-controller-manager and kube-scheduler (ROUTELB_K8S_CONTROLLERS=1), with
# the admin kubeconfig (a throw-away cluster). Their HTTP(S) serving is off
# (--port=0 --secure-port=0): nothing here scrapes them, and fixed ports would
# collide with a second control plane on the same machine.
#  controller-manager: all default controllers (EndpointSlice + mirroring,
#  ServiceAccount + token, DaemonSet, Deployment, ReplicaSet, node lifecycle,
#  GC, namespace, ...); tokens are signed with the key the apiserver verifies
#  (sa.key / sa.pub); no cloud provider, so no `service` controller competes
#  with routelb for LoadBalancer Services; nodes' pod CIDRs are not allocated
#  here (integration/k8s/nodes.sh assigns them).
start_controllers() {
  log "starting kube-controller-manager and kube-scheduler $K8S_VERSION"
  start_detached "$STATE_DIR/controller-manager.pid" "$LOG_DIR/controller-manager.log" \
    "$KCM_BIN" \
    --kubeconfig="$KUBECONFIG_PATH" \
    --leader-elect=false \
    --port=0 --secure-port=0 \
    --controllers='*' \
    --use-service-account-credentials=false \
    --service-account-private-key-file="$PKI_DIR/sa.key" \
    --root-ca-file="$PKI_DIR/ca.crt" \
    --cluster-signing-cert-file="$PKI_DIR/ca.crt" \
    --cluster-signing-key-file="$PKI_DIR/ca.key" \
    --allocate-node-cidrs=false \
    --flex-volume-plugin-dir="$STATE_DIR/flexvolume" \
    --feature-gates=IPv6DualStack=true \
    --profiling=false \
    --v=1
  start_detached "$STATE_DIR/scheduler.pid" "$LOG_DIR/scheduler.log" \
    "$SCHEDULER_BIN" \
    --kubeconfig="$KUBECONFIG_PATH" \
    --leader-elect=false \
    --port=0 --secure-port=0 \
    --profiling=false \
    --v=1
  # Ready when the ServiceAccount controller has made `default` in `default`
  # (and the token controller its secret): pods can be created from then on.
  local deadline=$((SECONDS + READY_TIMEOUT)) sa
  until sa=$(curl -fsS --max-time 3 --cacert "$PKI_DIR/ca.crt" \
        -H "Authorization: Bearer $(<"$STATE_DIR/admin.token")" \
        "$APISERVER_URL/api/v1/namespaces/default/serviceaccounts/default" 2>/dev/null) &&
      grep -q '"secrets"' <<<"$sa"; do
    startup_alive kube-controller-manager "$STATE_DIR/controller-manager.pid" "$KCM_BIN" "$LOG_DIR/controller-manager.log"
    startup_alive kube-scheduler "$STATE_DIR/scheduler.pid" "$SCHEDULER_BIN" "$LOG_DIR/scheduler.log"
    startup_in_time kube-controller-manager "$deadline" "no default ServiceAccount token" "$LOG_DIR/controller-manager.log"
    sleep 0.5
  done
}

stop_controllers() {
  stop_one kube-scheduler "$STATE_DIR/scheduler.pid" "$SCHEDULER_BIN"
  stop_one kube-controller-manager "$STATE_DIR/controller-manager.pid" "$KCM_BIN"
}

# While waiting for a daemon started here: die with its log's tail when it exited
# (startup_alive NAME PIDFILE CMDLINE-PART LOG) or when DEADLINE passed
# (startup_in_time NAME DEADLINE WHAT LOG).
startup_alive() {
  live_pid "$2" "$3" >/dev/null && return 0
  tail -n 40 "$4" >&2; die "$1 exited during startup (log: $4)"
}
startup_in_time() {
  ((SECONDS < $2)) && return 0
  tail -n 40 "$4" >&2; die "$1: $3 after ${READY_TIMEOUT}s (log: $4)"
}

# Stop one process (by pid file, with cmdline check), TERM then KILL.
stop_one() {
  local name=$1 pidfile=$2 expect=$3 pid
  if pid=$(live_pid "$pidfile" "$expect"); then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    if [[ -d /proc/$pid ]]; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  fi
  rm -f "$pidfile"
}

# EXIT trap of a failed `up`.
stop_after_failure() {
  local rc=$?
  [[ $rc -eq 0 ]] && return 0
  log "up failed; stopping what was started (logs kept in $LOG_DIR)"
  stop_controllers
  stop_one kube-apiserver "$STATE_DIR/apiserver.pid" "$APISERVER_BIN"
  stop_one etcd "$STATE_DIR/etcd.pid" "$ETCD_DATA_DIR"
  exit "$rc"
}

# ------------------------------------------------------------ subcommands --
NODE_BINARIES=(kubelet kube-proxy kube-controller-manager kube-scheduler)
is_up() {
  live_pid "$STATE_DIR/etcd.pid" "$ETCD_DATA_DIR" >/dev/null &&
    live_pid "$STATE_DIR/apiserver.pid" "$APISERVER_BIN" >/dev/null &&
    [[ -f $KUBECONFIG_PATH ]] && apiserver_ready &&
    [[ $(cat "$STATE_DIR/controllers" 2>/dev/null || echo 0) == "$CONTROLLERS" ]] &&
    { [[ $CONTROLLERS == 0 ]] ||
      { live_pid "$STATE_DIR/controller-manager.pid" "$KCM_BIN" >/dev/null &&
        live_pid "$STATE_DIR/scheduler.pid" "$SCHEDULER_BIN" >/dev/null; }; }
}

# Stop our processes and delete the state dir (caller holds the lock).
teardown() {
  if [[ -d $STATE_DIR ]]; then
    stop_controllers
    stop_one kube-apiserver "$STATE_DIR/apiserver.pid" "$APISERVER_BIN"
    stop_one etcd "$STATE_DIR/etcd.pid" "$ETCD_DATA_DIR"
    rm -rf "$STATE_DIR"
  fi
}

cmd_down() {
  # Lock against a concurrent up/down on the same state dir.
  exec 8>"$STATE_DIR.lock"
  flock 8
  teardown
  log "down"
}

cmd_up() {
  mkdir -p "$(dirname "$STATE_DIR")"
  exec 8>"$STATE_DIR.lock"
  flock 8

  if is_up; then
    log "already up at $APISERVER_URL"
    print_env
    return 0
  fi
  # A healthy control plane of the other mode (with/without controllers) is
  # someone's running cluster: refuse rather than restart it under them.
  if live_pid "$STATE_DIR/apiserver.pid" "$APISERVER_BIN" >/dev/null && apiserver_ready &&
     [[ $(cat "$STATE_DIR/controllers" 2>/dev/null || echo 0) != "$CONTROLLERS" ]]; then
    die "a control plane with ROUTELB_K8S_CONTROLLERS=$(cat "$STATE_DIR/controllers" 2>/dev/null || echo 0) is up in $STATE_DIR; run \`$0 down\` first or use another ROUTELB_K8S_STATE/ROUTELB_K8S_PORT/ROUTELB_K8S_ETCD_PORT"
  fi
  # Anything half-started (one process dead, not ready, stale files) is torn
  # down and started afresh: these clusters hold only test data.
  if [[ -n $(ls -A "$STATE_DIR" 2>/dev/null) ]]; then
    log "found a partial/stale control plane in $STATE_DIR; restarting it from scratch"
    teardown
  fi

  local t0=$SECONDS
  ensure_pkgs etcd-server openssl curl ca-certificates util-linux
  build_apiserver
  [[ $CONTROLLERS == 1 ]] && build_k8s "${NODE_BINARIES[@]}"

  # Check every port before starting anything.
  local p
  for p in "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT"; do
    port_free "$p" || die "127.0.0.1:$p is in use by another process (set ROUTELB_K8S_PORT / ROUTELB_K8S_ETCD_PORT)"
  done
  # If anything below fails, stop what we started but keep the state dir
  # (logs!) for inspection; the next `up` or `down` cleans it.
  trap 'stop_after_failure' EXIT

  mkdir -p "$STATE_DIR" "$LOG_DIR"
  generate_pki
  write_kubeconfig
  start_etcd
  start_apiserver
  echo "$CONTROLLERS" >"$STATE_DIR/controllers"
  [[ $CONTROLLERS == 1 ]] && start_controllers
  trap - EXIT
  log "up in $((SECONDS - t0)) s: $APISERVER_URL (logs: $LOG_DIR)"
  print_env
}

# Print the cached kubectl's path (building it first if needed); stdout
# carries the path only.
cmd_kubectl_path() {
  build_k8s kubectl
  [[ -x $KUBECTL_BIN ]] || die "no kubectl at $KUBECTL_BIN"
  printf '%s\n' "$KUBECTL_BIN"
}

# Build (once, cached, one `make`) and print the paths of the node and
# controller binaries, one per line in this order: kubelet, kube-proxy,
# kube-controller-manager, kube-scheduler. Needs no running control plane.
cmd_node_binaries() {
  build_k8s "${NODE_BINARIES[@]}"
  local name
  for name in "${NODE_BINARIES[@]}"; do
    [[ -x $(k8s_bin_path "$name") ]] || die "no $name at $(k8s_bin_path "$name")"
    k8s_bin_path "$name"
  done
}

case ${1:-} in
  up)   cmd_up ;;
  down) cmd_down ;;
  env)  print_env ;;
  kubectl-path) cmd_kubectl_path ;;
  node-binaries) cmd_node_binaries ;;
  *)    echo "usage: $0 up|down|env|kubectl-path|node-binaries" >&2; exit 2 ;;
esac
