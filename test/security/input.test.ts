import { gzipSync } from 'node:zlib';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { exchangeRaw, sendRaw, type RawAnswer } from '../support/raw-http.js';
import { createSecretLedger, exerciseEveryProvider } from '../support/secret-ledger.js';
import { expectClientRefusal, expectDocumentedError } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS;
const ledger = createSecretLedger();
const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort();

let cookie: string;

const stack = useStack({
  store: 'embedded',
  env: {
    BODY_LIMIT: '128kb',
    // Many specs here end in invalid_credentials; the failed-login limits are the abuse specs' subject.
    LOGIN_MAX_FAILURES_PER_IP: '100000',
    LOGIN_MAX_FAILURES_PER_USER: '100000',
  },
});
beforeAll(async () => {
  const client = createCookieClient(stack.billfold.url, 'billfold');
  expect((await client.post('/auth/billbora/login', demo.billbora)).status).toBe(200);
  cookie = client.cookie!;
});
/** Nothing a test sent leaked a secret, or reached Object.prototype of the process billfold runs in. */
function expectNothingLeakedOrPolluted() {
  ledger.collect(stack.sandbox);
  expect(ledger.leaks(stack.billfold.logs)).toEqual([]);
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeBefore);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
}
// Each test answers for what its own inputs did.
afterEach(expectNothingLeakedOrPolluted);

it('puts no secret it handled into any answer or log line, whatever ran before, and pollutes no prototype', async () => {
  await exerciseEveryProvider(stack.billfold);
  expectNothingLeakedOrPolluted();
});

/** Every route that reads a JSON body, with the session it needs. */
const TARGETS = [
  '/auth/billingplatform/login',
  '/auth/bill/login',
  '/auth/billogram/login',
  '/auth/billbora/login',
  '/auth/billbora/organization',
  '/auth/logout',
];

function post(target: string, body: string | Buffer, headers: [string, string][] = []): Promise<RawAnswer> {
  const head = [
    `POST ${target} HTTP/1.1`,
    'Host: x',
    'X-CSRF: 1',
    // Only the organization switch needs the session; a logout or login with it would end or rotate it.
    ...(target === '/auth/billbora/organization' ? [`Cookie: ${cookie}`] : []),
    ...(headers.some(([name]) => name.toLowerCase() === 'content-type')
      ? []
      : ['Content-Type: application/json']),
    ...headers.map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ].join('\r\n');
  return exchangeRaw(stack.billfold.url, [Buffer.from(`${head}\r\n\r\n`), Buffer.from(body)]).then(
    ({ answers }) => answers[0]!,
  );
}

describe('malformed JSON', () => {
  it.each([
    ['a truncated object', '{"username": "demo",'],
    ['a lone brace', '{'],
    ['single quotes', "{'username':'demo'}"],
    ['a trailing comma', '{"username":"demo","password":"x",}'],
    ['NaN', 'NaN'],
    ['a comment', '{/* */"username":"demo"}'],
    ['two documents', '{}{}'],
    ['a raw NUL inside a string', '{"username":"de\u0000mo","password":"x"}'],
    ['a raw newline inside a string', '{"username":"de\nmo","password":"x"}'],
  ])('refuses %s on every JSON route with 400 invalid_request', async (_name, body) => {
    for (const target of TARGETS) expectDocumentedError(await post(target, body), 400, 'invalid_request');
  });

  it.each([
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])],
    ['an empty body with a JSON type', ''],
  ])(
    'refuses %s where a body is read with 400 invalid_request (the logout reads none)',
    async (_name, body) => {
      for (const target of TARGETS) {
        const answer = await post(target, body);
        if (target === '/auth/logout') expect(answer.status).toBe(204);
        else expectDocumentedError(answer, 400, 'invalid_request');
      }
    },
  );
});

