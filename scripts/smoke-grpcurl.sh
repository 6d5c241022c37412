#!/usr/bin/env bash
# Starts `wxpush dev` on free loopback ports and drives it with grpcurl using
# server reflection only (no local .proto files): list the services, Send a
# message, QueryLogs for it, page a list, read an error's ErrorInfo reason,
# check health; then the Python client example (examples/python) and the
# `wxpush` CLI (JSON output, exit codes). Stops the suite on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v grpcurl >/dev/null 2>&1; then
  export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
fi

# Every binary whose --version is checked below, built from this tree.
cargo build --quiet --locked -p wxpush -p wxpush-token -p wxpush-template -p wxpush-delivery \
  -p wxpush-logquery -p wxpush-callback -p wechat-sandbox --bins
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

target/debug/wxpush dev --listen 127.0.0.1:0 --sandbox-listen 127.0.0.1:0 \
  --sandbox-admin-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --callback-listen 127.0.0.1:0 \
  --ready-file "$work/ready.json" >"$work/dev.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  [ -s "$work/ready.json" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/dev.log"; echo "wxpush dev exited" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/ready.json" ] || { cat "$work/dev.log"; echo "wxpush dev did not get ready" >&2; exit 1; }
addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc"])' "$work/ready.json")

fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0

services=$(grpcurl -plaintext "$addr" list)
for s in wxpush.v1.TokenService wxpush.v1.TemplateService wxpush.v1.DeliveryService \
         wxpush.v1.LogQueryService grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection; do
  grep -qx "$s" <<<"$services" || fail "grpcurl list does not show $s: $services"
done
passed=$((passed + 1))

sent=$(grpcurl -plaintext -d '{"template_key":"order_shipped","openid":"o_demo_follower",
  "variables":{"order_id":"SF1234567","ship_time":"2026-11-23 10:00","carrier":"顺丰速运"}}' \
  "$addr" wxpush.v1.DeliveryService/Send)
status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["result"]["status"])' "$sent")
[ "$status" = "DELIVERY_STATUS_SENT" ] || fail "Send answered $sent"
message_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["result"]["messageId"])' "$sent")
trace_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["result"]["traceId"])' "$sent")
passed=$((passed + 1))

# A bad Send: grpcurl prints the field violation in clear text (reflection
# serves google/rpc/error_details.proto), not "BadRequest is not recognized".
bad=$(grpcurl -plaintext -d '{"template_key":"order_shipped","openid":""}' \
  "$addr" wxpush.v1.DeliveryService/Send 2>&1 || true)
grep -q 'Code: InvalidArgument' <<<"$bad" || fail "a bad Send answered $bad"
grep -q '"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":\[{"field":"openid"' <<<"$bad" \
  || fail "grpcurl shows no BadRequest field violation: $bad"
passed=$((passed + 1))

found=""
for _ in $(seq 1 50); do
  logs=$(grpcurl -plaintext -d "{\"filter\":{\"trace_id\":\"$trace_id\"}}" "$addr" wxpush.v1.LogQueryService/QueryLogs)
  if grep -q "$message_id" <<<"$logs"; then found=yes; break; fi
  sleep 0.1
done
[ -n "$found" ] || fail "QueryLogs by trace_id did not find $message_id: $logs"
passed=$((passed + 1))

failed=$(grpcurl -plaintext -d '{"template_key":"order_shipped","openid":"o_demo_unfollowed",
  "variables":{"order_id":"SF1","ship_time":"2026-11-23 10:00","carrier":"顺丰速运"}}' \
  "$addr" wxpush.v1.DeliveryService/Send)
grep -q '"errcode": "43004"' <<<"$failed" || fail "expected errcode 43004: $failed"
passed=$((passed + 1))

if grpcurl -plaintext -d '{"template_key":"order_shipped"}' "$addr" wxpush.v1.DeliveryService/Send \
  >"$work/bad.out" 2>&1; then
  fail "a Send without openid succeeded"
fi
grep -q "InvalidArgument" "$work/bad.out" && grep -q "openid" "$work/bad.out" \
  || fail "expected InvalidArgument naming openid: $(cat "$work/bad.out")"
# The error's details, resolved through reflection: the stable reason.
grep -q '"reason":"FIELD_INVALID"' "$work/bad.out" && grep -q '"domain":"wxpush.v1"' "$work/bad.out" \
  || fail "expected an ErrorInfo FIELD_INVALID: $(cat "$work/bad.out")"
passed=$((passed + 1))

# Lists page: one template per page, a next_page_token until the last; a
# page_size over the maximum is clamped, not refused.
page=$(grpcurl -plaintext -d '{"page_size":1}' "$addr" wxpush.v1.TemplateService/ListTemplates)
python3 - "$page" <<'PY' || fail "ListTemplates page_size 1: $page"
import json, sys
page = json.loads(sys.argv[1])
assert len(page["templates"]) == 1 and page["nextPageToken"], page
PY
big=$(grpcurl -plaintext -d '{"page_size":100000}' "$addr" wxpush.v1.TemplateService/ListTemplates)
python3 -c 'import json,sys; p=json.loads(sys.argv[1]); assert len(p["templates"]) >= 2 and "nextPageToken" not in p, p' "$big" \
  || fail "ListTemplates page_size 100000: $big"
passed=$((passed + 1))

health=$(grpcurl -plaintext -d '{"service":"wxpush.v1.DeliveryService"}' "$addr" grpc.health.v1.Health/Check)
grep -q SERVING <<<"$health" || fail "health: $health"
passed=$((passed + 1))

