#!/usr/bin/env bash
# integration/deploy-check.sh — check deploy/ against a real API server.
#
#   KUBECONFIG=... bash integration/deploy-check.sh      the checks (CI)
#   bash integration/deploy-check.sh --sync              refresh deploy/base's copies of
#                                                        crds/ and templates/, then exit
#
# 1. Drift: deploy/base/crds/ and deploy/base/templates/ are copies of crds/ and templates/
#    (kustomize v2.0.3 cannot read files outside a kustomization's directory); they must be
#    identical, and every template must be in the templates ConfigMap and mounted by the agent.
# 2. Applies deploy/base/namespace.yaml and deploy/base/crds/ for real (idempotent), so that
#    namespaced objects and the examples' custom resources can be checked.
# 3. `kubectl apply --dry-run=server -k` for every deploy/overlays/* and deploy/examples: the
#    API server validates, defaults and admits everything (RBAC, PDB, DaemonSet, ...) without
#    storing it. Any error fails. Each overlay's objects must sit in routelb-system, except the
#    Lease Roles and RoleBindings of routelb-node-lease (needs python3-yaml; skipped without).
# 4. deploy/optional/*: must build (`kubectl kustomize`); dry-run on the server too when it
#    serves what they need (ValidatingAdmissionPolicy: Kubernetes 1.30+, not the test server).
#
# kubectl: $KUBECTL alone if set. Otherwise both the v1.20.2 kubectl that
# integration/k8s/control-plane.sh builds and caches (`control-plane.sh kubectl-path`) and, if
# there is one, `kubectl` from PATH. Their embedded kustomize is what `-k` uses: v2.0.3 in
# kubectl 1.20, v5 in current ones; deploy/ is written for both, so both are checked.
#
# Needs KUBECONFIG pointing at a cluster where creating the routelb CRDs and the
# routelb-system namespace is fine (the test API server of integration/k8s/control-plane.sh).
# Prints one summary line on stdout; details go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[deploy-check] %s\n' "$*" >&2; }
fail() {
  printf '[deploy-check] FAILED: %s\n' "$*" >&2
  echo "deploy-check: FAILED: $*"
  exit 1
}

# deploy/base's copy of each template: <daemon>/<file>.conf.tera, with its ConfigMap key.
template_files() { (cd templates && find . -name '*.conf.tera' -type f | sed 's#^\./##' | sort); }

