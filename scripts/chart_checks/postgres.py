"""PostgreSQL (backend.kind postgres): its URL only ever from a Secret.

With `postgres`, template, delivery and logquery (the services that keep
data there: the delivery log today, templates and dead letters to follow)
read WXPUSH_<SERVICE>__BACKEND__POSTGRES_URL from postgres.existingSecret
(`valueFrom.secretKeyRef`) on every track; the token service never gets it;
every config file says the kind and none holds the URL; no rendered object
holds a postgres:// URL at all. With `redis`, no container gets a PostgreSQL
URL and no migrate Job renders, even with postgres.migrateJob.enabled. The
migrate Job is a pre-install,pre-upgrade hook running `<binDir>/wxpush
migrate` (the stable image) with WXPUSH_POSTGRES_URL from the same Secret,
as a hook service account created before it, its pod selected by no Service.
"""

import re

import yaml

from . import by_kind, check, component

COMPONENTS = ("template", "delivery", "logquery")
URL = re.compile(r"postgres(ql)?://", re.IGNORECASE)
HOOKS = {"pre-install", "pre-upgrade"}


def kind_of(values, c):
    """A component's backend.kind as the chart renders it."""
    own = (values.get(c, {}).get("config") or {}).get("backend") or {}
    return own.get("kind", values.get("backend", {}).get("kind", "redis"))


def env_of(pod):
    return [e for c in pod.get("initContainers", []) + pod["containers"] for e in c.get("env", [])]


def migrate_jobs(docs):
    return [j for j in by_kind(docs, "Job") if component(j) == "migrate"]


def postgres(docs, values, components):
    """Returns whether some service keeps data in PostgreSQL, and whether the
    migrate Job rendered (and so was checked)."""
    pg = values.get("postgres", {})
    ref = {"name": pg.get("existingSecret"), "key": pg.get("existingSecretKey", "url")}
    used = set()

    dump = yaml.safe_dump_all(docs)
    check(not URL.search(dump), "no rendered object holds a postgres:// URL")

    for cm in by_kind(docs, "ConfigMap"):
        c = component(cm)
        if c not in components:
            continue
        backend = yaml.safe_load(cm["data"]["config.yaml"])["backend"]
        check(backend["kind"] == kind_of(values, c), f"{c}'s config says backend.kind {kind_of(values, c)}: {backend}")
        check("postgres_url" not in backend, f"{c}'s config holds no PostgreSQL URL")

    for d in by_kind(docs, "Deployment"):
        c = component(d)
        name = d["metadata"]["name"]
        var = f"WXPUSH_{c.upper()}__BACKEND__POSTGRES_URL"
        env = {e["name"]: e for e in env_of(d["spec"]["template"]["spec"])}
        stray = [n for n in env if "POSTGRES" in n and n != var]
        check(not stray, f"{name}: no other PostgreSQL variable: {stray}")
        if kind_of(values, c) == "postgres" and c in COMPONENTS:
            used.add(c)
            check(env.get(var) == {"name": var, "valueFrom": {"secretKeyRef": ref}},
                  f"{name} reads {var} from Secret {ref}: {env.get(var)}")
        else:
            check(var not in env, f"{name} gets no PostgreSQL URL (backend.kind {kind_of(values, c)}): {env.get(var)}")

    jobs = migrate_jobs(docs)
    enabled = pg.get("migrateJob", {}).get("enabled", False)
    check(len(jobs) == (1 if used and enabled else 0),
          f"a migrate Job iff a service keeps data in PostgreSQL and postgres.migrateJob.enabled: {len(jobs)}")
    if not jobs:
        return bool(used), False
    job = jobs[0]
    name = f"Job {job['metadata']['name']}"
    annotations = job["metadata"].get("annotations", {})
    check(set(annotations.get("helm.sh/hook", "").split(",")) == HOOKS,
          f"{name} is a pre-install,pre-upgrade hook: {annotations}")
    pod = job["spec"]["template"]["spec"]
    check(pod["restartPolicy"] == "Never", f"{name}: a failed migration is a failed pod, counted by backoffLimit")
    check(pod.get("automountServiceAccountToken") is False, f"{name} mounts no API token")
    (container,) = pod["containers"]
    bin_dir = values.get("image", {}).get("binDir", "/usr/local/bin")
    check(container["command"] + container.get("args", []) == [f"{bin_dir}/wxpush", "migrate"],
          f"{name} runs {bin_dir}/wxpush migrate: {container['command']}")
    env = {e["name"]: e for e in env_of(pod)}
    check(env.get("WXPUSH_POSTGRES_URL") == {"name": "WXPUSH_POSTGRES_URL", "valueFrom": {"secretKeyRef": ref}},
          f"{name} reads WXPUSH_POSTGRES_URL from Secret {ref}: {env.get('WXPUSH_POSTGRES_URL')}")
    check(set(env) == {"WXPUSH_POSTGRES_URL"}, f"{name} gets the URL and nothing else: {sorted(env)}")
    stable = {c["image"] for d in by_kind(docs, "Deployment")
              if d["metadata"]["labels"].get("track") == "stable"
              for c in d["spec"]["template"]["spec"]["containers"]}
    check(stable == {container["image"]}, f"{name} runs the stable image {stable}: {container['image']}")
    accounts = {a["metadata"]["name"]: a for a in by_kind(docs, "ServiceAccount")}
    account = accounts.get(pod.get("serviceAccountName"))
    check(account is not None, f"{name}'s service account {pod.get('serviceAccountName')} is rendered")
    sa = account["metadata"].get("annotations", {})
    check(set(sa.get("helm.sh/hook", "").split(",")) == HOOKS
          and int(sa.get("helm.sh/hook-weight", 0)) < int(annotations.get("helm.sh/hook-weight", 0)),
          f"{name}'s service account exists before it (a hook with a lower weight): {sa}")
    labels = job["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        for s in by_kind(docs, kind):
            selector = s["spec"]["selector"]
            selector = selector.get("matchLabels", selector) if kind == "PodDisruptionBudget" else selector
            check(not selector.items() <= labels.items(), f"{name}'s pod is not selected by {kind} {s['metadata']['name']}")
    return bool(used), True
