#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   formatting, lints, the wire API's lint and breaking-change check (buf),
#   every crate's unit and integration tests, the fault suite's short run (the suite and
#   the WeChat sandbox on free loopback ports, real gRPC and HTTP), a short
#   fuzz run of every parser that reads outside input, and a smoke
#   test of `wxpush dev` driven by the real grpcurl through reflection alone,
#   the Python client example and the CLI,
#   every Grafana dashboard query run against a real Prometheus, every SQL
#   panel of the PostgreSQL delivery-log dashboard against a private
#   PostgreSQL with data (scripts/check-pg-dashboard.py), the alert rules
#   checked and unit-tested with promtool (scripts/check-alerts.sh), and the
#   Helm chart linted, rendered and validated (scripts/check-chart.py), and
#   the container image: the Dockerfile linted with hadolint, an equivalent
#   image built from scratch and every binary started from its exported
#   filesystem (scripts/check-image.sh).
# Installs what it needs first; starts and stops its own servers.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-tools.sh

# The commit every binary reports (`--version`, wxpush_build_info).
WXPUSH_GIT_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
export WXPUSH_GIT_COMMIT

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== proto: buf lint, buf breaking against the last release"
scripts/check-proto.sh
echo "== cargo test (unit, integration, the hostile-input suite on the production topology)"
cargo test --workspace --locked -- --skip faultsuite_
echo "== fault suite (short run): Redis, WeChat, logquery and delivery faults, counted"
scripts/fault-suite.sh
echo "== fuzz: a short run of every cargo-fuzz target"
scripts/fuzz-short.sh
echo "== grpcurl smoke test against wxpush dev"
scripts/smoke-grpcurl.sh
echo "== dashboards: every PromQL expression against a real Prometheus scraping wxpush dev"
python3 scripts/check-dashboards.py
echo "== dashboards: every SQL panel of the PostgreSQL log dashboard against a real PostgreSQL with data"
python3 scripts/check-pg-dashboard.py
echo "== alerts: promtool check and unit tests of every rule, metrics and runbooks they name"
scripts/check-alerts.sh
echo "== helm chart: lint, Kubernetes and Istio schemas, cross-references, configs"
python3 scripts/check-chart.py
echo "== image: hadolint, an equivalent image from scratch, every binary started from its exported filesystem"
scripts/check-image.sh
