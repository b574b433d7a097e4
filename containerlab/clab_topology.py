#!/usr/bin/env python3
"""Reads a routelb containerlab topology (topology.clab.yml) for the two tools that cannot
run containerlab itself:

  clab_topology.py check TOPO...   static checks, what integration/containerlab-check.sh runs:
                                   the YAML, nodes and links, every file the topology refers to
                                   (binds, startup-config, kind config, the node FRR files),
                                   FRR configs through FRR's own parser (`vtysh -C -f FILE`),
                                   daemons files against the protocols their frr.conf uses.
  clab_topology.py spec TOPO       the topology as tab-separated lines for
                                   integration/lab/clab-netns.sh (see `spec` below).

Conventions of these topologies (containerlab ignores the labels; they are ours):
  * an FRR router is a `linux` node whose binds put a file at /etc/frr/frr.conf (and
    /etc/frr/daemons); its interface addresses are in that frr.conf (zebra sets them);
  * a Kubernetes node is an `ext-container` node (a kind node container) labelled
    routelb.lab/role=k8s-node, with routelb.lab/kind-config (the kind config that creates
    it), routelb.lab/frr-config and routelb.lab/frr-daemons (the base FRR files of routelb's
    FRR sidecar) and, for IS-IS, routelb.lab/isis-net (its NET);
  * every other node (the client) is a plain host whose `exec` lines configure it.
Needs PyYAML (Debian: python3-yaml).
"""
import os
import re
import shlex
import subprocess
import sys

import yaml

FRR_CONF = "/etc/frr/frr.conf"
FRR_DAEMONS = "/etc/frr/daemons"
LABEL = "routelb.lab/"
# Commands the netns lab runs from `exec` (inside a network namespace, as root).
NETNS_COMMANDS = {"ip", "sysctl"}
IFNAME_MAX = 15  # IFNAMSIZ - 1
# Protocol context in frr.conf -> the daemon that must be enabled in the daemons file.
PROTO_DAEMONS = [
    (re.compile(r"^router bgp\b"), "bgpd"),
    (re.compile(r"^router ospf(\s|$)"), "ospfd"),
    (re.compile(r"^router ospf6\b"), "ospf6d"),
    (re.compile(r"^router isis\b"), "isisd"),
    (re.compile(r"^router rip(\s|$)"), "ripd"),
    (re.compile(r"^router ripng\b"), "ripngd"),
    (re.compile(r"^router openfabric\b"), "fabricd"),
    (re.compile(r"^bfd\b"), "bfdd"),
]


class TopologyError(Exception):
    pass


class Node:
    def __init__(self, name, role, cfg):
        self.name = name
        self.role = role  # router | k8s-node | host
        self.cfg = cfg
        self.frr_conf = None  # absolute paths
        self.daemons = None
        self.exec = []
        self.labels = {}


