"""Prometheus Operator ServiceMonitors (metrics.serviceMonitor).

One per component when enabled, none otherwise; each selects exactly its
component's Service in the release's namespace and scrapes a port that
Service names, the admin port the pods' prometheus.io/* annotations point
at, with a scrape timeout within the interval. The rendered objects are
also validated against the CRD's schema (scripts/schemas/prometheus-operator).
"""

import re

from . import by_kind, check, component, pods_selected

DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
UNIT_MS = (365 * 86400_000, 7 * 86400_000, 86400_000, 3600_000, 60_000, 1000, 1)


def millis(duration):
    m = DURATION.match(duration)
    check(m and duration, f"{duration!r} is a Prometheus duration")
    return sum(int(n or 0) * unit for n, unit in zip(m.groups(), UNIT_MS))


def service_monitors(docs, values, namespace, components):
    """Returns whether ServiceMonitors were rendered (and so checked)."""
    settings = values.get("metrics", {}).get("serviceMonitor", {})
    monitors = by_kind(docs, "ServiceMonitor")
    check(bool(monitors) == settings.get("enabled", False),
          f"ServiceMonitors iff metrics.serviceMonitor.enabled: {len(monitors)}")
    if not monitors:
        return False
    services = by_kind(docs, "Service")
    deployments = by_kind(docs, "Deployment")
    check(sorted(component(m) for m in monitors) == sorted(components), "one ServiceMonitor per component")
    for m in monitors:
        name = f"ServiceMonitor {m['metadata']['name']}"
        spec = m["spec"]
        check(settings.get("labels", {}).items() <= m["metadata"]["labels"].items(),
              f"{name} carries metrics.serviceMonitor.labels")
        check(spec["namespaceSelector"] == {"matchNames": [namespace]}, f"{name} looks in {namespace}")
        selector = spec["selector"]["matchLabels"]
        selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        check([component(s) for s in selected] == [component(m)], f"{name} selects its own Service")
        ports = {p["name"]: p for p in selected[0]["spec"]["ports"]}
        pods = pods_selected(deployments, selected[0]["spec"]["selector"])
        check(pods, f"{name}: its Service has pods")
        for ep in spec["endpoints"]:
            check(ep["port"] in ports, f"{name} port {ep['port']} is named on the Service")
            for d in pods:
                annotations = d["spec"]["template"]["metadata"]["annotations"]
                container = {p["name"]: p["containerPort"] for p in d["spec"]["template"]["spec"]["containers"][0]["ports"]}
                check(container[ports[ep["port"]]["targetPort"]] == int(annotations["prometheus.io/port"])
                      and ep.get("path", "/metrics") == annotations["prometheus.io/path"],
                      f"{name} scrapes {d['metadata']['name']} where its annotations say")
            interval, timeout = ep.get("interval"), ep.get("scrapeTimeout")
            check(interval == settings.get("interval", "30s") and timeout == settings.get("scrapeTimeout", "10s"),
                  f"{name} interval {interval} and timeout {timeout} from the values")
            check(millis(timeout) <= millis(interval), f"{name}: scrape timeout {timeout} within interval {interval}")
    return True
