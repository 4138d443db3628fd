import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { SANDBOX_MOUNTS } from '../../src/sandbox/sandbox.js';
import { createCookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { startHostileUpstream, type HostileUpstream } from '../support/hostile-upstream.js';
import { startInterposer, type Interposer } from '../support/interposer.js';
import { exchangeRaw, formatRaw, sendRaw, type RawRequest } from '../support/raw-http.js';
import { expectDocumentedError, waitUntil } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS;
const MIB = 1024 * 1024;

/** BillingPlatform: the hostile upstream. */
let upstream: HostileUpstream;
/** BILL and Billogram: the sandbox behind an interposer that can answer oddly on one path. */
let bill: Interposer;
let billogram: Interposer;
const upstreams: { close(): Promise<void> }[] = [];

// Registered before the stack, so it runs once the stack has stopped every instance.
afterAll(async () => {
  await Promise.all(upstreams.map((each) => each.close()));
});
const stack = useStack({
  store: 'embedded',
  instances: 0,
  env: async (sandbox) => {
    upstream = await startHostileUpstream();
    bill = await startInterposer(sandbox.url);
    billogram = await startInterposer(sandbox.url);
    upstreams.push(upstream, bill, billogram);
    return {
      BILLINGPLATFORM_BASE_URL: upstream.baseUrl,
      BILL_BASE_URL: `${bill.url}${SANDBOX_MOUNTS.bill}`,
      BILLOGRAM_BASE_URL: `${billogram.url}${SANDBOX_MOUNTS.billogram}`,
      UPSTREAM_TIMEOUT_MS: '10000',
    };
  },
});
beforeEach(() => {
  stack.sandbox.reset();
  upstream.requests.length = 0;
  upstream.answer = () => ({ body: '{}' });
  bill.respond = undefined;
  billogram.respond = undefined;
});

async function signIn(billfold: RunningBillfold, username = 'demo', providers = ['billingplatform']) {
  const client = createCookieClient(billfold.url, 'billfold');
  for (const provider of providers) {
    const body = provider === 'billingplatform' ? { username, password: 'x' } : demo[provider as 'bill'];
    expect((await client.post(`/auth/${provider}/login`, body)).status).toBe(200);
  }
  return client;
}

/** Sends `request` on a raw socket and closes it `afterMs` later, reading nothing. */
function sendAndLeave(origin: string, request: RawRequest, afterMs: number): Promise<void> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) }, () => {
      socket.write(formatRaw(origin, { close: false, ...request }));
      setTimeout(() => {
        socket.destroy();
        resolve();
      }, afterMs);
    });
    socket.on('error', () => undefined);
  });
}

const relayGet = (cookie: string, target = '/api/billingplatform/ACCOUNT/1'): RawRequest => ({
  target,
  headers: [
    ['X-CSRF', '1'],
    ['Cookie', cookie],
  ],
});

describe('a client that goes away', () => {
  let billfold: RunningBillfold;
  let cookie: string;
  beforeAll(async () => {
    billfold = await stack.start();
    cookie = (await signIn(billfold)).cookie!;
  });

  it('cancels the upstream call before its answer starts, and no upstream socket is left behind', async () => {
    // Larger than what the socket buffers absorb: an answer nobody reads cannot finish upstream.
    upstream.answer = () => ({ delayMs: 400, body: Buffer.alloc(4 * MIB, 'a') });
    await Promise.all(Array.from({ length: 8 }, () => sendAndLeave(billfold.url, relayGet(cookie), 50)));
    await waitUntil(() => upstream.requests.length === 8);
    // Well before UPSTREAM_TIMEOUT_MS (10 s): the cancellation, not a timer, closes them.
    await waitUntil(() => upstream.inFlight() === 0, 3000);
  });

  it('cancels while the answer streams: a client that closes mid-body frees the upstream connection (the control: so it was before)', async () => {
    upstream.answer = () => ({ body: Buffer.alloc(2000, 'b'), trickleMs: 5 });
    const { hostname, port } = new URL(billfold.url);
    await new Promise<void>((resolve) => {
      const socket = net.connect({ host: hostname, port: Number(port) }, () =>
        socket.write(formatRaw(billfold.url, { close: false, ...relayGet(cookie) })),
      );
      socket.once('data', () => {
        socket.pause();
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 100);
      });
    });
    await waitUntil(() => upstream.inFlight() === 0, 3000);
    expect(upstream.abandonedAnswers()).toBeGreaterThan(0);
  });

  it('cancels a POST whose client goes away while the upstream works on it', async () => {
    upstream.answer = () => undefined; // never answers
    await sendAndLeave(
      billfold.url,
      {
        method: 'POST',
        target: '/api/billingplatform/ACCOUNT',
        headers: [...relayGet(cookie).headers!, ['Content-Type', 'application/json']],
        body: '{"brmObjects":{}}',
      },
      200,
    );
    await waitUntil(() => upstream.requests.length === 1 && upstream.requests[0]!.complete);
    await waitUntil(() => upstream.inFlight() === 0, 3000);
  });

  it('still answers a client that stays (the control)', async () => {
    upstream.answer = () => ({ delayMs: 100, body: '{"ok":true}' });
    const answer = await sendRaw(billfold.url, relayGet(cookie));
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ ok: true });
  });
});

