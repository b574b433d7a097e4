#!/usr/bin/env bash
# Static checks of the containerlab topologies (containerlab/*/topology.clab.yml), for CI,
# which has neither Docker nor containerlab:
#   * the topology parses (PyYAML), nodes and links are consistent, interface names fit
#     in 15 characters;
#   * every file it refers to exists: bind sources (frr.conf, daemons, vtysh.conf),
#     startup-configs, the kind config of the kind nodes (whose container names must be
#     the ones that kind config makes) and the node base configs of routelb's FRR sidecar;
#   * every FRR config is accepted by FRR's own parser (`vtysh -C -f FILE`; needs no
#     running daemon) and each daemons file enables the daemons its frr.conf needs;
#   * with ROUTELB_BIN=path/to/routelb: `routelb check` renders the fragment for the
#     topology's manifests/ against its node base config and validates it with vtysh, and
#     the routers' filters of the nodes are what `routelb peer-config` prints;
#   * where kubectl is installed: each lab's kustomization.yaml (deploy/overlays/frr-sidecar
#     with the lab's node config) builds (`kubectl kustomize`, no cluster needed).
# The routers' behaviour is exercised by integration/lab/clab-netns.sh check (namespaces).
#
#   bash integration/containerlab-check.sh [TOPOLOGY.clab.yml...]   (default: all of them)
#
# Prints one line per topology and a one-line summary; exits 1 if anything is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
fail() {
  echo "containerlab-check: $*" >&2
  exit 1
}

if ! "$PY" -c 'import yaml' 2>/dev/null; then
  [ "$(id -u)" -eq 0 ] || fail "PyYAML is missing for $PY; install python3-yaml (as root)"
  echo "containerlab-check: installing python3-yaml" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null; }; then
    fail "cannot install python3-yaml"
  fi
fi
command -v vtysh >/dev/null || fail "vtysh not found: install frr (apt-get install -y frr)"

topos=("$@")
if [ ${#topos[@]} -eq 0 ]; then
  mapfile -t topos < <(find containerlab -name '*.clab.yml' | sort)
fi
[ ${#topos[@]} -gt 0 ] || fail "no topology found under containerlab/"

bad=0
"$PY" containerlab/clab_topology.py check "${topos[@]}" || bad=1

rendered=0
if [ -n "${ROUTELB_BIN:-}" ]; then
  [ -x "$ROUTELB_BIN" ] || fail "ROUTELB_BIN=$ROUTELB_BIN is not executable"
  for t in "${topos[@]}"; do
    d=$(dirname "$t")
    if [ ! -d "$d/manifests" ] || [ ! -f "$d/configs/node/frr.conf" ]; then continue; fi
    if out=$("$ROUTELB_BIN" check --config "$d/manifests" --daemon frr --base "$d/configs/node/frr.conf" 2>&1); then
      echo "ok   $d/manifests: routelb renders a fragment for configs/node/frr.conf that vtysh accepts"
      rendered=$((rendered + 1))
    else
      echo "FAIL $d/manifests: routelb check against configs/node/frr.conf:"
      printf '    %s\n' "${out//$'\n'/$'\n'    }"
      bad=1
    fi
  done
fi

# Router configs that take their filter of the nodes from `routelb peer-config`: the block
# between its BEGIN line (which holds the arguments) and END is what that command prints now
# (PEER_CONFIG_SYNC=1 rewrites it).
peer=0
if [ -n "${ROUTELB_BIN:-}" ]; then
  while IFS= read -r conf; do
    args=$(sed -n 's/^! BEGIN routelb peer-config //p' "$conf")
    # shellcheck disable=SC2086 # the arguments as written on the BEGIN line
    want=$("$ROUTELB_BIN" peer-config $args)
    have=$(sed -n '/^! BEGIN routelb peer-config /,/^! END routelb peer-config$/p' "$conf" | sed '1d;$d')
    if [ "$want" = "$have" ]; then
      echo "ok   $conf: its filter of the nodes is what routelb peer-config prints"
      peer=$((peer + 1))
    elif [ "${PEER_CONFIG_SYNC:-}" = 1 ]; then
      "$PY" - "$conf" "$want" <<'PYEOF'
import sys
path, want = sys.argv[1], sys.argv[2]
text = open(path).read()
begin = text.index("! BEGIN routelb peer-config ")
body = text.index("\n", begin) + 1
end = text.index("! END routelb peer-config", body)
open(path, "w").write(text[:body] + want + "\n" + text[end:])
PYEOF
      echo "sync $conf: rewritten from routelb peer-config $args"
    else
      echo "FAIL $conf: its routelb peer-config block differs from what \`routelb peer-config $args\` prints (PEER_CONFIG_SYNC=1 rewrites it):"
      diff <(echo "$have") <(echo "$want") | sed 's/^/    /' || true
      bad=1
    fi
  done < <(grep -l '^! BEGIN routelb peer-config ' containerlab/*/configs/*/frr.conf 2>/dev/null)
fi

built=0
if command -v kubectl >/dev/null; then
  tmp=$(mktemp -d)
  for t in "${topos[@]}"; do
    d=$(dirname "$t")
    [ -f "$d/kustomization.yaml" ] || continue
    if kubectl kustomize "$d" >"$tmp/out" 2>"$tmp/err" && grep -q 'name: routelb-frr-startup-' "$tmp/out"; then
      echo "ok   $d/kustomization.yaml builds (deploy/overlays/frr-sidecar + the lab's node config)"
      built=$((built + 1))
    else
      echo "FAIL $d/kustomization.yaml does not build (or has no routelb-frr-startup ConfigMap):"
      grep -v '^# Warning: ' "$tmp/err" | sed 's/^/    /' || true
      bad=1
    fi
  done
  rm -rf "$tmp"
fi

n=${#topos[@]}
if [ "$bad" = 0 ]; then
  echo "containerlab-check: ok, ${n} topologies (files present, FRR configs accepted by vtysh -C${ROUTELB_BIN:+, $rendered routelb fragments valid, $peer router filters from routelb peer-config}, $built kustomizations build)"
else
  echo "containerlab-check: FAILED (${n} topologies; see the FAIL lines above)"
  exit 1
fi
