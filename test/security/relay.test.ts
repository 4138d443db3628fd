import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import type { EmulatorControl } from '../../src/sandbox/sandbox-http.js';
import type { Sandbox } from '../../src/sandbox/sandbox.js';
import { createCookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { startHostileUpstream, type HostileUpstream } from '../support/hostile-upstream.js';
import { exchangeRaw, sendRaw, type RawAnswer, type RawRequest } from '../support/raw-http.js';
import { createSecretLedger, exerciseEveryProvider } from '../support/secret-ledger.js';
import { expectClientRefusal, expectDocumentedError, waitUntil } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS;
const ledger = createSecretLedger();
const PLANTED = 'planted-by-the-client';

let sandbox: Sandbox;
let billfold: RunningBillfold;
/** Signed in to all four providers (Billbora with email and password, so in JWT mode). */
let cookie: string;
/** Signed in to Billbora with its API key. */
let apiKeyCookie: string;
/** Where an upstream redirect points: it must never be called. */
let attacker: HostileUpstream;

const stack = useStack({ store: 'embedded', env: { BODY_LIMIT: '4kb', UPSTREAM_TIMEOUT_MS: '2000' } });
beforeAll(async () => {
  ({ sandbox, billfold } = stack);
  attacker = await startHostileUpstream();
  const client = createCookieClient(billfold.url, 'billfold');
  for (const provider of ['billingplatform', 'bill', 'billogram', 'billbora'] as const) {
    expect((await client.post(`/auth/${provider}/login`, demo[provider])).status).toBe(200);
  }
  cookie = client.cookie!;
  const keyed = createCookieClient(billfold.url, 'billfold');
  expect((await keyed.post('/auth/billbora/login', { apiKey: demo.billboraApiKey })).status).toBe(200);
  apiKeyCookie = keyed.cookie!;
});
beforeEach(() => sandbox.reset());
const expectNoLeak = () => {
  ledger.collect(sandbox);
  // Every instance's lines, those a test started for itself included.
  expect(ledger.leaks(stack.logs())).toEqual([]);
};
// Each test answers for what its own calls got back and logged.
afterEach(expectNoLeak);
afterAll(() => attacker.close());

it('puts no secret it handled into any answer or log line, whatever ran before', async () => {
  await exerciseEveryProvider(billfold);
  expectNoLeak();
});

function upstreamRequests() {
  return [
    sandbox.billingplatform,
    sandbox.bill,
    sandbox.billogram,
    sandbox.billbora,
    sandbox.supabase,
  ].flatMap((control) => control.requests);
}

/** A relayed request over a raw socket with the session cookie and X-CSRF. */
function relay(request: RawRequest, options: { as?: string; timeoutMs?: number } = {}): Promise<RawAnswer> {
  return sendRaw(
    billfold.url,
    { ...request, headers: [['X-CSRF', '1'], ['Cookie', options.as ?? cookie], ...(request.headers ?? [])] },
    options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs },
  );
}

/** A call each provider answers 200 to, as the relay sends it. */
const OK_CALLS: Record<string, RawRequest> = {
  billingplatform: { target: '/api/billingplatform/ACCOUNT/1001' },
  bill: {
    method: 'POST',
    target: '/api/bill/GetSessionInfo.json',
    headers: [['Content-Type', 'application/x-www-form-urlencoded']],
    body: '',
  },
  billogram: { target: '/api/billogram/customer' },
  billbora: { target: '/api/billbora/invoices/' },
};

