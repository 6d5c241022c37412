#!/usr/bin/env python3
"""The PostgreSQL delivery-log dashboard, every panel's SQL run against data.

A broken SQL panel shows only when someone opens it, and the delivery log's
dashboard (charts/wxpush/dashboards/log-postgres.json) is opened when a user
says they never got a message. So this script:

- starts a private PostgreSQL (the newest /usr/lib/postgresql/*/bin, or
  $WXPUSH_PG_BINDIR) on a free loopback port, never a server already
  running, and removes it at the end;
- applies every migration (services/*/migrations/*.sql, in name order),
  makes the last 3 UTC days' and tomorrow's partitions, as the service does,
  and inserts a few hundred messages over two days (two apps, several
  openids and templates, SENT / FAILED / DEAD / RETRYING with errcodes
  0 / 43004 / 45009 / -1, 1-3 attempts each, and sent ones with WeChat's
  receipt: DELIVERED / BLOCKED / UNDELIVERED), one of them a known one;
- checks each dashboard whose `datasource` variable is a PostgreSQL one
  (scripts/check-dashboards.py skips exactly those): uid, the variable used
  by every panel and target, unique panel ids, raw SQL in code mode, the
  time filter on every table read (partition pruning), every search
  variable in every query, the Jaeger link on every trace_id column;
- runs every target's SQL as Grafana would send it (variables, then
  macros, over the last two days): each must succeed and return rows with
  the search variables empty, set to the known message, and each set alone;
  and return nothing with each set to a value no message has.

Run by scripts/test.sh; PostgreSQL comes from scripts/install-test-tools.sh.
Stdlib only. Prints one line per panel; exits non-zero on any failure.
"""

import datetime as dt
import json
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "charts" / "wxpush" / "dashboards"
POSTGRES_DATASOURCES = {"grafana-postgresql-datasource", "postgres"}
UID = "wxpush-log-postgres"
JAEGER_LINK = "${jaeger_url}/trace/${__value.raw}"
INTERVAL = "10m"  # $__interval, as Grafana would pick for two days
FILTERS = ("openid", "trace_id", "message_id", "app_id")
KNOWN = {  # the message "never got": FAILED 43004 (the user unfollowed)
    "openid": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "message_id": "0190f5d3a2b47c1e9f0a6b2c3d4e5f60",
    "app_id": "wx8f3a2b1c0d9e7f61",
}
UNKNOWN = "nobody's"  # matches no message; the quote checks the escaping


