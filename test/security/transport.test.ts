import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { startHostileUpstream, type HostileUpstream } from '../support/hostile-upstream.js';
import { exchangeRaw, sendRaw, type RawAnswer, type RawRequest } from '../support/raw-http.js';
import { createSecretLedger, exerciseEveryProvider } from '../support/secret-ledger.js';
import { expectDocumentedError } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS;
const PUBLIC_ORIGIN = 'https://billfold.example.com';
const LISTED = 'https://app.example.com';
const HSTS = 'max-age=31536000; includeSubDomains';
const ledger = createSecretLedger();

// Each test starts the instances it needs, on their own embedded stores.
const stack = useStack({ store: 'embedded', instances: 0, env: { CORS_ORIGINS: LISTED } });
beforeEach(() => stack.sandbox.reset());
const expectNoLeak = () => {
  ledger.collect(stack.sandbox);
  expect(ledger.leaks(stack.logs())).toEqual([]);
};
// Each test answers for what its own instances got back and logged.
afterEach(expectNoLeak);

it('puts no secret it handled into any answer or log line, whatever ran before', async () => {
  await exerciseEveryProvider(await stack.start());
  expectNoLeak();
});

const production = {
  NODE_ENV: 'production',
  SESSION_STORE: 'memory',
  PUBLIC_ORIGIN,
};

function upstreamRequests() {
  return [
    stack.sandbox.billingplatform,
    stack.sandbox.bill,
    stack.sandbox.billogram,
    stack.sandbox.billbora,
    stack.sandbox.supabase,
  ].flatMap((control) => control.requests);
}

describe('plain HTTP in production', () => {
  let billfold: RunningBillfold;
  beforeAll(async () => {
    billfold = await stack.start(production);
  });

  const requests: RawRequest[] = [
    { method: 'GET', target: '/auth/session' },
    { method: 'HEAD', target: '/auth/session' },
    { method: 'POST', target: '/auth/billingplatform/login', body: JSON.stringify(demo.billingplatform) },
    { method: 'POST', target: '/auth/billingplatform/logout' },
    { method: 'POST', target: '/auth/logout' },
    { method: 'POST', target: '/auth/billbora/organization', body: '{"organizationId":"org_demo"}' },
    { method: 'OPTIONS', target: '/auth/logout', headers: [['Access-Control-Request-Method', 'POST']] },
    ...['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map((method) => ({
      method,
      target: '/api/billingplatform/ACCOUNT/1001',
    })),
    { method: 'GET', target: '/api/billingplatform/login' },
    { method: 'GET', target: '/' },
    { method: 'GET', target: '/index.html' },
    { method: 'GET', target: '/healthz/' },
  ];

  it.each(requests)(
    '$method $target: 403 https_required with HSTS, no redirect and no upstream call',
    async (request) => {
      const answer = await sendRaw(billfold.url, {
        ...request,
        headers: [
          ['X-CSRF', '1'],
          ['Origin', LISTED],
          ['Content-Type', 'application/json'],
          ...(request.headers ?? []),
        ],
      });
      if (request.method === 'HEAD') expect(answer.status).toBe(403);
      else expectDocumentedError(answer, 403, 'https_required');
      expect(answer.header('location')).toBeUndefined();
      expect(answer.header('set-cookie')).toBeUndefined();
      expect(answer.header('strict-transport-security')).toBe(HSTS);
      expect(upstreamRequests()).toEqual([]);
    },
  );

  it('answers the probes over plain HTTP (they hold no secrets), with HSTS', async () => {
    for (const target of ['/healthz', '/readyz']) {
      const answer = await sendRaw(billfold.url, { target });
      expect(answer.status).toBe(200);
      expect(answer.header('strict-transport-security')).toBe(HSTS);
    }
  });
});

