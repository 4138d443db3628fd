import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient, type Answer, type CookieClient } from '../support/billfold-harness.js';
import type { BillfoldProcess } from '../support/billfold-process.js';
import { createOwnRedis, startOwnRedis, type OwnRedis } from '../support/redis-server.js';
import { useStack } from '../support/stack.js';
import { eventually, outcomeOf, sleep, timed } from './scale-support.js';

const STORE_TIMEOUT_MS = 500;
// What "quickly" means on a loaded 2-core CI machine: the timeout plus a generous margin.
const ANSWER_WITHIN_MS = STORE_TIMEOUT_MS + 1500;
const COOKIE = 'billfold';

const expectStoreUnavailable = ({ result, ms }: { result: Answer; ms: number }) => {
  expect(outcomeOf(result)).toBe('503 session_store_unavailable');
  expect(result.setCookies).toEqual([]);
  expect(ms).toBeLessThan(ANSWER_WITHIN_MS);
};

describe('Redis down when billfold starts', () => {
  // Each test brings a Redis of its own, not started yet, and one process on it.
  const stack = useStack({ instances: 0 });
  let redis: OwnRedis;
  let billfold: BillfoldProcess | undefined;
  afterEach(async () => {
    await billfold?.stop('SIGKILL');
    billfold = undefined;
    await redis.dispose();
  });

  it('starts, answers /readyz and store-bound requests 503 within the bound, and serves once Redis is up', async () => {
    redis = await createOwnRedis();
    billfold = await stack.spawn({ REDIS_URL: redis.url, STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS) });
    const client = createCookieClient(billfold.url, COOKIE);
    expect((await client.get('/healthz')).status).toBe(200);
    const ready = await timed(() => client.get('/readyz'));
    expect(ready.result.status).toBe(503);
    expect(ready.ms).toBeLessThan(ANSWER_WITHIN_MS);
    expectStoreUnavailable(
      await timed(() => client.post('/auth/billingplatform/login', demo.billingplatform)),
    );
    expect(client.cookie).toBeUndefined();

    await redis.start();
    await eventually('/readyz 200', async () =>
      (await client.get('/readyz')).status === 200 ? true : undefined,
    );
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    expect((await client.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
    expect(billfold.child.exitCode).toBeNull();
  });

  it('exits 0 promptly on SIGTERM while Redis has never answered', async () => {
    redis = await createOwnRedis();
    billfold = await stack.spawn({ REDIS_URL: redis.url });
    expect((await fetch(`${billfold.url}/readyz`)).status).toBe(503);
    const { result: code, ms } = await timed(() => billfold!.stop('SIGTERM'));
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5000);
    expect(billfold.lines.some((line) => line.includes('"billfold stopped"'))).toBe(true);
  });
});

