import net from 'node:net';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { SANDBOX_MOUNTS } from '../../src/sandbox/sandbox.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { startHostileUpstream, type HostileUpstream } from '../support/hostile-upstream.js';
import { startInterposer, trickle, type Interposer } from '../support/interposer.js';
import { formatRaw } from '../support/raw-http.js';
import { uniquePrefix } from '../support/redis.js';
import { waitUntil } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

const MIB = 1024 * 1024;
const demo = SANDBOX_DEMO_CREDENTIALS;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

describe('an abort burst: a few hundred relays of a large, slow answer, each client gone at once', () => {
  let upstream: HostileUpstream;
  beforeAll(async () => {
    upstream = await startHostileUpstream();
    // After the stack's own teardown: the instances stop before their upstream does.
    return () => upstream.close();
  });
  // The hostile upstream alone, and each test's instance on its own embedded store.
  const stack = useStack(() => ({
    instances: 0,
    store: 'embedded',
    sandbox: false,
    env: {
      BILLINGPLATFORM_BASE_URL: upstream.baseUrl,
      ALLOW_INSECURE_UPSTREAMS: 'true',
      UPSTREAM_TIMEOUT_MS: '15000',
      RELAY_RATE_LIMIT: '0',
    },
  }));

  // One shared buffer: larger than the socket buffers, so an answer nobody reads cannot finish upstream.
  const large = Buffer.alloc(4 * MIB, 'z');

  /** Another user's call, timed; `count` in a row, sequentially. */
  const timeCalls = async (url: string, cookie: string, count: number) => {
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      const response = await fetch(`${url}/api/billingplatform/ACCOUNT/other`, {
        headers: { 'x-csrf': '1', cookie },
        signal: AbortSignal.timeout(20_000),
      });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      times.push(performance.now() - started);
    }
    return times;
  };

  for (const share of ['16', '0'] as const) {
    it(
      `leaves no upstream socket behind and keeps another user as fast as before (RELAY_MAX_CONCURRENT_PER_SESSION=${share})`,
      { timeout: 90_000 },
      async () => {
        const billfold = await stack.start({ RELAY_MAX_CONCURRENT_PER_SESSION: share });
        const signIn = async (username: string) => {
          const client = createCookieClient(billfold.url, 'billfold');
          expect((await client.post('/auth/billingplatform/login', { username, password: 'x' })).status).toBe(
            200,
          );
          return client.cookie!;
        };
        const attacker = await signIn('attacker');
        const victim = await signIn('victim');
        upstream.requests.length = 0;
        upstream.answer = (request) =>
          request.url.includes('other') ? { body: '{"ok":true}' } : { delayMs: 1500, body: large };
        await timeCalls(billfold.url, victim, 5); // warm the pool
        const before = await timeCalls(billfold.url, victim, 20);

        const { hostname, port } = new URL(billfold.url);
        const burstSize = 300;
        const sockets = Array.from({ length: burstSize }, (_, i) => {
          const socket = net.connect({ host: hostname, port: Number(port) }, () =>
            socket.write(
              formatRaw(billfold.url, {
                target: `/api/billingplatform/INVOICE/${i}`,
                headers: [
                  ['X-CSRF', '1'],
                  ['Cookie', attacker],
                ],
                close: false,
              }),
            ),
          );
          socket.on('error', () => undefined);
          return socket;
        });
        // Once the upstream holds what it will get (the share, or the whole pool), every client goes at once.
        const expected = share === '0' ? 256 : 16;
        const invoices = () => upstream.requests.filter((r) => r.url.includes('INVOICE')).length;
        await waitUntil(() => invoices() >= expected, 30_000);
        const reached = invoices();
        for (const socket of sockets) socket.destroy();
        const during = await timeCalls(billfold.url, victim, 20);
        const drainStarted = performance.now();
        await waitUntil(() => upstream.inFlight() === 0, 10_000);
        const drainedMs = performance.now() - drainStarted;
        const leftBehind = upstream.inFlight();
        const after = await timeCalls(billfold.url, victim, 20);

        const figures = {
          share,
          burst: burstSize,
          reachedUpstream: reached,
          victimMedianMsBefore: Math.round(median(before) * 10) / 10,
          victimMedianMsDuring: Math.round(median(during) * 10) / 10,
          victimMaxMsDuring: Math.round(Math.max(...during) * 10) / 10,
          victimMedianMsAfter: Math.round(median(after) * 10) / 10,
          upstreamAnswersLeftBehind: leftBehind,
          drainMs: Math.round(drainedMs),
          answersCutOffUpstream: upstream.abandonedAnswers(),
        };
        console.log(`abort burst figures: ${JSON.stringify(figures)}`);
        expect(leftBehind).toBe(0);
        // Generous bounds for a noisy machine; before the change the victim's call hung for good.
        expect(Math.max(...during)).toBeLessThan(5000);
        expect(median(after)).toBeLessThan(Math.max(50 * median(before), 500));
        if (share === '16') expect(reached).toBe(16);
      },
    );
  }
});

