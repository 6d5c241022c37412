"""The callback service (callback.enabled): the one part of wxpush the
internet reaches, and only at https://<gateway.host>/wechat/callback/.

Rendered iff enabled: one Deployment (the stable track only, whatever the
canary), its Service, ConfigMap, ServiceAccount, PeerAuthentication and,
behind Istio, its Gateway, VirtualService, DestinationRule and
AuthorizationPolicies; none of them otherwise.

- pods: wxpush-callback of the stable image with the public and admin ports
  only (no gRPC port: the config's `listen`, health only, is the pod's
  loopback), both probes on the admin port's /healthz, the pod and
  container security contexts and service account settings of the token
  service's pods;
- secrets: each app's Token and EncodingAESKey are files (token_file,
  aes_key_file; never inline, never an environment variable) projected
  read-only from callback.secretName under the keys the values name,
  readable by the pod's group; the ConfigMap holds the paths only;
- the route: exactly one Gateway (the values' selector; HTTPS 443 for
  ./<host> only; SIMPLE TLS from credentialName), and exactly one
  VirtualService bound to a gateway: to that one alone, for that host, one
  route matching only the prefix /wechat/callback/, to the callback
  Service's public port, no retries, within WeChat's 5 s; every other
  VirtualService is the mesh's, for a Service of the release;
- who gets in: the callback's AuthorizationPolicy lets the gateway's
  principals reach the public port (GET and POST under /wechat/callback/)
  and anyone /metrics and /healthz on the admin port, nothing else; every
  other service refuses the gateway and the callback service (DENY), and
  admits neither in an ALLOW rule; its NetworkPolicy: the public port only
  from networkPolicy.callbackFrom, the admin port only from metricsFrom,
  egress to DNS, Redis and the OTLP collector only; no other service's
  policy lets the callback pods in;
- Redis: with redis.perServiceSecret its own user (key callback-url) whose
  ACL rule names only {prefix}callbacks:* and the hand-off's commands.
"""

import re

import yaml

from . import by_kind, check, component, labels_match, pods_selected
from .network_policy import allowed, pod_labels, url_port
from .redis_cluster import redis_ports

PREFIX = "/wechat/callback/"
MOUNT = "/var/run/secrets/wxpush/callback"
OTHERS = ("token", "template", "delivery", "logquery")
# The hand-off script (EVALSHA, EVAL and SCRIPT LOAD to run it; SET and XADD
# inside it), PING and INFO of the start-up check, CLUSTER SLOTS and ASKING
# for a Redis Cluster client: no category, nothing else.
ACL_COMMANDS = ["-@all", "+ping", "+info", "+evalsha", "+eval", "+script|load", "+set", "+xadd",
                "+cluster|slots", "+asking"]

# Rendered over ci/default-values.yaml by check-chart.py: without Istio,
# NetworkPolicies letting nobody in (no ingress, nothing scraping; auth off,
# no mesh to trust); and
# behind Istio on a Redis Cluster with per-service ACL users, a plaintext
# app and another key prefix.
_ON = ["callback.enabled=true", "callback.secretName=wxpush-callback", "callback.apps[0].appId=wx_a"]
VARIANTS = [
    (_ON + ["istio.enabled=false", "networkPolicy.enabled=true", "networkPolicy.callbackFrom=null",
            "networkPolicy.metricsFrom=null", "auth.mode=off"],
     {"callback": {"enabled": True, "secretName": "wxpush-callback", "apps": [{"appId": "wx_a"}]},
      "istio": {"enabled": False}, "networkPolicy": {"enabled": True, "callbackFrom": [], "metricsFrom": []},
      "auth": {"mode": "off"}}),
    (_ON + ["callback.apps[0].plaintext=true", "callback.gateway.host=cb.example.com", "redis.cluster=true",
            "redis.url=", "redis.existingSecret=wxpush-redis", "redis.perServiceSecret=wxpush-redis-users",
            "redis.keyPrefix=shop:", "backend.kind=postgres", "postgres.existingSecret=wxpush-postgres"],
     {"callback": {"enabled": True, "secretName": "wxpush-callback", "apps": [{"appId": "wx_a", "plaintext": True}],
                   "gateway": {"host": "cb.example.com"}},
      "redis": {"cluster": True, "url": "", "existingSecret": "wxpush-redis", "perServiceSecret": "wxpush-redis-users",
                "keyPrefix": "shop:"},
      "backend": {"kind": "postgres"}, "postgres": {"existingSecret": "wxpush-postgres"}}),
]