describe('X-Forwarded-* and friends', () => {
  const claimsOfTls: [string, string][][] = [
    [['X-Forwarded-Proto', 'https']],
    [['X-Forwarded-Proto', 'HTTPS']],
    [['Forwarded', 'for=1.2.3.4;proto=https;host=billfold.example.com']],
    [['X-Forwarded-Ssl', 'on']],
    [['Front-End-Https', 'on']],
    [['X-Url-Scheme', 'https']],
    [['X-Forwarded-Scheme', 'https']],
    [
      ['X-Forwarded-Proto', 'https'],
      ['X-Forwarded-For', '127.0.0.1'],
      ['X-Forwarded-Host', 'billfold.example.com'],
      ['X-Forwarded-Port', '443'],
    ],
  ];

  it.each([
    ['no TRUST_PROXY', {}],
    ['TRUST_PROXY naming another address', { TRUST_PROXY: '10.0.0.1' }],
    ['TRUST_PROXY=false', { TRUST_PROXY: 'false' }],
  ])('with %s, no header makes a plain-HTTP request count as HTTPS', async (_name, env) => {
    const billfold = await stack.start({ ...production, ...env });
    for (const headers of claimsOfTls) {
      const answer = await sendRaw(billfold.url, {
        method: 'POST',
        target: '/auth/billingplatform/login',
        headers: [['X-CSRF', '1'], ['Content-Type', 'application/json'], ...headers],
        body: JSON.stringify(demo.billingplatform),
      });
      expectDocumentedError(answer, 403, 'https_required');
      expect(answer.header('set-cookie')).toBeUndefined();
    }
    expect(upstreamRequests()).toEqual([]);
  });

  describe('behind a proxy TRUST_PROXY trusts', () => {
    let billfold: RunningBillfold;
    beforeAll(async () => {
      billfold = await stack.start({ ...production, TRUST_PROXY: 'loopback' });
    });

    it('believes the proxy when it says https, and only then', async () => {
      const login = (proto: string) =>
        sendRaw(billfold.url, {
          method: 'POST',
          target: '/auth/billingplatform/login',
          headers: [
            ['X-CSRF', '1'],
            ['Content-Type', 'application/json'],
            ['X-Forwarded-Proto', proto],
          ],
          body: JSON.stringify(demo.billingplatform),
        });
      for (const proto of ['http', 'http, https', 'ftp', '']) {
        expectDocumentedError(await login(proto), 403, 'https_required');
      }
      const answer = await login('https');
      expect(answer.status).toBe(200);
      expect(answer.header('set-cookie')).toMatch(
        /^__Host-billfold=.*; Path=\/; HttpOnly; Secure; SameSite=Strict$/,
      );
    });

    it('never takes billfold’s origin or the cookie’s domain from Host or X-Forwarded-Host', async () => {
      const spoofed: [string, string][] = [
        ['Host', 'evil.example.com'],
        ['X-Forwarded-Host', 'evil.example.com'],
        ['X-Forwarded-Proto', 'https'],
        ['X-CSRF', '1'],
      ];
      expectDocumentedError(
        await sendRaw(billfold.url, {
          target: '/auth/session',
          headers: [...spoofed, ['Origin', 'https://evil.example.com']],
        }),
        403,
        'origin_not_allowed',
      );
      const login = await sendRaw(billfold.url, {
        method: 'POST',
        target: '/auth/billingplatform/login',
        headers: [...spoofed, ['Content-Type', 'application/json']],
        body: JSON.stringify(demo.billingplatform),
      });
      expect(login.status).toBe(200);
      expect(login.header('set-cookie')).not.toMatch(/domain/i);
      expect(login.text).not.toContain('evil.example.com');
    });

    it('forwards no X-Forwarded-*, Forwarded, Via or X-Real-IP header to the upstream', async () => {
      const client = createCookieClient(billfold.url, '__Host-billfold');
      await client.post('/auth/billingplatform/login', demo.billingplatform, {
        'x-forwarded-proto': 'https',
      });
      stack.sandbox.reset();
      const answer = await sendRaw(billfold.url, {
        target: '/api/billingplatform/ACCOUNT/1001',
        headers: [
          ['X-CSRF', '1'],
          ['Cookie', client.cookie!],
          ['X-Forwarded-Proto', 'https'],
          ['X-Forwarded-For', '6.6.6.6'],
          ['X-Forwarded-Host', 'evil.example.com'],
          ['Forwarded', 'for=6.6.6.6;host=evil.example.com'],
          ['Via', '1.1 evil'],
          ['X-Real-IP', '6.6.6.6'],
        ],
      });
      expect(answer.status).toBe(200);
      const [seen] = stack.sandbox.billingplatform.requests;
      expect(Object.keys(seen!.headers).filter((name) => /forward|^via$|real-ip/.test(name))).toEqual([]);
      expect(seen!.headers.host).toBe(new URL(stack.sandbox.url).host);
    });
  });
});

