"""What scripts/check-chart.py checks on rendered objects, beyond schemas:
the counter and helpers every check shares, and (in this package's modules)
the checks of one topic each: canary pinning, scheduling, ServiceMonitors,
the PostgreSQL backend, a Redis Cluster and the stream partitions,
autoscaling, NetworkPolicies, helm test hooks, the PrometheusRule, the
callback service and its public route, who may call (auth)."""

import sys

_count = 0


def check(cond, what):
    global _count
    _count += 1
    if not cond:
        sys.exit(f"check-chart: FAILED: {what}")


def count():
    return _count


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def pods_selected(deployments, selector):
    return [
        d for d in deployments
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]


def component(obj):
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def labels_match(selector, labels):
    """A Kubernetes LabelSelector (matchLabels, matchExpressions In/NotIn/
    Exists/DoesNotExist) against a pod's labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for e in selector.get("matchExpressions", []):
        key, op, vals = e["key"], e["operator"], e.get("values", [])
        if op == "In" and labels.get(key) not in vals \
                or op == "NotIn" and labels.get(key) in vals \
                or op == "Exists" and key not in labels \
                or op == "DoesNotExist" and key in labels:
            return False
    return True


def merged(defaults, values):
    """The chart's values.yaml with a values file (and --set) over it."""
    out = dict(defaults)
    for k, v in values.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