def pg_bindir():
    if os.environ.get("WXPUSH_PG_BINDIR"):
        return pathlib.Path(os.environ["WXPUSH_PG_BINDIR"])
    dirs = [p.parent for p in pathlib.Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    if not dirs:
        raise SystemExit("no PostgreSQL server binaries (scripts/install-test-tools.sh installs them)")
    return max(dirs, key=lambda d: [int(x) for x in re.findall(r"\d+", d.parent.name)] or [0])


class Postgres:
    """A throwaway server: initdb in a temp dir, trust auth, loopback only."""

    def __init__(self, bindir):
        self.bindir, self.proc = bindir, None
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="wxpush-pg-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def start(self):
        as_owner = []
        if os.geteuid() == 0:  # initdb refuses root: run the server as postgres
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.dir)], check=True)
            as_owner = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"]
        data = str(self.dir / "data")
        r = subprocess.run(as_owner + [str(self.bindir / "initdb"), "-D", data, "-A", "trust", "-U",
                                       "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
                           cwd=self.dir, env=self.env, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"initdb failed:\n{r.stdout}{r.stderr}")
        with socket.socket() as s:  # a free loopback port
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        log = self.dir / "server.log"
        with open(log, "w") as out:  # setpriv execs: the child pid is the server's
            self.proc = subprocess.Popen(
                as_owner + [str(self.bindir / "postgres"), "-D", data, "-p", str(self.port),
                            "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                cwd=self.dir, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while subprocess.run([str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                              str(self.port)], env=self.env).returncode:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"PostgreSQL did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        if self.psql("-A", "-t", "-c", "SHOW data_directory").strip() != data:  # not a port race
            raise SystemExit(f"127.0.0.1:{self.port} answers, but not as the private server")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, *args, sql=None):
        cmd = [str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
               "-p", str(self.port), "-U", "postgres", "-d", "postgres", *args]
        r = subprocess.run(cmd, input=sql, env=self.env, capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise RuntimeError(r.stderr.strip() or f"psql exited {r.returncode}")
        return r.stdout


def sql_value(v):
    if v is None:
        return "NULL"
    return str(v) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'"


def insert(table, rows):
    values = ",\n".join("(" + ", ".join(map(sql_value, row)) + ")" for row in rows)
    return f"INSERT INTO {table} VALUES\n{values};\n"


def sample_data(now):
    """INSERTs for 300 messages over the last two days, the known one first."""
    rng = random.Random(20240501)
    hexid = lambda: f"{rng.getrandbits(128):032x}"  # noqa: E731
    apps = [KNOWN["app_id"], "wx0f1e2d3c4b5a6978"]
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    openids = [KNOWN["openid"]] + ["o" + "".join(rng.choices(chars, k=27)) for _ in range(11)]
    templates = {"order_shipped": "TPL_shipped_8QeY1", "order_status": "TPL_status_3xKp9",
                 "payment_succeeded": "TPL_paid_7LmN2", "appointment_reminder": "TPL_remind_5RtV4"}
    errmsg = {0: "ok", 43004: "require subscribe rid: 6650c0a5-2d1f7e3a-4b9c1d0e", -1: "system error",
              45009: "reach max api daily quota limit rid: 6650c0b1-0a9e44c2-1f2e3d4c"}
    # (status, errcode, attempts): SENT (no receipt yet), DELIVERED, BLOCKED and UNDELIVERED
    # (sent, then WeChat's receipt), FAILED (unfollowed), DEAD (quota, outage), RETRYING
    outcomes = [(4, 0, 1)] * 24 + [(4, 0, 2)] * 4 + [(9, 0, 1)] * 26 + [(9, 0, 2)] * 6 + [(10, 0, 1)] * 6 \
        + [(11, 0, 1)] * 4 + [(7, 43004, 1)] * 12 + [(8, 45009, 3)] * 4 \
        + [(8, -1, 3)] * 4 + [(5, -1, 1)] * 6 + [(5, -1, 2)] * 4
    messages = [(KNOWN["message_id"], KNOWN["trace_id"], KNOWN["app_id"], KNOWN["openid"],
                 "order_shipped", (7, 43004, 1), now - dt.timedelta(hours=3))]
    messages += [(hexid(), hexid(), rng.choice(apps), rng.choice(openids), rng.choice(list(templates)),
                  rng.choice(outcomes), now - dt.timedelta(seconds=rng.uniform(60, 47 * 3600)))
                 for _ in range(299)]
    records, attempts = [], 0
    for message_id, trace_id, app_id, openid, template, (status, errcode, n), t in messages:
        # A receipt changes the record's status, adds no attempt: the last one was SENT.
        sent = status in (4, 9, 10, 11)
        latency = rng.randint(80, 900)
        history = []
        for i in range(1, n + 1):  # earlier attempts RETRYING; DEAD ones failed alike each time
            last = i == n
            code = errcode if last or status == 8 else -1
            wechat = str(rng.getrandbits(62)) if last and sent else ""
            occurred = t + dt.timedelta(seconds=2 ** i, milliseconds=latency)
            history.append({"attempt": i, "status": (4 if sent else status) if last else 5, "errcode": code,
                            "errmsg": errmsg[code], "wechat_msgid": wechat, "latency_ms": latency,
                            "occurred_us": int(occurred.timestamp() * 1_000_000)})
            attempts += 1
        data = json.dumps({"order_id": f"SF{rng.randint(10**9, 10**10)}"})
        folded = ["accepted"] + ["attempt"] * n + (["receipt"] if status > 8 else [])
        events = "{" + ",".join(f"{message_id}:{e}" for e in folded) + "}"
        records.append((t, message_id, trace_id, app_id, openid, template, templates[template],
                        1 if app_id == apps[0] else 2, status, errcode, errmsg[errcode], wechat, n, latency,
                        occurred if sent else None,
                        occurred + dt.timedelta(seconds=rng.randint(1, 60)) if status > 8 else occurred, data, events,
                        json.dumps(history, ensure_ascii=False)))
    return insert("log_records", records), len(records), attempts


def partitions(today):
    sql = []
    for offset in (-2, -1, 0, 1):
        day = today + dt.timedelta(days=offset)
        sql.append(f"CREATE TABLE log_records_p{day:%Y%m%d} PARTITION OF log_records FOR VALUES "
                   f"FROM ('{day}T00:00:00Z') TO ('{day + dt.timedelta(days=1)}T00:00:00Z');")
    return "\n".join(sql)


def seconds(interval):
    m = re.fullmatch(r"'?(\d+)(ms|s|m|h|d)'?", interval.strip())
    if not m:
        raise ValueError(f"bad interval {interval}")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def interpolate(sql, values):
    """Dashboard variables, as Grafana's frontend does for SQL: a single-value
    variable has its quotes doubled. Macros are left to expand_macros."""
    builtins = {"__interval": INTERVAL, "__interval_ms": str(int(seconds(INTERVAL) * 1000))}

    def repl(m):
        name, fmt = m.group(1) or m.group(3), m.group(2)
        if name in builtins:
            return builtins[name]
        if name.startswith("__"):
            return m.group(0)
        if name not in values or fmt:
            raise ValueError(f"undefined variable or unhandled format: {m.group(0)}")
        return values[name].replace("'", "''")
    return re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)", repl, sql)


def expand_macros(sql, t_from, t_to):
    """Grafana's PostgreSQL macros (pkg/tsdb/grafana-postgresql-datasource/macros.go)."""
    # Go's RFC3339Nano in UTC, as Grafana writes the range
    f, t = (x.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for x in (t_from, t_to))

    def repl(m):
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",") if a.strip()]
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{f}' AND '{t}'"
        if name in ("__timeFrom", "__timeTo"):
            return f"'{f if name == '__timeFrom' else t}'"
        if name in ("__timeGroup", "__timeGroupAlias"):  # a third arg (fill) acts on the result
            s = f"{seconds(args[1]):g}"
            alias = ' AS "time"' if name.endswith("Alias") else ""
            return f"floor(extract(epoch from {args[0]})/{s})*{s}{alias}"
        raise ValueError(f"macro ${name} is not handled here (add it, as Grafana expands it)")
    out = re.sub(r"\$(__\w+)\(([^()]*)\)", repl, sql)
    if re.search(r"\$(__|\{)", out):
        raise ValueError(f"unexpanded macro or variable in: {out}")
    return out


