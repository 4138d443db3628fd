import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient, receivedBodies, type CookieClient } from '../support/billfold-harness.js';
import { sendRaw, type RawAnswer } from '../support/raw-http.js';
import { createSecretLedger, exerciseEveryProvider } from '../support/secret-ledger.js';
import { expectDocumentedError, headerOf } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';
import { TEST_SECRETS } from '../support/test-config.js';

const demo = SANDBOX_DEMO_CREDENTIALS;
const LISTED = 'https://app.example.com';
const ledger = createSecretLedger();

let client: CookieClient;

const stack = useStack({ store: 'embedded', env: { CORS_ORIGINS: LISTED } });
beforeAll(async () => {
  client = createCookieClient(stack.billfold.url, stack.billfold.config.session.cookieName);
  expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
  expect((await client.post('/auth/billbora/login', demo.billbora)).status).toBe(200);
});
beforeEach(() => stack.sandbox.reset());
function expectNoLeakNorWildcard() {
  ledger.collect(stack.sandbox);
  expect(ledger.leaks(stack.billfold.logs)).toEqual([]);
  // Never `*`, on any answer this file received (credentials are always allowed for listed origins).
  expect(receivedBodies.join('\n')).not.toMatch(/access-control-allow-origin"?[:,]\s*"?\*/i);
}
// Each test answers for what its own requests got back.
afterEach(expectNoLeakNorWildcard);

it('puts no secret it handled into any answer or log line, whatever ran before, and never allows every origin', async () => {
  await exerciseEveryProvider(stack.billfold);
  expectNoLeakNorWildcard();
});

/** Every state-changing or reading route, with what a legitimate call would send. */
const ROUTES: { method: string; target: string; body?: string }[] = [
  { method: 'GET', target: '/auth/session' },
  { method: 'HEAD', target: '/auth/session' },
  { method: 'POST', target: '/auth/billingplatform/login', body: JSON.stringify(demo.billingplatform) },
  { method: 'POST', target: '/auth/billingplatform/logout' },
  { method: 'POST', target: '/auth/logout' },
  { method: 'POST', target: '/AUTH/Logout/' },
  { method: 'POST', target: '/auth/billbora/organization', body: '{"organizationId":"org_other"}' },
  { method: 'GET', target: '/api/billingplatform/ACCOUNT/1001' },
  { method: 'HEAD', target: '/api/billingplatform/ACCOUNT/1001' },
  { method: 'POST', target: '/api/billingplatform/ACCOUNT' },
  { method: 'POST', target: '/api/billingplatform/ACCOUNT', body: '{"brmObjects":{"Name":"x"}}' },
  { method: 'PUT', target: '/api/billingplatform/ACCOUNT/1001', body: '{}' },
  { method: 'PATCH', target: '/api/billingplatform/ACCOUNT/1001', body: '{}' },
  { method: 'DELETE', target: '/api/billingplatform/ACCOUNT/1001' },
  { method: 'PROPFIND', target: '/auth/session' },
];

function send(route: (typeof ROUTES)[number], headers: [string, string][]): Promise<RawAnswer> {
  return sendRaw(stack.billfold.url, {
    method: route.method,
    target: route.target,
    headers: [
      ['Cookie', client.cookie!],
      ...(route.body === undefined ? [] : ([['Content-Type', 'application/json']] as [string, string][])),
      ...headers,
    ],
    ...(route.body !== undefined && { body: route.body }),
  });
}

/** The refusal, on a HEAD answer (no body) by status alone. */
function expectRefused(answer: RawAnswer, method: string, code: string) {
  if (method === 'HEAD') expect(answer.status).toBe(403);
  else expectDocumentedError(answer, 403, code);
  expect(headerOf(answer, 'access-control-allow-origin')).toBeUndefined();
}

/** Nothing a refused request could have done: no upstream call, the session intact and unswitched. */
async function expectNothingHappened() {
  for (const control of [stack.sandbox.billingplatform, stack.sandbox.billbora, stack.sandbox.supabase]) {
    expect(control.requests).toEqual([]);
  }
  const view = await client.get('/auth/session');
  expect(view.body.providers.billingplatform.connected).toBe(true);
  expect(view.body.providers.billbora.organization.id).toBe('org_demo');
}

