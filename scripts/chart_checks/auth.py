"""Who may call (auth): every service's `auth:` section, and behind Istio the
policies letting in the same callers.

- configs: every service's config.yaml (the four gRPC services and the
  callback service) has the same `auth:` section. With auth.mode off it is
  `mode: off` and nothing else, and no pod mounts a JWT key or a token. With
  mode on: trust_mesh exactly when Istio is on and auth.trustMesh; the
  suite's own callers first, wxpush-template and wxpush-delivery (operation
  token, every app), each known by the SPIFFE id of the service account its
  Deployment runs as (trusting the mesh) and by that account's token
  subject (auth.callAs.serviceAccountToken); wxpush-test (the helm test
  Pods' account, no operation) exactly when a GetTemplate test runs in a
  trusted mesh; then auth.callers unchanged;
- the JWT key: with auth.jwt its issuer, audience and leeway, and the file
  the config names (hs256_secret_file or public_key_file by keyType) is the
  key auth.jwt.key of Secret auth.jwt.existingSecret, mounted read-only in
  that service's pods of both tracks, readable by their group; without
  auth.jwt, no key anywhere;
- call_as (auth.callAs.serviceAccountToken): delivery's and template's
  token_file is a projected service-account token for auth.jwt.audience in
  their pods; nobody else has one;
- Istio: a RequestAuthentication per gRPC service exactly when auth.jwt has
  jwksUri or jwks (the issuer, audience and keys of auth.jwt; the token
  forwarded to the service, which checks it again); an ALLOW
  AuthorizationPolicy for the token service always and for template,
  delivery and logquery with mode on (none with mode off). Each admits on
  its gRPC port exactly the principals and request principals of the
  configured callers (as rendered into the configs) holding an operation
  the service serves (template: every caller), the suite's own hops into
  it (delivery and template into token, delivery into template), and for
  the token service token.extraCallers; JWT callers without a
  RequestAuthentication only as calls carrying a bearer token; the helm
  test account only health, reflection and (template) GetTemplate;
  anyone /metrics and /healthz on the admin port, as before. Every
  principal a policy admits is a caller the service knows (with mode on).
"""

import posixpath

import yaml

from . import by_kind, check, component

SERVICES = ("token", "template", "delivery", "logquery")
OWN = ("template", "delivery")
# The operations served by each service; None: any known caller (reading
# templates).
USES = {"token": {"token"}, "template": None, "delivery": {"send", "replay"},
        "logquery": {"read_logs", "read_content"}}
# The suite's own hops into each service.
HOPS = {"token": ("template", "delivery"), "template": ("delivery",), "delivery": (), "logquery": ()}
TEST_PATHS = ["/grpc.health.v1.Health/Check",
              "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
              "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"]
GET_TEMPLATE = "/wxpush.v1.TemplateService/GetTemplate"
CALL_AS_TOKEN = "/var/run/secrets/wxpush/call-as/token"

_MESH = ["auth.callers[0].name=orders", "auth.callers[0].subjects[0]=spiffe://cluster.local/ns/shop/sa/orders",
         "auth.callers[0].apps[0]=wx_a", "auth.callers[0].operations[0]=send"]
_MESH_VALUES = [{"name": "orders", "subjects": ["spiffe://cluster.local/ns/shop/sa/orders"], "apps": ["wx_a"],
                 "operations": ["send"]}]
_JWT = ["auth.jwt.existingSecret=wxpush-jwt", "auth.jwt.key=hs256", "auth.jwt.keyType=hs256",
        "auth.jwt.issuer=https://id.example.com", "auth.jwt.audience=wxpush"]
_JWT_VALUES = {"existingSecret": "wxpush-jwt", "key": "hs256", "keyType": "hs256",
               "issuer": "https://id.example.com", "audience": "wxpush"}
_REPORTS = ["auth.callers[1].name=reports", "auth.callers[1].subjects[0]=reports-job",
            "auth.callers[1].apps[0]=*", "auth.callers[1].operations[0]=read_logs",
            "auth.callers[1].operations[1]=read_content"]