def uses_datasource(obj):
    ds = obj.get("datasource") or {}
    return ds.get("uid") == "${datasource}" and ds.get("type") in POSTGRES_DATASOURCES


def check_structure(name, dash):
    """What the panels need to run in Grafana as they run here."""
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    jaeger = variables.get("jaeger_url", {})
    ids = [p.get("id") for p in dash.get("panels", [])]
    bad = [(dash.get("uid") != UID, f"uid is not {UID}"),
           (len(ids) != len(set(ids)), "duplicate panel ids"),
           (jaeger.get("type") not in ("constant", "textbox") or not jaeger.get("query", "").startswith("http"),
            "needs a constant or textbox variable `jaeger_url` with a default URL")]
    bad += [((variables.get(f, {}).get("type"), variables.get(f, {}).get("query")) != ("textbox", ""),
             f"needs an empty-by-default textbox variable `{f}`") for f in FILTERS]
    for p in dash.get("panels", []):
        title = f"panel {p.get('id')} {p.get('title')!r}"
        bad += [(not uses_datasource(p), f"{title} does not use ${{datasource}} (PostgreSQL)"),
                (not p.get("targets"), f"{title} has no targets")]
        for t in p.get("targets", []):
            sql = t.get("rawSql", "")
            bad += [(not uses_datasource(t), f"a target of {title} does not use ${{datasource}} (PostgreSQL)"),
                    (not sql or t.get("rawQuery") is not True or t.get("editorMode") != "code",
                     f"a target of {title} is not raw SQL in code mode (rawSql, rawQuery, editorMode)"),
                    (t.get("format") not in ("table", "time_series"), f"a target of {title} has no format")]
            # The time filter on each table read, so only the range's partitions are.
            bad += [(re.search(rf"\b{table}\b", sql) and f"$__timeFilter({a}.accepted_at)" not in sql,
                     f"{title} reads {table} without $__timeFilter({a}.accepted_at)")
                    for a, table in (("r", "log_records"),)]
            bad += [(f"('${{{f}}}' = '' OR r.{f} = '${{{f}}}')" not in sql,
                     f"{title} does not filter by ${{{f}}} (an empty one matching everything)") for f in FILTERS]
    return [f"{name}: {msg}" for failed, msg in bad if failed]


