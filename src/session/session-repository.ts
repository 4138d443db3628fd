import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { SessionBackend } from './session-backend.js';
import type { SessionCodec } from './session-codec.js';
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
  destroy(sessionId: string): Promise<void>;
  /** Resolves when the store answers within its timeout. */
  ping(): Promise<void>;
  readonly limits: SessionLimits;
  readonly backend: SessionBackend;
}

/** What the repository is built from. */
export interface SessionRepositoryOptions {
  backend: SessionBackend;
  codec: SessionCodec;
  clock: Clock;
  limits: SessionLimits;
  timeoutMs: number;
  /** Called once per store failure, before it becomes a 503. */
  onStoreError: (error: unknown) => void;
}

const MAX_UPDATE_ATTEMPTS = 8;

export function createSessionRepository(options: SessionRepositoryOptions): SessionRepository {
  const { backend, codec, clock, limits } = options;
  const touchIntervalMs = Math.min(60_000, limits.idleTimeoutMs / 10);
  const key = (sessionId: string) => `s:${sessionId}`;

  // Every store call is bounded by STORE_TIMEOUT_MS and any failure is a 503: an outage is never
  // mistaken for "logged out", and no request waits on a store that does not answer.
  const guard = async <T>(operation: () => Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('session store timed out')), options.timeoutMs);
    });
    try {
      return await Promise.race([operation(), timeout]);
    } catch (error) {
      options.onStoreError(error);
      throw new AppError('session_store_unavailable', { cause: error });
    } finally {
      clearTimeout(timer);
    }
  };

  const ttlOf = (record: SessionRecord) => sessionDeadlines(record, limits).endsAt - clock.now();

  const read = async (sessionId: string): Promise<LoadedSession | undefined> => {
    const sealed = await guard(() => backend.get(key(sessionId)));
    if (sealed === null) return undefined;
    const record = codec.open(sessionId, sealed);
    if (!record || !isSessionLive(record, limits, clock.now())) return undefined;
    return { id: sessionId, record, sealed };
  };

  const write = async (sessionId: string, expected: string | null, record: SessionRecord | null) => {
    const ttlMs = record ? ttlOf(record) : 0;
    const sealed = record && ttlMs > 0 ? codec.seal(sessionId, record) : null;
    const written = await guard(() => backend.compareAndSet(key(sessionId), expected, sealed, ttlMs));
    return { written, sealed };
  };

  const repository: SessionRepository = {
    limits,
    backend,
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
        const { written, sealed } = await write(sessionId, current.sealed, record);
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

    async destroy(sessionId) {
      await guard(() => backend.delete(key(sessionId)));
    },

    ping: () => guard(() => backend.ping()),
  };
  return repository;
}