if [[ ${1:-} == --sync ]]; then
  rm -rf deploy/base/crds deploy/base/templates
  mkdir -p deploy/base/crds deploy/base/templates
  cp crds/*.yaml deploy/base/crds/
  cp -r templates/. deploy/base/templates/
  log "copied crds/ and templates/ into deploy/base/"
  log "a new or removed template also needs its line in deploy/base/kustomization.yaml"
  log "(configMapGenerator) and deploy/base/agent.yaml (volume items); the check says which"
  exit 0
fi
[[ $# -eq 0 ]] || { echo "usage: $0 [--sync]" >&2; exit 2; }

# ---------------------------------------------------------------- drift --
drift=0
if ! diff -r crds deploy/base/crds >&2; then
  log "deploy/base/crds/ differs from crds/"
  drift=1
fi
if ! diff -r templates deploy/base/templates >&2; then
  log "deploy/base/templates/ differs from templates/"
  drift=1
fi
ntemplates=0
while read -r f; do
  ntemplates=$((ntemplates + 1))
  key=${f//\//.} # frr/bgp.conf.tera -> frr.bgp.conf.tera
  if ! grep -qxF -- "  - $key=templates/$f" deploy/base/kustomization.yaml; then
    log "templates/$f has no '$key=templates/$f' entry in deploy/base/kustomization.yaml"
    drift=1
  fi
  if ! grep -qF -- "{key: $key, path: $f}" deploy/base/agent.yaml; then
    log "templates/$f is not mounted by deploy/base/agent.yaml ({key: $key, path: $f})"
    drift=1
  fi
done < <(template_files)
nitems=$(grep -c '{key: .*\.conf\.tera, path: ' deploy/base/agent.yaml || true)
nkeys=$(grep -cE '^  - [a-z0-9]+\.[a-z0-9_]+\.conf\.tera=templates/' deploy/base/kustomization.yaml || true)
if [[ $nitems -ne $ntemplates || $nkeys -ne $ntemplates ]]; then
  log "templates/ has $ntemplates templates; the ConfigMap lists $nkeys and the agent mounts $nitems"
  drift=1
fi
[[ $drift -eq 0 ]] || fail "deploy/base copies drifted from crds/ or templates/ (fix: bash integration/deploy-check.sh --sync)"
log "deploy/base copies of crds/ and templates/ ($ntemplates templates) are in sync"

# -------------------------------------------------------------- kubectl --
[[ -n ${KUBECONFIG:-} ]] || fail "KUBECONFIG is not set (eval \"\$(bash integration/k8s/control-plane.sh up | tail -n1)\")"
export KUBECONFIG
kubectls=()
if [[ -n ${KUBECTL:-} ]]; then
  kubectls=("$KUBECTL")
else
  # Always the oldest kustomize deploy/ supports (kubectl v1.20.2 from the same source as the
  # test API server: `up` builds it with the apiserver on a fresh machine, else once here).
  kubectls=("$(bash integration/k8s/control-plane.sh kubectl-path)") || fail "could not get kubectl v1.20.2"
  # And the kubectl users have, if there is one (kustomize v5 on current releases).
  if command -v kubectl >/dev/null 2>&1; then kubectls+=("$(command -v kubectl)"); fi
fi

client_version() {
  local v
  v=$("$1" version --client -o json 2>/dev/null | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -n1)
  [[ -n $v ]] || v=$("$1" version --client --short 2>/dev/null | sed -n 's/^Client Version: //p')
  printf '%s\n' "${v:-unknown}"
}

# ------------------------------------------------------- namespace, CRDs --
kubectl=${kubectls[0]}
[[ -x $kubectl ]] || fail "kubectl $kubectl is not executable"
server=$("$kubectl" version -o json 2>/dev/null | sed -n '/serverVersion/,$ s/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -n1)
[[ -n $server ]] || fail "API server at $KUBECONFIG not reachable"
out=$("$kubectl" apply -f deploy/base/namespace.yaml -f deploy/base/crds/ 2>&1) || {
  printf '%s\n' "$out" >&2
  fail "applying the namespace and CRDs"
}
printf '%s\n' "$out" >&2
crds=()
for f in deploy/base/crds/*.yaml; do
  crds+=("crd/$(sed -n 's/^  name: //p' "$f" | head -n1)")
done
"$kubectl" wait --for condition=established --timeout=60s "${crds[@]}" >&2 \
  || fail "CRDs not established"

# -------------------------------------------------------- server dry-run --
# Reads an overlay's rendered objects on stdin; fails unless every namespaced one is in
# routelb-system but the Lease Roles and RoleBindings, which must be in routelb-node-lease.
check_namespaces='
import sys, yaml
node_lease = {(k, n) for k in ("Role", "RoleBinding") for n in ("routelb-agent", "routelb-allocator")}
cluster = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
seen, bad = set(), []
for o in yaml.safe_load_all(sys.stdin):
    if not o or o["kind"] in cluster:
        continue
    ns, key = o["metadata"].get("namespace"), (o["kind"], o["metadata"]["name"])
    if ns == "routelb-node-lease" and key in node_lease:
        seen.add(key)
    elif ns != "routelb-system":
        bad.append("%s/%s in %s" % (key[0], key[1], ns))
bad += ["%s/%s not in routelb-node-lease" % k for k in sorted(node_lease - seen)]
for b in bad:
    print("[deploy-check]   " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
'
dirs=()
for d in deploy/overlays/*/; do dirs+=("${d%/}"); done
dirs+=(deploy/examples)
clients=()
seen=" "
for kubectl in "${kubectls[@]}"; do
  [[ -x $kubectl ]] || fail "kubectl $kubectl is not executable"
  client=$(client_version "$kubectl")
  if [[ $seen == *" $client "* ]]; then continue; fi
  seen+="$client "
  log "kubectl $client ($kubectl), API server $server"
  for d in "${dirs[@]}"; do
    [[ -f $d/kustomization.yaml ]] || fail "$d has no kustomization.yaml"
    log "kubectl apply --dry-run=server -k $d"
    if ! out=$("$kubectl" apply --dry-run=server -k "$d" 2>&1); then
      printf '%s\n' "$out" >&2
      fail "$d rejected (kubectl $client, server $server)"
    fi
    printf '%s\n' "$out" | sed 's/^/    /' >&2
    # Every object the kustomization renders was sent: count them against the output.
    rendered=$("$kubectl" kustomize "$d" 2>/dev/null | grep -c '^kind: ' || true)
    applied=$(printf '%s\n' "$out" | grep -c '(server dry run)$' || true)
    [[ $rendered -eq $applied ]] || fail "$d renders $rendered objects but $applied were dry-run applied (kubectl $client)"
    if [[ $d == deploy/overlays/* ]] && python3 -c 'import yaml' 2>/dev/null; then
      "$kubectl" kustomize "$d" 2>/dev/null | python3 -c "$check_namespaces" \
        || fail "$d puts objects in the wrong namespace (kubectl $client): see deploy/README.md, 'No namespace:'"
    fi
  done
  for d in deploy/optional/*/; do
    d=${d%/}
    out=$("$kubectl" kustomize "$d" 2>&1) || { printf '%s\n' "$out" >&2; fail "$d does not build (kubectl $client)"; }
    if [[ $d == */node-bound-writes ]] && ! "$kubectl" api-resources --api-group=admissionregistration.k8s.io -o name 2>/dev/null \
        | grep -q '^validatingadmissionpolicies'; then
      log "$d builds; API server $server serves no ValidatingAdmissionPolicy: not dry-run"
      continue
    fi
    log "kubectl apply --dry-run=server -k $d"
    out=$("$kubectl" apply --dry-run=server -k "$d" 2>&1) || { printf '%s\n' "$out" >&2; fail "$d rejected (kubectl $client, server $server)"; }
    printf '%s\n' "$out" | sed 's/^/    /' >&2
  done
  clients+=("$client")
done

optional=$(ls -d deploy/optional/*/ | sed 's#^deploy/##; s#/$##' | paste -sd' ')
echo "deploy-check: ok: ${#dirs[@]} kustomizations (${dirs[*]#deploy/}) accepted by API server $server (server dry-run) with kubectl ${clients[*]}; $optional build; deploy/base copies of crds/ and templates/ in sync"