describe('relay path traversal', () => {
  const spellings = [
    '../admin',
    'ACCOUNT/../../admin',
    './ACCOUNT/1001',
    'ACCOUNT/.',
    '..',
    '%2e%2e/admin',
    '%2E%2E/admin',
    '%2e%2E/admin',
    '.%2e/admin',
    '%2e./admin',
    '%2e/ACCOUNT',
    '%252e%252e/admin',
    '%252E%252E/admin',
    '%25252e%25252e/admin',
    '%25%32%65%25%32%65/admin',
    '..%2fadmin',
    '%2e%2e%2fadmin',
    'ACCOUNT%2f..%2f..%2fadmin',
    '%2fetc%2fpasswd',
    'ACCOUNT%252f..%252fadmin',
    'ACCOUNT%5c..%5cadmin',
    '..%5cadmin',
    '..%255cadmin',
    'ACCOUNT\\..\\admin',
    '..\\admin',
    '..;/admin',
    'ACCOUNT/..;x=1/admin',
    '.;/ACCOUNT',
    '%2e%2e;/admin',
    '%ef%bc%8e%ef%bc%8e/admin',
    '%e2%80%a5/admin',
    'ACCOUNT%ef%bc%8fadmin',
    'ACCOUNT%ef%bc%bcadmin',
    '%c0%ae%c0%ae/admin',
    '%e0%80%ae%e0%80%ae/admin',
    '%u002e%u002e/admin',
    '/evil.example.com/x',
    '//evil.example.com/x',
    'ACCOUNT//1001',
    'http://evil.example.com/x',
    'https:%2f%2fevil.example.com',
    'HTTP://evil.example.com',
    'javascript:alert(1)',
    'file:///etc/passwd',
    'ACCOUNT%00',
    'ACCOUNT%0d%0aHost:%20evil.example.com',
    'ACCOUNT%09',
    'ACCOUNT%7f',
    'ACCOUNT/%zz',
    'ACCOUNT/1001#/../admin',
    'ACCOUNT/1001?x=1#y',
    '',
  ];

  it.each(spellings)('refuses %j with 400 invalid_path and never calls the upstream', async (path) => {
    expectDocumentedError(await relay({ target: `/api/billingplatform/${path}` }), 400, 'invalid_path');
    expectDocumentedError(await relay({ target: `/api/billbora/${path}/` }), 400, 'invalid_path');
    expect(upstreamRequests()).toEqual([]);
  });

  it('forwards ordinary paths exactly as sent, trailing slash and encoded space included (the control)', async () => {
    expect((await relay({ target: '/api/billingplatform/ACCOUNT/1001' })).status).toBe(200);
    expect((await relay({ target: '/api/billbora/invoices/' })).status).toBe(200);
    await relay({ target: '/api/billingplatform/ACCOUNT/a%20b.c' });
    expect(sandbox.billingplatform.requests.map((request) => request.path)).toEqual([
      '/ACCOUNT/1001',
      '/ACCOUNT/a%20b.c',
    ]);
    expect(sandbox.billbora.requests.map((request) => request.path)).toEqual(['/invoices/']);
  });
});

describe('request lines that name no path of billfold’s', () => {
  it.each([
    [
      'an absolute-form target to another host',
      'GET',
      'http://evil.example.com/api/billingplatform/ACCOUNT/1001',
    ],
    ['an absolute-form target to billfold itself', 'GET', 'BILLFOLD/api/billingplatform/ACCOUNT/1001'],
    ['an absolute-form https target', 'POST', 'https://evil.example.com/api/billingplatform/ACCOUNT'],
    ['the asterisk form', 'OPTIONS', '*'],
  ])('refuses %s with 400 invalid_path and never calls the upstream', async (_name, method, target) => {
    const answer = await relay({ method, target: target.replace('BILLFOLD', billfold.url) });
    expectDocumentedError(answer, 400, 'invalid_path');
    expect(upstreamRequests()).toEqual([]);
  });

  it('opens no tunnel for CONNECT: the connection is refused or closed, never a 2xx or a 500', async () => {
    for (const target of [
      'evil.example.com:443',
      new URL(sandbox.url).host,
      '/api/billingplatform/ACCOUNT/1001',
    ]) {
      const answer = await relay({ method: 'CONNECT', target });
      expect([0, 400, 405]).toContain(answer.status);
    }
    expect(upstreamRequests()).toEqual([]);
  });
});

describe('Host injection', () => {
  it('always calls the configured host, whatever Host, a second Host or X-Forwarded-Host says', async () => {
    for (const headers of [
      [['Host', 'evil.example.com']],
      [['Host', 'evil.example.com:80']],
      [
        ['Host', new URL(billfold.url).host],
        ['Host', 'evil.example.com'],
      ],
      [['X-Forwarded-Host', 'evil.example.com']],
    ] as [string, string][][]) {
      const answer = await relay({ target: '/api/billingplatform/ACCOUNT/1001', headers });
      expectClientRefusal(answer, [200, 400]);
    }
    expect(upstreamRequests().length).toBeGreaterThan(0);
    for (const seen of upstreamRequests()) {
      expect(seen.headers.host).toBe(new URL(sandbox.url).host);
      expect(seen.headers['x-forwarded-host']).toBeUndefined();
    }
  });
});

