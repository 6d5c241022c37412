#!/usr/bin/env bash
# The alert rules (charts/wxpush/alerts): `promtool check rules` (syntax,
# PromQL, templates), `promtool test rules` (wxpush-rules.test.yaml: a firing
# and a quiet case per alert), then scripts/check-alert-rules.py (metrics and
# label values the services really export, errcode classes as in
# shared/wechat, a README runbook section per alert, a test case of each kind
# per alert). promtool comes with Debian's prometheus package
# (scripts/install-test-tools.sh). The chart's PrometheusRule is compared to
# the rules file by scripts/check-chart.py.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v promtool >/dev/null 2>&1 || { echo "check-alerts: promtool not found (Debian package prometheus)" >&2; exit 1; }
cd charts/wxpush/alerts
promtool check rules wxpush-rules.yaml
promtool test rules wxpush-rules.test.yaml
cd - >/dev/null
python3 scripts/check-alert-rules.py