describe('X-CSRF on every method and route', () => {
  describe.each([
    ['missing', []],
    ['empty', [['X-CSRF', '']]],
    ['0', [['X-CSRF', '0']]],
    ['true', [['X-CSRF', 'true']]],
    [
      'sent twice',
      [
        ['X-CSRF', '1'],
        ['X-CSRF', '1'],
      ],
    ],
    ['under an underscore spelling', [['X_CSRF', '1']]],
    ['named X-CSRF-Token', [['X-CSRF-Token', '1']]],
  ] as [string, [string, string][]][])('when it is %s', (_name, headers) => {
    it.each(ROUTES)(
      'refuses $method $target with 403 csrf_header_missing and does nothing',
      async (route) => {
        expectRefused(await send(route, headers), route.method, 'csrf_header_missing');
        await expectNothingHappened();
      },
    );
  });

  it('accepts the exact header on a body-less POST (the control for the refusals above)', async () => {
    const answer = await send({ method: 'POST', target: '/api/billingplatform/ACCOUNT' }, [['X-CSRF', '1']]);
    expect(answer.status).not.toBe(403);
    expect(stack.sandbox.billingplatform.requests).toHaveLength(1);
  });
});

describe('Origin look-alikes', () => {
  const lookAlikes = [
    'https://app.example.com.evil.com',
    'https://evilapp.example.com',
    'https://sub.app.example.com',
    'http://app.example.com',
    'https://app.example.com:444',
    'https://app.example.com:443',
    'https://app.example.com.',
    'HTTPS://APP.EXAMPLE.COM',
    'https://App.Example.com',
    'https://app.example.com/',
    'https://app.example.com@evil.com',
    'null',
    '*',
    'file://',
    // billfold's own origin, spelled with a trailing dot or as a prefix.
    'OWN.',
    'OWN.evil.com',
  ];
  const origin = (value: string) => value.replace(/^OWN/, stack.billfold.config.publicOrigin);

  it.each(lookAlikes)(
    'refuses Origin %s on reads, writes and logins, with no CORS headers',
    async (value) => {
      for (const route of ROUTES.filter((r) => r.method !== 'HEAD' && r.method !== 'PROPFIND')) {
        const answer = await send(route, [
          ['X-CSRF', '1'],
          ['Origin', origin(value)],
        ]);
        expectRefused(answer, route.method, 'origin_not_allowed');
      }
      await expectNothingHappened();
    },
  );

  it('refuses a listed Origin sent together with another one', async () => {
    const answer = await send(ROUTES[4]!, [
      ['X-CSRF', '1'],
      ['Origin', LISTED],
      ['Origin', 'https://evil.example.com'],
    ]);
    expectRefused(answer, 'POST', 'origin_not_allowed');
    await expectNothingHappened();
  });

  it('accepts the listed origin and billfold’s own (the control for the refusals above)', async () => {
    for (const value of [LISTED, stack.billfold.config.publicOrigin]) {
      const answer = await send(ROUTES[0]!, [
        ['X-CSRF', '1'],
        ['Origin', value],
      ]);
      expect(answer.status).toBe(200);
    }
  });
});

