import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { createMemoryBackend } from '../../src/session/memory-backend.js';
import type { SessionRecord } from '../../src/session/session-record.js';
import { connectRedis, uniquePrefix } from '../support/redis.js';
import {
  createTestMemoryStore,
  createTestRedisStore,
  TEST_LIMITS as limits,
  type TestStore,
} from '../support/session-stores.js';
import { createTestClock } from '../support/test-clock.js';

type Clock = ReturnType<typeof createTestClock>;
type OnStoreCall = (operation: string) => void;
const stores: Array<[string, (clock: Clock, onStoreCall?: OnStoreCall) => TestStore]> = [
  [
    'the embedded store',
    (clock, onStoreCall) => createTestMemoryStore({ clock, ...(onStoreCall && { onStoreCall }) }),
  ],
  [
    'Redis (connect-redis)',
    (clock, onStoreCall) => createTestRedisStore({ clock, ...(onStoreCall && { onStoreCall }) }),
  ],
];

describe.each(stores)('session repository on %s', (_name, makeStore) => {
  let clock = createTestClock();
  const opened: TestStore[] = [];
  let store: TestStore;
  const make = () => {
    clock = createTestClock();
    store = makeStore(clock);
    opened.push(store);
    return store.repository;
  };
  let repository = make();
  const fresh = (): SessionRecord => ({ createdAt: clock.now(), lastSeenAt: clock.now(), providers: {} });
  const bp = (sessionId: string) => ({ sessionId, user: 'demo', connectedAt: clock.now() });

  beforeEach(() => {
    repository = make();
  });
  afterAll(async () => {
    await Promise.all(opened.map((opening) => opening.close()));
  });

  it('creates and loads a session, and refuses to create over an existing id', async () => {
    await repository.create('sid-a', { ...fresh(), providers: { billingplatform: bp('up-1') } });
    const loaded = await repository.load('sid-a');
    expect(loaded?.record.providers.billingplatform?.sessionId).toBe('up-1');
    expect(await repository.create('sid-a', fresh())).toBeUndefined();
    expect((await repository.load('sid-a'))?.record.providers.billingplatform?.sessionId).toBe('up-1');
    expect(await repository.load('sid-unknown')).toBeUndefined();
  });

  it('ends a session after the idle timeout, measured on the server clock', async () => {
    await repository.create('sid-idle', fresh());
    clock.advance(limits.idleTimeoutMs - 1);
    expect(await repository.load('sid-idle')).toBeDefined();
    clock.advance(1);
    expect(await repository.load('sid-idle')).toBeUndefined();
  });

  it('ends a session at the absolute timeout however active it is', async () => {
    await repository.create('sid-abs', fresh());
    for (let elapsed = 0; elapsed < limits.absoluteTimeoutMs; elapsed += 20 * 60_000) {
      const loaded = await repository.load('sid-abs');
      if (!loaded) break;
      await repository.touch(loaded);
      clock.advance(20 * 60_000);
    }
    expect(await repository.load('sid-abs')).toBeUndefined();
  });

  it('slides the idle timer at most once a minute, so steady traffic causes no writes', async () => {
    await repository.create('sid-touch', fresh());
    const first = await repository.load('sid-touch');
    clock.advance(10_000);
    const untouched = await repository.touch(first!);
    expect(untouched?.sealed).toBe(first?.sealed);
    clock.advance(60_000);
    const touched = await repository.touch(first!);
    expect(touched?.record.lastSeenAt).toBe(clock.now());
    expect((await repository.load('sid-touch'))?.record.lastSeenAt).toBe(clock.now());
  });

  it('slides the idle timer with one write however many calls find it due at once', async () => {
    const calls: string[] = [];
    const counted = makeStore(clock, (operation) => calls.push(operation));
    opened.push(counted);
    const { repository: watched } = counted;
    await watched.create('sid-burst', fresh());
    const loaded = await watched.load('sid-burst');
    clock.advance(60_000);
    calls.length = 0;
    const touched = await Promise.all(Array.from({ length: 20 }, () => watched.touch(loaded!)));
    expect(calls.filter((operation) => operation === 'compare_and_set')).toHaveLength(1);
    expect(new Set(touched.map((session) => session?.record.lastSeenAt))).toEqual(new Set([clock.now()]));
  });

  it('never lets a writer holding a stale copy overwrite a newer change (no lost update)', async () => {
    await repository.create('sid-cas', { ...fresh(), providers: { billingplatform: bp('bp-1') } });
    const staleCopy = await repository.load('sid-cas');
    // Another request renews a credential...
    await repository.update('sid-cas', (record) => ({
      ...record,
      providers: { ...record.providers, billogram: { basic: 'renewed', user: 'u', connectedAt: 1 } },
    }));
    // ...while this one, holding the older copy, changes something else.
    await repository.update(
      'sid-cas',
      (record) => ({ ...record, providers: { ...record.providers, billingplatform: bp('bp-2') } }),
      staleCopy,
    );
    const stored = await repository.load('sid-cas');
    expect(stored?.record.providers.billogram?.basic).toBe('renewed');
    expect(stored?.record.providers.billingplatform?.sessionId).toBe('bp-2');
  });

  it('applies concurrent updates one after another, none lost', async () => {
    await repository.create('sid-many', fresh());
    const start = await repository.load('sid-many');
    await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        repository.update(
          'sid-many',
          (record) => ({ ...record, device: `${record.device ?? ''}${i}` }),
          start,
        ),
      ),
    );
    const device = (await repository.load('sid-many'))?.record.device ?? '';
    expect(Array.from(device).sort().join('')).toBe('01234');
  });

  it('cannot bring back a session destroyed while an update was in flight', async () => {
    await repository.create('sid-gone', fresh());
    const copy = await repository.load('sid-gone');
    await repository.destroy('sid-gone');
    const result = await repository.update(
      'sid-gone',
      (record) => ({ ...record, lastSeenAt: clock.now() }),
      copy,
    );
    expect(result).toBeUndefined();
    expect(await store.repository.backend.get('s:sid-gone')).toBeNull();
  });

  it('re-seals a record under the current key when it changes', async () => {
    await repository.create('sid-seal', fresh());
    const loaded = await repository.load('sid-seal');
    expect(loaded?.sealed.startsWith('k1.')).toBe(true);
  });
});

describe('session repository when the store fails', () => {
  it('answers 503 session_store_unavailable within the store timeout instead of treating the session as absent', async () => {
    const clock = createTestClock();
    const hanging = {
      ...createMemoryBackend({ clock, maxEntries: 1 }),
      get: () => new Promise<null>(() => undefined),
    };
    const { repository } = createTestMemoryStore({ clock, backend: hanging, timeoutMs: 50 });
    const started = performance.now();
    await expect(repository.load('any')).rejects.toMatchObject({
      code: 'session_store_unavailable',
      status: 503,
    });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('writes every Redis key with a TTL matching the session deadline', async () => {
    const prefix = uniquePrefix();
    const clock = createTestClock(Date.now());
    const store = createTestRedisStore({ clock, prefix });
    const { repository } = store;
    await repository.create('sid-ttl', { createdAt: clock.now(), lastSeenAt: clock.now(), providers: {} });
    const redis = await connectRedis();
    const ttl = await redis.pTTL(`${prefix}s:sid-ttl`);
    expect(ttl).toBeGreaterThan(limits.idleTimeoutMs - 5000);
    expect(ttl).toBeLessThanOrEqual(limits.idleTimeoutMs);
    redis.destroy();
    await store.close();
  });
});