describe('CRLF injection', () => {
  it('lets no raw CR or LF split a request line or a header: refused at the parser, or read as a separate client header that is dropped', async () => {
    for (const raw of [
      `GET /api/billingplatform/ACCOUNT/1001?a=1\rX-Injected: yes HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: ${cookie}\r\n\r\n`,
      `GET /api/billingplatform/ACCOUNT/1001\nX-Injected: yes HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: ${cookie}\r\n\r\n`,
      `GET /api/billingplatform/ACCOUNT/1001 HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: ${cookie}\r\nAccept: a\rX-Injected: yes\r\n\r\n`,
      `GET /api/billingplatform/ACCOUNT/1001 HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: ${cookie}\r\nAccept: a\r\n X-Injected: yes\r\n\r\n`,
    ]) {
      const { answers } = await exchangeRaw(billfold.url, raw);
      expect(answers).toHaveLength(1);
      expectClientRefusal(answers[0]!, [200, 400]);
    }
    for (const seen of upstreamRequests()) {
      expect({ path: seen.path, query: seen.query, injected: seen.headers['x-injected'] }).toEqual({
        path: '/ACCOUNT/1001',
        query: '',
        injected: undefined,
      });
    }
  });

  it('forwards encoded CRLF in a query as data: one request upstream, no injected header', async () => {
    const query = 'sql=SELECT%20Id%20FROM%20ACCOUNT%0d%0aX-Injected:%20yes%0d%0a%0d%0aGET%20/login';
    await relay({ target: `/api/billingplatform/query?${query}` });
    const seen = upstreamRequests();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.query).toBe(query);
    expect(seen[0]!.headers['x-injected']).toBeUndefined();
  });
});

describe('request smuggling', () => {
  const head = (lines: string[]) =>
    [
      'POST /api/billingplatform/ACCOUNT HTTP/1.1',
      'Host: x',
      'X-CSRF: 1',
      `Cookie: ${cookie}`,
      'Content-Type: application/json',
      ...lines,
    ].join('\r\n') + '\r\n\r\n';
  const smuggled = `GET /api/billingplatform/login HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: ${cookie}\r\n\r\n`;

  it.each([
    [
      'Transfer-Encoding and Content-Length',
      ['Content-Length: 4', 'Transfer-Encoding: chunked'],
      `0\r\n\r\n${smuggled}`,
    ],
    [
      'Content-Length and Transfer-Encoding',
      ['Transfer-Encoding: chunked', 'Content-Length: 40'],
      `0\r\n\r\n${smuggled}`,
    ],
    ['an obfuscated Transfer-Encoding', ['Transfer-Encoding: xchunked'], `0\r\n\r\n${smuggled}`],
    ['chunked, then identity', ['Transfer-Encoding: chunked, identity'], `0\r\n\r\n${smuggled}`],
    [
      'two Transfer-Encoding lines',
      ['Transfer-Encoding: chunked', 'Transfer-Encoding: identity'],
      `0\r\n\r\n${smuggled}`,
    ],
    ['a space before the colon', ['Transfer-Encoding : chunked'], `0\r\n\r\n${smuggled}`],
    ['two different Content-Lengths', ['Content-Length: 2', 'Content-Length: 40'], `{}${smuggled}`],
    ['a signed Content-Length', ['Content-Length: +2'], `{}${smuggled}`],
    ['a bad chunk size', ['Transfer-Encoding: chunked'], `zz\r\n{}\r\n0\r\n\r\n${smuggled}`],
  ])(
    'refuses %s before anything reaches the upstream, and runs no smuggled request',
    async (_name, lines, body) => {
      const { answers } = await exchangeRaw(billfold.url, head(lines) + body);
      expect(answers.map((answer) => answer.status)).toEqual([400]);
      expect(upstreamRequests()).toEqual([]);
    },
  );

  it('frames a chunked body itself: the upstream receives it once, and a pipelined request stays separate (the control)', async () => {
    const body = '{"brmObjects":{"Name":"x"}}';
    const { answers } = await exchangeRaw(
      billfold.url,
      head(['Transfer-Encoding: chunked']) +
        `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n` +
        smuggled.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'),
    );
    expect(answers.map((answer) => answer.status)).toEqual([200, 403]);
    expect(upstreamRequests().map((request) => [request.method, request.path, request.body])).toEqual([
      ['POST', '/ACCOUNT', body],
    ]);
  });
});

