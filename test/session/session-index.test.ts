import { afterAll, describe, expect, it } from 'vitest';
import { createMemoryBackend } from '../../src/session/memory-backend.js';
import { ALL_SESSIONS_INDEX, identityIndexKeys } from '../../src/session/session-index.js';
import { createStoreKeyNames } from '../../src/session/store-key-names.js';
import { findSessions } from '../../src/session/session-inventory.js';
import type { SessionRecord } from '../../src/session/session-record.js';
import { billPersonalIdentity, newBillCredential } from '../../src/upstream/bill/bill-adapter.js';
import { connectRedis, uniquePrefix } from '../support/redis.js';
import {
  createTestMemoryStore,
  createTestRedisStore,
  TEST_LIMITS as limits,
  type TestStore,
} from '../support/session-stores.js';
import { createTestClock, type TestClock } from '../support/test-clock.js';
import { TEST_SECRETS } from '../support/test-config.js';

// As the test stores name them (test/support/session-stores.ts).
const keyNames = createStoreKeyNames([TEST_SECRETS.SESSION_SECRETS]);
const DEMO = identityIndexKeys(keyNames, 'billingplatform', 'demo')[0]!;
const BILL_USER = identityIndexKeys(keyNames, 'bill', 'ORG1\ndemo@example.com')[0]!;

/** What a test reads of an index as the store holds it (in Redis: every member, ended or not) and its TTL. */
interface RawIndex {
  members(indexKey: string): Promise<string[]>;
  ttlMs(indexKey: string): Promise<number>;
}

interface Subject {
  store: TestStore;
  raw: RawIndex;
}

const redisSubject = (clock: TestClock): Subject => {
  const prefix = uniquePrefix();
  const store = createTestRedisStore({ clock, prefix });
  const read = async <T>(use: (redis: Awaited<ReturnType<typeof connectRedis>>) => Promise<T>) => {
    const redis = await connectRedis();
    try {
      return await use(redis);
    } finally {
      redis.destroy();
    }
  };
  return {
    store,
    raw: {
      members: (indexKey) => read((redis) => redis.zRange(prefix + indexKey, 0, -1)),
      ttlMs: (indexKey) => read((redis) => redis.pTTL(prefix + indexKey)),
    },
  };
};

const memorySubject = (clock: TestClock): Subject => {
  const backend = createMemoryBackend({ clock, maxEntries: 1000, sweepIntervalMs: 0 });
  // The embedded store has no raw read: the tests also count everything it holds (indexedMembers).
  return {
    store: createTestMemoryStore({ clock, backend }),
    raw: {
      members: (indexKey) => backend.indexMembers(indexKey, clock.now()),
      ttlMs: () => Promise.resolve(-1),
    },
  };
};