# An inline JWKS: `{` escaped for --set (else the start of a list).
_JWKS_SET = '\\{"keys":[]\\}'
_REPORTS_VALUES = {"name": "reports", "subjects": ["reports-job"], "apps": ["*"],
                   "operations": ["read_logs", "read_content"]}

# Rendered over ci/default-values.yaml by check-chart.py (and each config
# run through the binaries' --check-config): auth off (YAML's `off`, a
# boolean to Helm, as well); behind Istio an HS256 key and a JWT caller
# without a JWKS (no RequestAuthentication: bearer calls let through to the
# service); an inline JWKS; behind Istio without trusting it, and without
# Istio: JWTs only, the suite's own hops presenting service-account tokens,
# no GetTemplate test.
VARIANTS = [
    (["auth.mode=off"], {"auth": {"mode": "off"}}),
    (["auth.mode=false", "tests.templateKey=order_paid"], {"auth": {"mode": False}, "tests": {"templateKey": "order_paid"}}),
    (_MESH + _JWT + _REPORTS, {"auth": {"callers": _MESH_VALUES + [_REPORTS_VALUES], "jwt": _JWT_VALUES}}),
    (_MESH + _JWT + _REPORTS + [f"auth.jwt.jwks={_JWKS_SET}", "tests.templateKey=order_paid"],
     {"auth": {"callers": _MESH_VALUES + [_REPORTS_VALUES], "jwt": {**_JWT_VALUES, "jwks": '{"keys":[]}'}},
      "tests": {"templateKey": "order_paid"}}),
    (_MESH + _JWT + _REPORTS + ["auth.jwt.keyType=jwks"],
     {"auth": {"callers": _MESH_VALUES + [_REPORTS_VALUES], "jwt": {**_JWT_VALUES, "keyType": "jwks"}}}),
    (["auth.trustMesh=false", "auth.callAs.serviceAccountToken=true", "tests.templateKey=order_paid"]
     + _JWT + ["auth.jwt.keyType=public"] + [s.replace("callers[1]", "callers[0]") for s in _REPORTS],
     {"auth": {"trustMesh": False, "callAs": {"serviceAccountToken": True}, "jwt": {**_JWT_VALUES, "keyType": "public"},
               "callers": [_REPORTS_VALUES]},
      "tests": {"templateKey": "order_paid"}}),
    (["istio.enabled=false", "auth.jwt.existingSecret=wxpush-jwt", "auth.jwt.key=sa.pub",
      "auth.jwt.issuer=https://kubernetes.default.svc", "auth.jwt.audience=wxpush",
      "auth.callAs.serviceAccountToken=true", "tests.templateKey=order_paid", "auth.callers[0].name=orders",
      "auth.callers[0].subjects[0]=system:serviceaccount:shop:orders", "auth.callers[0].apps[0]=wx_a",
      "auth.callers[0].operations[0]=send"],
     {"istio": {"enabled": False}, "tests": {"templateKey": "order_paid"},
      "auth": {"jwt": {"existingSecret": "wxpush-jwt", "key": "sa.pub", "issuer": "https://kubernetes.default.svc",
                       "audience": "wxpush"},
               "callAs": {"serviceAccountToken": True},
               "callers": [{"name": "orders", "subjects": ["system:serviceaccount:shop:orders"],
                            "apps": ["wx_a"], "operations": ["send"]}]}}),
]