def callback_refusals(refused, default):
    """The values the chart refuses, each naming what to change."""
    refused(default, ["callback.enabled=true"], "callback.apps is required")
    refused(default, ["callback.enabled=true", "callback.apps[0].appId=wx_a"], "callback.secretName is required")
    refused(default, _ON, "callback.gateway.host is required")
    on = _ON + ["callback.gateway.host=cb.example.com"]
    refused(default, on + ["callback.apps[1].appId=wx_a"], "callback.apps: appId wx_a is listed twice")
    refused(default, on + ["callback.gateway.principals=null"], "callback.gateway.principals is required")
    refused(default, on + ["callback.gateway.selector=null"], "callback.gateway.selector is required")
    # Never inline: a Token or EncodingAESKey is no value of the chart.
    refused(default, ["callback.apps[0].appId=wx_a", "callback.apps[0].token=abc"], "additional properties 'token'")
    refused(default, ["callback.apps[0].appId=wx_a", "callback.apps[0].aesKey=abc"], "additional properties 'aesKey'")
    refused(default, ["callback.gateway.host=*.example.com"], "/callback/gateway/host")
    refused(default, ["callback.secretName=Not_A_Name"], "/callback/secretName")
    refused(default, ["callback.publicPort=0"], "/callback/publicPort")
    refused(default, ["callback.gateway.principals[0]=ingress"], "/callback/gateway/principals")


