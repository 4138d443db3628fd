import fc from 'fast-check';
import type { RequestListener } from 'node:http';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { guardListener } from '../../src/middleware/error-boundary.js';
import { addressKey } from '../../src/middleware/operator-auth-limiter.js';
import type { BillfoldProcess } from '../support/billfold-process.js';
import { exchangeRaw, formatRaw, sendRaw } from '../support/raw-http.js';
import { useStack, type StackOptions } from '../support/stack.js';
import { createTestClock } from '../support/test-clock.js';

const ADMIN_TOKEN = 'Qz7hV2mK9pXw4sLc8RbT1nYe6uJa3dFg';
const METRICS_TOKEN = 'Lp4Xk8Wq2Zm6Tv0Rb9Nc3Hs7Jy5Fd1Ge';
/** A billfold with both operator ports, the metrics one without a token. */
const OPERATOR_PORTS = {
  BILLINGPLATFORM_BASE_URL: 'https://billing.example.com/rest/2.0',
  ADMIN_PORT: '0',
  ADMIN_TOKEN,
  METRICS_PORT: '0',
};
/** No sandbox (the BillingPlatform URL is never called) and each instance's embedded store. */
const OPERATOR_STACK = { sandbox: false, store: 'embedded' } satisfies StackOptions;
const bearer = (token: string) => [['Authorization', `Bearer ${token}`]] as const;

/** Targets URL parsing or routing could choke on: hosts and ports where a path belongs, and worse. */
const HOSTILE_TARGETS = [
  '//x:99999/metrics',
  '//x:99999/admin/sessions',
  '//[::1/metrics',
  '//%zz/metrics',
  '///metrics',
  'http://x:99999/metrics',
  'x:99999',
  '*',
  '/metrics?%zz=%',
  '/admin/sessions?provider=%E0%A4%A&user=%',
  '/%00/metrics',
  '/metrics/../admin',
];

describe('a malformed request target on an operator port', () => {
  const stack = useStack({ ...OPERATOR_STACK, instances: 0, env: OPERATOR_PORTS });
  let billfold: BillfoldProcess;
  let ports: { main: string; admin: string; metrics: string };
  beforeAll(async () => {
    billfold = await stack.spawn();
    const listening = JSON.parse(billfold.lines.find((line) => line.includes('"billfold listening"'))!);
    ports = {
      main: billfold.url,
      admin: `http://127.0.0.1:${listening.adminPort}`,
      metrics: `http://127.0.0.1:${listening.metricsPort}`,
    };
  });

  const stillServes = async () => {
    expect((await fetch(`${ports.main}/healthz`)).status).toBe(200);
    expect((await fetch(`${ports.metrics}/metrics`)).status).toBe(200);
    const listing = await fetch(`${ports.admin}/admin/sessions?provider=billingplatform&user=a`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(listing.status).toBe(200);
  };

  it('on METRICS_PORT without a token: a 400 in the documented shape, and every port still serves', async () => {
    const answer = await sendRaw(ports.metrics, { target: '//x:99999/metrics' });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ code: 'invalid_request' });
    expect(answer.body.error.requestId).toBe(answer.header('x-request-id'));
    await stillServes();
  });

  it('on ADMIN_PORT behind its token: a 400 in the documented shape, and every port still serves', async () => {
    const answer = await sendRaw(ports.admin, {
      target: '//x:99999/admin/sessions',
      headers: bearer(ADMIN_TOKEN),
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ code: 'invalid_request' });
    await stillServes();
  });

  it('on every port, whatever the target: an answer below 500 in the documented shape, and the process lives', async () => {
    for (const origin of Object.values(ports)) {
      for (const target of HOSTILE_TARGETS) {
        const answer = await sendRaw(origin, { target, headers: bearer(ADMIN_TOKEN) });
        expect(answer.status, `${origin} ${target}`).toBeGreaterThanOrEqual(200);
        expect(answer.status, `${origin} ${target}`).toBeLessThan(500);
        if (answer.status >= 400) expect(typeof answer.body.error.code).toBe('string');
      }
    }
    await stillServes();
    expect(billfold.child.exitCode).toBeNull();
  });
});

