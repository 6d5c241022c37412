// Cached `GetAccessToken` (the token service, or the bare echo server with
// the same answer). Env: ADDR, PROTO_ROOT, APP_ID.
import grpc from 'k6/net/grpc';
import exec from 'k6/execution';
import { check } from 'k6';

const client = new grpc.Client();
client.load([__ENV.PROTO_ROOT], 'wxpush/v1/token.proto');

export default function () {
  if (exec.vu.iterationInScenario === 0) {
    client.connect(__ENV.ADDR, { plaintext: true, timeout: '10s' });
  }
  const res = client.invoke('wxpush.v1.TokenService/GetAccessToken', { app_id: __ENV.APP_ID },
    __ENV.AUTHORIZATION ? { metadata: { authorization: __ENV.AUTHORIZATION } } : {});
  check(res, { ok: (r) => r && r.status === grpc.StatusOK && (r.message.accessToken || '').length > 0 });
}
