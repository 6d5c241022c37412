"""A request pinned to the canary stays there on every hop.

The services forward exactly the header `x-wxpush-canary` (and W3C
`baggage`) from each incoming gRPC call to every call they make, so a
pinned call's inner hops (delivery -> template, delivery -> token,
template -> token) carry it too: every component's VirtualService must
send it to its canary before anything else matches.
"""

import re

import yaml

from . import by_kind, check, component

HEADER = "x-wxpush-canary"


def pinned_to_canary(docs, values, components):
    """Returns whether a canary runs behind Istio (and so was checked)."""
    if not values.get("istio", {}).get("enabled", True):
        return False
    canary = values.get("canary", {})
    if not canary.get("enabled", False):
        check(not any(r["name"] == "canary-by-header" for v in by_kind(docs, "VirtualService")
                      for r in v["spec"]["http"]), "no canary header route without a canary")
        return False
    value = canary.get("headerValue", "always")
    services = {component(s): s for s in by_kind(docs, "Service")}
    routes = {component(v): v for v in by_kind(docs, "VirtualService")}
    for c in components:
        vs = routes.get(c)
        check(vs is not None, f"{c} has a VirtualService")
        grpc = next(p["port"] for p in services[c]["spec"]["ports"] if p["name"] == "grpc")
        first = vs["spec"]["http"][0]
        check(first["match"] == [{"port": grpc, "headers": {HEADER: {"exact": value}}}],
              f"{c}: the first route matches {HEADER}: {value} exactly: {first['match']}")
        dests = first["route"]
        check([(d["destination"]["subset"], d.get("weight", 100)) for d in dests] == [("canary", 100)]
              and dests[0]["destination"]["host"] == vs["spec"]["hosts"][0],
              f"{c}: a pinned call goes only to its canary: {dests}")
    # The hops a pinned call makes, read from the rendered configs.
    hops = set()
    for cm in by_kind(docs, "ConfigMap"):
        if component(cm) not in components:
            continue
        config = yaml.safe_load(cm["data"]["config.yaml"])
        for key in ("token_endpoint", "template_endpoint"):
            if key in config:
                host = re.match(r"http://([^.:]+)", config[key]).group(1)
                callee = next(k for k, s in services.items() if s["metadata"]["name"] == host)
                hops.add((component(cm), callee))
    check(hops == {("delivery", "template"), ("delivery", "token"), ("template", "token")},
          f"the inner hops are delivery -> template, delivery -> token, template -> token: {hops}")
    for caller, callee in sorted(hops):
        first = routes[callee]["spec"]["http"][0]
        check(HEADER in first["match"][0]["headers"]
              and first["route"][0]["destination"]["subset"] == "canary",
              f"{caller} -> {callee}: a pinned call's inner hop stays on the canary")
    return True