describe('X-Forwarded-For', () => {
  /** Three failed logins under different names, each claiming another client address. */
  async function failFromClaimedAddresses(billfold: RunningBillfold, addresses: string[]) {
    const statuses: number[] = [];
    for (const [i, address] of addresses.entries()) {
      const answer = await sendRaw(billfold.url, {
        method: 'POST',
        target: '/auth/billingplatform/login',
        headers: [
          ['X-CSRF', '1'],
          ['Content-Type', 'application/json'],
          ['X-Forwarded-For', address],
        ],
        body: JSON.stringify({ username: `someone-${i}`, password: `wrong-password-${i}` }),
      });
      statuses.push(answer.status);
    }
    return statuses;
  }
  const limits = { LOGIN_MAX_FAILURES_PER_IP: '2', LOGIN_MAX_FAILURES_PER_USER: '100' };

  it('is ignored from an untrusted hop: failed logins count against the connecting address', async () => {
    const billfold = await stack.start(limits);
    expect(await failFromClaimedAddresses(billfold, ['1.1.1.1', '2.2.2.2', '3.3.3.3'])).toEqual([
      401, 401, 429,
    ]);
  });

  it('is believed from a hop TRUST_PROXY trusts: each claimed client address counts apart', async () => {
    const billfold = await stack.start({ ...limits, TRUST_PROXY: 'loopback' });
    expect(await failFromClaimedAddresses(billfold, ['1.1.1.1', '1.1.1.1', '2.2.2.2', '1.1.1.1'])).toEqual([
      401, 401, 401, 429,
    ]);
  });
});

