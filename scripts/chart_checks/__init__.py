"""What scripts/check-chart.py checks on rendered objects, beyond schemas:
the counter and helpers every check shares, and (in this package's modules)
the checks of one topic each: canary pinning, scheduling, ServiceMonitors,
the PostgreSQL backend."""

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
