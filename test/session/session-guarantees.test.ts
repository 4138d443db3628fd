import signature from 'cookie-signature';
import express from 'express';
import fc from 'fast-check';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config, EncryptionKey } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { createErrorHandler } from '../../src/middleware/error-handler.js';
import { beginRequest } from '../../src/middleware/request-context.js';
import { createSessionMiddleware } from '../../src/middleware/session-middleware.js';
import { createMemoryBackend, type MemoryBackend } from '../../src/session/memory-backend.js';
import { createRedisConnection, type RedisConnection } from '../../src/session/redis-connection.js';
import type { SessionRecord } from '../../src/session/session-record.js';
import { uniquePrefix } from '../support/redis.js';
import { startOwnRedisCluster, type OwnRedisCluster } from '../support/redis-cluster.js';
import { startOwnRedis, type OwnRedis } from '../support/redis-server.js';
import { createTestMemoryStore, createTestRedisStore, type TestStore } from '../support/session-stores.js';
import { createTestClock } from '../support/test-clock.js';
import { randomEncryptionKey, testConfig } from '../support/test-config.js';

// Each guarantee of the session layer, on each store: the embedded one, and connect-redis's RedisStore
// on one Redis and on a three-master Redis Cluster. The Redis ones are servers of the suite's own, so
// it can freeze them.

const STORE_TIMEOUT_MS = 300;
// What "within the store timeout" means on a loaded 2-core CI machine: the timeout plus a wide margin.
const FAIL_WITHIN_MS = STORE_TIMEOUT_MS + 2000;
const config = testConfig();
const [k1] = config.session.encryptionKeys as [EncryptionKey];
const logger = createLogger('silent');

/** One kind of store under test: stores sharing one place, raw access to it, and a way to freeze it. */
interface Place {
  open(options?: { encryptionKeys?: readonly EncryptionKey[] }): TestStore;
  rawGet(sessionId: string): Promise<string | null>;
  rawSet(sessionId: string, value: string): Promise<void>;
  freeze(): void;
  thaw(): void;
  dispose(): Promise<void>;
}

const clock = createTestClock(Date.now());

function memoryPlace(): Place {
  let frozen = false;
  const memory = createMemoryBackend({ clock, maxEntries: 1000, sweepIntervalMs: 0 });
  const hang = <T>(run: () => Promise<T>) => (frozen ? new Promise<T>(() => undefined) : run());
  const backend: MemoryBackend = {
    ...memory,
    get: (key) => hang(() => memory.get(key)),
    compareAndSet: (...args) => hang(() => memory.compareAndSet(...args)),
    take: (key) => hang(() => memory.take(key)),
  };
  return {
    open: (options = {}) =>
      createTestMemoryStore({ clock, backend, timeoutMs: STORE_TIMEOUT_MS, ...options }),
    rawGet: (sessionId) => memory.get(`s:${sessionId}`),
    rawSet: async (sessionId, value) => {
      await memory.compareAndSet(`s:${sessionId}`, await memory.get(`s:${sessionId}`), value, 60_000);
    },
    freeze: () => (frozen = true),
    thaw: () => (frozen = false),
    dispose: () => memory.close(),
  };
}

function redisPlace(
  target: { url: string } | { clusterNodes: string[] },
  frost: Pick<Place, 'freeze' | 'thaw'>,
) {
  const prefix = uniquePrefix();
  const opened: TestStore[] = [];
  const raw: RedisConnection = createRedisConnection({
    ...target,
    timeoutMs: 5000,
    onError: () => undefined,
  });
  const place: Place = {
    open: (options = {}) => {
      const store = createTestRedisStore({
        clock,
        ...target,
        prefix,
        timeoutMs: STORE_TIMEOUT_MS,
        ...options,
      });
      opened.push(store);
      return store;
    },
    rawGet: async (sessionId) => {
      await raw.ready();
      return raw.client.get(`${prefix}s:${sessionId}`);
    },
    rawSet: async (sessionId, value) => {
      await raw.ready();
      await raw.client.set(`${prefix}s:${sessionId}`, value, { PX: 60_000 });
    },
    ...frost,
    dispose: async () => {
      await Promise.all([...opened.map((store) => store.close()), raw.close()]);
    },
  };
  return place;
}

