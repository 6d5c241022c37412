// QueryLogs against a log loaded by services/logquery/examples/load_events.rs:
// FILTER=openid (one user's messages), trace (one message by trace id),
// app_status (an app's FAILED messages: the loader's failures are wx_bench_mp's), none (the newest page).
// Env: ADDR, PROTO_ROOT, COUNT, USERS, FILTER.
import grpc from 'k6/net/grpc';
import exec from 'k6/execution';
import { check } from 'k6';

const client = new grpc.Client();
client.load([__ENV.PROTO_ROOT], 'wxpush/v1/logquery.proto');
const count = parseInt(__ENV.COUNT, 10);
const users = parseInt(__ENV.USERS, 10);

function filter() {
  const n = Math.floor(Math.random() * count);
  switch (__ENV.FILTER) {
    case 'openid': return { openid: `o_bench_${n % users}` };
    case 'trace': return { trace_id: (n + 1).toString(16).padStart(32, '0') };
    case 'app_status': return { app_id: 'wx_bench_mp', status: 'DELIVERY_STATUS_FAILED' };
    default: return {};
  }
}

export default function () {
  if (exec.vu.iterationInScenario === 0) {
    client.connect(__ENV.ADDR, { plaintext: true, timeout: '10s' });
  }
  const res = client.invoke('wxpush.v1.LogQueryService/QueryLogs', { filter: filter(), page_size: 50 },
    __ENV.AUTHORIZATION
      ? { timeout: '10s', metadata: { authorization: __ENV.AUTHORIZATION } }
      : { timeout: '10s' });
  check(res, { ok: (r) => r && r.status === grpc.StatusOK && (r.message.records || []).length > 0 });
}
