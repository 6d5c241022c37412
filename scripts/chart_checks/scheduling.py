"""Scheduling values reach every pod spec, stable and canary.

Each of nodeSelector, tolerations, affinity and topologySpreadConstraints is
the component's own when it sets it (even empty), else the global value; a
spread constraint without a labelSelector selects exactly the pods of its
Deployment (component and track).
"""

from . import by_kind, check, component, pods_selected

KEYS = ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints")


def scheduling(docs, values):
    """Returns the keys some pod spec carries."""
    deployments = by_kind(docs, "Deployment")
    rendered = set()
    for d in deployments:
        name = d["metadata"]["name"]
        own = values.get(component(d), {})
        pod = d["spec"]["template"]["spec"]
        for key in KEYS:
            want = own[key] if key in own else values.get(key)
            got = pod.get(key)
            if got:
                rendered.add(key)
            if key == "topologySpreadConstraints" and want and got and len(want) == len(got):
                filled = []
                for w, g in zip(want, got):
                    if "labelSelector" not in w:
                        selector = g.get("labelSelector", {}).get("matchLabels", {})
                        selected = pods_selected(deployments, selector)
                        check([s["metadata"]["name"] for s in selected] == [name],
                              f"{name}: a spread constraint without labelSelector spreads its own pods: {g}")
                        w = {**w, "labelSelector": {"matchLabels": selector}}
                    filled.append(w)
                want = filled
            check((got or None) == (want or None), f"{name}: {key} {got} is {want}")
    return rendered
