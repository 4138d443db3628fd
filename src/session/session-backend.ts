/**
 * The raw key-value operations billfold needs from a store. Values are opaque strings (sealed
 * records); every write carries a TTL so nothing outlives its session. Implemented by the embedded
 * store and by Redis / Redis Cluster.
 */
export interface SessionBackend {
  /** The value, or null when absent or expired. */
  get(key: string): Promise<string | null>;
  /**
   * Writes `value` (or deletes, when `value` is null) only if the current value is `expected`
   * (null: only if absent). The single primitive behind every update, so no writer overwrites a
   * change it has not seen and nothing deleted comes back.
   */
  compareAndSet(key: string, expected: string | null, value: string | null, ttlMs: number): Promise<boolean>;
  delete(key: string): Promise<void>;
  /** Sets `key` to `token` for `ttlMs` unless it is already held; true when acquired. */
  acquireLock(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Deletes `key` only while it still holds `token`. */
  releaseLock(key: string, token: string): Promise<void>;
  /** Adds one to a counter that starts a window of `windowMs` at its first hit; the new count and ms left. */
  increment(key: string, windowMs: number): Promise<{ count: number; resetInMs: number }>;
  /** Resolves when the store answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