describe('every listener, against generated request targets', () => {
  const stack = useStack({
    ...OPERATOR_STACK,
    // Trusting loopback, so X-Forwarded-For is read (and its garbage parsed) on every request.
    env: { ...OPERATOR_PORTS, METRICS_TOKEN, TRUST_PROXY: 'loopback' },
  });

  // Printable ASCII the request line allows, weighted towards the characters URL parsing cares about.
  const targetChar = fc.oneof(
    fc.constantFrom('/', '/', ':', '%', '?', '#', '[', ']', '@', '.', '\\', '9', 'x', '%2F', '%zz', '%00'),
    fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }).filter((c) => /^[!-~]$/.test(c)),
  );
  const target = fc
    .tuple(
      fc.constantFrom('/', '//', '///', '', 'http://', '/metrics', '/admin/sessions'),
      fc.array(targetChar, { maxLength: 24 }),
    )
    .map(([head, rest]) => head + rest.join(''))
    .filter((t) => t.length > 0);

  // Address-like text and worse, as a client or a confused proxy might claim it.
  const forwardedFor = fc.option(
    fc
      .array(
        fc.oneof(
          fc.ipV4(),
          fc.ipV6(),
          fc.constantFrom('', ' ', ',', 'unknown', '::ffff:', '[::1]', '1.2.3.4:80', '999.1.1.1', '%zz'),
          fc.string({ unit: 'grapheme-ascii', maxLength: 12 }).filter((v) => /^[ -~]*$/.test(v)),
        ),
        { minLength: 1, maxLength: 4 },
      )
      .map((parts) => parts.join(',')),
    { nil: undefined },
  );

  it('never answers 500 nor drops the connection unanswered', async () => {
    const billfold = stack.billfold;
    await fc.assert(
      fc.asyncProperty(
        target,
        fc.constantFrom<'main' | 'admin' | 'metrics'>('main', 'admin', 'metrics'),
        forwardedFor,
        async (t, port, claimed) => {
          const origin =
            port === 'main' ? billfold.url : port === 'admin' ? billfold.adminUrl! : billfold.metricsUrl!;
          const token = port === 'admin' ? ADMIN_TOKEN : METRICS_TOKEN;
          const headers = [
            ...bearer(token),
            ...(claimed === undefined ? [] : [['X-Forwarded-For', claimed] as const]),
          ];
          const answer = await sendRaw(origin, { target: t, headers });
          expect(answer.status, `${port} ${t}`).toBeGreaterThanOrEqual(200);
          expect(answer.status, `${port} ${t}`).toBeLessThan(500);
        },
      ),
      { numRuns: 150 },
    );
    expect((await fetch(`${billfold.url}/healthz`)).status).toBe(200);
  });
});

