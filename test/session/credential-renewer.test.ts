import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AppError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import type { SessionRecord } from '../../src/session/session-record.js';
import type { LoadedSession, SessionRepository } from '../../src/session/session-repository.js';
import type { BillboraAdapter, BillboraJwtCredential } from '../../src/upstream/billbora/billbora-adapter.js';
import { createMemoryBackend } from '../../src/session/memory-backend.js';
import { createCredentialRenewer, disconnectProvider } from '../../src/upstream/credential-renewer.js';
import type { RenewalContext } from '../../src/upstream/provider-adapter.js';
import { uniquePrefix } from '../support/redis.js';
import { createTestMemoryStore, createTestRedisStore, type TestStore } from '../support/session-stores.js';
import { createTestClock, type TestClock } from '../support/test-clock.js';

const logger = createLogger('silent');

/** A Billbora-like adapter whose renewal is slow and counted, with single-use refresh tokens. */
function countingAdapter(options: { delayMs: number; fail?: boolean }) {
  let renewals = 0;
  const used = new Set<string>();
  const adapter = {
    id: 'billbora',
    loginSchema: z.never(),
    secretsOf: (credential: BillboraJwtCredential) => [credential.access, credential.refresh],
    async renew(credential: BillboraJwtCredential) {
      renewals++;
      if (used.has(credential.refresh)) throw new Error('refresh token reused: family revoked');
      used.add(credential.refresh);
      await new Promise((resolve) => setTimeout(resolve, options.delayMs));
      if (options.fail) throw new AppError('invalid_credentials', { provider: 'billbora' });
      return { ...credential, access: `access-${renewals + 1}`, refresh: `refresh-${renewals + 1}` };
    },
  } as unknown as BillboraAdapter;
  return { adapter, renewals: () => renewals };
}

const jwt = (n: number): BillboraJwtCredential => ({
  mode: 'jwt',
  access: `access-${n}`,
  refresh: `refresh-${n}`,
  accessExpiresAt: 0,
  organization: { id: 'org_demo', name: 'Demo' },
  user: 'demo@example.com',
  connectedAt: 0,
});

async function mustCreate(
  repository: SessionRepository,
  id: string,
  record: SessionRecord,
): Promise<LoadedSession> {
  const created = await repository.create(id, record);
  if (!created) throw new Error(`session ${id} already exists`);
  return created;
}

function setup(
  makeStore: (clock: TestClock) => TestStore,
  adapter: BillboraAdapter,
  lock: { lockTtlMs: number; renewalDeadlineMs: number } = { lockTtlMs: 5000, renewalDeadlineMs: 15_000 },
) {
  const clock = createTestClock(Date.now());
  const { repository } = makeStore(clock);
  const renewer = createCredentialRenewer({
    adapters: { billbora: adapter },
    repository,
    clock,
    logger,
    ...lock,
    pollMs: 5,
  });
  return { clock, repository, renewer };
}