class Topology:
    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.dir = os.path.dirname(self.path)
        try:
            with open(self.path) as f:
                doc = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            raise TopologyError("%s: cannot read: %s" % (path, e))
        if not isinstance(doc, dict) or not isinstance(doc.get("topology"), dict):
            raise TopologyError("%s: no `topology:` mapping" % path)
        self.name = doc.get("name")
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise TopologyError("%s: missing or bad lab `name`" % path)
        self.prefix = doc.get("prefix", "clab")
        topo = doc["topology"]
        kinds = topo.get("kinds") or {}
        defaults = topo.get("defaults") or {}
        nodes = topo.get("nodes")
        if not isinstance(nodes, dict) or not nodes:
            raise TopologyError("%s: no nodes" % path)
        self.nodes = {}
        for name, cfg in nodes.items():
            cfg = dict(cfg or {})
            kind = cfg.get("kind") or defaults.get("kind")
            if not kind:
                raise TopologyError("%s: node %s has no kind" % (path, name))
            merged = dict(defaults)
            merged.update(kinds.get(kind) or {})
            merged.update(cfg)
            merged["kind"] = kind
            labels = {str(k): str(v) for k, v in (merged.get("labels") or {}).items()}
            binds = {}
            for b in merged.get("binds") or []:
                parts = str(b).split(":")
                if len(parts) < 2:
                    raise TopologyError("%s: node %s: bad bind %r" % (path, name, b))
                binds[parts[1]] = self.file(parts[0])
            if kind == "linux" and FRR_CONF in binds:
                role = "router"
            elif kind == "ext-container" and labels.get(LABEL + "role") == "k8s-node":
                role = "k8s-node"
            else:
                role = "host"
            n = Node(name, role, merged)
            n.labels = labels
            n.binds = binds
            n.exec = [str(c) for c in merged.get("exec") or []]
            if role == "router":
                n.frr_conf = binds[FRR_CONF]
                n.daemons = binds.get(FRR_DAEMONS)
            elif role == "k8s-node":
                n.frr_conf = self.file(labels.get(LABEL + "frr-config", ""))
                n.daemons = self.file(labels.get(LABEL + "frr-daemons", ""))
            self.nodes[name] = n
        self.links = []
        for i, link in enumerate(topo.get("links") or []):
            eps = (link or {}).get("endpoints")
            if not isinstance(eps, list) or len(eps) != 2:
                raise TopologyError("%s: link %d: endpoints must be two \"node:ifname\"" % (path, i + 1))
            ends = []
            for ep in eps:
                node, sep, ifname = str(ep).partition(":")
                if not sep or not ifname:
                    raise TopologyError("%s: link %d: bad endpoint %r" % (path, i + 1, ep))
                ends.append((node, ifname))
            self.links.append(tuple(ends))

    def file(self, rel):
        """A path as containerlab resolves it: relative to the topology file's directory."""
        if not rel:
            return None
        return rel if os.path.isabs(rel) else os.path.normpath(os.path.join(self.dir, rel))

    def container(self, node):
        """The container (and netns) name of a node, as containerlab and kind name them."""
        n = self.nodes[node]
        if n.cfg["kind"] == "ext-container":
            return node
        if self.prefix in ("", None):
            return node
        if self.prefix == "__lab-name":
            return "%s-%s" % (self.name, node)
        return "%s-%s-%s" % (self.prefix, self.name, node)


# ------------------------------------------------------------------ checks


def frr_protocol_daemons(text):
    need = set()
    for line in text.splitlines():
        for rx, daemon in PROTO_DAEMONS:
            if rx.match(line):
                need.add(daemon)
    return need


def daemons_enabled(path):
    enabled = set()
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s*([a-z0-9]+)=(yes|no)\s*$", line)
            if m and m.group(2) == "yes":
                enabled.add(m.group(1))
    return enabled


def kind_container_names(path):
    """The node containers `kind create cluster --config PATH` makes."""
    with open(path) as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or doc.get("kind") != "Cluster":
        raise TopologyError("%s: not a kind Cluster config" % path)
    name = doc.get("name")
    if not name:
        raise TopologyError("%s: no cluster `name` (the node container names depend on it)" % path)
    counts = {}
    names = []
    for n in doc.get("nodes") or [{"role": "control-plane"}]:
        role = (n or {}).get("role", "control-plane")
        counts[role] = counts.get(role, 0) + 1
        names.append("%s-%s%s" % (name, role, "" if counts[role] == 1 else counts[role]))
    return names


def vtysh_check(path):
    p = subprocess.run(["vtysh", "-C", "-f", path], capture_output=True, text=True)
    if p.returncode != 0:
        msg = (p.stdout + p.stderr).strip() or "exit status %d" % p.returncode
        return msg
    return None