describe('Redis that accepts connections and never replies', () => {
  let redis: OwnRedis;
  beforeAll(async () => {
    redis = await startOwnRedis();
  });
  afterAll(async () => {
    redis.resume();
    await redis.dispose();
  });
  const stack = useStack(() => ({
    store: { url: redis.url },
    env: { STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS) },
  }));

  // test/flow/store-outage.test.ts covers a relay here; these are the other calls that wait on the store.
  it('answers logins, session views and readiness within the bound, then recovers', async () => {
    const client = stack.client();
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    const stranger = stack.client();
    redis.pause();
    try {
      // Each needs the store first: the failed-login counters, the session record, the ping.
      expectStoreUnavailable(
        await timed(() => stranger.post('/auth/billingplatform/login', demo.billingplatform)),
      );
      expectStoreUnavailable(await timed(() => client.get('/auth/session')));
      const ready = await timed(() => client.get('/readyz'));
      expect(ready.result.status).toBe(503);
      expect(ready.ms).toBeLessThan(ANSWER_WITHIN_MS);
    } finally {
      redis.resume();
    }
    await eventually('the relay answering 200 again', async () =>
      (await client.get('/api/billingplatform/ACCOUNT/1001')).status === 200 ? true : undefined,
    );
    expect((await stranger.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
  });
});

describe('Redis killed under load', () => {
  const SESSIONS = 24;
  const CONCURRENCY = 16;
  // Each worker pauses between requests, so the run is a few hundred requests, not a benchmark.
  const PAUSE_MS = 120;

  let redis: OwnRedis;
  beforeAll(async () => {
    // Every write is fsynced to the append-only file before Redis replies, so SIGKILL loses nothing acknowledged.
    redis = await startOwnRedis({ appendOnly: true });
  });
  afterAll(() => redis.dispose());
  const stack = useStack(() => ({
    instances: 0,
    store: { url: redis.url },
    env: {
      STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS),
      // Every session here is the one demo user, signed in from one address: neither cap is under test.
      MAX_SESSIONS_PER_IDENTITY: '1000',
      LOGIN_MAX_SUCCESSES_PER_IP: '100000',
    },
  }));
  let instances: BillfoldProcess[];
  beforeAll(async () => {
    instances = await Promise.all([stack.spawn(), stack.spawn()]);
  }, 60_000);

  it('answers every request within the store timeout plus a margin, crashes nothing, and loses no session', async () => {
    const clientOn = (index: number) => createCookieClient(instances[index % instances.length]!.url, COOKIE);
    const sessions: CookieClient[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const client = clientOn(i);
      expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
      sessions.push(client);
    }

    const tally: Record<string, number> = {};
    const unanswered: string[] = [];
    const cookiesOn503: string[] = [];
    const answers: { endedAt: number; outcome: string }[] = [];
    let slowestMs = 0;
    let sent = 0;
    let running = true;
    const signedInDuringLoad: CookieClient[] = [];

    const request = async (n: number) => {
      // Mostly relays (one store read each), some session views, and a new login now and then.
      const kind = n % 10;
      const session = sessions[n % sessions.length]!;
      const instance = n % instances.length;
      let client = createCookieClient(instances[instance]!.url, COOKIE);
      client.cookie = session.cookie;
      sent++;
      const started = performance.now();
      try {
        let answer: Answer;
        if (kind === 0) {
          client = clientOn(instance);
          answer = await client.post('/auth/billingplatform/login', demo.billingplatform);
          if (answer.status === 200) signedInDuringLoad.push(client);
        } else if (kind <= 2) {
          answer = await client.get('/auth/session');
        } else {
          answer = await client.get('/api/billingplatform/ACCOUNT/1001');
        }
        const endedAt = performance.now();
        slowestMs = Math.max(slowestMs, endedAt - started);
        const outcome = outcomeOf(answer);
        tally[outcome] = (tally[outcome] ?? 0) + 1;
        answers.push({ endedAt, outcome });
        if (answer.status === 503 && answer.setCookies.length > 0) cookiesOn503.push(outcome);
      } catch (error) {
        unanswered.push(error instanceof Error ? error.message : String(error));
      }
    };
    let next = 0;
    const worker = async () => {
      while (running) {
        await request(next++);
        await sleep(PAUSE_MS);
      }
    };
    const workers = Array.from({ length: CONCURRENCY }, worker);

    await sleep(1000);
    const killedAt = performance.now();
    await redis.kill();
    await sleep(2000);
    await redis.start();
    const restartedAt = performance.now();
    await sleep(3500);
    running = false;
    await Promise.all(workers);

    // Sessions signed in before the outage, and during the load while Redis was up, all still work.
    const everyone = [...sessions, ...signedInDuringLoad];
    let lost = 0;
    for (const [i, session] of everyone.entries()) {
      const reader = clientOn(i + 1);
      reader.cookie = session.cookie;
      const view = await reader.get('/auth/session');
      if (view.body?.authenticated !== true) lost++;
    }
    const figures = {
      requestsSent: sent,
      requestsAnswered: answers.length,
      byOutcome: tally,
      slowestMs: Math.round(slowestMs),
      sessionsBefore: sessions.length,
      sessionsSignedInDuringLoad: signedInDuringLoad.length,
      sessionsLost: lost,
      outageMs: Math.round(restartedAt - killedAt),
      servingAgainAfterMs: Math.round(
        (answers.find((a) => a.endedAt > restartedAt && a.outcome === '200')?.endedAt ?? NaN) - restartedAt,
      ),
    };
    console.info(`Redis killed under load: ${JSON.stringify(figures)}`);

    expect(unanswered).toEqual([]);
    expect(answers.length).toBe(sent);
    expect(Object.keys(tally).sort()).toEqual(['200', '503 session_store_unavailable']);
    expect(cookiesOn503).toEqual([]);
    expect(slowestMs).toBeLessThan(ANSWER_WITHIN_MS);
    // Before the kill everything answered; after the restart it answered again.
    expect(answers.filter((a) => a.endedAt < killedAt && a.outcome !== '200')).toEqual([]);
    expect(answers.some((a) => a.endedAt > restartedAt && a.outcome === '200')).toBe(true);
    expect(answers.filter((a) => a.endedAt > restartedAt + 2500 && a.outcome !== '200')).toEqual([]);
    expect(lost).toBe(0);
    for (const instance of instances) expect(instance.child.exitCode).toBeNull();
  }, 60_000);
});
