import request from 'supertest';
import { beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { useStack } from '../support/stack.js';

const LISTED = 'https://spa.example.com';
const ADMIN_TOKEN = 'admin-token-0123456789abcdefghijklmnopqrstuvwxyz';
const METRICS_TOKEN = 'metrics-token-0123456789abcdefghijklmnopqrstuvwxyz';

/** helmet's headers as billfold configures it, and no-store: on every answer of every listener. */
const EVERY_ANSWER = {
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'SAMEORIGIN',
  'cross-origin-opener-policy': 'same-origin',
  'cache-control': 'no-store',
};

type Headers = Record<string, string | string[] | undefined>;

function expectEdge(headers: Headers, listener: 'public' | 'operator') {
  expect(headers).toMatchObject(EVERY_ANSWER);
  expect(headers['content-security-policy']).toBeDefined();
  expect(headers['x-request-id']).toMatch(/^[A-Za-z0-9._:-]+$/);
  for (const value of Object.values(headers)) {
    // Written once: no header carries the same value twice, as a second writer would leave it.
    if (typeof value === 'string') expect(value.split(', ').length).toBe(new Set(value.split(', ')).size);
  }
  if (listener === 'public') {
    expect(headers.vary).toMatch(/\bOrigin\b/i);
  } else {
    expect(headers['access-control-allow-origin']).toBeUndefined();
  }
}

describe('the headers every answer carries, on every listener and both roads', () => {
  let cookie: string;
  const stack = useStack({
    store: 'embedded',
    env: { CORS_ORIGINS: LISTED, ADMIN_PORT: '0', ADMIN_TOKEN, METRICS_PORT: '0', METRICS_TOKEN },
  });
  beforeAll(async () => {
    const client = createCookieClient(stack.billfold.url, stack.billfold.config.session.cookieName);
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    cookie = client.cookie ?? '';
  });

  const app = () => request(stack.billfold.billfold.handler);
  const answers: Array<[string, () => request.Test, number]> = [
    [
      'a relayed answer',
      () => app().get('/api/billingplatform/ACCOUNT/1001').set('x-csrf', '1').set('cookie', cookie),
      200,
    ],
    ['a relay refusal', () => app().get('/api/billingplatform/ACCOUNT/1001').set('x-csrf', '1'), 401],
    ['a relay refusal before the session is read', () => app().get('/api/billingplatform/ACCOUNT/1001'), 403],
    [
      'an oversized relayed body',
      () =>
        app()
          .post('/api/billingplatform/ACCOUNT')
          .set('x-csrf', '1')
          .set('content-length', String(100 * 1024 * 1024))
          .send(''),
      413,
    ],
    ['a route’s answer', () => app().get('/auth/session').set('x-csrf', '1').set('cookie', cookie), 200],
    ['a route’s refusal', () => app().post('/auth/nowhere/login').set('x-csrf', '1').send({}), 404],
    ['a probe', () => app().get('/healthz'), 200],
    ['an unknown path', () => app().get('/nothing-here'), 404],
  ];

  it.each(answers)(
    '%s carries them once, with Vary: Origin and CORS for a listed origin',
    async (_name, send, status) => {
      const plain = await send();
      expect(plain.status).toBe(status);
      expectEdge(plain.headers, 'public');
      expect(plain.headers['access-control-allow-origin']).toBeUndefined();
      const listed = await send().set('origin', LISTED);
      expectEdge(listed.headers, 'public');
      expect(listed.headers).toMatchObject({
        'access-control-allow-origin': LISTED,
        'access-control-allow-credentials': 'true',
        'access-control-expose-headers': 'retry-after,x-request-id,etag,x-billfold-error',
      });
    },
  );

  it('a preflight from a listed origin gets them with the CORS preflight answer; an unlisted one is refused without CORS', async () => {
    const preflight = (origin: string) =>
      app()
        .options('/api/billingplatform/ACCOUNT/1001')
        .set('origin', origin)
        .set('access-control-request-method', 'PUT')
        .set('access-control-request-headers', 'x-csrf, content-type');
    const listed = await preflight(LISTED);
    expect(listed.status).toBe(204);
    expectEdge(listed.headers, 'public');
    expect(listed.headers).toMatchObject({
      'access-control-allow-origin': LISTED,
      'access-control-allow-credentials': 'true',
      'access-control-max-age': '600',
    });
    expect(listed.headers['access-control-allow-methods']).toContain('PUT');
    expect(listed.headers['access-control-allow-headers']).toContain('x-csrf');
    const unlisted = await preflight('https://evil.example.net');
    expect(unlisted.status).toBe(403);
    expect(unlisted.body.error.code).toBe('origin_not_allowed');
    expectEdge(unlisted.headers, 'public');
    expect(unlisted.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('the operator listeners carry them too, without CORS', async () => {
    for (const url of [stack.billfold.adminUrl, stack.billfold.metricsUrl]) {
      const refused = await request(url!).get('/admin/sessions').set('origin', LISTED);
      expect(refused.status).toBe(401);
      expectEdge(refused.headers, 'operator');
    }
    const metrics = await request(stack.billfold.metricsUrl!)
      .get('/metrics')
      .set('authorization', `Bearer ${METRICS_TOKEN}`);
    expect(metrics.status).toBe(200);
    expectEdge(metrics.headers, 'operator');
  });
});