def auth_refusals(refused, default):
    """The values the chart refuses, each naming what to change."""
    refused(default, ["auth.mode=maybe"], "/auth/mode")
    refused(default, ["auth.trustMesh=false"], "auth.mode is on but no caller can be recognised")
    refused(default, ["istio.enabled=false"], "auth.mode is on but no caller can be recognised")
    refused(default, ["istio.enabled=false"] + _JWT, "auth.callAs.serviceAccountToken")
    refused(default, ["auth.callAs.serviceAccountToken=true"], "auth.callAs.serviceAccountToken needs auth.jwt")
    refused(default, ["auth.callAs.serviceAccountToken=true"] + _JWT, "needs auth.jwt.keyType public")
    refused(default, ["auth.jwt.issuer=https://id.example.com"], "auth.jwt.existingSecret is required with auth.jwt.issuer")
    refused(default, [s for s in _JWT if not s.startswith("auth.jwt.audience")], "auth.jwt.audience is required")
    refused(default, _JWT + ["auth.jwt.jwksUri=https://id.example.com/jwks", f"auth.jwt.jwks={_JWKS_SET}"],
            "set jwksUri or jwks, not both")
    refused(default, _JWT + ["auth.jwt.keyType=rs256"], "/auth/jwt/keyType")
    refused(default, _MESH[:3] + ["auth.callers[0].operations[0]=sned"], "/auth/callers/0/operations/0")
    refused(default, _MESH[:3] + ["auth.callers[0].operations[0]=send", "auth.callers[0].secret=x"],
            "additional properties 'secret'")
    refused(default, ["auth.callers[0].name=orders", "auth.callers[0].operations[0]=send"], "subjects")
    refused(default, [s.replace("=orders", "=wxpush-orders") for s in _MESH], "the name wxpush-orders is reserved")
    refused(default, _MESH + [s.replace("callers[0]", "callers[1]").replace("ns/shop", "ns/other") for s in _MESH],
            "two callers are named orders")
    # (Rendered in the namespace `default`.)
    own = "spiffe://cluster.local/ns/default/sa/wxpush-delivery"
    refused(default, ["auth.callers[0].name=sneaky", f"auth.callers[0].subjects[0]={own}",
                      "auth.callers[0].operations[0]=send"], f"subject {own} is the chart's own")
    # A principal let into the token service by Istio that the service
    # would refuse.
    refused(default, ["token.extraCallers[0]=cluster.local/ns/ops/sa/token-auditor"],
            "token.extraCallers: cluster.local/ns/ops/sa/token-auditor")


def mode_of(values):
    mode = values["auth"]["mode"]
    return ("on" if mode else "off") if isinstance(mode, bool) else mode


def test_template_key(values):
    """The template `helm test` reads with GetTemplate, None for no such
    test: tests.templateKey, else the first of template.templates; with
    auth.mode on only in a mesh the services trust (the test Pod's identity
    is its mesh one)."""
    if not values["tests"]["enabled"]:
        return None
    if mode_of(values) == "on" and not (values["istio"]["enabled"] and values["auth"]["trustMesh"]):
        return None
    return values["tests"]["templateKey"] or next(iter(values["template"].get("templates") or []), {}).get("key")


def _pods(docs):
    """Component -> the pod specs of its Deployments (both tracks)."""
    pods = {}
    for d in by_kind(docs, "Deployment"):
        pods.setdefault(component(d), []).append(d["spec"]["template"]["spec"])
    return pods


def _mounted(pod, path):
    """The volume source a container file path comes from, with the item:
    (volume, item) where item is a secret item or a projected source."""
    (c,) = pod["containers"]
    for m in c.get("volumeMounts", []):
        if path.startswith(m["mountPath"].rstrip("/") + "/"):
            check(m.get("readOnly") is True, f"{path} is mounted read-only")
            rel = path[len(m["mountPath"].rstrip("/")) + 1:]
            volume = next(v for v in pod["volumes"] if v["name"] == m["name"])
            if "secret" in volume:
                items = [i for i in volume["secret"].get("items", []) if i["path"] == rel]
                return volume, items[0] if items else None
            for source in volume.get("projected", {}).get("sources", []):
                if source.get("serviceAccountToken", {}).get("path") == rel:
                    return volume, source
            return volume, None
    return None, None