def seconds(duration):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    check(m, f"{duration!r} is a duration")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def callback(docs, values, namespace):
    """Returns whether the callback service rendered (and so was checked);
    `values` are the chart's defaults with the values file over them."""
    cb = values["callback"]
    deployments = [d for d in by_kind(docs, "Deployment") if component(d) == "callback"]
    if not cb["enabled"]:
        stray = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
                 if component(d) == "callback" or d["kind"] == "Gateway" or d["metadata"]["name"].endswith("-deny-public")]
        check(not stray, f"nothing of the callback service without callback.enabled: {stray}")
        return False
    check([d["metadata"]["labels"]["track"] for d in deployments] == ["stable"],
          f"one callback Deployment, the stable track whatever the canary: {len(deployments)}")
    d = deployments[0]
    name = d["metadata"]["name"]
    pod = d["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    check(c["command"] == [f"{values['image']['binDir']}/wxpush-callback", "--config", "/etc/wxpush/config.yaml"],
          f"{name} runs wxpush-callback: {c['command']}")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports == {"http-public": cb["publicPort"], "http-admin": cb["adminPort"]},
          f"{name}: the public and admin ports only: {ports}")
    for probe in ("readinessProbe", "livenessProbe"):
        got = c.get(probe, {})
        check(got.get("httpGet") == {"path": "/healthz", "port": "http-admin"} and "grpc" not in got,
              f"{name}: {probe} on the admin port's /healthz: {got}")
    token = next(x for x in by_kind(docs, "Deployment")
                 if component(x) == "token" and x["metadata"]["labels"]["track"] == "stable")["spec"]["template"]["spec"]
    check(pod["securityContext"] == token["securityContext"]
          and c["securityContext"] == token["containers"][0]["securityContext"],
          f"{name}: the pod and container security contexts of the other services")
    check(pod.get("automountServiceAccountToken") is False and pod.get("enableServiceLinks") is False,
          f"{name}: no API token, no Service variables")

    # Secrets: files projected from callback.secretName, their paths in the config.
    cm = next(v["configMap"]["name"] for v in pod["volumes"] if v["name"] == "config")
    config = yaml.safe_load(next(x for x in by_kind(docs, "ConfigMap") if x["metadata"]["name"] == cm)["data"]["config.yaml"])
    volumes = [v for v in pod["volumes"] if v["name"] == "callback-secrets"]
    check(len(volumes) == 1, f"{name}: one callback-secrets volume")
    projected = volumes[0]["projected"]
    mounted = {f"{MOUNT}/{item['path']}": (s["secret"]["name"], item["key"])
               for s in projected["sources"] for item in s["secret"]["items"]}
    mounts = [m for m in c["volumeMounts"] if m["name"] == "callback-secrets"]
    check(mounts == [{"name": "callback-secrets", "mountPath": MOUNT, "readOnly": True}], f"{name}: mounted read-only at {MOUNT}")
    check(projected["defaultMode"] & 0o040 and pod["securityContext"].get("fsGroup") is not None,
          f"{name}: the files readable by the pod's group (mode {oct(projected['defaultMode'])})")
    check([a["app_id"] for a in config["apps"]] == [a["appId"] for a in cb["apps"]], f"{name}: the apps of callback.apps")
    used = set()
    for app, want in zip(config["apps"], cb["apps"]):
        plaintext = want.get("plaintext", False)
        fields = {"app_id", "token_file"} | (set() if plaintext else {"aes_key_file"})
        check(set(app) == fields, f"{name}: app {app['app_id']} reads {sorted(fields - {'app_id'})} from files only: {sorted(app)}")
        keys = {"token_file": want.get("tokenKey") or f"{want['appId']}-token",
                "aes_key_file": want.get("aesKeyKey") or f"{want['appId']}-aes-key"}
        for field in fields - {"app_id"}:
            check(mounted.get(app[field]) == (cb["secretName"], keys[field]),
                  f"{name}: {app[field]} is key {keys[field]} of Secret {cb['secretName']}: {mounted.get(app[field])}")
            used.add(app[field])
    check(used == set(mounted), f"{name}: every mounted file is a config's: {sorted(set(mounted) - used)}")
    secret_refs = [e for e in c.get("env", []) if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == cb["secretName"]]
    check(not secret_refs, f"{name}: no environment variable from {cb['secretName']}: {secret_refs}")

    # Config: the public port, health on the loopback, the hand-off to Redis.
    host, _, port = config["listen"].rpartition(":")
    check(host in ("127.0.0.1", "[::1]"), f"{name}: gRPC health on the pod's loopback only: {config['listen']}")
    check(config["public_listen"].endswith(f":{cb['publicPort']}") and config["admin_listen"].endswith(f":{cb['adminPort']}"),
          f"{name}: public_listen and admin_listen on the container's ports: {config}")
    check(config["backend"]["kind"] == "redis" and config["backend"]["key_prefix"] == values["redis"]["keyPrefix"],
          f"{name}: pushes handed to Redis under redis.keyPrefix: {config['backend']}")

    service = next(s for s in by_kind(docs, "Service") if component(s) == "callback")
    sports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    check(sports == {"http-public": (cb["publicPort"], "http-public"), "http-admin": (cb["adminPort"], "http-admin")},
          f"Service {service['metadata']['name']}: the public and admin ports only: {sports}")
    check([component(x) for x in pods_selected(by_kind(docs, "Deployment"), service["spec"]["selector"])] == ["callback"],
          f"Service {service['metadata']['name']} selects the callback pods only")

    acl_user(docs, values, c)
    if values["istio"]["enabled"]:
        istio(docs, values, namespace, service, d)
    else:
        check(not by_kind(docs, "Gateway"), "no Gateway without Istio")
    if values["networkPolicy"]["enabled"]:
        network(docs, values)
    return True


def acl_user(docs, values, container):
    redis = values["redis"]
    if not redis.get("perServiceSecret"):
        return
    env = {e["name"]: e for e in container["env"]}
    ref = env["WXPUSH_CALLBACK__BACKEND__REDIS_URL"].get("valueFrom", {}).get("secretKeyRef")
    check(ref == {"name": redis["perServiceSecret"], "key": "callback-url"}, f"the callback pods read their own Redis user: {ref}")
    acl = next(x for x in by_kind(docs, "ConfigMap") if x["metadata"]["name"].endswith("-redis-acl"))
    lines = [l.split() for l in acl["data"]["acl-setuser.txt"].splitlines() if "wxpush-callback " in l + " "]
    want = ["ACL", "SETUSER", "wxpush-callback", "on", "resetkeys", "resetchannels",
            f"~{redis['keyPrefix']}callbacks:*", *ACL_COMMANDS, ">PASSWORD"]
    check(lines == [want], f"the callback user: its callbacks keys and the hand-off's commands only: {lines}")


