#!/usr/bin/env python3
"""Every shipped Prometheus Grafana dashboard, checked against real data.

Starts `wxpush dev` (all ports free loopback ports) and a real Prometheus
scraping its admin port every second, puts a short bounded load on it with
`wxpush send` (sent, FAILED by WeChat, invalid requests, and a WeChat outage
that opens the breaker), then:

- checks each dashboard's structure (uid, a `datasource` variable that
  every panel and target uses, unique panel ids, a PromQL expression per
  target);
- runs every panel expression (Grafana variables replaced by match-all
  values) and every `label_values` variable query against Prometheus:
  each must return data (an expression selecting only calls the gate
  refused, none of which `wxpush dev` makes with auth off: without that
  matcher, see REFUSALS).

Dashboards on PostgreSQL (a PostgreSQL `datasource` variable: the delivery
log's) are skipped by name and checked by scripts/check-pg-dashboard.py.

Run by scripts/test.sh. Needs `prometheus` (scripts/install-test-tools.sh)
and a built `target/debug/wxpush` (built here when missing). Stdlib only.
"""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "charts" / "wxpush" / "dashboards"
WXPUSH = ROOT / "target" / "debug" / "wxpush"

# Only Prometheus dashboards are checked here. One whose `datasource`
# variable is a PostgreSQL one has SQL targets, not PromQL:
# scripts/check-pg-dashboard.py (next in scripts/test.sh) runs them against a
# real PostgreSQL with data, so it is skipped here by name, never silently.
# A dashboard on any other datasource is checked here and fails the
# structure check (it needs a Prometheus `datasource` variable).
POSTGRES_DATASOURCES = {"grafana-postgresql-datasource", "postgres"}
PG_CHECK = ROOT / "scripts" / "check-pg-dashboard.py"

# Metrics whose producers have not landed yet; expressions using them are
# skipped only while `wxpush dev` does not export them at all (a metric on
# this list that appears is checked like every other, so remove it here).
# Empty: every dashboard query is checked (the load below makes a receipt
# of each status, a consent refusal and callback pushes).
NOT_YET_LANDED: set[str] = set()

# Calls refused by the gate (wxpush_auth_calls_total with outcome
# unauthenticated or permission_denied): `wxpush dev` runs with auth.mode
# off, so it lets every call in (caller "anonymous", outcome "allowed") and
# refuses none. An expression selecting refusals only (a matcher
# outcome!="allowed") may then come back empty: it is run all the same
# (Prometheus must accept it), and again without that matcher, which must
# return data (the rest of it selects real series). Once wxpush dev exports
# a refusal, such expressions are checked like every other.
REFUSALS = re.compile(r',\s*outcome!="allowed"|outcome!="allowed",\s*')

VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$job": ".*",
    "$app_id": ".*",
    "$caller": ".*",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def http_send(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read()


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def prom_query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(http_get(url))
    if body.get("status") != "success":
        raise RuntimeError(f"query failed: {body}")
    return body["data"]["result"]


def substitute(expr):
    for k in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(k, VARIABLES[k])
    return expr


def metric_names(expr):
    return set(re.findall(r"\b(wxpush_[a-z0-9_]+)", expr))


def prometheus_dashboards():
    """(path, dashboard) of every dashboard but the PostgreSQL ones, named."""
    dashboards = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dash = json.loads(path.read_text())
        variables = dash.get("templating", {}).get("list", [])
        ds = next((v for v in variables if v.get("name") == "datasource"), {})
        if ds.get("type") == "datasource" and ds.get("query") in POSTGRES_DATASOURCES:
            if not PG_CHECK.exists():
                raise SystemExit(f"{path.name} is on PostgreSQL and {PG_CHECK} is missing")
            print(f"skipped: {path.name} (PostgreSQL: checked by scripts/check-pg-dashboard.py)")
            continue
        dashboards.append((path, dash))
    return dashboards


def check_structure(path, dash, errors):
    name = path.name
    for key in ("uid", "title", "panels", "templating"):
        if key not in dash:
            errors.append(f"{name}: no {key}")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append(f"{name}: needs a `datasource` variable of type datasource (prometheus)")
    ids = [p.get("id") for p in dash.get("panels", [])]
    if len(ids) != len(set(ids)):
        errors.append(f"{name}: duplicate panel ids")
    for p in dash.get("panels", []):
        if p.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"{name}: panel {p.get('title')} does not use ${{datasource}}")
        if not p.get("targets"):
            errors.append(f"{name}: panel {p.get('title')} has no targets")
        for t in p.get("targets", []):
            if not t.get("expr"):
                errors.append(f"{name}: panel {p.get('title')} has a target without expr")
            if t.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"{name}: a target of {p.get('title')} does not use ${{datasource}}")
    return variables


