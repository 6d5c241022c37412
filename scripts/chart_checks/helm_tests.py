"""`helm test` hooks (tests.enabled): grpcurl Pods calling each service.

One Pod per component calling grpc.health.v1.Health/Check for its service
(a `service` of proto/wxpush/v1, the one that component serves), and one
calling wxpush.v1.TemplateService/GetTemplate for tests.templateKey, else
the first of template.templates (neither, or auth.mode on where the
services do not trust the mesh, so the Pod has no identity: no such Pod). Each is a `test`
hook, restartPolicy Never, dialling a rendered Service's name in the
release's namespace on its gRPC port, as a test service account that is a
hook too and created first; no Service or PodDisruptionBudget selects the
Pods. Under Istio they join the mesh with a native sidecar (so they can
finish), and every service's AuthorizationPolicy lets their account call
its health method and reflection (grpcurl looks the method up with it)
only, and template's GetTemplate.
"""

import json
import re

from . import by_kind, check, component, labels_match
from .auth import GET_TEMPLATE, TEST_PATHS, test_template_key

SERVES = {"token": "TokenService", "template": "TemplateService",
          "delivery": "DeliveryService", "logquery": "LogQueryService"}


def helm_tests(docs, values, namespace, proto_services):
    """Returns whether test Pods rendered (and so were checked); `values`
    are the chart's defaults with the values file over them."""
    t = values["tests"]
    pods = [p for p in by_kind(docs, "Pod") if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    check(len(pods) == len(by_kind(docs, "Pod")), "every rendered Pod is a helm test hook")
    check(bool(pods) == t["enabled"], f"helm test Pods iff tests.enabled: {len(pods)}")
    if not pods:
        return False
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    accounts = {a["metadata"]["name"]: a for a in by_kind(docs, "ServiceAccount")}
    key = test_template_key(values)
    calls = {}
    for pod in pods:
        name = f"Pod {pod['metadata']['name']}"
        spec = pod["spec"]
        check(spec["restartPolicy"] == "Never", f"{name}: a failed call is a failed test")
        check(component(pod) == "test", f"{name} is labelled component test")
        (c,) = spec["containers"]
        argv = c["command"]
        check(argv[0] == t["command"] and c["image"] == f"{t['image']['repository']}:{t['image']['tag']}",
              f"{name} runs {t['command']} of tests.image: {argv[0]} {c['image']}")
        check(argv[1:5] == ["-plaintext", "-max-time", str(t["timeoutSeconds"]), "-d"], f"{name}: grpcurl flags {argv}")
        request, target, method = json.loads(argv[5]), argv[6], argv[7]
        m = re.fullmatch(rf"([^.]+)\.{namespace}\.svc:(\d+)", target)
        check(m and m.group(1) in services, f"{name} dials a rendered Service in {namespace}: {target}")
        svc = services[m.group(1)]
        grpc = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc")
        check(int(m.group(2)) == grpc, f"{name} dials {m.group(1)}'s gRPC port {grpc}")
        calls[(component(svc), method)] = request
        account = accounts.get(spec["serviceAccountName"])
        sa = (account or {}).get("metadata", {}).get("annotations", {})
        check(sa.get("helm.sh/hook") == "test" and int(sa.get("helm.sh/hook-weight", 0)) < 0,
              f"{name}'s service account is a test hook created before it: {sa}")
        for kind in ("Service", "PodDisruptionBudget"):
            for s in by_kind(docs, kind):
                selector = s["spec"]["selector"]
                selector = selector if kind == "PodDisruptionBudget" else {"matchLabels": selector}
                check(not labels_match(selector, pod["metadata"]["labels"]), f"{name} is not behind {kind} {s['metadata']['name']}")
        istio = values["istio"]["enabled"]
        injected = pod["metadata"]["labels"].get("sidecar.istio.io/inject")
        native = pod["metadata"].get("annotations", {}).get("sidecar.istio.io/nativeSidecar")
        if "sidecar.istio.io/inject" not in t["podLabels"]:
            check(injected == ("true" if istio else "false") and (native == "true") == istio,
                  f"{name}: in the mesh with a native sidecar iff Istio is on: {injected} {native}")
    want = {(c, "grpc.health.v1.Health/Check"): {"service": f"wxpush.v1.{s}"} for c, s in SERVES.items()}
    if key:
        want[("template", "wxpush.v1.TemplateService/GetTemplate")] = {"key": key}
    check(calls == want, f"helm test calls health on every service and GetTemplate {key}: {calls}")
    check({s for s in SERVES.values()} <= proto_services, f"the services are the proto's: {sorted(proto_services)}")
    if values["istio"]["enabled"]:
        account = pods[0]["spec"]["serviceAccountName"]
        policies = [p for p in by_kind(docs, "AuthorizationPolicy")
                    if component(p) in SERVES and p["spec"].get("action", "ALLOW") == "ALLOW"]
        check(any(component(p) == "token" for p in policies), "the token service has an ALLOW policy")
        for policy in policies:
            c = component(policy)
            rules = [r for r in policy["spec"]["rules"]
                     if any(p.endswith(f"/sa/{account}") for f in r.get("from", []) for p in f["source"].get("principals", []))]
            paths = TEST_PATHS + ([GET_TEMPLATE] if c == "template" and key else [])
            check(len(rules) == 1 and rules[0]["to"] == [{"operation": {
                "ports": [str(values[c]["grpcPort"])], "paths": paths}}],
                  f"{c} lets {account} call its health method and reflection only{' and GetTemplate' if c == 'template' and key else ''}: {rules}")
    return True
