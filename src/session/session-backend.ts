/** A windowed counter's state. */
export interface Counter {
  count: number;
  resetInMs: number;
}

/** What a reservation found: whether it was granted, the count after it, and ms left in the window. */
export interface Reservation extends Counter {
  granted: boolean;
}

/**
 * The raw key-value operations billfold needs beside the session records: locks, counters and the
 * identity indexes. Every write carries a TTL. Implemented by the embedded store and by Redis /
 * Redis Cluster; the session records go through the session store (session-store.ts).
 */
export interface SessionBackend {
  /** The value, or null when absent or expired. */
  get(key: string): Promise<string | null>;
  delete(key: string): Promise<void>;
  /** Sets `key` to `token` for `ttlMs` unless it is already held; true when acquired. */
  acquireLock(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Deletes `key` only while it still holds `token`. */
  releaseLock(key: string, token: string): Promise<void>;
  /** Gives a lock still holding `token` another `ttlMs`; false when it has lapsed or changed hands. */
  extendLock(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** The token a lock holds, or null when it is free. */
  lockHolder(key: string): Promise<string | null>;
  /** Adds `by` to a counter whose window of `windowMs` starts at its first hit; the new count and ms left. */
  increment(key: string, windowMs: number, by?: number): Promise<Counter>;
  /** A counter's count and ms left in its window, without changing it (0 when absent). */
  readCounter(key: string): Promise<Counter>;
  /**
   * Count, compare and refuse in one atomic step: adds one to the counter (its window of `windowMs`
   * starting at its first hit) only while it holds fewer than `limit`, so no burst passes more.
   */
  reserve(key: string, limit: number, windowMs: number): Promise<Reservation>;
  /** Gives one reserved count back (never below zero; the window keeps its end; at zero the counter goes). */
  release(key: string): Promise<void>;
  /**
   * Adds `member` to the sorted index at `key`, scored by `endsAtMs` (when it ends for good), drops the
   * members already ended at `nowMs`, and lets the key expire when its last member ends: an index
   * never outlives what it lists, even when nobody reads it. Times are billfold's clock, not the store's.
   */
  indexAdd(key: string, member: string, endsAtMs: number, nowMs: number): Promise<void>;
  indexRemove(key: string, member: string): Promise<void>;
  /** The members of the index not yet ended at `nowMs` (ended ones are dropped on the way). */
  indexMembers(key: string, nowMs: number): Promise<string[]>;
  /** The newest `limit` members of the index not yet ended at `nowMs` (the latest to end last). */
  indexNewest(key: string, limit: number, nowMs: number): Promise<string[]>;
  /** The members past the newest `keep` (the earliest to end first): what a cap of `keep` must end. */
  indexOverflow(key: string, keep: number, nowMs: number): Promise<string[]>;
  /** How many members of the index have not ended at `nowMs`, without listing them. */
  indexSize(key: string, nowMs: number): Promise<number>;
  /** Resolves when the store answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Where a session store keeps its sealed records, by session id: what the repository reads and
 * compare-and-sets. Values are opaque (sealed by the repository's codec).
 */
export interface SealedRecords {
  /** The stored value, or null when absent or expired. */
  read(sessionId: string): Promise<string | null>;
  /**
   * The stored value when the process holds it known-current (SESSION_CACHE), without asking the
   * store; undefined means ask with `read`.
   */
  cached?(sessionId: string): string | undefined;
  /**
   * Writes `value` (or deletes, when null) only if the stored value is still `expected` (null: only
   * if absent), with a TTL of `ttlMs`. The single primitive behind every change to a session, so no
   * writer overwrites a change it has not seen and nothing deleted comes back.
   */
  compareAndSet(
    sessionId: string,
    expected: string | null,
    value: string | null,
    ttlMs: number,
  ): Promise<boolean>;
  /** Deletes the value and returns what it was, in one atomic step (null when there was none). */
  take(sessionId: string): Promise<string | null>;
  /** Resolves when the store answers. */
  ping(): Promise<void>;
}