def load(addr, sandbox_admin):
    """A short, bounded load: about 25 sends."""
    def send(template, openid, *variables):
        cmd = [str(WXPUSH), "send", "--addr", addr, "--template", template, "--openid", openid]
        for v in variables:
            cmd += ["--var", v]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    shipped = ["order_id=SF1", "ship_time=2026-11-23 10:00", "carrier=顺丰速运"]
    for _ in range(8):
        send("order_shipped", "o_demo_follower", *shipped)
    for _ in range(3):
        send("order_shipped", "o_demo_unfollowed", *shipped)  # FAILED: 43004
    for _ in range(3):
        send("order_shipped", "o_demo_follower", "order_id=SF1")  # INVALID_ARGUMENT
    for _ in range(2):
        send("order_status", "o_demo_subscriber", "order_id=SF1", "status=已发货", "amount=128.50")
    # WeChat's receipts (pushed by the sandbox to wxpush dev's callback
    # endpoint): BLOCKED and UNDELIVERED beside the followers' DELIVERED.
    send("order_shipped", "o_demo_blocker", *shipped)
    send("order_shipped", "o_demo_unreachable", *shipped)
    # consent: enforce with no pop-up answer known: refused, WeChat not called.
    send("order_status_confirmed", "o_demo_subscriber", "order_id=SF1", "status=已发货",
         "amount=128.50")
    # A WeChat outage (errcode -1) opens the breaker; later sends are rejected.
    http_send("POST", f"{sandbox_admin}/admin/faults",
              {"path": "/cgi-bin/message/template/send", "errcode": -1, "times": 50})
    for _ in range(5):
        send("order_shipped", "o_demo_follower", *shipped)
    http_send("DELETE", f"{sandbox_admin}/admin/faults")


def main():
    if not shutil.which("prometheus"):
        raise SystemExit("prometheus is not installed (scripts/install-test-tools.sh)")
    dashboards = prometheus_dashboards()
    if not WXPUSH.exists():
        subprocess.run(["cargo", "build", "-p", "wxpush", "--locked"], cwd=ROOT, check=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="wxpush-dash-"))
    procs = []
    try:
        ready = tmp / "ready.json"
        dev_log = open(tmp / "dev.log", "w")
        procs.append(subprocess.Popen(
            [str(WXPUSH), "dev", "--listen", "127.0.0.1:0", "--sandbox-listen", "127.0.0.1:0",
             "--sandbox-admin-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
             "--callback-listen", "127.0.0.1:0",
             "--ready-file", str(ready)],
            stdout=dev_log, stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": "warn", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}))
        wait_for("wxpush dev", lambda: ready.exists() and ready.stat().st_size > 0, 60)
        info = json.loads(ready.read_text())
        admin = info["admin"]
        metrics_target = urllib.parse.urlparse(admin).netloc

        port = free_port()
        prom = f"http://127.0.0.1:{port}"
        (tmp / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: wxpush-dev\n"
            f"    static_configs:\n      - targets: ['{metrics_target}']\n")
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=open(tmp / "prometheus.log", "w"), stderr=subprocess.STDOUT))
        wait_for("prometheus", lambda: "Ready" in http_get(f"{prom}/-/ready"), 30)

        load(info["grpc_url"], info["sandbox_admin"])
        # Enough scrapes after the load for rate() over 1m to see it.
        wait_for("scrapes", lambda: prom_query(prom, 'up{job="wxpush-dev"} == 1'), 30)
        time.sleep(5)

        exposition = http_get(f"{admin}/metrics")
        exported = set(re.findall(r"^(wxpush_[a-z0-9_]+)", exposition, re.M))
        refusals = re.search(r'^wxpush_auth_calls_total\{[^}]*outcome="(unauthenticated|permission_denied)"',
                             exposition, re.M)
        exported |= {n + s for n in exported for s in ("_total", "_bucket")}
        errors, checked, skipped, unrefused = [], 0, [], []
        for path, dash in dashboards:
            variables = check_structure(path, dash, errors)
            exprs = [(p["title"], t["expr"]) for p in dash.get("panels", []) for t in p.get("targets", [])]
            for v in variables.values():
                m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", v.get("definition", ""))
                if v.get("type") == "query":
                    if not m:
                        errors.append(f"{path.name}: variable {v.get('name')} is not label_values(metric, label)")
                        continue
                    exprs.append((f"variable {v['name']}", f"group by ({m.group(2)}) ({m.group(1)})"))
            for title, expr in exprs:
                missing = {n for n in metric_names(expr) if n in NOT_YET_LANDED and n not in exported}
                if missing:
                    skipped.append(f"{path.name}: {title} ({', '.join(sorted(missing))} not landed yet)")
                    continue
                checked += 1
                try:
                    result = prom_query(prom, substitute(expr))
                except Exception as e:  # noqa: BLE001 - reported, then fail
                    errors.append(f"{path.name}: {title}: {e}")
                    continue
                if not result and not refusals and REFUSALS.search(expr):
                    expr = REFUSALS.sub("", expr)
                    unrefused.append(f"{path.name}: {title}")
                    try:
                        result = prom_query(prom, substitute(expr))
                    except Exception as e:  # noqa: BLE001 - reported, then fail
                        errors.append(f"{path.name}: {title} (refusals matcher dropped): {e}")
                        continue
                if not result:
                    errors.append(f"{path.name}: {title}: no data for {substitute(expr)}")
        for s in skipped:
            print(f"skipped: {s}")
        for s in unrefused:
            print(f"no refusals in wxpush dev (auth off): {s}: checked without its outcome matcher")
        print(f"{checked} queries of {len(dashboards)} Prometheus dashboards returned data "
              f"({len(unrefused)} without their refusals matcher); {len(skipped)} skipped")
        if errors:
            print("\n".join(errors), file=sys.stderr)
            tail = (tmp / "dev.log").read_text(errors="replace").splitlines()[-30:]
            print("--- wxpush dev log (tail)\n" + "\n".join(tail), file=sys.stderr)
            raise SystemExit(1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
