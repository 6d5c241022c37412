// `SendBatch` of BATCH recipients (default 1 000) per iteration.
// Env: ADDR, PROTO_ROOT, BATCH.
import grpc from 'k6/net/grpc';
import exec from 'k6/execution';
import { check } from 'k6';

const client = new grpc.Client();
client.load([__ENV.PROTO_ROOT], 'wxpush/v1/delivery.proto');
const size = parseInt(__ENV.BATCH || '1000');

export default function () {
  if (exec.vu.iterationInScenario === 0) {
    client.connect(__ENV.ADDR, { plaintext: true, timeout: '10s' });
  }
  const recipients = [];
  for (let i = 0; i < size; i++) {
    recipients.push({ openid: 'o_demo_follower', variables: { order_id: `K${exec.scenario.iterationInTest}-${i}` } });
  }
  const res = client.invoke('wxpush.v1.DeliveryService/SendBatch', {
    template_key: 'order_shipped',
    common_variables: { ship_time: '2026-11-23 10:00', carrier: 'SF' },
    recipients,
  }, __ENV.AUTHORIZATION
    ? { timeout: '60s', metadata: { authorization: __ENV.AUTHORIZATION } }
    : { timeout: '60s' });
  check(res, { accepted: (r) => r && r.status === grpc.StatusOK && r.message.accepted === size });
}