describe('Sec-Fetch-Site: cross-site', () => {
  it.each(ROUTES.filter((r) => r.method !== 'HEAD' && r.method !== 'PROPFIND'))(
    'refuses $method $target from a cross-site context that names no listed origin',
    async (route) => {
      expectRefused(
        await send(route, [
          ['X-CSRF', '1'],
          ['Sec-Fetch-Site', 'cross-site'],
        ]),
        route.method,
        'origin_not_allowed',
      );
      expectRefused(
        await send(route, [
          ['X-CSRF', '1'],
          ['Sec-Fetch-Site', 'cross-site'],
          ['Origin', stack.billfold.config.publicOrigin],
        ]),
        route.method,
        'origin_not_allowed',
      );
      await expectNothingHappened();
    },
  );

  it('lets a listed origin through with its CORS headers, and same-origin or direct navigation without', async () => {
    const listed = await send(ROUTES[0]!, [
      ['X-CSRF', '1'],
      ['Sec-Fetch-Site', 'cross-site'],
      ['Origin', LISTED],
    ]);
    expect(listed.status).toBe(200);
    expect(listed.header('access-control-allow-origin')).toBe(LISTED);
    expect(listed.header('access-control-allow-credentials')).toBe('true');
    expect(listed.header('vary')).toMatch(/Origin/);
    for (const site of ['same-origin', 'none']) {
      expect(
        (
          await send(ROUTES[0]!, [
            ['X-CSRF', '1'],
            ['Sec-Fetch-Site', site],
          ])
        ).status,
      ).toBe(200);
    }
  });
});

describe('non-JSON bodies on auth routes', () => {
  const bodies: [string, string][] = [
    ['text/plain', JSON.stringify(demo.billingplatform)],
    ['text/plain; charset=utf-8', '{"organizationId":"org_other"}'],
    ['application/x-www-form-urlencoded', 'username=demo&password=demo-password'],
    ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--'],
    ['application/json-patch+json', '[]'],
    ['application/jsonx', '{}'],
  ];
  const authPosts = ROUTES.filter((r) => r.method === 'POST' && r.target.toLowerCase().startsWith('/auth'));

  it.each(bodies)('refuses a %s body on every auth POST with 415 and does nothing', async (type, body) => {
    for (const route of authPosts) {
      const answer = await sendRaw(stack.billfold.url, {
        method: 'POST',
        target: route.target,
        headers: [
          ['X-CSRF', '1'],
          ['Cookie', client.cookie!],
          ['Content-Type', type],
        ],
        body,
      });
      expectDocumentedError(answer, 415, 'unsupported_media_type');
    }
    await expectNothingHappened();
  });

  it('refuses a body with no Content-Type at all', async () => {
    const answer = await sendRaw(stack.billfold.url, {
      method: 'POST',
      target: '/auth/logout',
      headers: [
        ['X-CSRF', '1'],
        ['Cookie', client.cookie!],
      ],
      body: '{}',
    });
    expectDocumentedError(answer, 415, 'unsupported_media_type');
    await expectNothingHappened();
  });
});

describe('method overrides', () => {
  const overrides: [string, string][] = [
    ['X-HTTP-Method-Override', 'POST'],
    ['X-HTTP-Method', 'POST'],
    ['X-Method-Override', 'POST'],
  ];

  it('never turn a GET into a logout, on any route spelling', async () => {
    for (const target of [
      '/auth/logout',
      '/auth/logout?_method=POST',
      '/auth/billingplatform/logout?_method=POST',
    ]) {
      const answer = await sendRaw(stack.billfold.url, {
        method: 'GET',
        target,
        headers: [['X-CSRF', '1'], ['Cookie', client.cookie!], ...overrides],
      });
      expectDocumentedError(answer, 404, 'not_found');
    }
    await expectNothingHappened();
  });

  it('never reach the upstream: the relay sends the request’s own method and drops the override headers', async () => {
    const answer = await sendRaw(stack.billfold.url, {
      method: 'POST',
      target: '/api/billingplatform/ACCOUNT?_method=DELETE',
      headers: [
        ['X-CSRF', '1'],
        ['Cookie', client.cookie!],
        ['Content-Type', 'application/json'],
        ['X-HTTP-Method-Override', 'DELETE'],
        ['X-HTTP-Method', 'DELETE'],
        ['X-Method-Override', 'DELETE'],
      ],
      body: '{"brmObjects":{"Name":"x"},"_method":"DELETE"}',
    });
    expect(answer.status).toBe(200);
    const [seen] = stack.sandbox.billingplatform.requests;
    expect(seen?.method).toBe('POST');
    expect(Object.keys(seen?.headers ?? {}).filter((name) => name.includes('method'))).toEqual([]);
  });
});