describe('request headers forwarded upstream', () => {
  it('drops hop-by-hop headers and every header the client names in Connection', async () => {
    const answer = await relay(
      {
        target: '/api/billingplatform/ACCOUNT/1001',
        headers: [
          ['Connection', 'keep-alive, Upgrade, Accept-Language, X-Custom, If-None-Match'],
          ['Keep-Alive', 'timeout=5'],
          ['TE', 'trailers'],
          ['Trailer', 'X-Custom'],
          ['Upgrade', 'h2c'],
          ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA'],
          ['Proxy-Connection', 'keep-alive'],
          ['Proxy-Authorization', `Basic ${PLANTED}`],
          ['Accept-Language', 'sv'],
          ['If-None-Match', '"v1"'],
          ['X-Custom', 'x'],
          ['Accept', 'application/json'],
        ],
      },
      { timeoutMs: 1000 },
    );
    expect(answer.status).toBe(200);
    const [seen] = upstreamRequests();
    const names = Object.keys(seen!.headers);
    for (const dropped of [
      'keep-alive',
      'te',
      'trailer',
      'upgrade',
      'http2-settings',
      'proxy-connection',
      'proxy-authorization',
      'accept-language',
      'if-none-match',
      'x-custom',
    ]) {
      expect(names).not.toContain(dropped);
    }
    expect(seen!.headers.accept).toBe('application/json');
  });

  const plantedHeaders: [string, string][] = [
    ['Authorization', `Bearer ${PLANTED}`],
    ['Proxy-Authorization', `Bearer ${PLANTED}`],
    ['sessionid', PLANTED],
    ['SessionID', PLANTED],
    ['session_id', PLANTED],
    ['session-id', PLANTED],
    ['X-Session-Id', PLANTED],
    ['devKey', PLANTED],
    ['dev_key', PLANTED],
    ['DEV-KEY', PLANTED],
    ['apikey', PLANTED],
    ['api_key', PLANTED],
    ['X-Api-Key', PLANTED],
    ['X-Auth-Token', PLANTED],
    ['access_token', PLANTED],
    ['X-Supabase-Token', PLANTED],
    ['Cookie', `sessionid=${PLANTED}`],
  ];

  it.each(Object.keys(OK_CALLS))(
    'strips every credential the client sends to %s, in any spelling, and attaches billfold’s own',
    async (provider) => {
      const call = OK_CALLS[provider]!;
      const answer = await relay({ ...call, headers: [...(call.headers ?? []), ...plantedHeaders] });
      expect(answer.status).toBe(200);
      const [seen] = upstreamRequests();
      expect(JSON.stringify(seen!.headers)).not.toContain(PLANTED);
      const credential = {
        billingplatform: seen!.headers.sessionid,
        bill: new URLSearchParams(seen!.body).get('sessionId'),
        billogram: seen!.headers.authorization,
        billbora: seen!.headers.authorization,
      }[provider];
      expect(credential).toBeTruthy();
    },
  );

  it('replaces a BILL devKey or sessionId sent in the form body, whatever its case, encoding or surrounding spaces', async () => {
    const answer = await relay({
      method: 'POST',
      target: '/api/bill/GetSessionInfo.json',
      headers: [['Content-Type', 'application/x-www-form-urlencoded; charset=UTF-8']],
      body:
        `devKey=${PLANTED}&DEVKEY=${PLANTED}&dev%4Bey=${PLANTED}&sessionId=${PLANTED}&SessionID=${PLANTED}` +
        `&session%49d=${PLANTED}&+devKey=${PLANTED}&sessionId+=${PLANTED}&%09devKey%C2%A0=${PLANTED}`,
    });
    expect(answer.status).toBe(200);
    const sent = new URLSearchParams(upstreamRequests()[0]!.body);
    expect(sent.getAll('devKey')).toEqual([demo.billDevKey]);
    expect(sent.getAll('sessionId')).toHaveLength(1);
    expect(sandbox.bill.sessions()).toContain(sent.get('sessionId'));
    expect(upstreamRequests()[0]!.body).not.toContain(PLANTED);
    expect(sandbox.bill.violations).toEqual([]);
  });
});