def check(path, use_vtysh=True):
    """Returns (problems, counts)."""
    problems = []
    counts = {"nodes": 0, "links": 0, "files": 0, "frr": 0}
    try:
        t = Topology(path)
    except TopologyError as e:
        return [str(e)], counts
    rel = os.path.relpath(t.path)
    counts["nodes"] = len(t.nodes)
    counts["links"] = len(t.links)

    def bad(msg):
        problems.append("%s: %s" % (rel, msg))

    files = set()
    pairs_checked = set()

    def need_file(node, what, p):
        if not p:
            bad("node %s: %s is not set" % (node, what))
            return False
        if not os.path.isfile(p):
            if p not in files:
                bad("node %s: %s %s does not exist" % (node, what, os.path.relpath(p)))
            files.add(p)
            return False
        files.add(p)
        return True

    used_ifs = {}
    for a, b in t.links:
        for node, ifname in (a, b):
            if node not in t.nodes:
                bad("link %s:%s - %s:%s: no node %r" % (a + b + (node,)))
                continue
            if len(ifname) > IFNAME_MAX:
                bad("node %s: interface name %r is longer than %d characters" % (node, ifname, IFNAME_MAX))
            if (node, ifname) in used_ifs:
                bad("node %s: interface %s is used by two links" % (node, ifname))
            used_ifs[(node, ifname)] = True

    kind_configs = {}
    for name, n in t.nodes.items():
        for target, src in n.binds.items():
            need_file(name, "bind source for %s" % target, src)
        sc = n.cfg.get("startup-config")
        if sc and "\n" not in str(sc):
            need_file(name, "startup-config", t.file(str(sc)))
        if n.role == "router":
            if not n.daemons:
                bad("node %s: binds %s but no %s" % (name, FRR_CONF, FRR_DAEMONS))
        if n.role == "k8s-node":
            kc = t.file(n.labels.get(LABEL + "kind-config", ""))
            if need_file(name, "label %skind-config" % LABEL, kc):
                try:
                    kind_configs.setdefault(kc, kind_container_names(kc))
                except (TopologyError, yaml.YAMLError) as e:
                    bad(str(e))
                else:
                    if name not in kind_configs[kc]:
                        bad("node %s: %s creates no such container (it makes %s)"
                            % (name, os.path.relpath(kc), ", ".join(kind_configs[kc])))
            for c in n.exec:
                words = shlex.split(c)
                if not words or words[0] not in NETNS_COMMANDS:
                    bad("node %s: exec %r: only %s commands are allowed on kind nodes (the netns lab runs them)"
                        % (name, c, "/".join(sorted(NETNS_COMMANDS))))
        if n.role in ("router", "k8s-node"):
            ok_conf = need_file(name, "FRR config", n.frr_conf)
            ok_daemons = need_file(name, "FRR daemons file", n.daemons)
            if ok_conf and ok_daemons and (n.frr_conf, n.daemons) not in pairs_checked:
                pairs_checked.add((n.frr_conf, n.daemons))
                with open(n.frr_conf) as f:
                    text = f.read()
                missing = frr_protocol_daemons(text) - daemons_enabled(n.daemons)
                if missing:
                    bad("node %s: %s configures %s but %s does not enable it"
                        % (name, os.path.relpath(n.frr_conf), ", ".join(sorted(missing)),
                           os.path.relpath(n.daemons)))
                if n.role == "k8s-node" and re.search(r"^router isis ", text, re.M) \
                        and not re.search(r"^ net ", text, re.M):
                    if not re.fullmatch(r"[0-9a-fA-F]{2}(\.[0-9a-fA-F]{4}){4,}\.00",
                                        n.labels.get(LABEL + "isis-net", "")):
                        bad("node %s: its IS-IS config has no NET and label %sisis-net is missing or bad"
                            % (name, LABEL))
    # The shared node config relies on per-node identities: a loopback /32 (zebra's
    # router-id) and, for IS-IS, a NET whose system ID no other router uses.
    seen_lo, seen_sysid = {}, {}
    for name, n in t.nodes.items():
        if n.role == "k8s-node":
            lo = [m.group(1) for c in n.exec
                  for m in [re.match(r"^ip (?:-4 )?addr(?:ess)? (?:add|replace) (\S+)/32 dev lo$", c.strip())] if m]
            if not lo:
                bad("node %s: no `ip addr replace A.B.C.D/32 dev lo` in exec (its FRR router-id)" % name)
            for a in lo:
                if a in seen_lo:
                    bad("nodes %s and %s: same loopback %s (same router-id)" % (seen_lo[a], name, a))
                seen_lo.setdefault(a, name)
        nets = []
        if n.labels.get(LABEL + "isis-net"):
            nets.append(n.labels[LABEL + "isis-net"])
        if n.role == "router" and n.frr_conf and os.path.isfile(n.frr_conf):
            with open(n.frr_conf) as f:
                nets += re.findall(r"^ net (\S+)$", f.read(), re.M)
        for net in nets:
            sysid = ".".join(net.split(".")[-4:-1])
            if sysid in seen_sysid and seen_sysid[sysid] != name:
                bad("nodes %s and %s: same IS-IS system ID %s" % (seen_sysid[sysid], name, sysid))
            seen_sysid.setdefault(sysid, name)
    # Every kind node a kind config makes must be wired into the fabric.
    for kc, names in kind_configs.items():
        for cname in names:
            if cname not in t.nodes:
                bad("%s makes container %s, which the topology does not list" % (os.path.relpath(kc), cname))

    if use_vtysh:
        for p in sorted(files):
            if p.endswith("frr.conf") and os.path.isfile(p):
                counts["frr"] += 1
                err = vtysh_check(p)
                if err:
                    bad("%s is refused by FRR's parser (vtysh -C -f):\n    %s"
                        % (os.path.relpath(p), err.replace("\n", "\n    ")))
    counts["files"] = len(files)
    return problems, counts