# The CLI does the same without grpcurl.
target/debug/wxpush logs --addr "http://$addr" --message-id "$message_id" --json >"$work/cli.json"
python3 - "$work/cli.json" "$message_id" <<'PY' || fail "wxpush logs: $(cat "$work/cli.json")"
import json, sys
page = json.load(open(sys.argv[1]))
record = page["records"][0]
# SENT, or DELIVERED once the sandbox's receipt reached wxpush dev's callback endpoint.
assert record["message_id"] == sys.argv[2], page
assert record["status"] in ("DELIVERY_STATUS_SENT", "DELIVERY_STATUS_DELIVERED"), page
PY
passed=$((passed + 1))

target/debug/wxpush token status --addr "http://$addr" --json >"$work/token.json"
python3 - "$work/token.json" <<'PY' || fail "wxpush token status: $(cat "$work/token.json")"
import json, sys
apps = {a["app_id"]: a for a in json.load(open(sys.argv[1]))["apps"]}
assert apps["wx_demo_oa"]["has_token"] is True, apps
assert apps["wx_demo_oa"]["refreshes_today"] >= 1, apps
assert "access_token" not in open(sys.argv[1]).read()
PY
passed=$((passed + 1))

target/debug/wxpush breaker --addr "http://$addr" >"$work/breaker.txt"
grep -q "wx_demo_oa  CLOSED" "$work/breaker.txt" || fail "wxpush breaker: $(cat "$work/breaker.txt")"
passed=$((passed + 1))

queued=$(grpcurl -plaintext -d '{"template_key":"order_shipped","openid":"o_demo_follower2",
  "variables":{"order_id":"SF9","ship_time":"2026-11-23 10:00","carrier":"顺丰速运"}}' \
  "$addr" wxpush.v1.DeliveryService/SendAsync)
async_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["messageId"])' "$queued")
done_status=""
for _ in $(seq 1 50); do
  done_status=$(grpcurl -plaintext -d "{\"message_id\":\"$async_id\"}" "$addr" wxpush.v1.DeliveryService/GetMessage \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["status"])')
  case "$done_status" in DELIVERY_STATUS_SENT|DELIVERY_STATUS_DELIVERED) break ;; esac
  sleep 0.1
done
# SENT, or DELIVERED once the sandbox's receipt came back.
case "$done_status" in
  DELIVERY_STATUS_SENT|DELIVERY_STATUS_DELIVERED) ;;
  *) fail "SendAsync message ended $done_status" ;;
esac
passed=$((passed + 1))

target/debug/wxpush dlq --addr "http://$addr" >"$work/dlq.txt"
grep -q "no dead letters" "$work/dlq.txt" || fail "wxpush dlq: $(cat "$work/dlq.txt")"
passed=$((passed + 1))

# Replaying every dead letter needs --yes (or --dry-run to look first):
# refused as a usage error (2) before anything is asked of the server.
set +e
target/debug/wxpush dlq --replay --addr "http://$addr" >"$work/replay.out" 2>&1
code=$?
target/debug/wxpush dlq --replay --dry-run --addr "http://$addr" >"$work/dry.out" 2>&1
dry=$?
target/debug/wxpush send --addr "http://127.0.0.1:1" --timeout 2s --template order_shipped \
  --openid o_demo_follower >"$work/down.out" 2>&1
down=$?
target/debug/wxpush send --addr "http://$addr" --template order_shipped --openid o_demo_unfollowed \
  --var order_id=SF1 --var "ship_time=2026-11-23 10:00" --var carrier=SF >"$work/failed.out" 2>&1
undelivered=$?
set -e
[ "$code" = 2 ] && grep -q -- "--yes" "$work/replay.out" || fail "dlq --replay without --yes: exit $code: $(cat "$work/replay.out")"
[ "$dry" = 0 ] && grep -q "no dead letters" "$work/dry.out" || fail "dlq --replay --dry-run: exit $dry: $(cat "$work/dry.out")"
[ "$down" = 4 ] || fail "send to a closed port: exit $down (want 4): $(cat "$work/down.out")"
[ "$undelivered" = 3 ] || fail "send that WeChat refuses: exit $undelivered (want 3): $(cat "$work/failed.out")"
passed=$((passed + 1))

# A client in another language, from the same .proto files.
python3 examples/python/wxpush_client.py "$addr" >"$work/python.out" 2>&1 \
  || fail "the Python client: $(cat "$work/python.out")"
grep -q "python client: ok" "$work/python.out" || fail "the Python client: $(cat "$work/python.out")"
passed=$((passed + 1))

# Every binary says its version and the commit it was built from (the test
# command sets WXPUSH_GIT_COMMIT), and so does the metric.
for b in wxpush wxpush-token wxpush-template wxpush-delivery wxpush-logquery wxpush-callback \
         wechat-sandbox; do
  v=$("target/debug/$b" --version) || fail "$b --version failed"
  grep -Eq "^$b [0-9]+\.[0-9]+\.[0-9]+ \(commit ${WXPUSH_GIT_COMMIT:-[0-9a-z]+}\)$" <<<"$v" \
    || fail "$b --version: $v"
done
admin=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$work/ready.json")
python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
  "$admin/metrics" | grep -Eq "^wxpush_build_info\{version=\"[0-9.]+\",commit=\"${WXPUSH_GIT_COMMIT:-[0-9a-z]+}\"\} 1$" \
  || fail "no wxpush_build_info on $admin/metrics"
passed=$((passed + 1))

echo "smoke: $passed passed, 0 failed"
