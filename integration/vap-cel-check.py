#!/usr/bin/env python3
"""Evaluates the CEL of deploy/optional/node-bound-writes/policy.yaml on sample admission
requests, since the test API server (v1.20) cannot run a ValidatingAdmissionPolicy.

Run by hand (not in CI; cel-python is a CEL interpreter from PyPI, not the API server's cel-go):

    python3 -m venv /tmp/celvenv && /tmp/celvenv/bin/pip install cel-python pyyaml
    /tmp/celvenv/bin/python integration/vap-cel-check.py [policy.yaml]

Each case says whether the request must be admitted; the script mimics the API server: the
match conditions first (no match: admitted), then the variables in order, then every
validation, where an error denies (failurePolicy: Fail). Exit status 1 if any case differs.
"""
import os
import sys

import celpy
import yaml
from celpy import celtypes

POLICY = os.path.join(os.path.dirname(__file__), "..", "deploy", "optional",
                      "node-bound-writes", "policy.yaml")
AGENT = "system:serviceaccount:routelb-system:routelb-agent"
NODE = {"authentication.kubernetes.io/node-name": ["n1"],
        "authentication.kubernetes.io/pod-name": ["routelb-agent-x"]}


def request(user, op, resource, extra=None, sub=""):
    user_info = {"username": user, "groups": ["system:serviceaccounts"]}
    if extra is not None:
        user_info["extra"] = extra
    return {"operation": op, "subResource": sub, "userInfo": user_info,
            "resource": {"group": "", "version": "v1", "resource": resource}}


def obj(name):
    return {"metadata": {"name": name}}


# (name, admitted?, request, object, oldObject)
CASES = [
    ("own Lease, create", True, request(AGENT, "CREATE", "leases", NODE), obj("routelb-node-n1"), None),
    ("own Lease, update", True, request(AGENT, "UPDATE", "leases", NODE), obj("routelb-node-n1"), obj("routelb-node-n1")),
    ("own Lease, delete", True, request(AGENT, "DELETE", "leases", NODE), None, obj("routelb-node-n1")),
    ("other node's Lease, create", False, request(AGENT, "CREATE", "leases", NODE), obj("routelb-node-n2"), None),
    ("other node's Lease, update", False, request(AGENT, "UPDATE", "leases", NODE), obj("routelb-node-n2"), obj("routelb-node-n2")),
    ("other node's Lease, delete", False, request(AGENT, "DELETE", "leases", NODE), None, obj("routelb-node-n2")),
    ("leader Lease, update", False, request(AGENT, "UPDATE", "leases", NODE), obj("routelb-allocator"), obj("routelb-allocator")),
    ("Lease named after the node", False, request(AGENT, "CREATE", "leases", NODE), obj("n1"), None),
    ("own NodeState, create", True, request(AGENT, "CREATE", "nodestates", NODE), obj("n1"), None),
    ("own NodeState, status", True, request(AGENT, "UPDATE", "nodestates", NODE, "status"), obj("n1"), obj("n1")),
    ("other NodeState, status", False, request(AGENT, "UPDATE", "nodestates", NODE, "status"), obj("n2"), obj("n2")),
    ("other NodeState, delete", False, request(AGENT, "DELETE", "nodestates", NODE), None, obj("n2")),
    ("NodeState named like the Lease", False, request(AGENT, "CREATE", "nodestates", NODE), obj("routelb-node-n1"), None),
    ("no extra at all", False, request(AGENT, "CREATE", "leases"), obj("routelb-node-n1"), None),
    ("no extra, bare prefix", False, request(AGENT, "CREATE", "leases"), obj("routelb-node-"), None),
    ("extra without the node name", False,
     request(AGENT, "CREATE", "leases", {"authentication.kubernetes.io/pod-name": ["p"]}), obj("routelb-node-"), None),
    ("empty extra, empty name", False, request(AGENT, "CREATE", "nodestates", {}), obj(""), None),
    ("two node names", False,
     request(AGENT, "CREATE", "leases", {"authentication.kubernetes.io/node-name": ["n1", "n2"]}), obj("routelb-node-n1"), None),
    ("the allocator is not matched", True,
     request("system:serviceaccount:routelb-system:routelb-allocator", "UPDATE", "leases"), obj("routelb-allocator"), obj("routelb-allocator")),
    ("an admin is not matched", True, request("admin", "DELETE", "leases"), None, obj("routelb-node-n2")),
]


def main():
    spec = next(yaml.safe_load_all(open(sys.argv[1] if len(sys.argv) > 1 else POLICY)))["spec"]
    env = celpy.Environment()

    def run(expr, act):
        return env.program(env.compile(expr)).evaluate(act)

    bad = 0
    for name, want, req, new, old in CASES:
        act = {"request": celpy.json_to_cel(req), "object": celpy.json_to_cel(new),
               "oldObject": celpy.json_to_cel(old)}
        matched = all(run(m["expression"], act) == celtypes.BoolType(True)
                      for m in spec.get("matchConditions", []))
        admitted, why = True, []
        if matched:
            variables = {}
            for v in spec.get("variables", []):
                act["variables"] = celtypes.MapType(
                    {celtypes.StringType(k): x for k, x in variables.items()})
                try:
                    variables[v["name"]] = run(v["expression"], act)
                except Exception as e:  # an error surfaces where the variable is used
                    variables[v["name"]] = celpy.CELEvalError(str(e))
            act["variables"] = celtypes.MapType(
                {celtypes.StringType(k): x for k, x in variables.items()})
            for check in spec["validations"]:
                try:
                    ok = run(check["expression"], act) == celtypes.BoolType(True)
                except Exception as e:
                    ok = False
                    why.append(f"error: {e}")
                if not ok:
                    admitted = False
                    if "messageExpression" in check:
                        why.append(str(run(check["messageExpression"], act)))
                    else:
                        why.append(" ".join(check.get("message", "").split()))
        good = admitted == want
        bad += not good
        print(f"{'ok  ' if good else 'FAIL'} {name:34} matched={matched!s:5} "
              f"admitted={admitted!s:5} {'; '.join(why)[:110]}")
    print(f"{len(CASES) - bad} passed, {bad} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
