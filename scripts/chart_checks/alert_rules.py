"""The PrometheusRule (alerts.enabled): exactly the plain rules file.

One when enabled, none otherwise; its spec equals alerts/wxpush-rules.yaml
parsed (the file promtool checks and tests, scripts/check-alerts.sh), and it
carries alerts.labels (the Prometheus's ruleSelector). Validated against the
CRD's schema by check-chart.py (scripts/schemas/prometheus-operator).
"""

import yaml

from . import by_kind, check


def prometheus_rule(docs, values, rules_file):
    """Returns whether the PrometheusRule rendered (and so was checked)."""
    settings = values.get("alerts", {})
    rules = by_kind(docs, "PrometheusRule")
    check(len(rules) == (1 if settings.get("enabled") else 0),
          f"a PrometheusRule iff alerts.enabled: {len(rules)}")
    if not rules:
        return False
    rule = rules[0]
    check(rule["spec"] == yaml.safe_load(rules_file.read_text()),
          f"PrometheusRule {rule['metadata']['name']} is {rules_file.name}, unchanged")
    check(settings.get("labels", {}).items() <= rule["metadata"]["labels"].items(),
          "the PrometheusRule carries alerts.labels")
    return True
