"""Redis Cluster (redis.cluster) and the stream partitions
(redis.streamPartitions).

Every service's config says backend.stream_partitions: redis.streamPartitions
unless its own `<service>.config` sets it, and delivery (which writes the
queue and the event stream partitions) and logquery (which reads every
event stream partition) always say the same. On a cluster template and
logquery keep their data in PostgreSQL (their Redis stores use multi-key
scripts a cluster refuses) and a literal Redis URL is a redis-cluster:// one;
off a cluster no literal URL is. The chart refuses the values that break
this, with a message naming what to change; the services' binaries refuse
template's and logquery's backend.kind redis on a cluster URL too, so the
chart refuses no more and no less than they would. The NetworkPolicies'
Redis egress allows every port of networkPolicy.egress.redis and of each node
a literal redis-cluster:// URL names (network_policy.py checks it with
redis_ports below).
"""

import pathlib
import subprocess
import tempfile
import urllib.parse

import yaml

from . import by_kind, check, component

CLUSTER_SCHEME = "redis-cluster://"
# What the binaries get as the Redis URL when the values hold none: checked
# (parsed), never dialled.
NODE_STAND_IN = "redis://127.0.0.1:6379/"
CLUSTER_STAND_IN = "redis-cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
# The cluster's stores: their Redis stores are refused on a cluster.
POSTGRES_ON_CLUSTER = ("template", "logquery")

# A cluster of 3 masters and 3 replicas: its URL from a Secret, one ACL user
# per service (ACL rules rendered and compared with `wxpush redis-acl`).
VARIANTS = [
    (["redis.cluster=true", "redis.url=", "redis.existingSecret=wxpush-redis",
      "redis.perServiceSecret=wxpush-redis-users", "redis.streamPartitions=12", "backend.kind=postgres",
      "postgres.existingSecret=wxpush-postgres"],
     {"redis": {"cluster": True, "url": "", "existingSecret": "wxpush-redis",
                "perServiceSecret": "wxpush-redis-users", "streamPartitions": 12},
      "backend": {"kind": "postgres"}, "postgres": {"existingSecret": "wxpush-postgres"}}),
]


def _redis(values):
    return values.get("redis", {})


def stand_in_url(values):
    """The Redis URL the services would get, for `--check-config`: the
    literal redis.url, else a stand-in of the right kind."""
    redis = _redis(values)
    if redis.get("url") and not (redis.get("existingSecret") or redis.get("perServiceSecret")):
        return redis["url"]
    return CLUSTER_STAND_IN if redis.get("cluster") else NODE_STAND_IN


def redis_ports(values):
    """The ports the NetworkPolicies must open to Redis (`values` merged over
    the chart's defaults)."""
    np = values["networkPolicy"]["egress"]["redis"]
    ports = {np["port"], *np.get("extraPorts", [])}
    url = _redis(values).get("url", "")
    if url.startswith(CLUSTER_SCHEME):
        hosts = url[len(CLUSTER_SCHEME):].rpartition("@")[2].rstrip("/")
        for host in filter(None, (h.strip() for h in hosts.split(","))):
            ports.add(urllib.parse.urlsplit(f"redis://{host}").port or 6379)
    return ports


def _own(values, c, key):
    return ((values.get(c, {}).get("config") or {}).get("backend") or {}).get(key)


