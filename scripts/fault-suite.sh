#!/usr/bin/env bash
# The fault suite (issue 13): every `faultsuite_*` test — Redis killed (AOF
# always and everysec), emptied, stalled and refusing connections; WeChat
# busy, slow and down; logquery and delivery killed; a token invalidation
# storm — on the production topology, one at a time, then the fault table
# they printed. The test command runs the short run; `--soak` runs each
# with ten times the messages and outages.
#   scripts/fault-suite.sh [--soak]
set -euo pipefail
cd "$(dirname "$0")/.."

soak=1
[ "${1:-}" = "--soak" ] && soak=10
out=$(mktemp)
trap 'rm -f "$out"' EXIT
WXPUSH_SOAK=$soak cargo test --locked -p wxpush --test redis_faults --test service_faults --test delivery_policy --test postgres_log --test redis_cluster \
  -- faultsuite_ --nocapture --test-threads 1 2>&1 | tee "$out" | grep -E '^test |test result' || true
if grep -q "test result: FAILED\|^error" "$out"; then
  grep -A30 "panicked\|^error" "$out" | head -80
  exit 1
fi
passed=$(grep -c '^test faultsuite_' "$out" || true)
[ "$passed" -ge 12 ] || { echo "fault suite: $passed fault tests ran, 12 expected" >&2; exit 1; }
echo
echo "| fault | figures |"
echo "|---|---|"
grep -o 'fault table | .*' "$out" | awk -F ' [|] ' '{
  row = "| " $2 " | " $3
  for (i = 4; i <= NF; i++) row = row "; " $i
  print row " |"
}'
echo
echo "fault suite: $passed faults passed (soak x$soak)"