def auth(docs, values, namespace, test_key):
    """Returns what rendered (and so was checked): a subset of {"auth off",
    "JWT", "RequestAuthentication", "bearer calls", "call as"}; `values` are
    the chart's defaults with the values file over them; `test_key` the
    template helm test reads (None: no GetTemplate test)."""
    a = values["auth"]
    jwt = a["jwt"]
    mode = mode_of(values)
    istio = values["istio"]["enabled"]
    trust = bool(istio and a["trustMesh"])
    call_as = bool(mode == "on" and a["callAs"]["serviceAccountToken"])
    seen = set()
    pods = _pods(docs)
    accounts = {c: {p["serviceAccountName"] for p in ps} for c, ps in pods.items()}
    for c, names in accounts.items():
        check(len(names) == 1, f"{c}: one service account for both tracks: {names}")
    accounts = {c: names.pop() for c, names in accounts.items()}
    configs = {component(cm): yaml.safe_load(cm["data"]["config.yaml"])
               for cm in by_kind(docs, "ConfigMap") if "config.yaml" in cm.get("data", {})}
    check(set(configs) == set(pods), f"a config per component: {sorted(configs)}")
    test_account = next((p["spec"]["serviceAccountName"] for p in by_kind(docs, "Pod")), None)

    if mode == "off":
        seen.add("auth off")
        for c, cfg in configs.items():
            check(cfg.get("auth") == {"mode": "off"}, f"{c}: auth.mode off, nothing else: {cfg.get('auth')}")
            for pod in pods[c]:
                names = {v["name"] for v in pod["volumes"]}
                check(not names & {"auth-jwt", "call-as"}, f"{c}: no JWT key or token mounted with auth off: {names}")
    else:
        want_callers = []
        for own in OWN:
            subjects = []
            if trust:
                subjects.append(f"spiffe://{values['istio']['trustDomain']}/ns/{namespace}/sa/{accounts[own]}")
            if call_as:
                subjects.append(f"system:serviceaccount:{namespace}:{accounts[own]}")
            want_callers.append({"name": f"wxpush-{own}", "subjects": subjects, "apps": ["*"], "operations": ["token"]})
        if trust and test_key:
            check(test_account is not None, "the helm test Pods have a service account")
            want_callers.append({"name": "wxpush-test", "apps": ["*"], "operations": [],
                                 "subjects": [f"spiffe://{values['istio']['trustDomain']}/ns/{namespace}/sa/{test_account}"]})
        want_callers += a["callers"]
        for c, cfg in configs.items():
            got = cfg.get("auth", {})
            check(got.get("mode") == "on" and got.get("trust_mesh") is trust,
                  f"{c}: auth.mode on, trust_mesh {trust} (Istio {istio}, trustMesh {a['trustMesh']}): {got}")
            check(got.get("callers") == want_callers,
                  f"{c}: the callers are the suite's own, helm test's and auth.callers:\n{got.get('callers')}\n{want_callers}")
            jwt_key(c, got, jwt, pods[c])
            own_token(c, got, jwt, pods[c], call_as and c in OWN)
        sections = {yaml.safe_dump({k: v for k, v in cfg["auth"].items() if k != "call_as"}) for cfg in configs.values()}
        check(len(sections) == 1, f"every service has the same auth section (but its own call_as): {sections}")
        if jwt["existingSecret"]:
            seen.add("JWT")
        if call_as:
            seen.add("call as")
    seen |= policies(docs, values, namespace, configs, accounts, test_account, test_key)
    return seen


