import type { Clock } from '../clock.js';
import { withDeadline } from '../deadline.js';
import { AppError } from '../errors.js';
import type { SessionBackend } from './session-backend.js';
import type { SessionCodec } from './session-codec.js';
import { createSessionIndex, type SessionIndex } from './session-index.js';
import type { StoreKeyNames } from './store-key-names.js';
import { isSessionLive, sessionDeadlines, type SessionLimits, type SessionRecord } from './session-record.js';

/** A record as loaded, with the exact stored value an update must find still in place. */
export interface LoadedSession {
  id: string;
  record: SessionRecord;
  sealed: string;
}

/** What an update decides: a new record, `null` to end the session, or `undefined` to leave it as it is. */
export type SessionChange = (current: SessionRecord) => SessionRecord | null | undefined;

/** Every read and write of session records, for both the Express routes and the relay. */
export interface SessionRepository {
  /** The live session, or undefined when absent, expired or unreadable (tampered, unknown key). */
  load(sessionId: string): Promise<LoadedSession | undefined>;
  /** Stores a brand-new session; undefined (and nothing written) when the id is taken. */
  create(sessionId: string, record: SessionRecord): Promise<LoadedSession | undefined>;
  /**
   * Applies `change` atomically: written only if the store still holds what `change` saw, otherwise
   * re-read and re-applied. Returns the session as stored afterwards (undefined once it has ended), so
   * a concurrent writer's renewal is never overwritten and a session deleted meanwhile stays deleted.
   */
  update(sessionId: string, change: SessionChange, known?: LoadedSession): Promise<LoadedSession | undefined>;
  /**
   * Slides the idle timer, at most once per touch interval so steady traffic costs no writes, together
   * with `also` (a provider's own bookkeeping, such as BILL's last use) when given.
   */
  touch(session: LoadedSession, also?: SessionChange): Promise<LoadedSession | undefined>;
  /**
   * Ends the session (`known`: as the caller already loaded it) and takes it out of every index.
   * Returns the record as it was when it ended (a renewal that landed meanwhile included), so the
   * caller signs out upstream with the credentials actually held; undefined when there was none.
   */
  destroy(sessionId: string, known?: LoadedSession): Promise<SessionRecord | undefined>;
  /** Resolves when the store answers within its timeout. */
  ping(): Promise<void>;
  readonly limits: SessionLimits;
  readonly backend: SessionBackend;
  /** The per-identity session indexes, kept in step by every write above. */
  readonly index: SessionIndex;
}

/** What the repository is built from. */
export interface SessionRepositoryOptions {
  backend: SessionBackend;
  codec: SessionCodec;
  clock: Clock;
  limits: SessionLimits;
  timeoutMs: number;
  /** How the identity index keys are named (keyed hashes). */
  keyNames: StoreKeyNames;
  /** Called once per store failure, before it becomes a 503. */
  onStoreError: (error: unknown) => void;
  /** Called after every store call, failed or not, with its duration (for metrics). */
  onStoreCall?: (operation: string, seconds: number) => void;
}

const MAX_UPDATE_ATTEMPTS = 8;

export function createSessionRepository(options: SessionRepositoryOptions): SessionRepository {
  const { backend, codec, clock, limits } = options;
  const touchIntervalMs = Math.min(60_000, limits.idleTimeoutMs / 10);
  const key = (sessionId: string) => `s:${sessionId}`;

  // Every store call is bounded by STORE_TIMEOUT_MS and any failure is a 503: an outage is never
  // mistaken for "logged out", and no request waits on a store that does not answer.
  const guard = async <T>(name: string, operation: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await withDeadline(operation(), options.timeoutMs);
    } catch (error) {
      options.onStoreError(error);
      throw new AppError('session_store_unavailable', { cause: error });
    } finally {
      options.onStoreCall?.(name, (performance.now() - started) / 1000);
    }
  };
  const index = createSessionIndex({
    backend,
    now: () => clock.now(),
    limits,
    run: guard,
    names: options.keyNames,
  });

  const ttlOf = (record: SessionRecord) => sessionDeadlines(record, limits).endsAt - clock.now();

  const read = async (sessionId: string): Promise<LoadedSession | undefined> => {
    const sealed = await guard('get', () => backend.get(key(sessionId)));
    if (sealed === null) return undefined;
    const record = codec.open(sessionId, sealed);
    if (!record || !isSessionLive(record, limits, clock.now())) return undefined;
    return { id: sessionId, record, sealed };
  };

  const write = async (sessionId: string, current: LoadedSession | null, record: SessionRecord | null) => {
    const ttlMs = record ? ttlOf(record) : 0;
    const sealed = record && ttlMs > 0 ? codec.seal(sessionId, record) : null;
    const after = sealed === null ? null : record;
    await index.beforeWrite(sessionId, current?.record, after);
    const written = await guard('compare_and_set', () =>
      backend.compareAndSet(key(sessionId), current?.sealed ?? null, sealed, ttlMs),
    );
    if (written) await index.afterWrite(sessionId, current?.record, after);
    return { written, sealed };
  };

  const repository: SessionRepository = {
    limits,
    backend,
    index,
    load: read,

    async create(sessionId, record) {
      const { written, sealed } = await write(sessionId, null, record);
      return written && sealed !== null ? { id: sessionId, record, sealed } : undefined;
    },

    async update(sessionId, change, known) {
      let current = known ?? (await read(sessionId));
      for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS && current; attempt++) {
        const next = change(structuredClone(current.record));
        if (next === undefined && !codec.isStale(current.sealed)) return current;
        const record = next === undefined ? current.record : next;
        const { written, sealed } = await write(sessionId, current, record);
        if (written)
          return sealed === null || record === null ? undefined : { id: sessionId, record, sealed };
        current = await read(sessionId);
      }
      if (current)
        throw new AppError('session_store_unavailable', { message: 'The session is too busy; retry.' });
      return undefined;
    },

    touch(session, also) {
      const now = clock.now();
      const due = now - session.record.lastSeenAt >= touchIntervalMs;
      if (!due && !also) return Promise.resolve(session);
      return repository.update(
        session.id,
        (record) => {
          const changed = also?.(record);
          if (changed === null) return null;
          if (!due) return changed;
          return { ...(changed ?? record), lastSeenAt: Math.max(now, record.lastSeenAt) };
        },
        session,
      );
    },

    async destroy(sessionId, known) {
      const current = known ?? (await read(sessionId));
      if (!current) {
        // A record that no longer opens (ended, or sealed under a retired key) is in no index worth leaving.
        await guard('delete', () => backend.delete(key(sessionId)));
        return undefined;
      }
      let ended: SessionRecord | undefined;
      await repository.update(
        sessionId,
        (seen) => {
          ended = seen;
          return null;
        },
        current,
      );
      return ended;
    },

    ping: () => guard('ping', () => backend.ping()),
  };
  return repository;
}
