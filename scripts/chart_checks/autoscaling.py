"""HorizontalPodAutoscalers (<component>.autoscaling) for delivery and logquery.

One autoscaling/v2 HPA per enabled component, none for token and template;
it targets that component's stable Deployment (rendered, apps/v1), with the
values' min/max and CPU utilization target (a share of a CPU request the
container has) and any extra metrics; that Deployment then sets no
`replicas` (the HPA owns them) while the canary keeps canary.replicas; the
PodDisruptionBudget follows minReplicas.
"""

from . import by_kind, check, component

SCALED = ("delivery", "logquery")


def autoscaling(docs, values):
    """Returns whether some HPA rendered (and so was checked); `values` are
    the chart's defaults with the values file over them."""
    hpas = {component(h): h for h in by_kind(docs, "HorizontalPodAutoscaler")}
    check(len(hpas) == len(by_kind(docs, "HorizontalPodAutoscaler")), "one HPA per component at most")
    pdbs = {component(p) for p in by_kind(docs, "PodDisruptionBudget")}
    for d in by_kind(docs, "Deployment"):
        c, name = component(d), d["metadata"]["name"]
        auto = values[c].get("autoscaling", {})
        enabled = c in SCALED and auto.get("enabled", False)
        check((c in hpas) == enabled, f"{c}: an HPA iff {c}.autoscaling.enabled")
        if d["metadata"]["labels"]["track"] == "canary":
            check(d["spec"].get("replicas") == values["canary"]["replicas"], f"{name}: canary.replicas, never autoscaled")
            continue
        if not enabled:
            check(d["spec"].get("replicas") == values[c]["replicas"], f"{name}: {c}.replicas")
            check((c in pdbs) == (values[c]["replicas"] > 1), f"{name}: a PodDisruptionBudget iff replicas > 1")
            continue
        hpa = hpas[c]
        spec = hpa["spec"]
        check("replicas" not in d["spec"], f"{name} leaves replicas to its HPA: {d['spec'].get('replicas')}")
        check(spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
              f"HPA {hpa['metadata']['name']} targets the rendered Deployment {name}: {spec['scaleTargetRef']}")
        check(spec["minReplicas"] == auto["minReplicas"] and spec["maxReplicas"] == auto["maxReplicas"]
              and spec["minReplicas"] <= spec["maxReplicas"], f"{name}: HPA bounds from the values: {spec}")
        cpu = spec["metrics"][0]
        check(cpu == {"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": auto["targetCPUUtilizationPercentage"]}}},
              f"{name}: scaled on CPU at {auto['targetCPUUtilizationPercentage']}%: {cpu}")
        check(spec["metrics"][1:] == auto.get("metrics", []), f"{name}: the extra metrics as given")
        for container in d["spec"]["template"]["spec"]["containers"]:
            check(container.get("resources", {}).get("requests", {}).get("cpu"),
                  f"{name}: container {container['name']} requests CPU (utilization is a share of it)")
        check((c in pdbs) == (auto["minReplicas"] > 1), f"{name}: a PodDisruptionBudget iff minReplicas > 1")
    return bool(hpas)
