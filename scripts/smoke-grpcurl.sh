#!/usr/bin/env bash
# Starts `wxpush dev` on free loopback ports and drives it with grpcurl using
# server reflection only (no local .proto files): list the services, Send a
# message, QueryLogs for it, check health. Stops the suite on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v grpcurl >/dev/null 2>&1; then
  export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
fi

cargo build --quiet --locked -p wxpush --bin wxpush
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

target/debug/wxpush dev --listen 127.0.0.1:0 --sandbox-listen 127.0.0.1:0 \
  --sandbox-admin-listen 127.0.0.1:0 --ready-file "$work/ready.json" >"$work/dev.log" 2>&1 &
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
status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["status"])' "$sent")
[ "$status" = "DELIVERY_STATUS_SENT" ] || fail "Send answered $sent"
message_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["messageId"])' "$sent")
trace_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["traceId"])' "$sent")
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
passed=$((passed + 1))

health=$(grpcurl -plaintext -d '{"service":"wxpush.v1.DeliveryService"}' "$addr" grpc.health.v1.Health/Check)
grep -q SERVING <<<"$health" || fail "health: $health"
passed=$((passed + 1))

# The CLI does the same without grpcurl.
target/debug/wxpush logs --addr "http://$addr" --message-id "$message_id" --json >"$work/cli.json"
grep -q "\"status\":\"SENT\"" "$work/cli.json" || fail "wxpush logs: $(cat "$work/cli.json")"
passed=$((passed + 1))

target/debug/wxpush token status --addr "http://$addr" --json >"$work/token.json"
python3 - "$work/token.json" <<'PY' || fail "wxpush token status: $(cat "$work/token.json")"
import json, sys
apps = {a["app_id"]: a for a in json.load(open(sys.argv[1]))}
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
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$done_status" = "DELIVERY_STATUS_SENT" ] && break
  sleep 0.1
done
[ "$done_status" = "DELIVERY_STATUS_SENT" ] || fail "SendAsync message ended $done_status"
passed=$((passed + 1))

target/debug/wxpush dlq --addr "http://$addr" >"$work/dlq.txt"
grep -q "no dead letters" "$work/dlq.txt" || fail "wxpush dlq: $(cat "$work/dlq.txt")"
passed=$((passed + 1))

echo "smoke: $passed passed, 0 failed"