def istio(docs, values, namespace, service, deployment):
    cb, gw = values["callback"], values["callback"]["gateway"]
    domain = values["istio"]["clusterDomain"]
    fqdn = f"{service['metadata']['name']}.{namespace}.svc.{domain}"
    gateways = by_kind(docs, "Gateway")
    check(len(gateways) == 1, f"one Gateway: {len(gateways)}")
    spec = gateways[0]["spec"]
    check(spec["selector"] == gw["selector"], f"the Gateway runs on callback.gateway.selector: {spec['selector']}")
    check(len(spec["servers"]) == 1, f"the Gateway has one server: {spec['servers']}")
    server = spec["servers"][0]
    check(server["port"]["number"] == 443 and server["port"]["protocol"] == "HTTPS"
          and server["hosts"] == [f"./{gw['host']}"],
          f"the Gateway serves HTTPS on 443 for ./{gw['host']} only (routes of this namespace): {server}")
    check(server["tls"] == {"mode": "SIMPLE", "credentialName": gw["credentialName"], "minProtocolVersion": "TLSV1_2"},
          f"the Gateway's certificate is {gw['credentialName']}: {server['tls']}")

    services = {f"{s['metadata']['name']}.{namespace}.svc.{domain}" for s in by_kind(docs, "Service")}
    bound = [v for v in by_kind(docs, "VirtualService") if set(v["spec"].get("gateways", ["mesh"])) != {"mesh"}]
    check(len(bound) == 1, f"one VirtualService bound to a gateway: {[v['metadata']['name'] for v in bound]}")
    vs = bound[0]["spec"]
    check(vs["gateways"] == [f"{namespace}/{gateways[0]['metadata']['name']}"], f"the public route is on that Gateway only, not the mesh: {vs['gateways']}")
    check(vs["hosts"] == [gw["host"]] and set(vs) == {"hosts", "gateways", "http"}, f"the public route: HTTP for {gw['host']} only: {vs}")
    check(len(vs["http"]) == 1, f"the public route has one rule: {vs['http']}")
    rule = vs["http"][0]
    check(rule["match"] == [{"uri": {"prefix": PREFIX}}], f"the public route matches only the prefix {PREFIX}: {rule['match']}")
    check(set(rule) <= {"name", "match", "route", "timeout", "retries"}, f"the public route neither rewrites, redirects nor mirrors: {sorted(rule)}")
    public = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http-public")
    check(rule["route"] == [{"destination": {"host": fqdn, "port": {"number": public}}}],
          f"the public route goes to {fqdn}:{public} only: {rule['route']}")
    check(rule.get("retries") == {"attempts": 0} and 0 < seconds(rule.get("timeout", "0s")) <= 5,
          f"the public route: no retries (WeChat retries), within WeChat's 5 s: {rule.get('retries')} {rule.get('timeout')}")
    for v in by_kind(docs, "VirtualService"):
        if v["spec"] is not vs:
            check(set(v["spec"]["hosts"]) <= services, f"VirtualService {v['metadata']['name']} is the mesh's, for the release's Services")

    drs = [dr for dr in by_kind(docs, "DestinationRule") if dr["spec"]["host"] == fqdn]
    check(len(drs) == 1 and drs[0]["spec"]["trafficPolicy"] == {"tls": {"mode": "ISTIO_MUTUAL"}, "outlierDetection": values["istio"]["outlierDetection"]}
          and "subsets" not in drs[0]["spec"], f"the callback's DestinationRule: mTLS, outlier detection, one track: {drs}")

    deployments = by_kind(docs, "Deployment")
    policies = by_kind(docs, "AuthorizationPolicy")

    def selects(ap, c):
        return any(component(x) == c for x in pods_selected(deployments, ap["spec"]["selector"]["matchLabels"]))

    mine = [ap for ap in policies if selects(ap, "callback")]
    check(len(mine) == 1 and mine[0]["spec"]["action"] == "ALLOW", f"one AuthorizationPolicy (ALLOW) for the callback pods: {len(mine)}")
    want = [
        {"from": [{"source": {"principals": gw["principals"]}}],
         "to": [{"operation": {"ports": [str(cb["publicPort"])], "methods": ["GET", "POST"], "paths": [f"{PREFIX}*"]}}]},
        {"to": [{"operation": {"ports": [str(cb["adminPort"])], "paths": ["/metrics", "/healthz"]}}]},
    ]
    check(mine[0]["spec"]["rules"] == want,
          f"the callback pods let in the gateway on the public port (GET, POST under {PREFIX}) and /metrics, /healthz only: {mine[0]['spec']['rules']}")
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    outside = set(gw["principals"]) | {f"{values['istio']['trustDomain']}/ns/{namespace}/sa/{sa}"}
    for c in OTHERS:
        refused = {p for ap in policies if ap["spec"].get("action") == "DENY" and selects(ap, c)
                   for r in ap["spec"]["rules"] if set(r) == {"from"}
                   for f in r["from"] for p in f["source"].get("principals", [])}
        check(outside <= refused, f"{c} refuses the ingress gateway and the callback service outright: {sorted(refused)}")
        admitted = {p for ap in policies if ap["spec"].get("action", "ALLOW") == "ALLOW" and selects(ap, c)
                    for r in ap["spec"]["rules"] for f in r.get("from", []) for p in f["source"].get("principals", [])}
        check(not admitted & outside, f"no ALLOW rule of {c} admits {sorted(admitted & outside)}")
    pa = [p for p in by_kind(docs, "PeerAuthentication") if component(p) == "callback"]
    check(len(pa) == 1 and pa[0]["spec"]["mtls"]["mode"] == values["istio"]["mtls"]
          and pa[0]["spec"]["portLevelMtls"] == {cb["adminPort"]: {"mode": "PERMISSIVE"}},
          f"the callback pods: {values['istio']['mtls']} mTLS, the admin port PERMISSIVE for Prometheus: {pa}")