describe('the last-resort error boundary', () => {
  const serve = async (handler: RequestListener) => {
    const logs: string[] = [];
    const server = http.createServer(
      guardListener(handler, createLogger('info', { write: (l: string) => void logs.push(l) })),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, logs };
  };

  it('turns a synchronous throw and a rejected promise into the documented 500, and the server keeps serving', async () => {
    let calls = 0;
    const { origin, server, logs } = await serve((req, res) => {
      calls++;
      if (req.url === '/sync') throw new Error('boom /secret/path');
      // A listener typed to return nothing that returns a rejected promise, as an async one would.
      // eslint-disable-next-line @typescript-eslint/no-invalid-void-type
      if (req.url === '/async') return Promise.reject(new Error('later')) as unknown as void;
      res.end('ok');
    });
    try {
      for (const path of ['/sync', '/async']) {
        const answer = await sendRaw(origin, { target: path });
        expect(answer.status).toBe(500);
        expect(answer.body).toEqual({
          error: {
            code: 'internal_error',
            message: 'Internal error.',
            requestId: answer.header('x-request-id'),
          },
        });
        expect(answer.text).not.toContain('boom');
        expect(answer.header('strict-transport-security')).toBeDefined();
      }
      expect((await sendRaw(origin, { target: '/fine' })).text).toBe('ok');
      expect(calls).toBe(3);
      expect(logs.filter((l) => l.includes('outside every error handler'))).toHaveLength(2);
    } finally {
      server.close();
    }
  });

  it('closes the connection when the handler threw after its answer began, and keeps serving', async () => {
    const { origin, server } = await serve((req, res) => {
      if (req.url === '/fine') {
        res.end('ok');
        return;
      }
      res.writeHead(200, { 'content-length': '10' });
      res.write('half');
      throw new Error('midway');
    });
    try {
      const { raw } = await exchangeRaw(origin, formatRaw(origin, { target: '/' }));
      // Never a second answer after half of the first: the connection just ends.
      expect(raw).not.toContain('500');
      expect(raw).not.toContain('internal_error');
      expect((await sendRaw(origin, { target: '/fine' })).text).toBe('ok');
    } finally {
      server.close();
    }
  });
});

describe('operator tokens', () => {
  const clock = createTestClock();
  const stack = useStack({
    ...OPERATOR_STACK,
    clock,
    env: {
      ...OPERATOR_PORTS,
      METRICS_TOKEN,
      TRUST_PROXY: 'loopback',
      OPERATOR_AUTH_MAX_FAILURES: '5',
      OPERATOR_AUTH_WINDOW_S: '600',
    },
  });

  const listing = (token: string, forwardedFor?: string) =>
    fetch(`${stack.billfold.adminUrl!}/admin/sessions?provider=billingplatform&user=someone`, {
      headers: {
        authorization: `Bearer ${token}`,
        ...(forwardedFor !== undefined && { 'x-forwarded-for': forwardedFor }),
      },
    });
  const entries = () => stack.billfold.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
  const audits = (event: string) => entries().filter((e) => e.audit === true && e.event === event);

  it('refuses a credential in the query with 400 secret_in_query before the token is checked or counted', async () => {
    // Whatever ran before: none of these requests adds a failed-token line.
    const before = audits('operator_auth_failed').length;
    for (const query of [
      'password=x',
      'pass%77ord=x',
      'TOKEN=x',
      'apiKey=x',
      'sessionId=x',
      'private_key=x',
    ]) {
      const answer = await fetch(
        `${stack.billfold.adminUrl!}/admin/sessions?provider=billingplatform&user=someone&${query}`,
        { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } },
      );
      expect(answer.status).toBe(400);
      expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('secret_in_query');
    }
    expect(audits('operator_auth_failed').slice(before)).toEqual([]);
    const wrong = await fetch(`${stack.billfold.adminUrl!}/admin/sessions?token=guess`);
    expect(wrong.status).toBe(400);
    expect(audits('operator_auth_failed').slice(before)).toEqual([]);
  });

  it('refuses a burst of 50 guesses past the limit, the right token too, with Retry-After, until the window ends', async () => {
    const from = '198.51.100.7';
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        listing(`${ADMIN_TOKEN.slice(0, -2)}${String(i).padStart(2, '0')}`, from),
      ),
    );
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(45);
    const limited = answers.find((answer) => answer.status === 429)!;
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(500);
    expect((await limited.json()).error.code).toBe('rate_limited');

    // Every guess past the limit is refused without being checked, so the right one tells nothing.
    expect((await listing(ADMIN_TOKEN, from)).status).toBe(429);
    // Another address is not held up by this one.
    expect((await listing(ADMIN_TOKEN, '198.51.100.8')).status).toBe(200);
    // The metrics port counts against the same address.
    const scrape = await fetch(`${stack.billfold.metricsUrl!}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}`, 'x-forwarded-for': from },
    });
    expect(scrape.status).toBe(429);

    clock.advance(600_000);
    expect((await listing(ADMIN_TOKEN, from)).status).toBe(200);
  });

  it('audits every wrong token with the client address TRUST_PROXY resolves, and never the token', async () => {
    const before = audits('operator_auth_failed').length;
    await listing('wrong-token-wrong-token-wrong-token', '203.0.113.50');
    await fetch(`${stack.billfold.metricsUrl!}/metrics`, { headers: { 'x-forwarded-for': '203.0.113.51' } });
    const lines = audits('operator_auth_failed').slice(before);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      outcome: 'refused',
      clientAddress: '203.0.113.50',
      route: '/admin/sessions',
    });
    expect(lines[1]).toMatchObject({ outcome: 'refused', clientAddress: '203.0.113.51', route: '/metrics' });
    expect(JSON.stringify(entries())).not.toContain('wrong-token-wrong-token');
    expect(JSON.stringify(entries())).not.toContain(ADMIN_TOKEN);
  });

  it('audits each successful listing, with the provider and the client address', async () => {
    const before = audits('admin_sessions_listed').length;
    expect((await listing(ADMIN_TOKEN, '192.0.2.44')).status).toBe(200);
    const lines = audits('admin_sessions_listed').slice(before);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      outcome: 'success',
      provider: 'billingplatform',
      clientAddress: '192.0.2.44',
    });
    // Who was listed is not on the line: usernames appear on no audit line.
    expect(JSON.stringify(lines[0])).not.toContain('someone');
  });

  it('names the client address on every request line, as TRUST_PROXY resolves it', async () => {
    await fetch(`${stack.billfold.url}/healthz`, { headers: { 'x-forwarded-for': '192.0.2.60, 127.0.0.1' } });
    const line = entries()
      .filter((e) => e.msg === 'request' && e.path === '/healthz')
      .at(-1);
    // The last hop is loopback, trusted; the one before it is the client.
    expect(line).toMatchObject({ clientAddress: '192.0.2.60' });
    // A request Node's parser refused is logged with the connecting address too.
    for (const origin of [stack.billfold.url, stack.billfold.adminUrl!]) {
      await exchangeRaw(origin, 'NOT HTTP AT ALL\r\n\r\n');
    }
    const refused = entries().filter((e) => e.msg === 'refused a request that is not valid HTTP');
    expect(refused.length).toBeGreaterThanOrEqual(2);
    for (const entry of refused) expect(entry.clientAddress).toBe('127.0.0.1');
  });
});

