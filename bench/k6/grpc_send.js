// Sync `Send` (or `SendAsync` with METHOD=SendAsync) of the demo
// order_shipped template message through the delivery service.
// Env: ADDR (host:port), PROTO_ROOT (the repo's proto/), METHOD.
import grpc from 'k6/net/grpc';
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

const client = new grpc.Client();
client.load([__ENV.PROTO_ROOT], 'wxpush/v1/delivery.proto');
const method = `wxpush.v1.DeliveryService/${__ENV.METHOD || 'Send'}`;
const outcome = {
  ok: new Counter('rpc_ok'),
  sent: new Counter('msg_sent'),
  unavailable: new Counter('rpc_unavailable'),
  exhausted: new Counter('rpc_resource_exhausted'),
  deadline: new Counter('rpc_deadline_exceeded'),
  other: new Counter('rpc_other_error'),
};

// With AUTHORIZATION (bench.py --auth) every call carries it.
function params(timeout) {
  const p = { timeout };
  if (__ENV.AUTHORIZATION) p.metadata = { authorization: __ENV.AUTHORIZATION };
  return p;
}

export default function () {
  if (exec.vu.iterationInScenario === 0) {
    client.connect(__ENV.ADDR, { plaintext: true, timeout: '10s' });
  }
  const res = client.invoke(method, {
    template_key: 'order_shipped',
    openid: 'o_demo_follower',
    variables: { order_id: `B${exec.scenario.iterationInTest}`, ship_time: '2026-11-23 10:00', carrier: 'SF' },
  }, params('10s'));
  const ok = res && res.status === grpc.StatusOK;
  check(res, { ok: () => ok });
  if (ok) {
    outcome.ok.add(1);
    // Send answers {result: {...}}; SendAsync answers the status itself.
    const answer = res.message.result || res.message;
    if (answer.status === 'DELIVERY_STATUS_SENT') outcome.sent.add(1);
  } else if (res && res.status === grpc.StatusUnavailable) outcome.unavailable.add(1);
  else if (res && res.status === grpc.StatusResourceExhausted) outcome.exhausted.add(1);
  else if (res && res.status === grpc.StatusDeadlineExceeded) outcome.deadline.add(1);
  else outcome.other.add(1);
}