def jwt_key(c, got, jwt, pods):
    if not jwt["existingSecret"]:
        check("jwt" not in got, f"{c}: no auth.jwt without auth.jwt.existingSecret: {got.get('jwt')}")
        for pod in pods:
            check("auth-jwt" not in {v["name"] for v in pod["volumes"]}, f"{c}: no JWT key mounted without auth.jwt")
        return
    field = {"hs256": "hs256_secret_file", "public": "public_key_file", "jwks": "jwks_file"}[jwt["keyType"]]
    j = got.get("jwt", {})
    check(set(j) == {field, "issuer", "audience", "leeway_secs"} and j["issuer"] == jwt["issuer"]
          and j["audience"] == jwt["audience"] and j["leeway_secs"] == jwt["leewaySecs"],
          f"{c}: auth.jwt with the {jwt['keyType']} key file, issuer, audience and leeway of the values: {j}")
    for pod in pods:
        volume, item = _mounted(pod, j[field])
        check(volume is not None and volume.get("secret", {}).get("secretName") == jwt["existingSecret"]
              and item is not None and item["key"] == jwt["key"],
              f"{c}: {j[field]} is key {jwt['key']} of Secret {jwt['existingSecret']}: {volume}")
        mode = volume["secret"].get("defaultMode", 0o644)
        check(mode & 0o040 and pod["securityContext"].get("fsGroup") is not None and not mode & 0o007,
              f"{c}: the JWT key readable by the pod's group only (mode {oct(mode)})")
        env = [e for e in pod["containers"][0].get("env", [])
               if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == jwt["existingSecret"]]
        check(not env, f"{c}: the JWT key is no environment variable: {env}")


def own_token(c, got, jwt, pods, presents):
    path = got.get("call_as", {}).get("token_file")
    if not presents:
        check("call_as" not in got, f"{c}: presents no token of its own: {got.get('call_as')}")
        for pod in pods:
            check("call-as" not in {v["name"] for v in pod["volumes"]}, f"{c}: no call-as token mounted")
        return
    check(path == CALL_AS_TOKEN, f"{c}: auth.call_as.token_file {path}")
    for pod in pods:
        volume, source = _mounted(pod, path)
        token = (source or {}).get("serviceAccountToken", {})
        check(token.get("audience") == jwt["audience"] and posixpath.basename(path) == token.get("path"),
              f"{c}: {path} is a service-account token for audience {jwt['audience']}: {volume}")


def _rules(ap):
    return ap["spec"].get("rules", [])