describe('each session’s share of a provider’s connections', () => {
  let billfold: RunningBillfold;
  beforeAll(async () => {
    billfold = await stack.start({ RELAY_MAX_CONCURRENT_PER_SESSION: '4' });
  });

  it('refuses a session past RELAY_MAX_CONCURRENT_PER_SESSION open calls with 429 and Retry-After, while other users are served', async () => {
    const greedy = await signIn(billfold, 'greedy');
    const other = await signIn(billfold, 'other');
    upstream.answer = (request) =>
      request.headers.sessionid === upstream.sessionId && request.url.includes('hang')
        ? undefined
        : { body: '{"ok":1}' };
    const controller = new AbortController();
    const answers: Array<{ status: number; retryAfter: string | null; code: unknown }> = [];
    const burst = Array.from({ length: 50 }, () =>
      fetch(`${billfold.url}/api/billingplatform/hang`, {
        headers: { 'x-csrf': '1', cookie: greedy.cookie! },
        signal: controller.signal,
      }).then(
        async (response) => {
          const body = (await response.json()) as { error?: { code?: unknown } };
          answers.push({
            status: response.status,
            retryAfter: response.headers.get('retry-after'),
            code: body.error?.code,
          });
        },
        () => undefined,
      ),
    );
    await waitUntil(() => answers.length === 46);
    expect(upstream.requests.filter((r) => r.url.includes('hang'))).toHaveLength(4);
    expect((await other.get('/api/billingplatform/ACCOUNT/1')).status).toBe(200);
    for (const answer of answers)
      expect(answer).toEqual({ status: 429, retryAfter: '1', code: 'rate_limited' });
    controller.abort();
    await Promise.all(burst);
    // The cancelled calls gave their slots back.
    await waitUntil(() => upstream.inFlight() === 0);
    expect((await greedy.get('/api/billingplatform/ACCOUNT/1')).status).toBe(200);
  });

  it('counts two sessions of the same upstream user against one share', async () => {
    const first = await signIn(billfold, 'twin');
    const second = await signIn(billfold, 'twin');
    const stranger = await signIn(billfold, 'stranger');
    upstream.answer = (request) => (request.url.includes('hang') ? undefined : { body: '{}' });
    const controller = new AbortController();
    const hold = (cookie: string) =>
      fetch(`${billfold.url}/api/billingplatform/hang`, {
        headers: { 'x-csrf': '1', cookie },
        signal: controller.signal,
      }).catch(() => undefined);
    const held = [hold(first.cookie!), hold(first.cookie!), hold(second.cookie!), hold(second.cookie!)];
    await waitUntil(() => upstream.requests.filter((r) => r.url.includes('hang')).length === 4);
    expectDocumentedError(await second.get('/api/billingplatform/ACCOUNT/1'), 429, 'rate_limited');
    expect((await stranger.get('/api/billingplatform/ACCOUNT/1')).status).toBe(200);
    controller.abort();
    await Promise.all(held);
  });
});