describe('Billbora renewal across two instances, with an upstream that trickles', () => {
  const stack = useStack({ instances: 0 });
  let billbora: Interposer;
  beforeAll(async () => {
    billbora = await startInterposer(stack.sandbox.url);
    return () => billbora.close();
  });
  beforeEach(() => {
    stack.sandbox.reset();
    billbora.respond = undefined;
  });

  /** Two instances on Redis under a prefix of their own, reaching Billbora through the interposer. */
  const startTwo = async () => {
    const env = {
      BILLBORA_BASE_URL: `${billbora.url}${SANDBOX_MOUNTS.billbora}`,
      REDIS_KEY_PREFIX: uniquePrefix(),
      UPSTREAM_TIMEOUT_MS: '1500',
      SESSION_CACHE: 'off',
    };
    return [await stack.start(env), await stack.start(env)] as const;
  };

  it(
    'lets exactly one refresh reach Billbora when its answer trickles past the lock’s lifetime; no token family is revoked',
    { timeout: 30_000 },
    async () => {
      const [a, b] = await startTwo();
      const client = createCookieClient(a.url, 'billfold');
      expect((await client.post('/auth/billbora/login', demo.billbora)).status).toBe(200);
      // The lock lives UPSTREAM_TIMEOUT_MS (1.5 s); the refresh answer takes about 2.4 s, a slice every
      // 120 ms, so no inactivity timer fires.
      let trickled = 0;
      billbora.respond = async (request, forward, res) => {
        if (!request.url.endsWith('/users/auth/refresh/')) return false;
        trickled++;
        trickle(res, await forward(), 20, 120);
        return true;
      };
      const before = stack.sandbox.billbora.refreshCalls();
      stack.sandbox.billbora.expireAccessTokens();
      const call = (url: string) =>
        fetch(`${url}/api/billbora/invoices/`, { headers: { 'x-csrf': '1', cookie: client.cookie! } }).then(
          (response) => response.status,
        );
      const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => call(i % 2 ? a.url : b.url)));
      expect(statuses).toEqual(Array(20).fill(200));
      expect(stack.sandbox.billbora.refreshCalls() - before).toBe(1);
      expect(trickled).toBe(1);
      expect(stack.sandbox.billbora.revokedFamilies()).toEqual([]);
      expect(stack.sandbox.supabase.revokedSessions()).toEqual([]);
      // Both instances use the renewed token from now on, without renewing again.
      expect(await call(a.url)).toBe(200);
      expect(await call(b.url)).toBe(200);
      expect(stack.sandbox.billbora.refreshCalls() - before).toBe(1);
    },
  );

  const presentedSupabaseTokens = () =>
    stack.sandbox.supabase.requests
      .filter((r) => r.query.includes('grant_type=refresh_token'))
      .map((r) => (JSON.parse(r.body) as { refresh_token: string }).refresh_token);

  it(
    'runs the organization switch under the renewal lock: it presents the Supabase token the renewal received, never the spent one',
    { timeout: 30_000 },
    async () => {
      const [a, b] = await startTwo();
      const client = createCookieClient(a.url, 'billfold');
      expect((await client.post('/auth/billbora/login', demo.billbora)).status).toBe(200);
      // Billbora's refresh token is dead, so the renewal goes through Supabase, slowly.
      stack.sandbox.billbora.expireAllSessions();
      stack.sandbox.supabase.setRefreshDelay(300);
      stack.sandbox.supabase.clearRequests();
      const relayed = fetch(`${a.url}/api/billbora/invoices/`, {
        headers: { 'x-csrf': '1', cookie: client.cookie! },
      });
      await waitUntil(() => stack.sandbox.supabase.requests.length > 0);
      const switched = await fetch(`${b.url}/auth/billbora/organization`, {
        method: 'POST',
        headers: { 'x-csrf': '1', cookie: client.cookie!, 'content-type': 'application/json' },
        body: JSON.stringify({ organizationId: 'org_other' }),
      });
      expect((await relayed).status).toBe(200);
      expect(switched.status).toBe(200);
      const presented = presentedSupabaseTokens();
      expect(presented).toHaveLength(2);
      expect(new Set(presented).size).toBe(2);
      expect(stack.sandbox.supabase.revokedSessions()).toEqual([]);
    },
  );

  it(
    'keeps the rotated Supabase token when the exchange after it fails, and presents that one next time',
    { timeout: 30_000 },
    async () => {
      const [a] = await startTwo();
      const client = createCookieClient(a.url, 'billfold');
      expect((await client.post('/auth/billbora/login', demo.billbora)).status).toBe(200);
      stack.sandbox.billbora.expireAllSessions();
      stack.sandbox.supabase.clearRequests();
      let failExchange = true;
      billbora.respond = (request, _forward, res) => {
        if (!request.url.endsWith('/users/auth/exchange/') || !failExchange) return false;
        failExchange = false;
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"server_error"}}');
        return true;
      };
      const failed = await client.get('/api/billbora/invoices/');
      expect(failed.status).toBe(502);
      const recovered = await client.get('/api/billbora/invoices/');
      expect(recovered.status).toBe(200);
      const presented = presentedSupabaseTokens();
      expect(presented).toHaveLength(2);
      expect(new Set(presented).size).toBe(2);
      expect(stack.sandbox.supabase.revokedSessions()).toEqual([]);
    },
  );
});