describe('single-flight credential renewal', () => {
  const backends: TestStore[] = [];
  afterAll(async () => {
    await Promise.all(backends.map((b) => b.close()));
  });

  it('lets exactly one of 50 concurrent renewals in one process reach the upstream; all get the new token', async () => {
    const { adapter, renewals } = countingAdapter({ delayMs: 30 });
    const { clock, repository, renewer } = setup((clock) => createTestMemoryStore({ clock }), adapter);
    const now = clock.now();
    const session = await mustCreate(repository, 'sid-1', {
      createdAt: now,
      lastSeenAt: now,
      providers: { billbora: jwt(1) },
    });
    const results = await Promise.all(
      Array.from({ length: 50 }, () => renewer.renew(session, 'billbora', jwt(1))),
    );
    expect(renewals()).toBe(1);
    expect(new Set(results.map((r) => (r.credential as BillboraJwtCredential).access))).toEqual(
      new Set(['access-2']),
    );
    expect((await repository.load('sid-1'))?.record.providers.billbora).toMatchObject({
      access: 'access-2',
      refresh: 'refresh-2',
    });
  });

  it('joins concurrent renewals in one process before the store: one lock attempt for 50 callers', async () => {
    const { adapter, renewals } = countingAdapter({ delayMs: 30 });
    let lockAttempts = 0;
    const { clock, repository, renewer } = setup((clock) => {
      const backend = createMemoryBackend({ clock, maxEntries: 1000, sweepIntervalMs: 0 });
      const acquire = backend.acquireLock.bind(backend);
      backend.acquireLock = (...args) => {
        lockAttempts++;
        return acquire(...args);
      };
      return createTestMemoryStore({ clock, backend });
    }, adapter);
    const now = clock.now();
    const session = await mustCreate(repository, 'sid-flight', {
      createdAt: now,
      lastSeenAt: now,
      providers: { billbora: jwt(1) },
    });
    await Promise.all(Array.from({ length: 50 }, () => renewer.renew(session, 'billbora', jwt(1))));
    expect(renewals()).toBe(1);
    // Without the in-process join, every caller would poll the store's lock until the renewal ends.
    expect(lockAttempts).toBe(1);
  });

  it('lets exactly one renewal through across two instances sharing Redis, through the lock in the store', async () => {
    const prefix = uniquePrefix();
    const { adapter, renewals } = countingAdapter({ delayMs: 50 });
    const instances = [0, 1].map(() => {
      return setup((clock) => {
        const store = createTestRedisStore({ clock, prefix, timeoutMs: 2000 });
        backends.push(store);
        return store;
      }, adapter);
    });
    const [a, b] = instances as [ReturnType<typeof setup>, ReturnType<typeof setup>];
    const now = a.clock.now();
    const created = await mustCreate(a.repository, 'sid-2', {
      createdAt: now,
      lastSeenAt: now,
      providers: { billbora: jwt(1) },
    });
    const loadedByB = (await b.repository.load('sid-2'))!;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2 ? a.renewer.renew(created, 'billbora', jwt(1)) : b.renewer.renew(loadedByB, 'billbora', jwt(1)),
      ),
    );
    expect(renewals()).toBe(1);
    expect(new Set(results.map((r) => (r.credential as BillboraJwtCredential).access))).toEqual(
      new Set(['access-2']),
    );
  });

  it('marks the provider disconnected when the upstream refuses the renewal', async () => {
    const { adapter } = countingAdapter({ delayMs: 1, fail: true });
    const { clock, repository, renewer } = setup((clock) => createTestMemoryStore({ clock }), adapter);
    const now = clock.now();
    const session = await mustCreate(repository, 'sid-3', {
      createdAt: now,
      lastSeenAt: now,
      providers: { billbora: jwt(1), billogram: { basic: 'b', user: 'u', connectedAt: now } },
    });
    await expect(renewer.renew(session, 'billbora', jwt(1))).rejects.toMatchObject({
      code: 'upstream_session_expired',
    });
    const stored = await repository.load('sid-3');
    expect(stored?.record.providers.billbora).toBeUndefined();
    expect(stored?.record.providers.billogram).toBeDefined();
  });

  it('stores no renewal for a provider signed out while it ran', async () => {
    let signOut: () => Promise<unknown> = () => Promise.resolve();
    const { adapter, renewals } = scriptedAdapter(async (credential) => {
      await signOut();
      return { ...credential, access: 'access-2', refresh: 'refresh-2' };
    });
    const { clock, repository, renewer } = setup((clock) => createTestMemoryStore({ clock }), adapter);
    const now = clock.now();
    const session = await mustCreate(repository, 'sid-gone', {
      createdAt: now,
      lastSeenAt: now,
      providers: { billbora: jwt(1), billogram: { basic: 'b', user: 'u', connectedAt: now } },
    });
    signOut = () =>
      repository.update('sid-gone', (record) => {
        delete record.providers.billbora;
        return record;
      });
    await expect(renewer.renew(session, 'billbora', jwt(1))).rejects.toMatchObject({
      code: 'provider_not_connected',
      provider: 'billbora',
    });
    expect(renewals()).toBe(1);
    const stored = await repository.load('sid-gone');
    expect(stored?.record.providers.billbora).toBeUndefined();
    expect(stored?.record.providers.billogram).toBeDefined();
  });

  it('disconnects only the credential that failed: a newer one stored meanwhile stays', async () => {
    const { adapter } = countingAdapter({ delayMs: 1 });
    const { clock, repository } = setup((clock) => createTestMemoryStore({ clock }), adapter);
    const now = clock.now();
    await mustCreate(repository, 'sid-newer', {
      createdAt: now,
      lastSeenAt: now,
      providers: { billbora: jwt(2) },
    });
    await disconnectProvider(repository, 'sid-newer', adapter, jwt(1));
    expect((await repository.load('sid-newer'))?.record.providers.billbora).toMatchObject({
      access: 'access-2',
    });
    await disconnectProvider(repository, 'sid-newer', adapter, jwt(2));
    // It was the last provider: the session is over.
    expect(await repository.load('sid-newer')).toBeUndefined();
  });

  it('does not renew again when the stored credential is already newer than the one that failed', async () => {
    const { adapter, renewals } = countingAdapter({ delayMs: 1 });
    const { clock, repository, renewer } = setup((clock) => createTestMemoryStore({ clock }), adapter);
    const now = clock.now();
    const session = await mustCreate(repository, 'sid-4', {
      createdAt: now,
      lastSeenAt: now,
      providers: { billbora: jwt(7) },
    });
    const result = await renewer.renew(session, 'billbora', jwt(1));
    expect(renewals()).toBe(0);
    expect((result.credential as BillboraJwtCredential).access).toBe('access-7');
  });
});