describe('BILL API v2 calls', () => {
  it('are form POSTs: another method is 405 and another body 415, and neither reaches BILL', async () => {
    const planted = `devKey=${PLANTED}&sessionId=${PLANTED}&data={}`;
    const target = '/api/bill/List/Vendor.json';
    expectDocumentedError(await relay({ target }), 405, 'method_not_allowed');
    for (const method of ['PUT', 'PATCH', 'DELETE']) {
      const headers: RawRequest['headers'] = [['Content-Type', 'application/x-www-form-urlencoded']];
      expectDocumentedError(
        await relay({ method, target, headers, body: planted }),
        405,
        'method_not_allowed',
      );
    }
    for (const type of [
      'text/plain',
      'multipart/form-data; boundary=XX',
      'application/json',
      'x-www-form-urlencoded',
    ]) {
      expectDocumentedError(
        await relay({ method: 'POST', target, headers: [['Content-Type', type]], body: planted }),
        415,
        'unsupported_media_type',
      );
    }
    expect(upstreamRequests()).toEqual([]);
  });
  it('are refused from their headers alone: no 100 Continue invites a body BILL v2 would not take', async () => {
    const head = (method: string, type: string) =>
      `${method} /api/bill/List/Vendor.json HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: ${cookie}\r\n` +
      `Content-Type: ${type}\r\nContent-Length: 100\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
    for (const [method, type, status, code] of [
      ['POST', 'text/plain', 415, 'unsupported_media_type'],
      ['PUT', 'application/x-www-form-urlencoded', 405, 'method_not_allowed'],
    ] as const) {
      const refused = await exchangeRaw(billfold.url, head(method, type), { timeoutMs: 1500 });
      expect(refused.raw).not.toContain('100 Continue');
      expectDocumentedError(refused.answers[0]!, status, code);
    }
    expect(upstreamRequests()).toEqual([]);
  });
});

describe('bodies', () => {
  it('refuses a body over BODY_LIMIT with 413, declared or chunked, streamed or buffered, before the upstream sees it complete', async () => {
    const big = 'x'.repeat(5000);
    // Each in a type its upstream takes (BILL v2 refuses any other before reading a byte of it).
    for (const [target, type] of [
      ['/api/billingplatform/ACCOUNT', 'application/json'],
      ['/api/bill/List/Vendor.json', 'application/x-www-form-urlencoded'],
      ['/api/billbora/invoices/', 'application/json'],
    ] as const) {
      expectDocumentedError(
        await relay({ method: 'POST', target, headers: [['Content-Type', type]], body: big }),
        413,
        'payload_too_large',
      );
      const { answers } = await exchangeRaw(
        billfold.url,
        `POST ${target} HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: ${cookie}\r\nContent-Type: ${type}\r\n` +
          `Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${(5000).toString(16)}\r\n${big}\r\n0\r\n\r\n`,
      );
      expect(answers.map((answer): unknown => answer.body?.error?.code)).toEqual(['payload_too_large']);
    }
    expect(upstreamRequests()).toEqual([]);
  });

  it('refuses a body with a content coding with 415 (Content-Encoding is not forwarded); identity passes', async () => {
    for (const [provider, call] of Object.entries(OK_CALLS)) {
      const target = call.target.replace(/GetSessionInfo\.json$/, 'List/Vendor.json');
      const form = provider === 'bill';
      const type = form ? 'application/x-www-form-urlencoded' : 'application/json';
      const sent = (coding: string) =>
        relay({
          method: 'POST',
          target: provider === 'billingplatform' ? '/api/billingplatform/ACCOUNT' : target,
          headers: [
            ['Content-Type', type],
            ['Content-Encoding', coding],
          ],
          body: form ? 'data={}' : JSON.stringify({ brmObjects: { Name: 'Coded' } }),
        });
      const before = upstreamRequests().length;
      for (const coding of ['gzip', 'br', 'deflate', 'GZIP', 'identity, gzip']) {
        expectDocumentedError(await sent(coding), 415, 'unsupported_media_type');
      }
      expect(upstreamRequests()).toHaveLength(before);
      await sent('identity');
      expect(upstreamRequests(), provider).toHaveLength(before + 1);
    }
  });

  it('refuses a transfer coding other than chunked with 415: Node takes off the chunks, nothing else', async () => {
    const body = '{"brmObjects":{"Name":"x"}}';
    const { answers } = await exchangeRaw(
      billfold.url,
      `POST /api/billingplatform/ACCOUNT HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: ${cookie}\r\n` +
        `Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n` +
        `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    );
    expect(answers.map((answer): unknown => answer.body?.error?.code)).toEqual(['unsupported_media_type']);
    expect(upstreamRequests()).toEqual([]);
  });

  it('gives up on a body that trickles in once UPSTREAM_TIMEOUT_MS has passed, and lets go of the upstream connection', async () => {
    const slow = await startHostileUpstream();
    const short = await stack.start({ BILLINGPLATFORM_BASE_URL: slow.baseUrl, UPSTREAM_TIMEOUT_MS: '300' });
    try {
      const client = createCookieClient(short.url, 'billfold');
      await client.post('/auth/billingplatform/login', demo.billingplatform);
      const started = performance.now();
      const { answers } = await exchangeRaw(
        short.url,
        `POST /api/billingplatform/ACCOUNT HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: ${client.cookie}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{"brmObjects":',
        { timeoutMs: 10_000 },
      );
      expect(performance.now() - started).toBeLessThan(9000);
      expectDocumentedError(answers[0]!, 504, 'upstream_timeout');
      const seen = slow.requests.filter((request) => request.url === '/bp/ACCOUNT');
      await waitUntil(() => seen.every((request) => request.closed));
      expect(seen.map(({ complete, closed }) => ({ complete, closed }))).toEqual([
        { complete: false, closed: true },
      ]);
    } finally {
      await short.close();
      await slow.close();
    }
  });

  it('refuses 20 KB of headers with 431 on both roads; nothing reaches the upstream', async () => {
    for (const target of ['/api/billingplatform/ACCOUNT/1001', '/auth/session']) {
      const answer = await relay({ target, headers: [['X-Padding', 'a'.repeat(20 * 1024)]] });
      expectClientRefusal(answer, [431]);
    }
    const many = Array.from({ length: 1000 }, (_, i) => [`X-H${i}`, 'a'.repeat(20)] as [string, string]);
    expectClientRefusal(await relay({ target: '/api/billingplatform/ACCOUNT/1001', headers: many }), [431]);
    expect(upstreamRequests()).toEqual([]);
  });
});

describe('secrets in the query', () => {
  const VALUE = 'query-secret-value-0123456789';
  ledger.add(VALUE);

  it.each([
    'password',
    'PASSWORD',
    'pass%77ord',
    'pass+word',
    'sessionid',
    'SessionID',
    'session_id',
    'sid',
    'devKey',
    'dev_key',
    'api%5Fkey',
    'apikey',
    'X-Api-Key',
    'token',
    'access_token',
    'refresh_token',
    'id_token',
    'client_secret',
    'Authorization',
    'a[password]',
    ';password',
    'user.password',
  ])(
    'refuses a %s parameter with 400 secret_in_query, on every provider, alone or among others',
    async (name) => {
      for (const provider of Object.keys(OK_CALLS)) {
        const call = OK_CALLS[provider]!;
        for (const query of [`${name}=${VALUE}`, `page=1&${name}=${VALUE}&page=2`, name]) {
          expectDocumentedError(
            await relay({ ...call, target: `${call.target}?${query}` }),
            400,
            'secret_in_query',
          );
        }
      }
      expect(upstreamRequests()).toEqual([]);
    },
  );

  it('passes a repeated ordinary parameter byte for byte and in order (the control)', async () => {
    const query = 'sql=SELECT%20Id%20FROM%20ACCOUNT&page=2&page=1&page=2&empty=&flag';
    expect((await relay({ target: `/api/billingplatform/query?${query}` })).status).toBe(200);
    expect(upstreamRequests()[0]!.query).toBe(query);
  });
});

describe('relay methods', () => {
  it.each([
    'TRACE',
    'PROPFIND',
    'MKCOL',
    'COPY',
    'MOVE',
    'LOCK',
    'UNLOCK',
    'PURGE',
    'SEARCH',
    'REPORT',
    'LINK',
  ])(
    'refuses %s with 405 method_not_allowed, echoing nothing, and never calls the upstream',
    async (method) => {
      const answer = await relay({ method, target: '/api/billingplatform/ACCOUNT/1001' });
      expectDocumentedError(answer, 405, 'method_not_allowed');
      expect(answer.text).not.toContain(cookie.split('=')[1]!);
      expect(upstreamRequests()).toEqual([]);
    },
  );

  it.each(['FOO', 'get', 'TRACK', 'DEBUG', 'G\u0000ET'])(
    'refuses the unknown method %j at the parser or with 405; never a 500 and never upstream',
    async (method) => {
      expectClientRefusal(await relay({ method, target: '/api/billingplatform/ACCOUNT/1001' }), [400, 405]);
      expect(upstreamRequests()).toEqual([]);
    },
  );
});

describe('upstream redirects', () => {
  it.each([301, 302, 303, 307, 308] as const)(
    'are not followed (%i): 502 upstream_unavailable, no Location, and nothing reaches the redirect target',
    async (status) => {
      for (const [provider, call] of Object.entries(OK_CALLS)) {
        const control: EmulatorControl =
          sandbox[provider as 'billingplatform' | 'bill' | 'billogram' | 'billbora'];
        control.redirectNext(`${attacker.url}/steal?from=${provider}`, { status });
        const answer = await relay(call);
        expectDocumentedError(answer, 502, 'upstream_unavailable');
        expect(answer.header('location')).toBeUndefined();
      }
      expect(attacker.requests).toEqual([]);
    },
  );

  it('are not followed at sign-in, credential check or renewal either, so no credential leaves', async () => {
    const client = createCookieClient(billfold.url, 'billfold');
    const redirect = (control: EmulatorControl) =>
      control.redirectNext(`${attacker.url}/steal`, { status: 307 });

    redirect(sandbox.billingplatform);
    expectDocumentedError(
      await client.post('/auth/billingplatform/login', demo.billingplatform),
      502,
      'upstream_unavailable',
    );
    redirect(sandbox.bill);
    expectDocumentedError(await client.post('/auth/bill/login', demo.bill), 502, 'upstream_unavailable');
    redirect(sandbox.billogram);
    expectDocumentedError(
      await client.post('/auth/billogram/login', demo.billogram),
      502,
      'upstream_unavailable',
    );
    redirect(sandbox.billbora);
    expectDocumentedError(
      await client.post('/auth/billbora/login', { apiKey: demo.billboraApiKey }),
      502,
      'upstream_unavailable',
    );
    redirect(sandbox.supabase);
    expectDocumentedError(
      await client.post('/auth/billbora/login', demo.billbora),
      502,
      'upstream_unavailable',
    );
    expect(client.cookie).toBeUndefined();

    // A renewal that is redirected: the Billbora refresh token does not follow it.
    sandbox.billbora.setAccessTokenLifetime(30_000);
    const renewing = createCookieClient(billfold.url, 'billfold');
    await renewing.post('/auth/billbora/login', demo.billbora);
    redirect(sandbox.billbora);
    expect((await renewing.get('/api/billbora/invoices/')).status).toBe(502);
    expect(attacker.requests).toEqual([]);
  });
});

describe('the upstream’s own auth endpoints', () => {
  it.each([
    [
      'billingplatform',
      [
        'login',
        'LOGIN',
        'logout',
        'login/',
        '%6cogin',
        '%4cOGIN',
        'log%69n',
        '%256cogin',
        'login;jsessionid=x',
        'login%3bx',
        'LOGOUT;x/',
        'login%20',
        'login%e2%80%8b',
      ],
    ],
    [
      'bill',
      [
        'Login.json',
        'LOGIN.JSON',
        'logout.json',
        '%4cogin.json',
        'Login%2ejson',
        'Login.json;x',
        'Logout.json/',
        'Login.json.',
        'Login.json%20',
      ],
    ],
    [
      'billbora',
      [
        'users/auth/refresh/',
        'USERS/AUTH/token',
        'users/%61uth/refresh/',
        '%75sers/auth/exchange/',
        'users;x/auth/exchange/',
        'users/auth',
      ],
    ],
  ] as [string, string[]][])(
    '%s: refused with 403 forbidden_upstream_path in every spelling, every method',
    async (provider, paths) => {
      for (const path of paths) {
        for (const method of ['GET', 'POST', 'DELETE']) {
          const answer = await relay({
            method,
            target: `/api/${provider}/${path}`,
            headers: [['Content-Type', 'application/x-www-form-urlencoded']],
            ...(method === 'POST' && { body: 'userName=a&password=b' }),
          });
          expectDocumentedError(answer, 403, 'forbidden_upstream_path');
        }
      }
      expect(upstreamRequests()).toEqual([]);
    },
  );
});

describe('upstream response headers', () => {
  const cookieCalls: Record<string, RawRequest> = {
    billingplatform: { target: '/api/billingplatform/sandbox/cookie' },
    bill: { ...OK_CALLS.bill!, target: '/api/bill/sandbox/cookie' },
    billogram: { target: '/api/billogram/sandbox/cookie' },
    billbora: { target: '/api/billbora/sandbox/cookie/' },
  };

  it.each(Object.keys(cookieCalls))('drops %s’s Set-Cookie and WWW-Authenticate', async (provider) => {
    const answer = await relay(cookieCalls[provider]!);
    expect(answer.status).toBe(200);
    expect(upstreamRequests()).toHaveLength(1);
    expect(answer.headers['set-cookie']).toBeUndefined();
    expect(answer.headers['www-authenticate']).toBeUndefined();
  });

  it.each(Object.keys(cookieCalls))(
    'serves %s’s text/html inert: CSP sandbox, nosniff, no-store',
    async (provider) => {
      const call = cookieCalls[provider]!;
      const answer = await relay({ ...call, target: call.target.replace('cookie', 'html') });
      expect(answer.status).toBe(200);
      expect(answer.header('content-type')).toMatch(/^text\/html/);
      expect(answer.text).toContain('<script>');
      expect(answer.header('content-security-policy')).toBe("default-src 'none'; sandbox");
      expect(answer.header('x-content-type-options')).toBe('nosniff');
      expect(answer.header('cache-control')).toBe('no-store');
    },
  );

  it('keeps billfold’s own security headers over a hostile upstream’s, and drops anything echoing the credential', async () => {
    const hostile = await startHostileUpstream();
    const exposed = await stack.start({ BILLINGPLATFORM_BASE_URL: hostile.baseUrl });
    try {
      const client = createCookieClient(exposed.url, 'billfold');
      await client.post('/auth/billingplatform/login', demo.billingplatform);
      hostile.answer = () => ({
        headers: {
          'content-type': 'text/html',
          'set-cookie': 'billfold=s%3Aupstream; Path=/',
          'www-authenticate': 'Basic realm="upstream"',
          'proxy-authenticate': 'Basic',
          'access-control-allow-origin': '*',
          'access-control-allow-credentials': 'true',
          'content-security-policy': 'script-src *',
          'x-content-type-options': 'sniff',
          'strict-transport-security': 'max-age=0',
          'x-frame-options': 'ALLOWALL',
          'cross-origin-resource-policy': 'cross-origin',
          'cross-origin-opener-policy': 'unsafe-none',
          'referrer-policy': 'unsafe-url',
          'cache-control': 'public, max-age=31536000',
          refresh: '0; url=https://evil.example.com/',
          'clear-site-data': '"cookies"',
          'x-upstream-session': hostile.sessionId,
          'x-echo': `your session is ${hostile.sessionId}`,
          connection: 'x-hop',
          'x-hop': 'gone',
          etag: '"v1"',
        },
        body: '<script>alert(1)</script>',
      });
      const answer = await sendRaw(exposed.url, {
        target: '/api/billingplatform/page',
        headers: [
          ['X-CSRF', '1'],
          ['Cookie', client.cookie!],
        ],
      });
      expect(answer.status).toBe(200);
      expect(answer.text).toBe('<script>alert(1)</script>');
      expect(answer.header('etag')).toBe('"v1"');
      const dropped = [
        'set-cookie',
        'www-authenticate',
        'proxy-authenticate',
        'access-control-allow-origin',
        'access-control-allow-credentials',
        'refresh',
        'clear-site-data',
        'x-upstream-session',
        'x-echo',
        'x-hop',
      ];
      expect(dropped.filter((name) => answer.headers[name] !== undefined)).toEqual([]);
      expect(answer.text + JSON.stringify(answer.headers)).not.toContain(hostile.sessionId);
      expect({
        csp: answer.headers['content-security-policy'],
        nosniff: answer.headers['x-content-type-options'],
        hsts: answer.headers['strict-transport-security'],
        frame: answer.headers['x-frame-options'],
        corp: answer.headers['cross-origin-resource-policy'],
        coop: answer.headers['cross-origin-opener-policy'],
        referrer: answer.headers['referrer-policy'],
        cache: answer.headers['cache-control'],
      }).toEqual({
        csp: ["default-src 'none'; sandbox"],
        nosniff: ['nosniff'],
        hsts: ['max-age=31536000; includeSubDomains'],
        frame: ['SAMEORIGIN'],
        corp: ['same-origin'],
        coop: ['same-origin'],
        referrer: ['no-referrer'],
        cache: ['no-store'],
      });
    } finally {
      await exposed.close();
      await hostile.close();
    }
  });
});

describe('Billbora API-key sessions', () => {
  it('strip the client’s credentials and refuse Billbora’s auth endpoints just the same', async () => {
    const answer = await relay(
      {
        target: '/api/billbora/invoices/',
        headers: [
          ['Authorization', `Bearer ${PLANTED}`],
          ['apikey', PLANTED],
        ],
      },
      { as: apiKeyCookie },
    );
    expect(answer.status).toBe(200);
    expect(upstreamRequests()[0]!.headers.authorization).toBe(`Bearer ${demo.billboraApiKey}`);
    expectDocumentedError(
      await relay({ target: '/api/billbora/users/%61uth/refresh/' }, { as: apiKeyCookie }),
      403,
      'forbidden_upstream_path',
    );
  });
});
