"""NetworkPolicies (networkPolicy.enabled), for clusters without Istio.

One per component when enabled, none otherwise, each selecting exactly
that component's pods (both tracks). Ingress: the gRPC port (the Service's
target) from the release's own pods, never the callback service's (it faces
the internet; its own policy is chart_checks/callback.py's), for the token
service only template, delivery and the helm test pods, never logquery nor
token itself, plus the configured peers; the admin port from networkPolicy.metricsFrom only.
Egress: DNS (UDP and TCP), Redis (one rule: every port of
networkPolicy.egress.redis and of the nodes a literal redis-cluster:// URL
names, to its peers), PostgreSQL exactly where the service
keeps data there, the OTLP collector on the port of otel.endpoint, the pods
and gRPC port of every endpoint in the service's rendered config (and the
caller's pods allowed in by the callee's policy), WeChat on the port of the
rendered config's wechat.base_url (not logquery); nothing else.
"""

import urllib.parse

import yaml

from . import by_kind, check, component, labels_match
from .postgres import COMPONENTS as POSTGRES_COMPONENTS, kind_of
from .redis_cluster import redis_ports


def url_port(url, default_by_scheme):
    u = urllib.parse.urlsplit(url)
    return u.port or default_by_scheme[u.scheme]


def pod_labels(docs):
    """(component, labels) of every pod template and test Pod."""
    out = [(component(d), d["spec"]["template"]["metadata"]["labels"]) for d in by_kind(docs, "Deployment")]
    return out + [(component(p), p["metadata"]["labels"]) for p in by_kind(docs, "Pod")]


def allowed(rule, port, labels):
    return any(p["port"] == port for p in rule["ports"]) and any(
        "podSelector" in peer and "namespaceSelector" not in peer and labels_match(peer["podSelector"], labels)
        for peer in rule.get("from", rule.get("to", [])))


def network_policies(docs, values):
    """Returns whether NetworkPolicies rendered (and so were checked);
    `values` are the chart's defaults with the values file over them."""
    np = values["networkPolicy"]
    policies = {component(p): p for p in by_kind(docs, "NetworkPolicy")}
    want = (4 + values["callback"]["enabled"]) if np["enabled"] else 0
    check(len(policies) == want, f"a NetworkPolicy per component iff enabled: {len(policies)}")
    # The callback service's (no gRPC port, no callee): chart_checks/callback.py.
    policies.pop("callback", None)
    if not policies:
        return False
    services = {component(s): s for s in by_kind(docs, "Service")}
    pods = pod_labels(docs)
    configs = {component(c): yaml.safe_load(c["data"]["config.yaml"])
               for c in by_kind(docs, "ConfigMap") if component(c) in policies}
    for c, policy in policies.items():
        name = f"NetworkPolicy {policy['metadata']['name']}"
        spec = policy["spec"]
        check(spec["policyTypes"] == ["Ingress", "Egress"], f"{name} restricts both ways")
        selected = {pc for pc, labels in pods if labels_match(spec["podSelector"], labels)}
        check(selected == {c}, f"{name} selects exactly {c}'s pods: {selected}")
        ports = {p["name"]: p["port"] for p in services[c]["spec"]["ports"]}
        grpc = [r for r in spec["ingress"] if [p["port"] for p in r["ports"]] == [ports["grpc"]]]
        check(len(grpc) == 1, f"{name}: one ingress rule for the gRPC port {ports['grpc']}")
        callers = {pc for pc, labels in pods if allowed(grpc[0], ports["grpc"], labels)}
        want = {"template", "delivery", "test"} if c == "token" else {"token", "template", "delivery", "logquery", "test"}
        check(callers == want & {pc for pc, _ in pods}, f"{name}: the release's pods that may call it: {callers}")
        extra = grpc[0]["from"][1:]
        check(extra == (np["tokenFrom"] if c == "token" else np["grpcFrom"]), f"{name}: the configured callers")
        admin = [r for r in spec["ingress"] if r is not grpc[0]]
        check(admin == ([{"ports": [{"port": ports["http-admin"], "protocol": "TCP"}], "from": np["metricsFrom"]}]
                        if np["metricsFrom"] else []), f"{name}: the admin port only from metricsFrom: {admin}")
        egress = {}
        for rule in spec["egress"]:
            for p in rule["ports"]:
                egress.setdefault((p["port"], p["protocol"]), []).append(rule)
        want = {(port, proto) for port in np["egress"]["dns"]["ports"] for proto in ("UDP", "TCP")}
        redis = redis_ports(values)
        want |= {(port, "TCP") for port in redis}
        rules = [r for r in spec["egress"] if any(p["port"] in redis for p in r["ports"])]
        check(len(rules) == 1 and {p["port"] for p in rules[0]["ports"]} == redis
              and rules[0].get("to", []) == np["egress"]["redis"]["to"],
              f"{name}: one egress rule to Redis's peers on every Redis port {sorted(redis)}: {rules}")
        if c in POSTGRES_COMPONENTS and kind_of(values, c) == "postgres":
            want.add((np["egress"]["postgres"]["port"], "TCP"))
        if values["otel"]["endpoint"]:
            want.add((url_port(values["otel"]["endpoint"], {"http": 4317, "https": 4317}), "TCP"))
        config = configs[c]
        for key, callee in (("token_endpoint", "token"), ("template_endpoint", "template")):
            if key in config:
                port = url_port(config[key], {})
                check(port == next(p["port"] for p in services[callee]["spec"]["ports"] if p["name"] == "grpc"),
                      f"{name}: {key} is {callee}'s Service port")
                want.add((port, "TCP"))
                rule = egress.get((port, "TCP"), [{}])[0]
                targets = {pc for pc, labels in pods
                           if any(labels_match(t["podSelector"], labels) for t in rule.get("to", []))}
                check(targets == {callee}, f"{name}: egress on {port} reaches {callee}'s pods only: {targets}")
                callee_in = [r for r in policies[callee]["spec"]["ingress"] if r["ports"][0]["port"] == port]
                caller_labels = [labels for pc, labels in pods if pc == c]
                check(callee_in and all(allowed(callee_in[0], port, l) for l in caller_labels),
                      f"{name}: {callee}'s policy lets {c}'s pods in on {port}")
        if "wechat" in config:
            want.add((url_port(config["wechat"]["base_url"], {"https": 443, "http": 80}), "TCP"))
        check(set(egress) == want, f"{name}: egress exactly to {sorted(want)}: {sorted(egress)}")
    return True