/** An adapter whose renewal is whatever the test makes of it, counted. */
function scriptedAdapter(
  renew: (credential: BillboraJwtCredential, context: RenewalContext) => Promise<BillboraJwtCredential>,
) {
  let renewals = 0;
  const adapter = {
    id: 'billbora',
    loginSchema: z.never(),
    secretsOf: (credential: BillboraJwtCredential) => [credential.access, credential.refresh],
    renew(credential: BillboraJwtCredential, context: RenewalContext) {
      renewals++;
      return renew(credential, context);
    },
  } as unknown as BillboraAdapter;
  return { adapter, renewals: () => renewals };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Fails instead of hanging when `promise` does not settle within `ms`. */
const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise, sleep(ms).then(() => Promise.reject(new Error(`still pending after ${ms} ms`)))]);

describe('the renewal lock', () => {
  const backends: TestStore[] = [];
  afterAll(async () => {
    await Promise.all(backends.map((b) => b.close()));
  });
  const twoInstances = (adapter: BillboraAdapter, lock: { lockTtlMs: number; renewalDeadlineMs: number }) => {
    const prefix = uniquePrefix();
    return [0, 1].map(() =>
      setup(
        (clock) => {
          const store = createTestRedisStore({ clock, prefix, timeoutMs: 2000 });
          backends.push(store);
          return store;
        },
        adapter,
        lock,
      ),
    ) as [ReturnType<typeof setup>, ReturnType<typeof setup>];
  };
  const seed = async (instance: ReturnType<typeof setup>, id: string, credential = jwt(1)) => {
    const now = instance.clock.now();
    return mustCreate(instance.repository, id, {
      createdAt: now,
      lastSeenAt: now,
      providers: { billbora: credential },
    });
  };

  it('is extended while a renewal outlives its lifetime, so a second instance waits instead of presenting the spent token', async () => {
    const { adapter, renewals } = countingAdapter({ delayMs: 600 });
    const [a, b] = twoInstances(adapter, { lockTtlMs: 150, renewalDeadlineMs: 3000 });
    const session = await seed(a, 'sid-lock-1');
    const first = a.renewer.renew(session, 'billbora', jwt(1));
    await sleep(300); // twice the lock's lifetime
    const second = b.renewer.renew((await b.repository.load('sid-lock-1'))!, 'billbora', jwt(1));
    const results = await Promise.all([first, second]);
    expect(renewals()).toBe(1);
    expect(results.map((r) => (r.credential as BillboraJwtCredential).refresh)).toEqual([
      'refresh-2',
      'refresh-2',
    ]);
  });

  it('cancels a renewal past its deadline (its upstream calls aborted) and frees the lock for the next one', async () => {
    let seen: AbortSignal | undefined;
    let hang = true;
    const { adapter, renewals } = scriptedAdapter(async (credential, context) => {
      seen = context.signal;
      if (hang)
        await new Promise((_resolve, reject) =>
          context.signal.addEventListener('abort', () => reject(context.signal.reason as Error)),
        );
      return { ...credential, access: 'access-9', refresh: 'refresh-9' };
    });
    const [a] = twoInstances(adapter, { lockTtlMs: 200, renewalDeadlineMs: 400 });
    const session = await seed(a, 'sid-lock-2');
    await expect(within(a.renewer.renew(session, 'billbora', jwt(1)), 5000)).rejects.toMatchObject({
      code: 'upstream_timeout',
    });
    expect(seen?.aborted).toBe(true);
    hang = false;
    const next = await within(a.renewer.renew(session, 'billbora', jwt(1)), 5000);
    expect((next.credential as BillboraJwtCredential).access).toBe('access-9');
    expect(renewals()).toBe(2);
  });

  it('is fenced: a holder whose lock changed hands is stopped before it presents a token', async () => {
    let presented = 0;
    let signal: AbortSignal | undefined;
    const [a] = twoInstances(
      scriptedAdapter(async (credential, context) => {
        signal = context.signal;
        await sleep(100);
        await context.fence();
        presented++;
        return { ...credential, access: 'access-2', refresh: 'refresh-2' };
      }).adapter,
      { lockTtlMs: 5000, renewalDeadlineMs: 10_000 },
    );
    const session = await seed(a, 'sid-lock-3');
    const renewing = a.renewer.renew(session, 'billbora', jwt(1));
    await sleep(30);
    // The lock lapsed and another holder took it (what a stalled process would find on waking).
    const lock = 'l:renew:sid-lock-3:billbora';
    await a.repository.backend.delete(lock);
    expect(await a.repository.backend.acquireLock(lock, 'someone-else', 5000)).toBe(true);
    await expect(within(renewing, 5000)).rejects.toBeInstanceOf(AppError);
    expect(presented).toBe(0);
    expect(signal?.aborted).toBe(true);
    expect((await a.repository.load('sid-lock-3'))?.record.providers.billbora).toMatchObject({
      access: 'access-1',
    });
  });

  it('keeps every rotated token a renewal received when it then fails', async () => {
    const [a] = twoInstances(
      scriptedAdapter((credential, context) => {
        context.keep({ ...credential, supabaseRefresh: 'supabase-rotated' });
        return Promise.reject(new AppError('upstream_unavailable', { provider: 'billbora' }));
      }).adapter,
      { lockTtlMs: 5000, renewalDeadlineMs: 10_000 },
    );
    const session = await seed(a, 'sid-lock-4', { ...jwt(1), supabaseRefresh: 'supabase-1' });
    await expect(a.renewer.renew(session, 'billbora', jwt(1))).rejects.toMatchObject({
      code: 'upstream_unavailable',
    });
    expect((await a.repository.load('sid-lock-4'))?.record.providers.billbora).toMatchObject({
      access: 'access-1',
      supabaseRefresh: 'supabase-rotated',
    });
  });

  it('is the one the organization switch takes: it waits for a renewal and is handed the credential that renewal stored', async () => {
    const { adapter } = countingAdapter({ delayMs: 300 });
    const [a, b] = twoInstances(adapter, { lockTtlMs: 5000, renewalDeadlineMs: 10_000 });
    const session = await seed(a, 'sid-lock-5');
    const renewing = a.renewer.renew(session, 'billbora', jwt(1));
    await sleep(50);
    const handed: string[] = [];
    const switched = await b.renewer.replace(
      (await b.repository.load('sid-lock-5'))!,
      'billbora',
      (current) => {
        handed.push((current as BillboraJwtCredential).refresh);
        return Promise.resolve({
          ...(current as BillboraJwtCredential),
          organization: { id: 'org_other', name: 'Other' },
        });
      },
    );
    await renewing;
    expect(handed).toEqual(['refresh-2']);
    expect(switched.credential).toMatchObject({ refresh: 'refresh-2', organization: { id: 'org_other' } });
    expect((await a.repository.load('sid-lock-5'))?.record.providers.billbora).toMatchObject({
      refresh: 'refresh-2',
      organization: { id: 'org_other' },
    });
  });
});