describe('a call queued for a pooled connection', () => {
  it(
    'gets UPSTREAM_TIMEOUT_MS like any other, and /readyz tells the pool is exhausted',
    { timeout: 60_000 },
    async () => {
      const billfold = await stack.start({
        RELAY_MAX_CONCURRENT_PER_SESSION: '0',
        UPSTREAM_TIMEOUT_MS: '1500',
      });
      const client = await signIn(billfold);
      // Every connection busy with an answer that trickles: no inactivity timer ever fires.
      upstream.answer = (request) =>
        request.url.includes('slow') ? { body: Buffer.alloc(1000, 'x'), trickleMs: 200 } : { body: '{}' };
      const controller = new AbortController();
      const holders = Array.from({ length: 256 }, () =>
        fetch(`${billfold.url}/api/billingplatform/slow`, {
          headers: { 'x-csrf': '1', cookie: client.cookie! },
          signal: controller.signal,
        })
          .then((response) => response.arrayBuffer())
          .catch(() => undefined),
      );
      await waitUntil(() => upstream.requests.filter((r) => r.url.includes('slow')).length === 256, 20_000);
      const ready = await fetch(`${billfold.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: 'pool_exhausted', providers: ['billingplatform'] });

      const started = performance.now();
      const queued = await client.get('/api/billingplatform/ACCOUNT/1');
      expectDocumentedError(queued, 504, 'upstream_timeout');
      // 1.5 s deadline; the margin is for a noisy machine, far below the trickle's 200 s.
      expect(performance.now() - started).toBeLessThan(10_000);

      controller.abort();
      await Promise.all(holders);
      await waitUntil(async () => (await fetch(`${billfold.url}/readyz`)).status === 200, 10_000);
    },
  );
});

describe('GET and HEAD', () => {
  let billfold: RunningBillfold;
  let cookie: string;
  beforeAll(async () => {
    billfold = await stack.start();
    cookie = (await signIn(billfold)).cookie!;
  });

  it.each([
    ['GET with a declared body', 'GET', [['Content-Length', '5']], 'hello'],
    ['GET with a chunked body', 'GET', [['Transfer-Encoding', 'chunked']], '5\r\nhello\r\n0\r\n\r\n'],
    ['HEAD with a declared body', 'HEAD', [['Content-Length', '2']], '{}'],
    ['HEAD with a chunked body', 'HEAD', [['Transfer-Encoding', 'chunked']], '2\r\n{}\r\n0\r\n\r\n'],
  ] as const)(
    'refuse %s with 400 invalid_request; nothing reaches the upstream',
    async (_name, method, lines, body) => {
      const { answers } = await exchangeRaw(
        billfold.url,
        formatRaw(billfold.url, {
          method,
          target: '/api/billingplatform/ACCOUNT/1',
          headers: [...relayGet(cookie).headers!, ...lines],
          body,
          contentLength: false,
        }),
        { heads: [method === 'HEAD'] },
      );
      expect(answers[0]?.status).toBe(400);
      if (method === 'GET') expectDocumentedError(answers[0]!, 400, 'invalid_request');
      expect(upstream.requests).toEqual([]);
    },
  );

  it('pass with Content-Length: 0 (the control)', async () => {
    const answer = await sendRaw(billfold.url, {
      ...relayGet(cookie),
      headers: [...relayGet(cookie).headers!, ['Content-Length', '0']],
    });
    expect(answer.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
  });
});

describe('billfold’s own errors', () => {
  let billfold: RunningBillfold;
  let cookie: string;
  beforeAll(async () => {
    billfold = await stack.start({ CORS_ORIGINS: 'https://app.example' });
    cookie = (await signIn(billfold)).cookie!;
  });

  it('carry X-Billfold-Error, which an upstream error shaped like billfold’s, echoing the request id, cannot forge', async () => {
    upstream.answer = (request) => ({
      status: 409,
      headers: {
        'x-billfold-error': 'unauthenticated',
        'x-request-id': String(request.headers['x-request-id']),
      },
      body: JSON.stringify({
        error: {
          code: 'unauthenticated',
          message: 'No valid session.',
          requestId: request.headers['x-request-id'],
        },
      }),
    });
    const relayed = await sendRaw(billfold.url, relayGet(cookie));
    expect(relayed.status).toBe(409);
    // The body and request id look like billfold's; the mark is missing.
    expect(relayed.body.error.requestId).toBe(relayed.header('x-request-id'));
    expect(relayed.header('x-billfold-error')).toBeUndefined();

    const own = await sendRaw(billfold.url, {
      target: '/api/billingplatform/ACCOUNT/1',
      headers: [['X-CSRF', '1']],
    });
    expectDocumentedError(own, 401, 'unauthenticated');
  });

  it('mark Node-level refusals too, and a listed origin can read the mark', async () => {
    const { answers } = await exchangeRaw(billfold.url, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n');
    expect(answers[0]?.header('x-billfold-error')).toBe('invalid_request');
    const cors = await sendRaw(billfold.url, {
      target: '/api/billingplatform/ACCOUNT/1',
      headers: [
        ['X-CSRF', '1'],
        ['Origin', 'https://app.example'],
      ],
    });
    expect(cors.header('access-control-expose-headers')).toContain('x-billfold-error');
  });
});

describe('pipelining and Expect', () => {
  let billfold: RunningBillfold;
  let cookie: string;
  beforeAll(async () => {
    billfold = await stack.start();
    cookie = (await signIn(billfold)).cookie!;
  });
  const slowGet = (target = '/api/billingplatform/ACCOUNT/1') =>
    formatRaw(billfold.url, { ...relayGet(cookie, target), close: false });

  it('answers a malformed request pipelined behind a slow relayed GET after the GET, whose answer is intact', async () => {
    upstream.answer = () => ({ delayMs: 300, body: '{"slow":true}' });
    const { answers } = await exchangeRaw(billfold.url, `${slowGet()}GET / HTTP/1.1\r\nBad Header\r\n\r\n`);
    expect(answers.map((answer) => answer.status)).toEqual([200, 400]);
    expect(answers[0]!.body).toEqual({ slow: true });
    expectDocumentedError(answers[1]!, 400, 'invalid_request');
  });

  it('keeps the order behind two pipelined GETs as well', async () => {
    upstream.answer = (request) => ({
      delayMs: request.url.endsWith('/1') ? 300 : 50,
      body: JSON.stringify(request.url),
    });
    const { answers } = await exchangeRaw(
      billfold.url,
      `${slowGet('/api/billingplatform/ACCOUNT/1')}${slowGet('/api/billingplatform/ACCOUNT/2')}GET /\x01 HTTP/1.1\r\n\r\n`,
    );
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 400]);
    expect(answers.map((answer): unknown => answer.body)).toEqual([
      '/bp/ACCOUNT/1',
      '/bp/ACCOUNT/2',
      expect.anything(),
    ]);
  });

  /**
   * Sends a POST with `Expect: 100-continue`: without X-CSRF it must be refused with no 100 Continue;
   * with it, 100 Continue comes first and then the answer to `body`.
   */
  const expectContinue = async (target: string, body: string, extra: string[] = []) => {
    const head = (csrf: boolean) =>
      [
        `POST ${target} HTTP/1.1`,
        'Host: x',
        ...(csrf ? ['X-CSRF: 1'] : []),
        ...extra,
        'Content-Type: application/json',
        `Content-Length: ${Buffer.byteLength(body)}`,
        'Expect: 100-continue',
        'Connection: close',
      ].join('\r\n') + '\r\n\r\n';
    const refused = await exchangeRaw(billfold.url, head(false), { timeoutMs: 1500 });
    expect(refused.raw).not.toContain('100 Continue');
    expectDocumentedError(refused.answers[0]!, 403, 'csrf_header_missing');
    const accepted = await exchangeRaw(billfold.url, [head(true), body], { pauseMs: 300 });
    expect(accepted.raw.startsWith('HTTP/1.1 100 Continue\r\n')).toBe(true);
    return accepted.answers[0]!;
  };

  it('sends 100 Continue only once the checks pass, then relays the body', async () => {
    upstream.answer = (request) => ({ body: JSON.stringify({ got: request.body }) });
    const answer = await expectContinue('/api/billingplatform/ACCOUNT', '{}', [`Cookie: ${cookie}`]);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ got: '{}' });
  });

  it('sends 100 Continue on the auth routes only once the CSRF check passes', async () => {
    const answer = await expectContinue('/auth/billingplatform/login', '{"username":"demo","password":"pw"}');
    expect(answer.status).toBe(200);
  });

  it('answers any other Expect with 417 in the documented shape; nothing reaches the upstream', async () => {
    for (const target of ['/api/billingplatform/ACCOUNT/1', '/auth/session']) {
      const answer = await sendRaw(billfold.url, {
        target,
        headers: [...relayGet(cookie).headers!, ['Expect', 'something-else']],
      });
      expectDocumentedError(answer, 417, 'expectation_failed');
    }
    expect(upstream.requests).toEqual([]);
  });
});

describe('relayed answers', () => {
  let billfold: RunningBillfold;
  let client: Awaited<ReturnType<typeof signIn>>;
  beforeAll(async () => {
    billfold = await stack.start();
    client = await signIn(billfold, 'demo', ['billingplatform', 'bill', 'billogram']);
  });

  it('drop a header echoing another provider’s credential of the session', async () => {
    upstream.answer = () => ({
      headers: { 'x-total': demo.billogram.apiPassword, 'x-page': demo.billDevKey, etag: '"e1"' },
      body: '{}',
    });
    const answer = await sendRaw(billfold.url, relayGet(client.cookie!));
    expect(answer.status).toBe(200);
    expect(answer.header('x-total')).toBeUndefined();
    expect(answer.header('x-page')).toBeUndefined();
    expect(answer.header('etag')).toBe('"e1"');
  });

  it('drop reporting, client hints, links, downloads and any unlisted header; merge Vary with billfold’s', async () => {
    upstream.answer = () => ({
      headers: {
        nel: '{"report_to":"x","max_age":1}',
        'report-to': '{"group":"x"}',
        'accept-ch': 'Sec-CH-UA-Model',
        link: '</evil.js>; rel=preload',
        'content-disposition': 'attachment; filename="x.html"',
        'x-provider-next': 'whatever',
        vary: 'Accept-Encoding',
        etag: '"e1"',
      },
      body: '{}',
    });
    const answer = await sendRaw(billfold.url, relayGet(client.cookie!));
    expect(answer.status).toBe(200);
    for (const name of ['nel', 'report-to', 'accept-ch', 'link', 'content-disposition', 'x-provider-next'])
      expect(answer.header(name), name).toBeUndefined();
    expect(answer.headers.vary).toEqual(['Origin, Accept-Encoding']);
    expect(answer.header('etag')).toBe('"e1"');
  });

  it('survive an upstream that repeats Connection: still 200, and every header it names is dropped', async () => {
    upstream.answer = () => ({
      headers: { connection: ['keep-alive', 'x-total-count'], 'x-total-count': '3', 'x-page': '1' },
      body: '{}',
    });
    const answer = await sendRaw(billfold.url, relayGet(client.cookie!));
    expect(answer.status).toBe(200);
    expect(answer.header('x-total-count')).toBeUndefined();
    expect(answer.header('x-page')).toBe('1');
  });

  it('pass a 304 with its validators and billfold’s no-store; other 3xx stay 502', async () => {
    upstream.answer = (request) =>
      request.headers['if-none-match'] === '"v7"'
        ? {
            status: 304,
            headers: {
              etag: '"v7"',
              'last-modified': 'Tue, 01 Dec 2026 08:00:00 GMT',
              'cache-control': 'private, max-age=60',
            },
          }
        : { status: 300, headers: { location: 'https://elsewhere.example/' } };
    const answer = await sendRaw(billfold.url, {
      ...relayGet(client.cookie!),
      headers: [...relayGet(client.cookie!).headers!, ['If-None-Match', '"v7"']],
    });
    expect(answer.status).toBe(304);
    expect(answer.header('etag')).toBe('"v7"');
    expect(answer.header('last-modified')).toBe('Tue, 01 Dec 2026 08:00:00 GMT');
    expect(answer.header('cache-control')).toBe('no-store');
    expect(answer.header('x-billfold-error')).toBeUndefined();
    expectDocumentedError(await sendRaw(billfold.url, relayGet(client.cookie!)), 502, 'upstream_unavailable');
  });

  it('answer 502 when a bodiless answer breaks as its headers arrive (a 304 or 204 declaring a length)', async () => {
    for (const status of [304, 204]) {
      upstream.answer = () => ({ status, headers: { etag: '"v7"', 'content-length': '5' } });
      expectDocumentedError(
        await sendRaw(billfold.url, relayGet(client.cookie!)),
        502,
        'upstream_unavailable',
      );
    }
  });

  const odd = Buffer.concat([
    Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from('{"response_status":0,"response_message":"Success","response_data":{"name":"'),
    Buffer.from([0xc3, 0x28, 0xff]),
    Buffer.from('"}}'),
  ]);

  it('pass a judged BILL answer byte for byte: byte-order mark and invalid UTF-8 kept', async () => {
    bill.respond = async (request, forward, res) => {
      if (!request.url.endsWith('/GetSessionInfo.json')) return false;
      await forward();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(odd);
      return true;
    };
    const response = await fetch(`${billfold.url}/api/bill/GetSessionInfo.json`, {
      method: 'POST',
      headers: { 'x-csrf': '1', cookie: client.cookie!, 'content-type': 'application/x-www-form-urlencoded' },
      body: '',
    });
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(odd)).toBe(true);
  });

  it('pass a judged Billogram 403 byte for byte', async () => {
    const denied = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from('{"status":"PERMISSION_DENIED","data":{"message":"\xff"}}', 'latin1'),
    ]);
    billogram.respond = (request, _forward, res) => {
      if (!request.url.endsWith('/customer')) return false;
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(denied);
      return true;
    };
    const response = await fetch(`${billfold.url}/api/billogram/customer`, {
      headers: { 'x-csrf': '1', cookie: client.cookie! },
    });
    expect(response.status).toBe(403);
    expect(Buffer.from(await response.arrayBuffer()).equals(denied)).toBe(true);
  });

  it('bound the read of a judged answer without Content-Length: past 4 MiB it streams on unjudged, before the upstream has finished', async () => {
    let clientHasBytes = false;
    const head = Buffer.alloc(5 * MIB, ' ');
    const tail = Buffer.from('{"response_status":0,"response_data":{}}');
    bill.respond = async (request, forward, res) => {
      if (!request.url.endsWith('/GetSessionInfo.json')) return false;
      await forward();
      res.writeHead(200, { 'content-type': 'application/json' }); // chunked: no length declared
      res.write(head);
      // The rest comes only once the client holds the first 4 MiB, so billfold must not wait for the end.
      const held = await waitUntil(() => clientHasBytes, 8000).then(
        () => true,
        () => false,
      );
      if (held) res.end(tail);
      else res.destroy();
      return true;
    };
    const response = await fetch(`${billfold.url}/api/bill/GetSessionInfo.json`, {
      method: 'POST',
      headers: { 'x-csrf': '1', cookie: client.cookie!, 'content-type': 'application/x-www-form-urlencoded' },
      body: '',
    });
    expect(response.status).toBe(200);
    const chunks: Buffer[] = [];
    let size = 0;
    const reader = response.body!.getReader();
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      chunks.push(Buffer.from(read.value));
      size += read.value.length;
      if (size >= 4 * MIB) clientHasBytes = true;
    }
    expect(Buffer.concat(chunks).equals(Buffer.concat([head, tail]))).toBe(true);
  });

  it('answer 502 when a judged answer breaks off while billfold reads it, never a 500', async () => {
    bill.respond = async (request, forward, res) => {
      if (!request.url.endsWith('/GetSessionInfo.json')) return false;
      await forward();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"response_status":0,');
      setTimeout(() => res.destroy(), 50);
      return true;
    };
    const answer = await client.request('POST', '/api/bill/GetSessionInfo.json', {
      body: '',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expectDocumentedError(answer, 502, 'upstream_unavailable');
  });

  it('still judge a small BILL answer without Content-Length: BDC_1109 signs the provider out (the control)', async () => {
    const own = await signIn(billfold, 'demo', ['bill']);
    bill.respond = async (request, forward, res) => {
      if (!request.url.endsWith('/GetSessionInfo.json')) return false;
      await forward();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('\ufeff{"response_status":1,"response_message":"Error",');
      res.end('"response_data":{"error_code":"BDC_1109","error_message":"Session is invalid"}}');
      return true;
    };
    const answer = await own.request('POST', '/api/bill/GetSessionInfo.json', {
      body: '',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expectDocumentedError(answer, 401, 'upstream_session_expired');
  });
});
