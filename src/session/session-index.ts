import { createHash } from 'node:crypto';
import type { ProviderId } from '../upstream/provider-id.js';
import type { SessionBackend } from './session-backend.js';
import type { ProviderCredentials, SessionLimits, SessionRecord } from './session-record.js';

/** The index of every session, behind the active-sessions gauge. */
export const ALL_SESSIONS_INDEX = 'ix:all';

/**
 * The index key of one upstream identity. Keys hold a hash, so no username sits in the store in the
 * clear; the provider stays readable so an operator can tell the indexes apart.
 */
export function identityIndexKey(provider: ProviderId | 'billbora-key', user: string): string {
  return `ix:${provider}:${createHash('sha256').update(user).digest('base64url').slice(0, 22)}`;
}

/**
 * The upstream identity a credential signs in as, as the session view shows it. BILL users are
 * scoped to their organization; an API-key Billbora session has no user, so whoever holds the same
 * key is the same identity.
 */
function identityOf(provider: ProviderId, providers: ProviderCredentials): string | undefined {
  switch (provider) {
    case 'billingplatform':
      return providers.billingplatform && identityIndexKey(provider, providers.billingplatform.user);
    case 'bill':
      // A sync token is an integration's credential, not a person.
      return providers.bill?.mode === 'sync-token'
        ? undefined
        : providers.bill && billIndexKey(providers.bill.user, providers.bill.orgId);
    case 'billogram':
      return providers.billogram && identityIndexKey(provider, providers.billogram.user);
    case 'billbora': {
      const credential = providers.billbora;
      if (!credential) return undefined;
      return credential.mode === 'jwt'
        ? identityIndexKey(provider, credential.user)
        : identityIndexKey('billbora-key', credential.apiKey);
    }
  }
}

/** The index key of a BILL user in one organization. */
export function billIndexKey(userName: string, orgId: string): string {
  return identityIndexKey('bill', `${orgId}\n${userName}`);
}

/** The index keys of the upstream identities a session is signed in as. */
export function identityKeysOf(record: SessionRecord): string[] {
  const keys: string[] = [];
  for (const provider of Object.keys(record.providers) as ProviderId[]) {
    const key = identityOf(provider, record.providers);
    if (key) keys.push(key);
  }
  return keys;
}

const indexesOf = (record: SessionRecord | null | undefined): string[] =>
  record ? [ALL_SESSIONS_INDEX, ...identityKeysOf(record)] : [];

/**
 * Keeps the per-identity indexes in step with the sessions, from the one place every session write
 * passes (the repository). A session is added to an index before the write that gives it the
 * identity and again after it, so no live session is ever missing from its identities' indexes
 * (a reader that dropped the member in between, finding no session yet, is undone); it is removed
 * only after the write that takes the identity away. A member left behind (a crash, a failed removal)
 * is harmless: readers check each listed session's record, and drop members whose session is gone.
 */
export interface SessionIndex {
  /** Before writing `after` (null: deleting) over `before` (undefined: creating). */
  beforeWrite(
    sessionId: string,
    before: SessionRecord | undefined,
    after: SessionRecord | null,
  ): Promise<void>;
  /** After that write succeeded. */
  afterWrite(
    sessionId: string,
    before: SessionRecord | undefined,
    after: SessionRecord | null,
  ): Promise<void>;
  /** The session ids listed under an index key, ended ones dropped. */
  members(indexKey: string): Promise<string[]>;
  /** Drops one session id from an index key (a reader found its session gone). */
  remove(indexKey: string, sessionId: string): Promise<void>;
  /** Sessions not yet past their absolute end and not ended by logout, revocation or disconnection. */
  countSessions(): Promise<number>;
}

/** What the index is built from; `run` bounds every store call like the repository's own. */
export interface SessionIndexDeps {
  backend: SessionBackend;
  now: () => number;
  limits: SessionLimits;
  run: <T>(operation: string, call: () => Promise<T>) => Promise<T>;
}

export function createSessionIndex(deps: SessionIndexDeps): SessionIndex {
  const { backend, now, limits, run } = deps;
  // Scored by the absolute end, which no activity moves: a session that ends unseen (idle or absolute)
  // is pruned by the next add or read at the latest, and the index key expires with its last member.
  const add = (sessionId: string, record: SessionRecord, keys: string[]) =>
    Promise.all(
      keys.map((key) =>
        run('index_add', () =>
          backend.indexAdd(key, sessionId, record.createdAt + limits.absoluteTimeoutMs, now()),
        ),
      ),
    );
  const gained = (before: SessionRecord | undefined, after: SessionRecord | null) => {
    const had = new Set(indexesOf(before));
    return indexesOf(after).filter((key) => !had.has(key));
  };

  return {
    async beforeWrite(sessionId, before, after) {
      if (after) await add(sessionId, after, gained(before, after));
    },
    async afterWrite(sessionId, before, after) {
      if (after) await add(sessionId, after, gained(before, after));
      const kept = new Set(indexesOf(after));
      const lost = indexesOf(before).filter((key) => !kept.has(key));
      // A failed removal (already reported by `run`) leaves the change standing: readers skip the member.
      await Promise.all(
        lost.map((key) =>
          run('index_remove', () => backend.indexRemove(key, sessionId)).catch(() => undefined),
        ),
      );
    },
    members: (indexKey) => run('index_members', () => backend.indexMembers(indexKey, now())),
    remove: (indexKey, sessionId) => run('index_remove', () => backend.indexRemove(indexKey, sessionId)),
    countSessions: () => run('index_size', () => backend.indexSize(ALL_SESSIONS_INDEX, now())),
  };
}