def policies(docs, values, namespace, configs, accounts, test_account, test_key):
    a, jwt = values["auth"], values["auth"]["jwt"]
    mode = mode_of(values)
    seen = set()
    ras = by_kind(docs, "RequestAuthentication")
    aps = [p for p in by_kind(docs, "AuthorizationPolicy") if p["spec"].get("action", "ALLOW") == "ALLOW"
           and component(p) in SERVICES]
    if not values["istio"]["enabled"]:
        check(not ras and not aps, "no RequestAuthentication or AuthorizationPolicy without Istio")
        return seen
    services = {component(s): s for s in by_kind(docs, "Service")}
    with_jwks = bool(jwt["existingSecret"] and (jwt["jwksUri"] or jwt["jwks"]))
    check(sorted(component(r) for r in ras) == (sorted(SERVICES) if with_jwks else []),
          f"a RequestAuthentication per gRPC service iff auth.jwt has jwksUri or jwks: {[r['metadata']['name'] for r in ras]}")
    for ra in ras:
        seen.add("RequestAuthentication")
        c = component(ra)
        check(ra["spec"]["selector"]["matchLabels"] == services[c]["spec"]["selector"],
              f"RequestAuthentication {ra['metadata']['name']} selects {c}'s pods")
        keys = {"jwksUri": jwt["jwksUri"]} if jwt["jwksUri"] else {"jwks": jwt["jwks"]}
        check(ra["spec"]["jwtRules"] == [{"issuer": jwt["issuer"], "audiences": [jwt["audience"]], **keys,
                                          "forwardOriginalToken": True}],
              f"RequestAuthentication {ra['metadata']['name']}: auth.jwt's issuer, audience and keys, "
              f"the token forwarded to the service: {ra['spec']['jwtRules']}")
    want_policies = SERVICES if mode == "on" else ("token",)
    check(sorted(component(p) for p in aps) == sorted(want_policies),
          f"an ALLOW AuthorizationPolicy for {want_policies}: {[p['metadata']['name'] for p in aps]}")
    trust = values["istio"]["trustDomain"]

    def principal(c):
        return f"{trust}/ns/{namespace}/sa/{accounts[c]}"

    for ap in aps:
        c = component(ap)
        name = f"AuthorizationPolicy {ap['metadata']['name']}"
        check(ap["spec"]["selector"]["matchLabels"] == services[c]["spec"]["selector"], f"{name} selects {c}'s pods")
        grpc, admin = str(values[c]["grpcPort"]), str(values[c]["adminPort"])
        # Who the service knows, as rendered into its config.
        known = configs[c]["auth"].get("callers", []) if mode == "on" else a["callers"]
        principals, request_principals, bearer = [principal(h) for h in HOPS[c]], [], False
        if c == "token":
            principals += values["token"]["extraCallers"]
        for caller in known:
            if caller["name"].startswith("wxpush-"):
                continue
            if USES[c] is not None and not USES[c] & set(caller.get("operations", [])):
                continue
            for s in caller["subjects"]:
                if s.startswith("spiffe://"):
                    principals.append(s[len("spiffe://"):])
                elif with_jwks:
                    request_principals.append(f"{jwt['issuer']}/{s}")
                else:
                    bearer = True
        got_p, got_rp, got_bearer, tests, metrics = [], [], False, [], False
        for r in _rules(ap):
            ops = [t["operation"] for t in r.get("to", [])]
            check(len(ops) == 1, f"{name}: one operation a rule: {r}")
            op = ops[0]
            sources = [f["source"] for f in r.get("from", [])]
            if op["ports"] == [admin]:
                check(not sources and op.get("paths") == ["/metrics", "/healthz"] and "when" not in r,
                      f"{name}: anyone /metrics and /healthz on the admin port, nothing else there: {r}")
                metrics = True
                continue
            check(op["ports"] == [grpc], f"{name}: a rule for the gRPC port {grpc} or the admin port {admin}: {r}")
            if "when" in r:
                check(not sources and "paths" not in op
                      and r["when"] == [{"key": "request.headers[authorization]", "values": ["Bearer *"]}],
                      f"{name}: the bearer rule lets through calls carrying a bearer token: {r}")
                got_bearer = True
                continue
            check(len(sources) == 1, f"{name}: one source a rule: {r}")
            src = sources[0]
            if test_account and src.get("principals") == [f"{trust}/ns/{namespace}/sa/{test_account}"]:
                tests.append(op.get("paths"))
                continue
            check("paths" not in op, f"{name}: callers get the whole gRPC port (the service checks the method): {r}")
            got_p += src.get("principals", [])
            got_rp += src.get("requestPrincipals", [])
        check(metrics, f"{name}: /metrics and /healthz stay open on the admin port")
        check(sorted(set(got_p)) == sorted(set(principals)) and len(got_p) == len(set(got_p)),
              f"{name}: the principals are the callers of {c} and the suite's own hops:\n{got_p}\n{principals}")
        check(sorted(got_rp) == sorted(set(request_principals)),
              f"{name}: the request principals are its JWT callers' <issuer>/<sub>: {got_rp} {request_principals}")
        check(got_bearer == bearer, f"{name}: bearer calls let through iff JWT callers without a JWKS: {got_bearer}")
        if bearer:
            seen.add("bearer calls")
        want_tests = []
        if values["tests"]["enabled"]:
            want_tests = [TEST_PATHS + ([GET_TEMPLATE] if c == "template" and test_key else [])]
        check(tests == want_tests, f"{name}: helm test calls health and reflection (and GetTemplate) only: {tests}")
        if mode == "on":
            # The own hops may be known by their tokens only (trustMesh off).
            subjects = {s[len("spiffe://"):] for caller in known for s in caller["subjects"] if s.startswith("spiffe://")}
            subjects |= {principal(h) for h in HOPS[c]}
            check(set(got_p) <= subjects, f"{name}: every principal let in is a caller {c} knows: {set(got_p) - subjects}")
    return seen
