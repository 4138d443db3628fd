import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AppError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import type { BillboraJwtCredential, SessionRecord } from '../../src/session/session-record.js';
import type { LoadedSession, SessionRepository } from '../../src/session/session-repository.js';
import type { BillboraAdapter } from '../../src/upstream/billbora-adapter.js';
import { createCredentialRenewer } from '../../src/upstream/credential-renewer.js';
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

function setup(makeStore: (clock: TestClock) => TestStore, adapter: BillboraAdapter) {
  const clock = createTestClock(Date.now());
  const { repository } = makeStore(clock);
  const renewer = createCredentialRenewer({
    adapters: { billbora: adapter },
    repository,
    clock,
    logger,
    lockTtlMs: 5000,
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