def redis_cluster(docs, values):
    """Returns whether the release is on a Redis Cluster (and so checked)."""
    redis = _redis(values)
    cluster = redis.get("cluster", False)
    configs = {component(c): yaml.safe_load(c["data"]["config.yaml"])
               for c in by_kind(docs, "ConfigMap") if "config.yaml" in c["data"]}
    check(len(configs) == 4 + ("callback" in configs), f"four service configs (and the callback's): {sorted(configs)}")
    partitions = {}
    for c, config in configs.items():
        backend = config["backend"]
        want = _own(values, c, "stream_partitions") or redis.get("streamPartitions", 1)
        partitions[c] = backend.get("stream_partitions")
        check(partitions[c] == want, f"{c}'s config says backend.stream_partitions {want}: {backend}")
        check("{" not in backend["key_prefix"] and "}" not in backend["key_prefix"],
              f"{c}'s key_prefix holds no hash tag braces: {backend['key_prefix']!r}")
        if cluster and c in POSTGRES_ON_CLUSTER:
            check(backend["kind"] == "postgres", f"on a Redis Cluster {c} keeps its data in PostgreSQL: {backend}")
    check(partitions["delivery"] == partitions["logquery"],
          f"delivery and logquery on the same stream partitions: {partitions}")
    for d in by_kind(docs, "Deployment"):
        c = component(d)
        var = f"WXPUSH_{c.upper()}__BACKEND__REDIS_URL"
        env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        literal = env[var].get("value")
        if literal is not None:
            check(literal.startswith(CLUSTER_SCHEME) == cluster,
                  f"{d['metadata']['name']}: a {'cluster' if cluster else 'node'} URL for redis.cluster {cluster}: {literal}")
    return cluster


def binaries_refuse_redis_kind(docs, values, bin_dir):
    """On a cluster URL the binaries of template and logquery refuse their
    rendered config with backend.kind redis: the reason the chart refuses
    it (binaries_accept in check-chart.py runs them on the config as
    rendered, with postgres)."""
    if not _redis(values).get("cluster"):
        return
    configs = {component(c): c["data"]["config.yaml"] for c in by_kind(docs, "ConfigMap") if "config.yaml" in c["data"]}
    for c in POSTGRES_ON_CLUSTER:
        config = yaml.safe_load(configs[c])
        config["backend"]["kind"] = "redis"
        prefix = f"WXPUSH_{c.upper()}"
        env = {"PATH": "/usr/bin:/bin", f"{prefix}__LISTEN": "127.0.0.1:0", f"{prefix}__ADMIN_LISTEN": "127.0.0.1:0",
               f"{prefix}__BACKEND__REDIS_URL": stand_in_url(values)}
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "config.yaml"
            path.write_text(yaml.safe_dump(config))
            p = subprocess.run([str(bin_dir / f"wxpush-{c}"), "--check-config", "--config", str(path)],
                               capture_output=True, text=True, env=env, timeout=60)
        check(p.returncode != 0 and "backend.kind: postgres" in p.stdout + p.stderr,
              f"wxpush-{c} refuses backend.kind redis on a Redis Cluster:\n{p.stdout}{p.stderr}")


def cluster_refusals(refused, default):
    """The values the chart refuses, each naming what to change."""
    cluster = ["redis.cluster=true", "redis.url=redis-cluster://redis-0:7000\\,redis-1:7001"]
    on_postgres = ["backend.kind=postgres", "postgres.existingSecret=wxpush-postgres"]
    refused(default, cluster, "redis.cluster needs backend.kind postgres, not redis")
    refused(default, cluster + on_postgres + ["template.config.backend.kind=redis"],
            "redis.cluster needs backend.kind postgres, but template.config.backend.kind is redis")
    refused(default, cluster + on_postgres + ["logquery.config.backend.kind=redis"],
            "redis.cluster needs backend.kind postgres, but logquery.config.backend.kind is redis")
    refused(default, ["redis.cluster=true", "redis.url=redis://redis:6379/"] + on_postgres,
            "redis.cluster is true but redis.url is not a redis-cluster:// URL")
    refused(default, ["redis.url=redis-cluster://redis-0:7000"],
            "redis.url is a redis-cluster:// URL but redis.cluster is false")
    refused(default, ["delivery.config.backend.stream_partitions=4"],
            "delivery and logquery need the same backend.stream_partitions (delivery 4, logquery 1)")
    refused(default, ["redis.streamPartitions=0"], "streamPartitions")
    refused(default, ["redis.streamPartitions=1025"], "streamPartitions")
    refused(default, ["redis.streamPartitions=two"], "streamPartitions")
    refused(default, ["redis.keyPrefix=wx{push}:"], "keyPrefix")
    refused(default, ["redis.cluster=yes"], "cluster")
    refused(default, ["networkPolicy.egress.redis.extraPorts={7000,70000}"], "extraPorts")