let ownRedis: OwnRedis;
let cluster: OwnRedisCluster;
const places: Record<string, () => Place> = {
  'the embedded store': memoryPlace,
  'Redis through connect-redis': () =>
    redisPlace({ url: ownRedis.url }, { freeze: () => ownRedis.pause(), thaw: () => ownRedis.resume() }),
  'a three-master Redis Cluster through connect-redis': () =>
    redisPlace(
      { clusterNodes: cluster.nodes },
      {
        freeze: () => [0, 1, 2].forEach((node) => cluster.pause(node)),
        thaw: () => [0, 1, 2].forEach((node) => cluster.resume(node)),
      },
    ),
};

beforeAll(async () => {
  [ownRedis, cluster] = await Promise.all([startOwnRedis(), startOwnRedisCluster()]);
}, 60_000);
afterAll(async () => {
  // Unset when beforeAll failed part-way.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  await Promise.all([ownRedis?.dispose(), cluster?.dispose()]);
});

const bp = (sessionId: string) => ({ sessionId, user: 'demo', connectedAt: clock.now() });
const record = (providers: SessionRecord['providers'] = {}): SessionRecord => ({
  createdAt: clock.now(),
  lastSeenAt: clock.now(),
  providers,
});
let ids = 0;
const newId = () => `sid-${process.pid}-${++ids}-${Math.random().toString(36).slice(2)}`;
const cookieFor = (sessionId: string, secret = config.session.secrets[0] ?? '') =>
  `${config.session.cookieName}=s:${encodeURIComponent(signature.sign(sessionId, secret))}`;

/**
 * An Express app with billfold's express-session set-up over `store`. `PUT /device` changes the
 * session and lets express-session save it as the response ends, after `hold` settles.
 */
function sessionApp(store: TestStore, appConfig: Config = config) {
  let hold: Promise<void> = Promise.resolve();
  let entered = gate();
  const app = express();
  app.use((req, res, next) => {
    beginRequest(req, res, logger);
    next();
  });
  app.use(createSessionMiddleware(appConfig, store));
  app.put('/device/:device', async (req, res) => {
    req.session.device = req.params.device;
    entered.open();
    await hold;
    res.status(204).end();
  });
  app.get('/session', (req, res) => {
    res.json({ sessionId: req.session.createdAt === undefined ? null : req.sessionID });
  });
  app.use(createErrorHandler(logger));
  return {
    app,
    /** Holds the next `PUT /device` until `until` settles; resolves once it has loaded the session. */
    holdUntil: (until: Promise<void>): Promise<void> => {
      hold = until;
      entered = gate();
      return entered.promise;
    },
  };
}

