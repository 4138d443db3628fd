import type { Clock } from '../clock.js';
import { withDeadline } from '../deadline.js';
import { AppError } from '../errors.js';
import { endStoreSpan, startStoreSpan } from '../tracing.js';
import type { SealedRecords, SessionBackend } from './session-backend.js';
import type { SessionCodec } from './session-codec.js';
import { createSessionIndex, type SessionIndex } from './session-index.js';
import { createSessionMoves, type SessionMoves } from './session-moves.js';
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
   * One compare-and-set: writes `record` only while the store still holds `known` exactly. Returns the
   * session as stored, or undefined (nothing written) when it changed or ended meanwhile.
   */
  replace(known: LoadedSession, record: SessionRecord): Promise<LoadedSession | undefined>;
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
   * Ends the session and takes it out of every index. Returns the record as it was when it ended (a
   * renewal that landed meanwhile included), so the caller signs out upstream with the credentials
   * actually held; undefined when there was none.
   */
  destroy(sessionId: string): Promise<SessionRecord | undefined>;
  /** Resolves when the store answers within its timeout. */
  ping(): Promise<void>;
  readonly limits: SessionLimits;
  readonly backend: SessionBackend;
  /** The per-identity session indexes, kept in step by every write above. */
  readonly index: SessionIndex;
  /** Where sign-ins moved sessions, for requests still on their way with an old id. */
  readonly moves: SessionMoves;
}

/** What the repository is built from. */
export interface SessionRepositoryOptions {
  /** Where the sealed records live: the session store's own reads and compare-and-set. */
  records: SealedRecords;
  /** Locks, counters and the identity indexes. */
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
/** Opened records remembered per session id (see `read`); past it the memo starts over. */
const OPENED_RECORDS = 10_000;

export function createSessionRepository(options: SessionRepositoryOptions): SessionRepository {
  const { records, backend, codec, clock, limits } = options;
  const touchIntervalMs = Math.min(60_000, limits.idleTimeoutMs / 10);

  // Every store call is bounded by STORE_TIMEOUT_MS and any failure is a 503: an outage is never
  // mistaken for "logged out", and no request waits on a store that does not answer.
  const guard = async <T>(name: string, operation: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const span = startStoreSpan(name);
    let failed = false;
    try {
      return await withDeadline(operation(), options.timeoutMs);
    } catch (error) {
      failed = true;
      options.onStoreError(error);
      throw new AppError('session_store_unavailable', { cause: error });
    } finally {
      endStoreSpan(span, failed);
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

  /** Idle-timer writes in flight, by session id. */
  const sliding = new Map<string, Promise<LoadedSession | undefined>>();
  const ttlOf = (record: SessionRecord) => sessionDeadlines(record, limits).endsAt - clock.now();

  // Opening a record (AES-GCM and JSON) was the relay's largest cost of its own. A record read again
  // with the very same sealed value is the very same record, so the opened one is reused; any other
  // value is opened (and authenticated) afresh. Records are never changed in place: every change is a
  // copy (`update` clones), so one shared between requests stays as it was stored.
  const opened = new Map<string, LoadedSession>();
  const read = async (sessionId: string): Promise<LoadedSession | undefined> => {
    // A record the session cache holds is current by Redis's word: no store call to bound or time.
    const sealed = records.cached?.(sessionId) ?? (await guard('get', () => records.read(sessionId)));
    if (sealed === null) {
      opened.delete(sessionId);
      return undefined;
    }
    let loaded = opened.get(sessionId);
    if (loaded?.sealed !== sealed) {
      const record = codec.open(sessionId, sealed);
      if (!record) return undefined;
      if (opened.size >= OPENED_RECORDS) opened.clear();
      loaded = { id: sessionId, record, sealed };
      opened.set(sessionId, loaded);
    }
    // Deadlines are checked on every read, remembered or not.
    return isSessionLive(loaded.record, limits, clock.now()) ? loaded : undefined;
  };

  const write = async (sessionId: string, current: LoadedSession | null, record: SessionRecord | null) => {
    const ttlMs = record ? ttlOf(record) : 0;
    const sealed = record && ttlMs > 0 ? codec.seal(sessionId, record) : null;
    const after = sealed === null ? null : record;
    await index.beforeWrite(sessionId, current?.record, after);
    const written = await guard('compare_and_set', () =>
      records.compareAndSet(sessionId, current?.sealed ?? null, sealed, ttlMs),
    );
    if (written) await index.afterWrite(sessionId, current?.record, after);
    return { written, sealed };
  };

  const repository: SessionRepository = {
    limits,
    backend,
    index,
    moves: createSessionMoves({ backend, names: options.keyNames, run: guard }),
    load: read,

    async create(sessionId, record) {
      const { written, sealed } = await write(sessionId, null, record);
      return written && sealed !== null ? { id: sessionId, record, sealed } : undefined;
    },

    async replace(known, record) {
      const { written, sealed } = await write(known.id, known, record);
      return written && sealed !== null ? { id: known.id, record, sealed } : undefined;
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
      // Every call that read the record before the idle timer's write landed finds it due: without
      // this, a busy session sent a burst of compare-and-sets (and re-reads) once a minute.
      const inFlight = also ? undefined : sliding.get(session.id);
      if (inFlight) return inFlight;
      const touched = repository.update(
        session.id,
        (record) => {
          const changed = also?.(record);
          if (changed === null) return null;
          if (!due) return changed;
          return { ...(changed ?? record), lastSeenAt: Math.max(now, record.lastSeenAt) };
        },
        session,
      );
      if (also) return touched;
      sliding.set(session.id, touched);
      const done = () => sliding.delete(session.id);
      touched.then(done, done);
      return touched;
    },

    async destroy(sessionId) {
      // One atomic read-and-delete: it cannot lose to any number of concurrent writers, and it tells
      // exactly what was there when the session ended.
      const sealed = await guard('delete', () => records.take(sessionId));
      const ended = sealed === null ? undefined : codec.open(sessionId, sealed);
      if (!ended) return undefined;
      await index.afterWrite(sessionId, ended, null);
      return isSessionLive(ended, limits, clock.now()) ? ended : undefined;
    },

    ping: () => guard('ping', () => records.ping()),
  };
  return repository;
}
