#!/usr/bin/env python3
"""Writes servicemonitor-monitoring-v1.strict.json and
prometheusrule-monitoring-v1.strict.json from the npm package
@kubernetes-models/prometheus-operator@4.0.0 (MIT; its ServiceMonitor and
PrometheusRule models carry the openAPIV3Schema of prometheus-operator
v0.57.0's servicemonitors / prometheusrules.monitoring.coreos.com CRDs,
descriptions left out).

    npm pack @kubernetes-models/prometheus-operator@4.0.0
    python3 scripts/schemas/prometheus-operator/extract.py kubernetes-models-prometheus-operator-4.0.0.tgz

Made strict the way scripts/check-chart.py reads every schema: the CRD as
published (`metadata` a plain object; the package's `nullable` marks and the
`oneOf [..., null]` wrappers it adds for optional fields removed), and
`additionalProperties: false` on every object that lists its properties,
so a misspelt field fails instead of being pruned by the API server.
"""

import json
import pathlib
import re
import sys
import tarfile

KINDS = {
    "ServiceMonitor": "servicemonitor-monitoring-v1.strict.json",
    "PrometheusRule": "prometheusrule-monitoring-v1.strict.json",
}


def as_published(node):
    if isinstance(node, list):
        return [as_published(x) for x in node]
    if not isinstance(node, dict):
        return node
    one_of = node.get("oneOf")
    if one_of and len(one_of) == 2 and {"type": "null"} in one_of:
        rest = dict(node)
        del rest["oneOf"]
        return as_published({**rest, **next(x for x in one_of if x != {"type": "null"})})
    out = {k: as_published(v) for k, v in node.items() if k != "nullable"}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def main():
    package = tarfile.open(sys.argv[1])
    for kind, name in KINDS.items():
        js = package.extractfile(f"package/monitoring.coreos.com/v1/{kind}.js").read().decode()
        literal = re.search(r"^const schema = (\{.*?^\});$", js, re.S | re.M).group(1)
        schema = json.loads(literal)
        schema["properties"]["metadata"] = {"type": "object"}
        schema = as_published(schema)
        # Top level as in the Istio schemas: apiVersion/kind/metadata are
        # Kubernetes' own (the metadata is not the CRD's to restrict).
        schema["additionalProperties"] = False
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        schema["$comment"] = (
            f"{kind.lower()}s.monitoring.coreos.com v1, prometheus-operator v0.57.0, from the npm "
            "package @kubernetes-models/prometheus-operator@4.0.0 (MIT); strict: see extract.py")
        out = pathlib.Path(__file__).with_name(name)
        out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