def jaeger_linked(panel):
    return any(o.get("matcher") == {"id": "byName", "options": "trace_id"} and prop.get("id") == "links"
               and any(x.get("url") == JAEGER_LINK for x in prop.get("value", []))
               for o in panel.get("fieldConfig", {}).get("overrides", []) for prop in o.get("properties", []))


def check_panels(pg, name, dash, t_from, t_to):
    """The structure, then every target's SQL in every scenario; one line per panel."""
    defaults = {v["name"]: v.get("query", "") for v in dash["templating"]["list"]
                if v.get("type") in ("textbox", "constant")}
    scenarios = [("empty", {}, True), ("known", KNOWN, True)] + [(f, {f: KNOWN[f]}, True) for f in FILTERS]
    scenarios += [(f"no such {f}", {f: UNKNOWN}, False) for f in FILTERS]
    errors, linked = check_structure(name, dash), 0
    for p in dash["panels"]:
        counts, title = [], f"{name}: panel {p['id']} {p['title']!r}"
        for t in (t for t in p.get("targets", []) if t.get("rawSql")):  # the others: check_structure
            for label, values, want_rows in scenarios:
                try:
                    sql = expand_macros(interpolate(t["rawSql"], {**defaults, **values}), t_from, t_to)
                    header, *rows = pg.psql("-A", "-F", "|", "-P", "footer=off", sql=sql).splitlines()
                except (RuntimeError, ValueError) as e:  # the same in every scenario: once
                    errors.append(f"{title} ({label}): {e}")
                    counts.append(f"{label}=error")
                    break
                columns = header.split("|")
                if want_rows and not rows:
                    errors.append(f"{title} ({label}): no rows")
                if not want_rows and rows:
                    errors.append(f"{title} ({label}): {len(rows)} rows, wanted none (filter not applied?)")
                if label == "empty" and t.get("format") == "time_series" and "time" not in columns:
                    errors.append(f"{title}: a time_series target without a `time` column")
                if label == "empty" and "trace_id" in columns:
                    linked += 1
                    if not jaeger_linked(p):
                        errors.append(f"{title}: the trace_id column has no link {JAEGER_LINK}")
                counts.append(f"{label}={len(rows)}")
        ok = not any(e.startswith(title) for e in errors)
        print(f"{'ok  ' if ok else 'FAIL'} {title} ({p['type']}): rows {' '.join(counts)}")
    if not linked:
        errors.append(f"{name}: no panel shows a trace_id column linked to Jaeger")
    return errors


def main():
    dashboards = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dash = json.loads(path.read_text())
        variables = dash.get("templating", {}).get("list", [])
        ds = next((v for v in variables if v.get("name") == "datasource"), {})
        if ds.get("type") == "datasource" and ds.get("query") in POSTGRES_DATASOURCES:
            dashboards.append((path.name, dash))
    if not dashboards:
        raise SystemExit(f"no dashboard in {DASHBOARDS} has a PostgreSQL `datasource` variable")
    pg = Postgres(pg_bindir())
    try:
        pg.start()
        migrations = [f for d in sorted(ROOT.glob("services/*/migrations")) for f in sorted(d.glob("*.sql"))]
        if not migrations:
            raise SystemExit("no services/*/migrations/*.sql")
        now = dt.datetime.now(dt.timezone.utc)
        inserts, n_records, n_attempts = sample_data(now)
        try:
            for f in migrations:
                pg.psql("-f", str(f))
            pg.psql(sql=partitions(now.date()) + "\n" + inserts)
        except RuntimeError as e:
            raise SystemExit(f"setting up the database failed: {e}")
        print(f"PostgreSQL {pg.bindir.parent.name} on 127.0.0.1:{pg.port}: "
              f"{n_records} messages, {n_attempts} attempts in 4 daily partitions")
        errors = []
        for name, dash in dashboards:
            t_to = dt.datetime.now(dt.timezone.utc)
            errors += check_panels(pg, name, dash, t_to - dt.timedelta(days=2), t_to)
        if errors:
            print("\n".join(errors), file=sys.stderr)
            raise SystemExit(1)
        print(f"{len(dashboards)} PostgreSQL dashboard(s): every panel's SQL returned what it should")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
