import type { SessionBackend } from './session-backend.js';
import type { SessionLimits, SessionRecord } from './session-record.js';
import type { StoreKeyNames } from './store-key-names.js';

/** The index of every session, behind the active-sessions gauge. */
export const ALL_SESSIONS_INDEX = 'ix:all';

/**
 * The index keys of one personal upstream identity (as its adapter canonicalised it), one per
 * configured signing secret. Keys hold a keyed hash, so no name or id sits in the store in the clear
 * nor can be confirmed by guessing; the provider stays readable so an operator can tell them apart.
 */
export function identityIndexKeys(names: StoreKeyNames, provider: string, identity: string): string[] {
  return names.all(`identity:${provider}`, identity).map((name) => `ix:${provider}:${name}`);
}

/**
 * The index keys of the personal upstream identities a session is signed in as. Only credentials
 * carrying a verified personal identity count: shared ones (API keys, Billogram API users) and
 * sign-ins the upstream named no person for are in no identity index.
 */
export function identityKeysOf(names: StoreKeyNames, record: SessionRecord): string[] {
  const keys: string[] = [];
  for (const [provider, credential] of Object.entries(record.providers)) {
    const identity: unknown = credential.identity;
    if (typeof identity === 'string' && identity !== '')
      keys.push(...identityIndexKeys(names, provider, identity));
  }
  return keys;
}

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
  /** The newest `limit` session ids listed under an index key (a bounded read). */
  newest(indexKey: string, limit: number): Promise<string[]>;
  /** The session ids past the newest `keep` under an index key, the oldest first. */
  overflow(indexKey: string, keep: number): Promise<string[]>;
  /** The index keys of the personal identities a record is signed in as. */
  keysOf(record: SessionRecord): string[];
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
  names: StoreKeyNames;
}

export function createSessionIndex(deps: SessionIndexDeps): SessionIndex {
  const { backend, now, limits, run, names } = deps;
  const indexesOf = (record: SessionRecord | null | undefined): string[] =>
    record ? [ALL_SESSIONS_INDEX, ...identityKeysOf(names, record)] : [];
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
    newest: (indexKey, limit) => run('index_members', () => backend.indexNewest(indexKey, limit, now())),
    overflow: (indexKey, keep) => run('index_members', () => backend.indexOverflow(indexKey, keep, now())),
    keysOf: (record) => identityKeysOf(names, record),
    remove: (indexKey, sessionId) => run('index_remove', () => backend.indexRemove(indexKey, sessionId)),
    countSessions: () => run('index_size', () => backend.indexSize(ALL_SESSIONS_INDEX, now())),
  };
}