describe('CORS preflights', () => {
  const preflight = (target: string, origin: string | undefined) =>
    sendRaw(stack.billfold.url, {
      method: 'OPTIONS',
      target,
      headers: [
        ...(origin === undefined ? [] : ([['Origin', origin]] as [string, string][])),
        ['Access-Control-Request-Method', 'POST'],
        ['Access-Control-Request-Headers', 'x-csrf, content-type'],
      ],
    });
  const corsHeadersOf = (answer: RawAnswer) =>
    Object.keys(answer.headers).filter((name) => name.startsWith('access-control-'));

  it.each([
    'https://evil.example.com',
    'https://app.example.com.evil.com',
    'http://app.example.com',
    'https://app.example.com.',
    'null',
    '*',
  ])('from %s: refused on /auth and /api with no CORS header at all', async (origin) => {
    for (const target of ['/auth/logout', '/auth/billingplatform/login', '/api/billingplatform/ACCOUNT']) {
      const answer = await preflight(target, origin);
      expectDocumentedError(answer, 403, 'origin_not_allowed');
      expect(corsHeadersOf(answer)).toEqual([]);
    }
    expect(stack.sandbox.billingplatform.requests).toEqual([]);
  });

  it('from the listed origin: the origin echoed exactly, credentials allowed, Vary: Origin, never *', async () => {
    for (const target of ['/auth/logout', '/api/billingplatform/ACCOUNT']) {
      const answer = await preflight(target, LISTED);
      expect(answer.status).toBe(204);
      expect(answer.headers['access-control-allow-origin']).toEqual([LISTED]);
      expect(answer.header('access-control-allow-credentials')).toBe('true');
      expect(answer.header('vary')).toMatch(/Origin/);
    }
    expect(stack.sandbox.billingplatform.requests).toEqual([]);
  });

  it('from billfold’s own origin: 204 with no CORS header, which a same-origin call needs none of', async () => {
    for (const target of ['/auth/logout', '/api/billingplatform/ACCOUNT']) {
      const answer = await preflight(target, stack.billfold.config.publicOrigin);
      expect(answer.status).toBe(204);
      expect(corsHeadersOf(answer)).toEqual([]);
    }
  });

  it('takes an OPTIONS that is no preflight as an ordinary request: X-CSRF first, then 405', async () => {
    const options = (target: string, headers: [string, string][]) =>
      sendRaw(stack.billfold.url, { method: 'OPTIONS', target, headers });
    for (const target of ['/auth/logout', '/auth/billingplatform/login', '/api/billingplatform/ACCOUNT']) {
      expectDocumentedError(await options(target, []), 403, 'csrf_header_missing');
      // Without an Origin, a request naming a method is no browser's preflight either.
      expectDocumentedError(
        await options(target, [['Access-Control-Request-Method', 'POST']]),
        403,
        'csrf_header_missing',
      );
      expectDocumentedError(await options(target, [['X-CSRF', '1']]), 405, 'method_not_allowed');
      expectDocumentedError(
        await options(target, [
          ['X-CSRF', '1'],
          ['Origin', 'https://evil.example.com'],
        ]),
        403,
        'origin_not_allowed',
      );
    }
    expect(stack.sandbox.billingplatform.requests).toEqual([]);
  });

  it('never allow an origin on a response to an unlisted caller, whatever the route or status', async () => {
    for (const target of [
      '/',
      '/healthz',
      '/nothing',
      '/auth/session',
      '/api/billingplatform/ACCOUNT/1001',
    ]) {
      const answer = await sendRaw(stack.billfold.url, {
        target,
        headers: [
          ['X-CSRF', '1'],
          ['Origin', 'https://evil.example.com'],
        ],
      });
      expect(corsHeadersOf(answer)).toEqual([]);
    }
  });

  it('refuses * (or any non-origin) in CORS_ORIGINS at start', () => {
    for (const value of ['*', 'null', 'https://app.example.com/path', '*,https://app.example.com']) {
      expect(() => loadConfig({ NODE_ENV: 'test', ...TEST_SECRETS, CORS_ORIGINS: value })).toThrow(
        ConfigError,
      );
    }
  });
});