/** A promise and the function that settles it. */
function gate() {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe.each(Object.keys(places))('session guarantees on %s', (kind) => {
  let place: Place;
  let store: TestStore;
  beforeAll(() => {
    place = places[kind]!();
    store = place.open();
  });
  afterAll(async () => {
    place.thaw();
    await place.dispose();
  });

  /**
   * A session with a BillingPlatform credential, and a request that loads it through express-session,
   * changes it and has it saved as the response ends, with `meanwhile` run after the load.
   */
  const whileExpressSessionHoldsACopy = async (meanwhile: (sid: string) => Promise<unknown>) => {
    const sid = newId();
    await store.repository.create(sid, record({ billingplatform: bp('bp-1') }));
    const { app, holdUntil } = sessionApp(store);
    const held = gate();
    const loaded = holdUntil(held.promise);
    const answered = request(app)
      .put('/device/held-copy')
      .set('cookie', cookieFor(sid))
      .then((answer) => answer);
    await loaded;
    await meanwhile(sid);
    held.open();
    expect((await answered).status).toBe(204);
    return sid;
  };

  describe('no lost update', () => {
    it('express-session’s save of a copy loaded before another change does not overwrite that change', async () => {
      // Another writer (a renewal on the relay) changes the session while express-session holds a copy.
      const sid = await whileExpressSessionHoldsACopy((id) =>
        store.repository.update(id, (current) => ({
          ...current,
          providers: { ...current.providers, billingplatform: bp('bp-renewed') },
        })),
      );
      const stored = await store.repository.load(sid);
      expect(stored?.record.providers.billingplatform?.sessionId).toBe('bp-renewed');
    });

    it('50 concurrent updates of one session: each is applied or refused as too busy, none lost', async () => {
      const sid = newId();
      const created = await store.repository.create(sid, record());
      const outcomes = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          store.repository.update(
            sid,
            (current) => ({ ...current, device: `${current.device ?? ''}[${i}]` }),
            created,
          ),
        ),
      );
      const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
      for (const outcome of refused) {
        expect(outcome.reason).toMatchObject({ code: 'session_store_unavailable', status: 503 });
      }
      const device = (await store.repository.load(sid))?.record.device ?? '';
      expect(device.match(/\[\d+\]/g)?.length).toBe(50 - refused.length);
      expect(refused.length).toBeLessThan(50);
    });
  });

  describe('no resurrection after logout', () => {
    it('express-session’s closing save cannot bring back a session destroyed while the request ran', async () => {
      // Logged out (another tab, an operator) while that request was still running.
      const sid = await whileExpressSessionHoldsACopy((id) => store.repository.destroy(id));
      expect(await place.rawGet(sid)).toBeNull();
      expect(await store.repository.load(sid)).toBeUndefined();
    });

    it('stays destroyed whatever 50 concurrent writers holding older copies do', async () => {
      const sid = newId();
      const created = await store.repository.create(sid, record());
      const writers = Array.from({ length: 50 }, (_, i) =>
        store.repository.update(sid, (current) => ({ ...current, device: `w${i}` }), created),
      );
      const destroying = store.repository.destroy(sid);
      await Promise.allSettled([...writers, destroying]);
      // Whatever order they landed in, none brought it back once the destroy had happened...
      expect(await place.rawGet(sid)).toBeNull();
      // ...and no writer still holding a copy from before it can.
      const late = await Promise.all(
        Array.from({ length: 50 }, () =>
          store.repository.update(sid, (current) => ({ ...current, device: 'late' }), created),
        ),
      );
      expect(late.every((result) => result === undefined)).toBe(true);
      expect(await place.rawGet(sid)).toBeNull();
    });
  });

  describe('sealed records bound to their session id', () => {
    it('stores nothing readable: no credential, no JSON', async () => {
      const sid = newId();
      await store.repository.create(sid, record({ billingplatform: bp('upstream-secret-123') }));
      const raw = (await place.rawGet(sid)) ?? '';
      expect(raw).toMatch(/^k1\.[A-Za-z0-9_-]+$/);
      expect(raw).not.toContain('upstream-secret-123');
      expect(Buffer.from(raw.slice(3), 'base64url').toString('latin1')).not.toContain('upstream-secret');
    });

    it('opens no record copied under another session’s id, nor one altered by a single character', async () => {
      const victim = newId();
      await store.repository.create(victim, record({ billingplatform: bp('victim-secret') }));
      const sealed = (await place.rawGet(victim)) ?? '';
      await fc.assert(
        fc.asyncProperty(fc.string({ minLength: 1, maxLength: 40 }), fc.nat(), async (other, at) => {
          const attacker = `${newId()}${other}`;
          await place.rawSet(attacker, sealed);
          expect(await store.repository.load(attacker)).toBeUndefined();
          const index = 3 + (at % (sealed.length - 3));
          const flipped = sealed[index] === 'A' ? 'B' : 'A';
          await place.rawSet(victim, `${sealed.slice(0, index)}${flipped}${sealed.slice(index + 1)}`);
          expect(await store.repository.load(victim)).toBeUndefined();
        }),
        { numRuns: 25 },
      );
      // The untouched value still opens under its own id.
      await place.rawSet(victim, sealed);
      expect((await store.repository.load(victim))?.record.providers.billingplatform?.sessionId).toBe(
        'victim-secret',
      );
    });
  });

  describe('id rotation', () => {
    it('express-session’s regenerate gives a new id and the old one is dead at once', async () => {
      const sid = newId();
      await store.repository.create(sid, record({ billingplatform: bp('bp-1') }));
      const app = express();
      app.use((req, res, next) => {
        beginRequest(req, res, logger);
        next();
      });
      app.use(createSessionMiddleware(config, store));
      app.post('/rotate', (req, res, next) => {
        const carried = { ...req.session.providers };
        req.session.regenerate((error: unknown) => {
          if (error) {
            next(error);
            return;
          }
          Object.assign(req.session, record(carried));
          res.json({ sessionId: req.sessionID });
        });
      });
      app.use(createErrorHandler(logger));
      const answer = await request(app).post('/rotate').set('cookie', cookieFor(sid));
      expect(answer.status).toBe(200);
      const rotated = answer.body.sessionId as string;
      expect(rotated).not.toBe(sid);
      expect(String(answer.headers['set-cookie'])).toContain(`${config.session.cookieName}=s%3A${rotated}.`);
      expect(await place.rawGet(sid)).toBeNull();
      expect((await store.repository.load(rotated))?.record.providers.billingplatform?.sessionId).toBe(
        'bp-1',
      );
    });
  });

  describe('fail closed', () => {
    it('a store that stops answering is a 503 within STORE_TIMEOUT_MS, never "signed out", and loses nothing', async () => {
      const sid = newId();
      await store.repository.create(sid, record({ billingplatform: bp('kept') }));
      const { app } = sessionApp(store);
      place.freeze();
      try {
        const started = performance.now();
        const answer = await request(app).get('/session').set('cookie', cookieFor(sid));
        expect(performance.now() - started).toBeLessThan(FAIL_WITHIN_MS);
        expect(answer.status).toBe(503);
        expect(answer.body.error.code).toBe('session_store_unavailable');
        const writing = performance.now();
        await expect(
          store.repository.update(sid, (current) => ({ ...current, device: 'during outage' })),
        ).rejects.toMatchObject({ code: 'session_store_unavailable', status: 503 });
        expect(performance.now() - writing).toBeLessThan(FAIL_WITHIN_MS);
      } finally {
        place.thaw();
      }
      await waitFor(async () => (await store.repository.load(sid).catch(() => undefined)) !== undefined);
      expect((await store.repository.load(sid))?.record.providers.billingplatform?.sessionId).toBe('kept');
    });
  });

  describe('key rotation without logout', () => {
    it('reads records sealed under a retired key, re-seals them under the new one, and keeps them across both steps', async () => {
      const sid = newId();
      await store.repository.create(sid, record({ billingplatform: bp('rotated') }));
      const k2 = { id: 'k2', key: Buffer.from(randomEncryptionKey('k2').split(':')[1] ?? '', 'base64url') };
      // Step one: k2 is added in front; k1 still opens what it sealed.
      const both = place.open({ encryptionKeys: [k2, k1] });
      const loaded = await both.repository.load(sid);
      expect(loaded?.record.providers.billingplatform?.sessionId).toBe('rotated');
      // The next write (here the relay's touch, sliding the idle timer) re-seals it under k2.
      clock.advance(120_000);
      await both.repository.touch(loaded!);
      expect((await place.rawGet(sid))?.startsWith('k2.')).toBe(true);
      // Step two: k1 is retired; the session is still signed in.
      const onlyNew = place.open({ encryptionKeys: [k2] });
      expect((await onlyNew.repository.load(sid))?.record.providers.billingplatform?.sessionId).toBe(
        'rotated',
      );
      // And the cookie signed under a retired signing secret still verifies while it is listed.
      const { app } = sessionApp(
        onlyNew,
        testConfig({ SESSION_SECRETS: `new-secret-${'x'.repeat(40)},${config.session.secrets[0]}` }),
      );
      const answer = await request(app).get('/session').set('cookie', cookieFor(sid));
      expect(answer.body.sessionId).toBe(sid);
    });
  });
});

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('condition not reached');
}