describe.each([
  ['the embedded store', memorySubject],
  ['Redis', redisSubject],
] as const)('the identity indexes on %s', (name, makeSubject) => {
  const opened: TestStore[] = [];
  afterAll(async () => {
    await Promise.all(opened.map((store) => store.close()));
  });

  const setUp = () => {
    const clock = createTestClock();
    const subject = makeSubject(clock);
    opened.push(subject.store);
    const { repository } = subject.store;
    const record = (providers: SessionRecord['providers'] = {}): SessionRecord => ({
      createdAt: clock.now(),
      lastSeenAt: clock.now(),
      providers: {
        billingplatform: { sessionId: 'upstream', user: 'demo', identity: 'demo', connectedAt: clock.now() },
        ...providers,
      },
    });
    return { clock, subject, repository, record };
  };

  it('does not grow when sessions end unseen: the next add prunes them, and the key expires with its last member', async () => {
    const { clock, subject, repository, record } = setUp();
    // Twenty sessions of one user, each left alone until well past its absolute end.
    for (let i = 0; i < 20; i++) {
      await repository.create(`sid-${i}`, record());
      clock.advance(limits.absoluteTimeoutMs + 60_000);
    }
    await repository.create('sid-live', record());

    for (const indexKey of [DEMO, ALL_SESSIONS_INDEX]) {
      expect(await subject.raw.members(indexKey)).toEqual(['sid-live']);
      expect(await repository.index.members(indexKey)).toEqual(['sid-live']);
    }
    if (name === 'Redis') {
      // Relative to billfold's clock: the key ends when its last member (created now) reaches its absolute end.
      const ttl = await subject.raw.ttlMs(DEMO);
      expect(ttl).toBeGreaterThan(limits.absoluteTimeoutMs - 5000);
      expect(ttl).toBeLessThanOrEqual(limits.absoluteTimeoutMs);
    } else {
      // One member in the user's index and one in the index of every session: nothing else is held.
      expect(
        (subject.store.repository.backend as ReturnType<typeof createMemoryBackend>).indexedMembers(),
      ).toBe(2);
    }
    expect(await repository.index.countSessions()).toBe(1);
  });

  it('lists nothing once every member has ended, and the emptied key is gone', async () => {
    const { clock, subject, repository, record } = setUp();
    await repository.create('sid-alone', record());
    clock.advance(limits.absoluteTimeoutMs);
    expect(await repository.index.members(DEMO)).toEqual([]);
    expect(await subject.raw.members(DEMO)).toEqual([]);
    expect(await subject.raw.ttlMs(DEMO)).toBe(name === 'Redis' ? -2 : -1);
    expect(await repository.index.countSessions()).toBe(0);
  });

  it('follows a session as it gains, loses and ends its identities', async () => {
    const { subject, repository, record } = setUp();
    const both = record({
      bill: {
        sessionId: 'bill-session',
        user: 'demo@example.com',
        orgId: 'ORG1',
        identity: 'ORG1\ndemo@example.com',
        connectedAt: 0,
        lastUsedAt: 0,
      },
    });
    const created = await repository.create('sid-both', both);
    expect(await subject.raw.members(DEMO)).toEqual(['sid-both']);
    expect(await subject.raw.members(BILL_USER)).toEqual(['sid-both']);

    // Signing out of one provider takes the session out of that identity's index only.
    await repository.update(
      'sid-both',
      (stored) => ({ ...stored, providers: { billingplatform: stored.providers.billingplatform! } }),
      created,
    );
    expect(await subject.raw.members(BILL_USER)).toEqual([]);
    expect(await subject.raw.members(DEMO)).toEqual(['sid-both']);

    // Ending it takes it out of every index.
    expect(await repository.destroy('sid-both')).toMatchObject({ providers: { billingplatform: {} } });
    expect(await subject.raw.members(DEMO)).toEqual([]);
    expect(await subject.raw.members(ALL_SESSIONS_INDEX)).toEqual([]);
  });

  it('keeps one BILL user name in two organizations apart: two identities, never each other’s sessions', async () => {
    const { clock, subject, repository } = setUp();
    const inOrg = (orgId: string, user: string): SessionRecord => ({
      createdAt: clock.now(),
      lastSeenAt: clock.now(),
      providers: {
        bill: newBillCredential(
          `bill-${orgId}`,
          { userName: user, password: 'x', orgId, mode: 'password' },
          clock.now(),
        ),
      },
    });
    await repository.create('sid-org-a', inOrg('ORG-A', 'demo@example.com'));
    await repository.create('sid-org-b', inOrg('ORG-B', ' Demo@Example.com '));
    const keyOf = (orgId: string) =>
      identityIndexKeys(keyNames, 'bill', billPersonalIdentity({ user: 'demo@example.com', orgId })!)[0]!;
    expect(keyOf('ORG-A')).not.toBe(keyOf('ORG-B'));
    expect(await subject.raw.members(keyOf('ORG-A'))).toEqual(['sid-org-a']);
    expect(await subject.raw.members(keyOf('ORG-B'))).toEqual(['sid-org-b']);
    // The same person in one organization, however the name is spelled, is one identity.
    await repository.create('sid-org-a-2', inOrg('ORG-A', 'DEMO@example.com'));
    expect((await repository.index.members(keyOf('ORG-A'))).sort()).toEqual(['sid-org-a', 'sid-org-a-2']);
  });

  it('drops a member whose session idled out unseen the first time a reader looks', async () => {
    const { clock, subject, repository, record } = setUp();
    await repository.create('sid-idle', record());
    clock.advance(limits.idleTimeoutMs);
    await repository.create('sid-active', record());
    // Still listed: its absolute end has not come; the session itself has ended.
    expect((await subject.raw.members(DEMO)).sort()).toEqual(['sid-active', 'sid-idle']);
    const found = await findSessions(repository, [DEMO], 20);
    expect(found.map((session) => session.id)).toEqual(['sid-active']);
    expect(await subject.raw.members(DEMO)).toEqual(['sid-active']);
  });
});