describe('bodies over the limit', () => {
  it('refuses a declared body over BODY_LIMIT with 413 on every JSON route', async () => {
    const big = JSON.stringify({ username: 'x'.repeat(200 * 1024), password: 'y' });
    for (const target of TARGETS) expectDocumentedError(await post(target, big), 413, 'payload_too_large');
  });

  it('refuses a gzip body that inflates past BODY_LIMIT with 413, and one that does not inflate with 400', async () => {
    const bomb = gzipSync(JSON.stringify({ username: 'x'.repeat(10 * 1024 * 1024), password: 'y' }));
    expect(bomb.length).toBeLessThan(128 * 1024);
    expectDocumentedError(
      await post('/auth/billingplatform/login', bomb, [['Content-Encoding', 'gzip']]),
      413,
      'payload_too_large',
    );
    expectDocumentedError(
      await post('/auth/billingplatform/login', 'not gzip at all', [['Content-Encoding', 'gzip']]),
      400,
      'invalid_request',
    );
    expectDocumentedError(
      await post('/auth/billingplatform/login', '{}', [['Content-Encoding', 'x-compress-me']]),
      415,
      'unsupported_media_type',
    );
  });
});

describe('deep nesting', () => {
  it.each([
    ['10,000 nested arrays', `${'['.repeat(10_000)}${']'.repeat(10_000)}`],
    ['10,000 nested objects', `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`],
    [
      '10,000 levels inside a field',
      `{"username":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)},"password":"x"}`,
    ],
    ['10,000 levels inside organizationId', `{"organizationId":${'['.repeat(10_000)}${']'.repeat(10_000)}}`],
  ])('refuses %s with 400 invalid_request on every JSON route, never a 500', async (_name, body) => {
    for (const target of TARGETS.filter((t) => t !== '/auth/logout')) {
      expectDocumentedError(await post(target, body), 400, 'invalid_request');
    }
    // The logout ignores its body; parsing it did not break anything either.
    expect((await post('/auth/logout', body)).status).toBeLessThan(500);
  });
});