describe('operator tokens without a trusted proxy', () => {
  const stack = useStack({
    ...OPERATOR_STACK,
    env: {
      BILLINGPLATFORM_BASE_URL: 'https://billing.example.com/rest/2.0',
      ADMIN_PORT: '0',
      ADMIN_TOKEN,
      OPERATOR_AUTH_MAX_FAILURES: '3',
    },
  });

  it('count against the connecting address whatever X-Forwarded-For claims', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const answer = await fetch(`${stack.billfold.adminUrl!}/admin/sessions?provider=bill&user=x&orgId=o`, {
        headers: { authorization: 'Bearer nope', 'x-forwarded-for': `203.0.113.${i}` },
      });
      statuses.push(answer.status);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429, 429]);
    const audited = stack.billfold.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((e) => e.event === 'operator_auth_failed');
    expect(audited.map((e) => e.clientAddress)).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1']);
  });
});

describe('the unit a client address is counted under', () => {
  it('is the address for IPv4 (mapped or not), and the /64 for IPv6 however it is written', () => {
    expect(addressKey('192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('2001:db8:1:2::1')).toBe(addressKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'));
    expect(addressKey('2001:db8:1:2::1')).not.toBe(addressKey('2001:db8:1:3::1'));
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey(undefined)).toBe('unknown');
  });
});
