import type session from 'express-session';
import type { SessionData } from 'express-session';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { SessionBackend } from './session-backend.js';
import type { SessionCodec } from './session-codec.js';
import type { SessionLimits, SessionRecord } from './session-record.js';
import type { LoadedSession, SessionRepository } from './session-repository.js';
import type { StoreKeyNames } from './store-key-names.js';

declare module 'express-session' {
  // The session record's fields live directly on req.session for the Express routes.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface SessionData extends SessionRecord {}
}

/** What every session store is built from, besides where it keeps its records. */
export interface SessionStoreOptions {
  backend: SessionBackend;
  codec: SessionCodec;
  clock: Clock;
  limits: SessionLimits;
  timeoutMs: number;
  /** How the identity index keys are named (keyed hashes). */
  keyNames: StoreKeyNames;
  /** The attributes of the session cookie, which the store hands back to express-session. */
  cookie: session.CookieOptions;
  onStoreError: (error: unknown) => void;
  onStoreCall?: (operation: string, seconds: number) => void;
}

/**
 * An express-session store that also serves the relay's lean road: both read and write the same
 * records through its repository (sealed, compare-and-set, bounded by STORE_TIMEOUT_MS).
 */
export interface SessionStore extends session.Store {
  readonly repository: SessionRepository;
}

type Callback<T = void> = (error?: unknown, value?: T) => void;

/** The session record express-session holds for this request, or undefined when it holds none. */
export function recordOf(data: Partial<SessionData> | null | undefined): SessionRecord | undefined {
  if (!data) return undefined;
  const { createdAt, lastSeenAt, providers, device } = data;
  if (createdAt === undefined || lastSeenAt === undefined || providers === undefined) return undefined;
  return { createdAt, lastSeenAt, providers, ...(device !== undefined && { device }) };
}

/**
 * express-session's side of a billfold store. `get` remembers the exact stored value each session
 * was loaded from, and `set` is a compare-and-set against it: a copy that is no longer current (the
 * session was changed, revoked or logged out meanwhile) is not written, so express-session's saves
 * never overwrite a newer record and never bring back an ended one. A session it did not load is
 * only ever created, never written over an existing one.
 */
export function createExpressSessionBridge(repository: SessionRepository, cookie: session.CookieOptions) {
  const loadedFrom = new WeakMap<object, LoadedSession>();

  const save = async (sid: string, data: SessionData): Promise<void> => {
    const record = recordOf(data);
    if (!record) throw new AppError('internal_error', { message: 'A session is saved with its record.' });
    const known = loadedFrom.get(data);
    if (known?.id !== sid) {
      const created = await repository.create(sid, record);
      if (!created) throw new AppError('internal_error', { message: 'That session id is taken.' });
      loadedFrom.set(data, created);
      return;
    }
    // Unchanged since it was loaded: nothing to write (express-session saves a regenerated session
    // again as its response ends).
    if (JSON.stringify(record) === JSON.stringify(known.record)) return;
    const written = await repository.replace(known, record);
    if (written) loadedFrom.set(data, written);
  };

  return {
    get(sid: string, callback: Callback<SessionData | null>): void {
      void repository.load(sid).then((loaded) => {
        if (!loaded) {
          callback(null, null);
          return;
        }
        // Stores hand express-session plain data, as connect-redis does; its createSession makes the
        // Cookie. A copy: the route may change it, and the repository shares the record it loaded.
        const data: SessionData = {
          ...structuredClone(loaded.record),
          // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
          cookie: { ...cookie, originalMaxAge: null },
        };
        loadedFrom.set(data, loaded);
        callback(null, data);
      }, callback);
    },
    /** express-session builds its Session object from what `get` gave; it keeps what it was loaded from. */
    adopt<T extends object>(made: T, data: SessionData): T {
      const known = loadedFrom.get(data);
      if (known) loadedFrom.set(made, known);
      return made;
    },
    set(sid: string, data: SessionData, callback?: Callback): void {
      save(sid, data).then(
        () => callback?.(),
        (error: unknown) => callback?.(error),
      );
    },
    /** Ends the session, and hands its callback the record as it was when it ended. */
    destroy(sid: string, callback?: Callback<SessionRecord>): void {
      repository.destroy(sid).then(
        (ended) => callback?.(null, ended),
        (error: unknown) => callback?.(error),
      );
    },
  };
}

/** The bridge's methods, as a store class delegates to them. */
export type ExpressSessionBridge = ReturnType<typeof createExpressSessionBridge>;
