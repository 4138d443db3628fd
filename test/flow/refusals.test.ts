import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient, type Answer } from '../support/billfold-harness.js';
import { freePort } from '../support/redis-server.js';
import { useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS.billingplatform;

function expectError(answer: Answer, status: number, code: string) {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
  expect(answer.body.error.requestId).toBe(answer.headers.get('x-request-id'));
  expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
  expect(answer.headers.get('cache-control')).toBe('no-store');
  expect(answer.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
  expect(answer.text).not.toMatch(/at .*\.(ts|js):\d+|node_modules|undici|express|127\.0\.0\.1:\d+/i);
}

describe('refusals, each with its documented status and code', () => {
  const stack = useStack({
    store: 'embedded',
    env: {
      // BILL is left unconfigured on purpose; Billogram is configured but never signed in to.
      BILL_BASE_URL: undefined,
      BILL_DEV_KEY: undefined,
      BODY_LIMIT: '2kb',
      UPSTREAM_TIMEOUT_MS: '300',
      CORS_ORIGINS: 'https://app.example.com',
    },
  });
  let signedIn: ReturnType<typeof createCookieClient>;

  beforeAll(async () => {
    signedIn = stack.client();
    const login = await signedIn.post('/auth/billingplatform/login', demo);
    expect(login.status).toBe(200);
  });
  beforeEach(() => stack.sandbox.reset());

  describe('400 invalid_request', () => {
    it.each([
      ['a missing field', { username: 'demo' }],
      ['a wrong type', { username: 'demo', password: 42 }],
      ['an unknown field', { ...demo, admin: true }],
      ['an empty object', {}],
      ['a __proto__ key', JSON.parse('{"username":"demo","password":"x","__proto__":{"polluted":true}}')],
    ])('refuses a login body with %s', async (_name, body) => {
      const answer = await signedIn.post('/auth/billingplatform/login', body);
      expectError(answer, 400, 'invalid_request');
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it.each([
      ['malformed JSON', '{"username": "demo",'],
      ['a top-level string', '"demo"'],
      ['a top-level number', '42'],
      ['null', 'null'],
    ])('refuses %s', async (_name, body) => {
      const answer = await signedIn.request('POST', '/auth/billingplatform/login', {
        body,
        headers: { 'content-type': 'application/json' },
      });
      expectError(answer, 400, 'invalid_request');
    });
  });

  it('400 invalid_path: dot segments, encoded separators and absolute URLs in the relay path', async () => {
    for (const path of [
      '/api/billingplatform/%2e%2e/admin',
      '/api/billingplatform/a%2fb',
      '/api/billingplatform/a%5cb',
      '/api/billingplatform//evil.example.com/x',
      '/api/billingplatform/%252e%252e/x',
    ]) {
      expectError(await signedIn.get(path), 400, 'invalid_path');
    }
    expect(stack.sandbox.billingplatform.requests).toHaveLength(0);
  });

  it('400 secret_in_query: a credential-like parameter in the query string never reaches the upstream', async () => {
    for (const query of [
      '?password=x',
      '?sessionId=x',
      '?devKey=x',
      '?token=x',
      '?apiKey=x',
      '?access_token=x',
    ]) {
      expectError(await signedIn.get(`/api/billingplatform/ACCOUNT/1001${query}`), 400, 'secret_in_query');
    }
    expect(stack.sandbox.billingplatform.requests).toHaveLength(0);
  });

  it('401 unauthenticated: a relay without a session, or with a cookie that was never issued', async () => {
    const stranger = stack.client();
    expectError(await stranger.get('/api/billingplatform/ACCOUNT/1001'), 401, 'unauthenticated');
    const invented = await stranger.get('/api/billingplatform/ACCOUNT/1001', {
      cookie: 'billfold=s%3Ainvented.signature',
    });
    expectError(invented, 401, 'unauthenticated');
    expectError(await stranger.post('/auth/billingplatform/logout'), 401, 'unauthenticated');
  });

  it('401 invalid_credentials: the upstream refused the login, and no cookie is set', async () => {
    const stranger = stack.client();
    const answer = await stranger.post('/auth/billingplatform/login', {
      username: demo.username,
      password: 'wrong',
    });
    expectError(answer, 401, 'invalid_credentials');
    expect(answer.body.error.provider).toBe('billingplatform');
    expect(answer.setCookies).toEqual([]);
  });

  it('401 invalid_credentials also when the upstream answers a failed login with HTTP 200', async () => {
    stack.sandbox.billingplatform.setLoginFailureStatus(200);
    const stranger = stack.client();
    const answer = await stranger.post('/auth/billingplatform/login', {
      username: demo.username,
      password: 'wrong',
    });
    expectError(answer, 401, 'invalid_credentials');
  });

  it('401 provider_not_connected: relaying to a configured provider this session has not signed in to', async () => {
    const answer = await signedIn.get('/api/billogram/customer');
    expectError(answer, 401, 'provider_not_connected');
    expect(answer.body.error.provider).toBe('billogram');
  });

  it('401 upstream_session_expired: the upstream dropped the session, and the provider is marked disconnected', async () => {
    const client = stack.client();
    await client.post('/auth/billingplatform/login', demo);
    await client.post('/auth/billogram/login', SANDBOX_DEMO_CREDENTIALS.billogram);
    stack.sandbox.billingplatform.expireAllSessions();
    const answer = await client.get('/api/billingplatform/ACCOUNT/1001');
    expectError(answer, 401, 'upstream_session_expired');
    expect(answer.body.error.provider).toBe('billingplatform');
    const view = await client.get('/auth/session');
    expect(view.body.providers.billingplatform).toEqual({ connected: false });
    expect(view.body.providers.billogram.connected).toBe(true);
    expectError(await client.get('/api/billingplatform/ACCOUNT/1001'), 401, 'provider_not_connected');
  });

  describe('403 csrf_header_missing', () => {
    it.each(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])('refuses %s without X-CSRF: 1', async (method) => {
      const answer = await signedIn.request(method, '/api/billingplatform/ACCOUNT/1001', {
        headers: { 'x-csrf': '' },
      });
      expectError(answer, 403, 'csrf_header_missing');
    });

    it.each(['0', 'true', '1, 1', '01'])(
      'refuses X-CSRF: %j (only the exact value 1 counts)',
      async (value) => {
        expectError(
          await signedIn.request('POST', '/auth/logout', { headers: { 'x-csrf': value } }),
          403,
          'csrf_header_missing',
        );
      },
    );

    it('refuses a body-less POST to /auth/logout without the header and keeps the session', async () => {
      expectError(
        await signedIn.request('POST', '/auth/logout', { headers: { 'x-csrf': '' } }),
        403,
        'csrf_header_missing',
      );
      expect((await signedIn.get('/auth/session')).body.authenticated).toBe(true);
    });
  });

  describe('403 origin_not_allowed', () => {
    it.each([
      'https://evil.example.com',
      'https://app.example.com.evil.com',
      'http://app.example.com',
      'https://app.example.com:444',
      'null',
      'HTTPS://APP.EXAMPLE.COM',
    ])('refuses Origin %s', async (origin) => {
      const answer = await signedIn.get('/api/billingplatform/ACCOUNT/1001', { origin });
      expectError(answer, 403, 'origin_not_allowed');
      expect(answer.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('refuses Sec-Fetch-Site: cross-site from an unlisted origin and accepts the listed one with CORS headers', async () => {
      expectError(
        await signedIn.get('/auth/session', { 'sec-fetch-site': 'cross-site' }),
        403,
        'origin_not_allowed',
      );
      const listed = await signedIn.get('/auth/session', {
        origin: 'https://app.example.com',
        'sec-fetch-site': 'cross-site',
      });
      expect(listed.status).toBe(200);
      expect(listed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      expect(listed.headers.get('access-control-allow-credentials')).toBe('true');
      expect(listed.headers.get('vary')).toMatch(/Origin/);
    });

    it('accepts its own origin and a mobile client that sends no Origin', async () => {
      expect(
        (await signedIn.get('/auth/session', { origin: stack.billfold.config.publicOrigin })).status,
      ).toBe(200);
      expect((await signedIn.get('/auth/session')).status).toBe(200);
    });

    it('answers a preflight from a listed origin with CORS headers, and from any other without them', async () => {
      const listed = await signedIn.request('OPTIONS', '/api/billingplatform/ACCOUNT/1001', {
        headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' },
      });
      expect(listed.status).toBe(204);
      expect(listed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      expect(listed.headers.get('access-control-allow-headers')).toMatch(/x-csrf/);
      const other = await signedIn.request('OPTIONS', '/auth/session', {
        headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'GET' },
      });
      expectError(other, 403, 'origin_not_allowed');
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    });
  });

  it('403 forbidden_upstream_path: the upstream login and logout endpoints, in any case', async () => {
    for (const path of ['login', 'LOGIN', 'Logout', 'logout/']) {
      expectError(await signedIn.post(`/api/billingplatform/${path}`, {}), 403, 'forbidden_upstream_path');
    }
    expect(stack.sandbox.billingplatform.requests).toHaveLength(0);
  });

  it('404 provider_not_configured and not_found', async () => {
    expectError(
      await signedIn.post('/auth/bill/login', { userName: 'a', password: 'b', orgId: 'c' }),
      404,
      'provider_not_configured',
    );
    expectError(await signedIn.get('/api/bill/List/Vendor.json'), 404, 'provider_not_configured');
    expectError(await signedIn.get('/api/nosuch/thing'), 404, 'not_found');
    expectError(await signedIn.post('/auth/nosuch/login', {}), 404, 'not_found');
    expectError(await signedIn.get('/nothing-here'), 404, 'not_found');
  });

  it('405 method_not_allowed for relay methods outside the list', async () => {
    expectError(
      await signedIn.request('PROPFIND', '/api/billingplatform/ACCOUNT/1001'),
      405,
      'method_not_allowed',
    );
  });

  it('413 payload_too_large for relay and auth bodies over BODY_LIMIT, declared or streamed', async () => {
    const big = { brmObjects: { Name: 'x'.repeat(4096) } };
    expectError(await signedIn.post('/api/billingplatform/ACCOUNT', big), 413, 'payload_too_large');
    expectError(
      await signedIn.post('/auth/billingplatform/login', { username: 'x'.repeat(4096), password: 'y' }),
      413,
      'payload_too_large',
    );
    const streamed = await fetch(`${stack.billfold.url}/api/billingplatform/ACCOUNT`, {
      method: 'POST',
      headers: { 'x-csrf': '1', cookie: signedIn.cookie!, 'content-type': 'application/json' },
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 8; i++) controller.enqueue(new TextEncoder().encode('x'.repeat(1024)));
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
  });

  it('415 unsupported_media_type for a non-JSON body on an auth route', async () => {
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      const answer = await signedIn.request('POST', '/auth/billingplatform/login', {
        body: 'username=demo&password=demo-password',
        headers: { 'content-type': type },
      });
      expectError(answer, 415, 'unsupported_media_type');
    }
  });

  it('502 upstream_unavailable when the upstream redirects: the redirect is not followed', async () => {
    stack.sandbox.billingplatform.redirectNext('https://elsewhere.example.com/steal');
    const answer = await signedIn.get('/api/billingplatform/ACCOUNT/1001');
    expectError(answer, 502, 'upstream_unavailable');
    expect(answer.headers.get('location')).toBeNull();
  });

  it('502 upstream_unavailable when the upstream refuses connections, 504 upstream_timeout when it hangs', async () => {
    stack.sandbox.billingplatform.hangNext();
    const started = performance.now();
    expectError(await signedIn.get('/api/billingplatform/ACCOUNT/1001'), 504, 'upstream_timeout');
    expect(performance.now() - started).toBeLessThan(3000);

    const port = await freePort();
    // On the default upstream timeout: a refused connection, not a slow one, is under test.
    const closed = await stack.start({
      BILLINGPLATFORM_BASE_URL: `http://127.0.0.1:${port}/bp`,
      UPSTREAM_TIMEOUT_MS: undefined,
    });
    const client = createCookieClient(closed.url, closed.config.session.cookieName);
    expectError(await client.post('/auth/billingplatform/login', demo), 502, 'upstream_unavailable');
  });
});

describe('403 https_required in production', () => {
  const stack = useStack({
    store: 'embedded',
    env: { NODE_ENV: 'production', SESSION_STORE: 'memory', PUBLIC_ORIGIN: 'https://billfold.example.com' },
  });

  it('refuses plain HTTP on /auth and /api without redirecting, but answers probes', async () => {
    const client = stack.client();
    for (const answer of [
      await client.post('/auth/billingplatform/login', demo),
      await client.get('/api/billingplatform/ACCOUNT/1'),
    ]) {
      expectError(answer, 403, 'https_required');
      expect(answer.headers.get('location')).toBeNull();
    }
    expect((await client.get('/healthz')).status).toBe(200);
    expect((await client.get('/readyz')).status).toBe(200);
    expect(stack.sandbox.billingplatform.requests).toHaveLength(0);
  });

  it('ignores X-Forwarded-Proto from a hop TRUST_PROXY does not trust', async () => {
    const client = stack.client();
    expectError(await client.get('/auth/session', { 'x-forwarded-proto': 'https' }), 403, 'https_required');
  });

  it('believes X-Forwarded-Proto from a trusted proxy and then sets the __Host- cookie with Secure', async () => {
    // The suite's production configuration, behind a trusted proxy.
    const proxied = await stack.start({ TRUST_PROXY: 'loopback' });
    const client = createCookieClient(proxied.url, proxied.config.session.cookieName);
    const login = await client.post('/auth/billingplatform/login', demo, { 'x-forwarded-proto': 'https' });
    expect(login.status).toBe(200);
    expect(login.setCookies[0]).toMatch(
      /^__Host-billfold=s%3A[^;]+; Path=\/; HttpOnly; Secure; SameSite=Strict$/,
    );
  });
});
