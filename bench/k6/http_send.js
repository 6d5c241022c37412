// A template message JSON posted straight to URL: the sandbox's send
// endpoint (the raw ceiling) or the seed design's /send-template.
// Env: URL.
import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';

export default function () {
  const body = JSON.stringify({
    touser: 'o_demo_follower',
    template_id: 'OA_ORDER_SHIPPED_k3J9',
    data: {
      character_string1: { value: `B${exec.scenario.iterationInTest}` },
      time2: { value: '2026-11-23 10:00' },
      thing3: { value: 'SF' },
    },
  });
  const res = http.post(__ENV.URL, body, { headers: { 'Content-Type': 'application/json' } });
  check(res, { ok: (r) => r.status === 200 && (r.json('errcode') || 0) === 0 });
}
