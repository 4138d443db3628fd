import type { SessionBackend } from './session-backend.js';
import type { StoreKeyNames } from './store-key-names.js';

/**
 * How long a session id a sign-in moved to a new one still says where it went: long enough for the
 * requests another tab sent with it before it heard of the new one.
 */
export const MOVED_FOR_MS = 120_000;

/**
 * The most moves a sign-out follows from the id it was sent with, one store read each: far more
 * sign-ins on one session within MOVED_FOR_MS than the login limits let one client address make.
 */
const MAX_MOVES_FOLLOWED = 1000;

/**
 * Where sign-ins moved sessions, for the requests still on their way with the old id: a sign-in
 * carrying one is refused rather than starting a second session, and a sign-out ends where it went.
 * Only a sign-out follows a move; nothing that grants access ever does.
 */
export interface SessionMoves {
  record(from: string, to: string): Promise<void>;
  /** Whether `sessionId` was moved by a sign-in within MOVED_FOR_MS. */
  wasMoved(sessionId: string): Promise<boolean>;
  /** The id the session `sessionId` named has ended up under, following each move; undefined when none. */
  follow(sessionId: string): Promise<string | undefined>;
}

/** What the moves are built from; `run` bounds every store call like the repository's own. */
export interface SessionMovesDeps {
  backend: SessionBackend;
  names: StoreKeyNames;
  run: <T>(operation: string, call: () => Promise<T>) => Promise<T>;
}

export function createSessionMoves({ backend, names, run }: SessionMovesDeps): SessionMoves {
  const keyOf = (sessionId: string) => `m:moved:${names.current('session', sessionId)}`;
  // Held like a lock: set once, for MOVED_FOR_MS, and (as locks are) never evicted to make room.
  const movedTo = (sessionId: string) => run('moved_get', () => backend.lockHolder(keyOf(sessionId)));
  return {
    async record(from, to) {
      // An id is moved at most once, by the sign-in that ended it.
      await run('moved_set', () => backend.acquireLock(keyOf(from), to, MOVED_FOR_MS));
    },
    async wasMoved(sessionId) {
      return (await movedTo(sessionId)) !== null;
    },
    async follow(sessionId) {
      let at: string | undefined;
      let next = await movedTo(sessionId);
      for (let moves = 0; next !== null && moves < MAX_MOVES_FOLLOWED; moves++) {
        at = next;
        next = await movedTo(at);
      }
      return at;
    },
  };
}