describe('HSTS on every response', () => {
  let billfold: RunningBillfold;
  let hostile: HostileUpstream;
  let cookie: string;
  beforeAll(async () => {
    hostile = await startHostileUpstream();
    billfold = await stack.start({
      BILLOGRAM_BASE_URL: hostile.baseUrl,
      BILLINGPLATFORM_BASE_URL: hostile.baseUrl,
      BODY_LIMIT: '1kb',
      UPSTREAM_TIMEOUT_MS: '300',
    });
    const client = createCookieClient(billfold.url, 'billfold');
    await client.post('/auth/billingplatform/login', demo.billingplatform);
    cookie = client.cookie!;
  });
  afterAll(() => hostile.close());

  it('carries HSTS on successes, refusals and errors from either road, and overrides an upstream’s own', async () => {
    hostile.answer = (request) => {
      if (request.url.includes('hang')) return undefined;
      if (request.url.includes('redirect'))
        return { status: 302, headers: { location: 'https://evil.example.com' } };
      if (request.url.includes('fail')) return { status: 500, body: '{"error":"boom"}' };
      return {
        headers: { 'strict-transport-security': 'max-age=0', 'content-type': 'text/html' },
        body: '<p>hi</p>',
      };
    };
    const withSession: [string, string][] = [
      ['X-CSRF', '1'],
      ['Cookie', cookie],
    ];
    const requests: [string, RawRequest][] = [
      ['200 relay', { target: '/api/billingplatform/x', headers: withSession }],
      ['500 passed through from the upstream', { target: '/api/billingplatform/fail', headers: withSession }],
      ['502 redirect', { target: '/api/billingplatform/redirect', headers: withSession }],
      ['504 timeout', { target: '/api/billingplatform/hang', headers: withSession }],
      ['200 session', { target: '/auth/session', headers: withSession }],
      ['200 static', { target: '/index.html' }],
      ['200 probe', { target: '/readyz' }],
      [
        '204 preflight',
        {
          method: 'OPTIONS',
          target: '/api/billingplatform/x',
          headers: [
            ['Origin', LISTED],
            ['Access-Control-Request-Method', 'GET'],
          ],
        },
      ],
      ['400 invalid_path', { target: '/api/billingplatform/%2e%2e/x', headers: withSession }],
      [
        '400 invalid_path, absolute-form',
        { target: `${billfold.url}/api/billingplatform/x`, headers: withSession },
      ],
      [
        '400 invalid_request',
        {
          method: 'POST',
          target: '/auth/billingplatform/login',
          headers: [
            ['X-CSRF', '1'],
            ['Content-Type', 'application/json'],
          ],
          body: '{',
        },
      ],
      ['401 unauthenticated', { target: '/api/billingplatform/x', headers: [['X-CSRF', '1']] }],
      ['401 provider_not_connected', { target: '/api/billbora/invoices/', headers: withSession }],
      ['403 csrf', { target: '/api/billingplatform/x', headers: [['Cookie', cookie]] }],
      ['403 origin', { target: '/auth/session', headers: [...withSession, ['Origin', 'null']] }],
      ['403 forbidden_upstream_path', { target: '/api/billingplatform/login', headers: withSession }],
      ['404 not_found', { target: '/nothing' }],
      ['404 provider', { target: '/api/nosuch/x', headers: withSession }],
      ['405', { method: 'TRACE', target: '/api/billingplatform/x', headers: withSession }],
      [
        '413',
        { method: 'POST', target: '/api/billingplatform/x', headers: withSession, body: 'x'.repeat(2048) },
      ],
      [
        '415',
        {
          method: 'POST',
          target: '/auth/logout',
          headers: [...withSession, ['Content-Type', 'text/plain']],
          body: 'x',
        },
      ],
      ['204 logout', { method: 'POST', target: '/auth/logout', headers: [['X-CSRF', '1']] }],
    ];
    for (const [name, request] of requests) {
      const answer = await sendRaw(billfold.url, request);
      expect({ name, status: answer.status, hsts: answer.headers['strict-transport-security'] }).toEqual({
        name,
        status: Number(name.slice(0, 3)),
        hsts: [HSTS],
      });
    }
  });

  it('answers requests Node’s parser refuses in the documented shape, with HSTS, and closes the connection', async () => {
    const cases: [string, string, number][] = [
      [
        'Transfer-Encoding with Content-Length',
        'POST /auth/logout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
        400,
      ],
      ['a header with a NUL byte', 'GET /auth/session HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0000b\r\n\r\n', 400],
      [
        'headers past the size limit',
        `GET /auth/session HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`,
        431,
      ],
      // Parsed, but HTTP/1.1 requires Host; Node's own answer to it would carry none of the headers.
      ['HTTP/1.1 without Host', 'GET /auth/session HTTP/1.1\r\nX-CSRF: 1\r\n\r\n', 400],
      ['HTTP/1.1 without Host, relayed', `GET /api/billingplatform/x HTTP/1.1\r\nX-CSRF: 1\r\n\r\n`, 400],
      ['HTTP/1.1 without Host, a probe', 'GET /healthz HTTP/1.1\r\n\r\n', 400],
    ];
    for (const [name, request, status] of cases) {
      const { answers } = await exchangeRaw(billfold.url, request);
      const answer = answers[0]!;
      expect({ name, status: answer.status }).toEqual({ name, status });
      expect(answer.header('strict-transport-security')).toBe(HSTS);
      expect(answer.header('connection')).toBe('close');
      // Like every other answer: a shared cache must not hand this one to another origin.
      expect(answer.header('vary')).toBe('Origin');
      expect(answer.header('cache-control')).toBe('no-store');
      expect(answer.body.error).toMatchObject({
        code: 'invalid_request',
        requestId: answer.header('x-request-id'),
      });
    }
  });

  it('carries HSTS on every answer of a keep-alive connection, the last one included', async () => {
    const head = (target: string) =>
      `GET ${target} HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: ${cookie}\r\n\r\n`;
    const { answers } = await exchangeRaw(billfold.url, [
      head('/auth/session'),
      head('/api/billingplatform/x'),
      head('/api/billingplatform/%2e%2e'),
      `GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ]);
    expect(
      answers.map((answer: RawAnswer) => [answer.status, answer.header('strict-transport-security')]),
    ).toEqual([
      [200, HSTS],
      [200, HSTS],
      [400, HSTS],
      [404, HSTS],
    ]);
  });
});
