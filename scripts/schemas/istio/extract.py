#!/usr/bin/env python3
"""Writes gateway-networking-v1.strict.json and
requestauthentication-security-v1.strict.json from the npm package
@kubernetes-models/istio@2.3.0 (MIT; its models carry the openAPIV3Schema of
Istio 1.18's CRDs, the last version of the package shipping the schemas as
data rather than as compiled validation code): the Gateway of
gateways.networking.istio.io (one schema for v1alpha3, v1beta1 and v1, v1
since Istio 1.22) and the RequestAuthentication of
requestauthentications.security.istio.io (one schema for v1beta1 and v1).
Fields added since 1.18 are missing here, so a rendered object using one
would fail, never pass wrongly.

    npm pack @kubernetes-models/istio@2.3.0
    python3 scripts/schemas/istio/extract.py kubernetes-models-istio-2.3.0.tgz

Made strict as the other schemas here (scripts/check-chart.py validates the
chart's Gateway and RequestAuthentications with them): `nullable` marks
dropped, and `additionalProperties: false` on every object that lists its
properties, so a misspelt field fails instead of being pruned by the API
server. Only `spec` and `status` at the top, like the other Istio schemas
here (apiVersion, kind and metadata are Kubernetes' own).
"""

import json
import pathlib
import re
import sys
import tarfile

HERE = pathlib.Path(__file__).parent
# Output file: (the model in the package, the CRD it carries).
KINDS = {
    "gateway-networking-v1.strict.json":
        ("networking.istio.io/v1beta1/Gateway.js", "gateways.networking.istio.io"),
    "requestauthentication-security-v1.strict.json":
        ("security.istio.io/v1/RequestAuthentication.js", "requestauthentications.security.istio.io"),
}


def strict(node):
    if isinstance(node, list):
        return [strict(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items() if k != "nullable"}
    # An empty `properties` beside `additionalProperties` (a map) says nothing.
    if out.get("properties") == {} and "additionalProperties" in out:
        del out["properties"]
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def main():
    package = tarfile.open(sys.argv[1])
    for out_name, (model, crd) in KINDS.items():
        js = package.extractfile(f"package/{model}").read().decode()
        schema = json.loads(re.search(r"^const schema = (\{.*?^\});$", js, re.S | re.M).group(1))
        out = {
            "$comment": f"{crd} (Istio 1.18, the same schema as v1), from the npm package "
                        "@kubernetes-models/istio@2.3.0 (MIT); strict: see extract.py",
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "spec": strict(schema["properties"]["spec"]),
                # The CRD's status keeps unknown fields (the package's model
                # shows it as an empty object).
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
        (HERE / out_name).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print(f"wrote {HERE / out_name}")


if __name__ == "__main__":
    main()