def network(docs, values):
    cb, np = values["callback"], values["networkPolicy"]
    pods = pod_labels(docs)
    policies = by_kind(docs, "NetworkPolicy")
    mine = [p for p in policies if component(p) == "callback"]
    check(len(mine) == 1, f"one NetworkPolicy for the callback pods: {len(mine)}")
    spec = mine[0]["spec"]
    check({pc for pc, labels in pods if labels_match(spec["podSelector"], labels)} == {"callback"},
          "the callback NetworkPolicy selects exactly the callback pods")
    check(spec["policyTypes"] == ["Ingress", "Egress"], "the callback NetworkPolicy restricts both ways")
    want = []
    if np["callbackFrom"]:
        want.append({"ports": [{"port": cb["publicPort"], "protocol": "TCP"}], "from": np["callbackFrom"]})
    if np["metricsFrom"]:
        want.append({"ports": [{"port": cb["adminPort"], "protocol": "TCP"}], "from": np["metricsFrom"]})
    check(spec["ingress"] == want, f"the public port only from callbackFrom, the admin port only from metricsFrom: {spec['ingress']}")
    egress = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}
    expected = {(port, proto) for port in np["egress"]["dns"]["ports"] for proto in ("UDP", "TCP")}
    expected |= {(port, "TCP") for port in redis_ports(values)}
    if values["otel"]["endpoint"]:
        expected.add((url_port(values["otel"]["endpoint"], {"http": 4317, "https": 4317}), "TCP"))
    check(egress == expected, f"the callback pods reach DNS, Redis and the collector only: {sorted(egress)}")
    labels = [l for pc, l in pods if pc == "callback"]
    for p in policies:
        if component(p) == "callback":
            continue
        for rule in p["spec"]["ingress"]:
            for port in rule["ports"]:
                check(not any(allowed(rule, port["port"], l) for l in labels),
                      f"NetworkPolicy {p['metadata']['name']} lets no callback pod in on {port['port']}")