describe('prototype pollution', () => {
  it.each([
    ['__proto__ at the top', '{"__proto__":{"polluted":"yes"},"username":"demo","password":"demo-password"}'],
    [
      'constructor.prototype at the top',
      '{"constructor":{"prototype":{"polluted":"yes"}},"username":"demo","password":"demo-password"}',
    ],
    ['__proto__ inside a field', '{"username":{"__proto__":{"polluted":"yes"}},"password":"x"}'],
    ['__proto__ as the only key', '{"__proto__":{"polluted":"yes"}}'],
    ['__proto__ inside an array', '[{"__proto__":{"polluted":"yes"}}]'],
  ])('refuses %s in a body with 400 invalid_request, and nothing is polluted', async (_name, body) => {
    for (const target of TARGETS.filter((t) => t !== '/auth/logout')) {
      expectDocumentedError(await post(target, body), 400, 'invalid_request');
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('ignores __proto__ and constructor.prototype in query strings on both roads, and nothing is polluted', async () => {
    const query =
      '__proto__[polluted]=yes&__proto__.polluted=yes&constructor[prototype][polluted]=yes&touch=true&touch[__proto__]=x';
    const view = await sendRaw(stack.billfold.url, {
      target: `/auth/session?${query}`,
      headers: [
        ['X-CSRF', '1'],
        ['Cookie', cookie],
      ],
    });
    expect(view.status).toBe(200);
    expect(view.text).not.toContain('polluted');
    const relayed = await sendRaw(stack.billfold.url, {
      target: `/api/billbora/invoices/?${query}`,
      headers: [
        ['X-CSRF', '1'],
        ['Cookie', cookie],
      ],
    });
    expect(relayed.status).toBe(200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('is still not polluted afterwards: a fresh login answers the plain session view', async () => {
    const client = createCookieClient(stack.billfold.url, 'billfold');
    const answer = await client.post('/auth/billingplatform/login', demo.billingplatform);
    expect(answer.status).toBe(200);
    expect(Object.keys(answer.body).sort()).toEqual([
      'authenticated',
      'expiresAt',
      'idleExpiresAt',
      'providers',
    ]);
    expect(answer.text).not.toContain('polluted');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('NUL, control characters and lone surrogates', () => {
  const hostile = [
    '\\u0000',
    'a\\u0000b',
    '\\r\\nX-Injected: yes',
    '\\u001b[31m',
    '\\ud800',
    '\\udc00x',
    'a\\ud83d',
  ];

  it.each(hostile)('answers %s in any login field with a 4xx, never a 500 or 502', async (value) => {
    const bodies: [string, string][] = [
      ['/auth/billingplatform/login', `{"username":"${value}","password":"${value}"}`],
      ['/auth/bill/login', `{"userName":"${value}","password":"${value}","orgId":"${value}"}`],
      ['/auth/billogram/login', `{"apiUserId":"${value}","apiPassword":"${value}"}`],
      ['/auth/billbora/login', `{"email":"${value}@example.com","password":"${value}"}`],
      ['/auth/billbora/login', `{"supabaseToken":"${value}"}`],
      ['/auth/billbora/login', `{"apiKey":"${value}"}`],
      ['/auth/billbora/login', `{"apiKey":"bb_demo_key${value}"}`],
      ['/auth/billbora/organization', `{"organizationId":"${value}"}`],
    ];
    for (const [target, body] of bodies) {
      const answer = await post(target, body);
      expectClientRefusal(answer, [400, 401, 403]);
      expect(answer.body.error).toBeDefined();
    }
  });

  it('refuses NUL and control characters in the relay path, and answers them in a query or cookie without a 500', async () => {
    expectDocumentedError(
      await sendRaw(stack.billfold.url, {
        target: '/api/billbora/invoices%00/',
        headers: [
          ['X-CSRF', '1'],
          ['Cookie', cookie],
        ],
      }),
      400,
      'invalid_path',
    );
    for (const [target, extra] of [
      ['/auth/session?touch=%00%0d%0a%ed%a0%80', cookie],
      ['/auth/session', `billfold=%00%ed%a0%80; ${cookie}`],
      ['/api/billbora/invoices/?q=%00%ed%a0%80', cookie],
    ] as const) {
      const answer = await sendRaw(stack.billfold.url, {
        target,
        headers: [
          ['X-CSRF', '1'],
          ['Cookie', extra],
        ],
      });
      expect(answer.status).toBeLessThan(500);
    }
  });
});

describe('wrong types and shapes', () => {
  const wrongValues = ['42', 'true', 'null', '[]', '{}', '["demo"]', '1e309', '""'];

  it.each([
    ['/auth/billingplatform/login', ['username', 'password'], demo.billingplatform],
    ['/auth/bill/login', ['userName', 'password', 'orgId'], demo.bill],
    ['/auth/billogram/login', ['apiUserId', 'apiPassword'], demo.billogram],
    ['/auth/billbora/login', ['email', 'password'], demo.billbora],
    ['/auth/billbora/organization', ['organizationId'], { organizationId: 'org_demo' }],
  ] as [string, string[], Record<string, string>][])(
    '%s: a wrong type in any field, a missing field or an unknown one is 400 invalid_request',
    async (target, fields, valid) => {
      for (const field of fields) {
        for (const wrong of wrongValues) {
          const body = JSON.stringify({ ...valid, [field]: 'PLACEHOLDER' }).replace('"PLACEHOLDER"', wrong);
          expectDocumentedError(await post(target, body), 400, 'invalid_request');
        }
        const { [field]: _missing, ...without } = valid;
        expectDocumentedError(await post(target, JSON.stringify(without)), 400, 'invalid_request');
      }
      expectDocumentedError(
        await post(target, JSON.stringify({ ...valid, admin: true })),
        400,
        'invalid_request',
      );
    },
  );

  it.each(['true', 'false', 'null', '0', '"demo"', '[]', '[{}]', '[{"username":"demo","password":"x"}]'])(
    'refuses the top-level value %s with 400 invalid_request on every JSON route',
    async (body) => {
      for (const target of TARGETS.filter((t) => t !== '/auth/logout')) {
        expectDocumentedError(await post(target, body), 400, 'invalid_request');
      }
    },
  );

  it('refuses a body that is not JSON, or JSON in a charset other than UTF-8, with 415', async () => {
    for (const [type, statuses] of [
      ['text/plain', [415]],
      ['application/json; charset=latin1', [415]],
      // Decoded as UTF-16, the bytes are no longer JSON.
      ['application/json; charset=utf-16', [400, 415]],
    ] as const) {
      for (const target of TARGETS)
        expectClientRefusal(await post(target, '{}', [['Content-Type', type]]), statuses);
    }
  });
});
