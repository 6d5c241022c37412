#!/usr/bin/env python3
"""What promtool cannot see in the alert rules (charts/wxpush/alerts):

- every metric a rule reads is one the services register (the names in
  `register("wxpush_...")` of the Rust sources, with the suffixes
  prometheus_client adds: _total for counters, _bucket/_sum/_count for
  histograms), and every label value a rule matches (`state="OPEN"`,
  `reason="quota"`, ...) is a string literal of those sources;
- the errcode classes of the recording rules are exactly the table of
  shared/wechat/src/errcode.rs (`classify`), the permanent class being
  every errcode the table does not name;
- every alert has a `runbook` annotation naming a README section that
  exists, a severity, and in wxpush-rules.test.yaml both a firing case
  (an eval expecting alerts) and a quiet case (an eval expecting none).

Run by scripts/check-alerts.sh; needs PyYAML. Exits non-zero on the first
failure.
"""

import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
ALERTS = ROOT / "charts" / "wxpush" / "alerts"
RULES = ALERTS / "wxpush-rules.yaml"
TESTS = ALERTS / "wxpush-rules.test.yaml"
ERRCODES = ROOT / "shared" / "wechat" / "src" / "errcode.rs"
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|=|!=)\s*"([^"]*)"')
checked = 0


def check(cond, what):
    global checked
    checked += 1
    if not cond:
        sys.exit(f"check-alert-rules: FAILED: {what}")


def rust_sources():
    for top in ("services", "shared"):
        for p in (ROOT / top).rglob("*.rs"):
            if "tests" not in p.parts and "target" not in p.parts:
                yield p.read_text()


def errcode_table():
    """{class: {errcode, ...}} from `classify`; the `_` arm is permanent."""
    text = ERRCODES.read_text()
    body = text[text.index("pub fn classify"):]
    body = body[:body.index("\n}\n")]
    table = {}
    for codes, cls in re.findall(r"^\s*([-\d| ]+?)\s*=>\s*ErrClass::(\w+)", body, re.M):
        table.setdefault(cls.lower(), set()).update(c.strip() for c in codes.split("|"))
    check(re.search(r"_\s*=>\s*ErrClass::Permanent", body), "classify sends every other errcode to Permanent")
    return table


def main():
    sources = "\n".join(rust_sources())
    registered = set(re.findall(r'register\(\s*"(wxpush_[a-z0-9_]+)"', sources))
    check(registered, "metrics registered in the Rust sources")
    exported = {name + s for name in registered for s in SUFFIXES}

    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    alerts = [r for r in rules if "alert" in r]
    # Labels the recording rules set, and errcode (checked below), are ours.
    own_labels = {"errcode"} | {k for r in rules if "record" in r for k in r.get("labels", {})}
    check(alerts, "alert rules in the rules file")

    for r in rules:
        name = r.get("alert") or r.get("record")
        expr = r["expr"]
        for metric in set(re.findall(r"\b(wxpush_[a-z0-9_:]+)", expr)):
            check(metric in exported or metric in recorded,
                  f"{name}: {metric} is exported by the services or recorded here")
        for label, op, value in MATCHER.findall(expr):
            if label in own_labels:
                continue
            for v in value.split("|") if op in ("=~", "!~") else [value]:
                check(f'"{v}"' in sources, f"{name}: {label}{op}{value!r}: {v!r} is a value the sources write")

    # The errcode classes.
    table = errcode_table()
    named = set().union(*table.values())
    classes = {}
    for r in rules:
        if r.get("record") == "wxpush_wechat:failures:rate5m":
            (label, op, value), = [m for m in MATCHER.findall(r["expr"]) if m[0] == "errcode"]
            classes[r["labels"]["class"]] = (op, set(value.split("|")))
    for cls, codes in table.items():
        if cls == "success":
            continue
        if cls == "permanent":
            check(classes.get(cls) == ("!~", named), f"permanent: every errcode but {sorted(named)}: {classes.get(cls)}")
        else:
            check(classes.get(cls) == ("=~", codes), f"class {cls} is errcodes {sorted(codes)}: {classes.get(cls)}")
    check(set(classes) == set(table) - {"success"} | {"permanent"},
          f"one recorded class per ErrClass but Success: {sorted(classes)} vs {sorted(table)}")

    # Runbooks: a README heading per alert (GitHub's anchor: lower case,
    # punctuation dropped, spaces to dashes).
    readme = (ROOT / "README.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", readme, re.M)
    }
    for a in alerts:
        name = a["alert"]
        runbook = a.get("annotations", {}).get("runbook", "")
        check(runbook == f"README.md#{name.lower()}", f"{name}: runbook annotation {runbook!r}")
        check(name.lower() in anchors, f"{name}: README has its runbook section ### {name}")
        check(a.get("labels", {}).get("severity") in ("critical", "warning"), f"{name}: a severity")
        check({"summary", "description"} <= set(a.get("annotations", {})), f"{name}: summary and description")

    # A firing and a quiet case per alert.
    tests = yaml.safe_load(TESTS.read_text())
    check(tests["rule_files"] == [RULES.name], f"the tests load {RULES.name}")
    evals = [e for t in tests["tests"] for e in t.get("alert_rule_test", [])]
    for a in alerts:
        name = a["alert"]
        mine = [e for e in evals if e["alertname"] == name]
        check(any(e.get("exp_alerts") for e in mine), f"{name}: a firing case in {TESTS.name}")
        check(any(not e.get("exp_alerts") for e in mine), f"{name}: a quiet case in {TESTS.name}")
    tested = {e["alertname"] for e in evals}
    check(tested <= {a["alert"] for a in alerts}, f"tests name only existing alerts: {sorted(tested)}")
    print(f"check-alert-rules: {len(alerts)} alerts, {checked} checks passed")


if __name__ == "__main__":
    main()