# ------------------------------------------------------------------ spec


def spec(path):
    """Tab-separated lines; fields never contain tabs or newlines.
      lab      NAME DIR
      node     NAME ROLE NETNS FRR_CONF|- DAEMONS|- ISIS_NET|- LOOPBACK4|-
      exec     NAME SHELL-QUOTED-COMMAND
      link     NODE_A IF_A NODE_B IF_B
      adj      NAME N          (links to other FRR speakers: expected adjacencies)
      loop     NAME V4|- V6|-   (router loopbacks, from `interface lo` of its frr.conf)
      client   NAME ADDR       (addresses the hosts' exec lines put on their interfaces)
    """
    t = Topology(path)
    out = ["lab\t%s\t%s" % (t.name, t.dir)]
    for name, n in t.nodes.items():
        if n.role == "k8s-node":
            for c in n.exec:
                words = shlex.split(c)
                if not words or words[0] not in NETNS_COMMANDS:
                    raise TopologyError("node %s: exec %r is not an ip/sysctl command" % (name, c))
        lo4 = "-"
        for c in n.exec:
            m = re.match(r"^ip (?:-4 )?addr(?:ess)? (?:add|replace) (\d+\.\d+\.\d+\.\d+)/32 dev lo$", c.strip())
            if m:
                lo4 = m.group(1)
                break
        out.append("\t".join(["node", name, n.role, t.container(name), n.frr_conf or "-", n.daemons or "-",
                              n.labels.get(LABEL + "isis-net", "-") or "-", lo4]))
        for c in n.exec:
            out.append("exec\t%s\t%s" % (name, shlex.join(shlex.split(c))))
        if n.role == "host":
            for c in n.exec:
                m = re.match(r"^ip (?:-6 |-4 )?addr(?:ess)? (?:add|replace) ([0-9a-fA-F:.]+)/\d+ dev \S+$", c.strip())
                if m:
                    out.append("client\t%s\t%s" % (name, m.group(1)))
        if n.role == "router":
            v4 = v6 = "-"
            with open(n.frr_conf) as f:
                text = f.read()
            m = re.search(r"^interface lo\n(.*?)^exit", text, re.M | re.S)
            if m:
                a = re.search(r"^ ip address (\S+)/32$", m.group(1), re.M)
                b = re.search(r"^ ipv6 address (\S+)/128$", m.group(1), re.M)
                v4 = a.group(1) if a else "-"
                v6 = b.group(1) if b else "-"
            out.append("loop\t%s\t%s\t%s" % (name, v4, v6))
    speakers = {name for name, n in t.nodes.items() if n.role in ("router", "k8s-node")}
    adj = {name: 0 for name in speakers}
    for (a, ia), (b, ib) in t.links:
        for x in (a, b):
            if x not in t.nodes:
                raise TopologyError("link to unknown node %s" % x)
        out.append("link\t%s\t%s\t%s\t%s" % (a, ia, b, ib))
        if a in speakers and b in speakers:
            adj[a] += 1
            adj[b] += 1
    for name in sorted(adj):
        out.append("adj\t%s\t%d" % (name, adj[name]))
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) < 3 or argv[1] not in ("check", "spec"):
        sys.stderr.write(__doc__)
        return 2
    if argv[1] == "spec":
        try:
            sys.stdout.write(spec(argv[2]))
        except (TopologyError, OSError) as e:
            sys.stderr.write("clab_topology: %s\n" % e)
            return 1
        return 0
    failed = 0
    for path in argv[2:]:
        problems, c = check(path)
        rel = os.path.relpath(path)
        if problems:
            failed += 1
            for p in problems:
                print("FAIL %s" % p)
        else:
            print("ok   %s: %d nodes, %d links, %d files present, %d FRR configs accepted by vtysh -C"
                  % (rel, c["nodes"], c["links"], c["files"], c["frr"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
