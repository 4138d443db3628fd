import type { Clock } from '../clock.js';
import type { SessionBackend } from './session-backend.js';

interface Entry {
  value: string;
  expiresAt: number;
}

/** Options for the embedded store. */
export interface MemoryBackendOptions {
  clock: Clock;
  /** Most entries held; the oldest-written is evicted past it. */
  maxEntries: number;
  /** How often expired entries are swept; 0 turns the sweep off (tests). */
  sweepIntervalMs?: number;
}

/** The embedded store's entries: the backend's operations, and compare-and-set for the session records. */
export interface MemoryBackend extends SessionBackend {
  /** Writes `value` (or deletes, when null) only if the current value is `expected` (null: only if absent). */
  compareAndSet(key: string, expected: string | null, value: string | null, ttlMs: number): Promise<boolean>;
  /** Deletes the entry and returns its value, in one step (null when absent). */
  take(key: string): Promise<string | null>;
  size(): number;
  /** Members held across every index, ended or not (what the sweep and the pruning keep bounded). */
  indexedMembers(): number;
  sweep(): void;
}

/**
 * The embedded store: one process, bounded, every entry with a TTL. Expired entries are invisible at
 * once and swept periodically; a full store evicts its oldest-written entry, so memory stays bounded.
 */
export function createMemoryBackend(options: MemoryBackendOptions): MemoryBackend {
  const { clock, maxEntries } = options;
  // A Map iterates in insertion order; re-inserting on write keeps the oldest-written entry first.
  const entries = new Map<string, Entry>();
  // Indexes (member -> when it ends) live apart from the entries, so evicting old sessions never
  // evicts the index that lets an operator find a live one.
  const indexes = new Map<string, Map<string, number>>();

  const read = (key: string): Entry | undefined => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= clock.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  const write = (key: string, value: string, ttlMs: number) => {
    entries.delete(key);
    if (entries.size >= maxEntries) {
      const oldest = entries.keys().next();
      if (!oldest.done) entries.delete(oldest.value);
    }
    entries.set(key, { value, expiresAt: clock.now() + ttlMs });
  };
  // Members arrive in about the order they end (each scored by its creation plus a fixed timeout), so
  // pruning walks from the oldest and stops at the first live one: a cheap step per call, not a scan.
  // Readers skip any that ended out of order; the periodic sweep removes them.
  const prune = (key: string, now: number, everyMember = false): Map<string, number> | undefined => {
    const index = indexes.get(key);
    if (!index) return undefined;
    for (const [member, endsAt] of index) {
      if (endsAt <= now) index.delete(member);
      else if (!everyMember) break;
    }
    if (index.size > 0) return index;
    indexes.delete(key);
    return undefined;
  };
  const liveMembers = (key: string, now: number) =>
    [...(prune(key, now)?.entries() ?? [])].filter(([, endsAt]) => endsAt > now).map(([member]) => member);
  const sweep = () => {
    const now = clock.now();
    for (const [key, entry] of entries) if (entry.expiresAt <= now) entries.delete(key);
    for (const key of indexes.keys()) prune(key, now, true);
  };
  const sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
  const timer = sweepIntervalMs > 0 ? setInterval(sweep, sweepIntervalMs).unref() : undefined;

  return {
    get: (key) => Promise.resolve(read(key)?.value ?? null),
    compareAndSet(key, expected, value, ttlMs) {
      if ((read(key)?.value ?? null) !== expected) return Promise.resolve(false);
      if (value === null) entries.delete(key);
      else write(key, value, ttlMs);
      return Promise.resolve(true);
    },
    delete(key) {
      entries.delete(key);
      return Promise.resolve();
    },
    take(key) {
      const value = read(key)?.value ?? null;
      entries.delete(key);
      return Promise.resolve(value);
    },
    acquireLock(key, token, ttlMs) {
      if (read(key)) return Promise.resolve(false);
      write(key, token, ttlMs);
      return Promise.resolve(true);
    },
    releaseLock(key, token) {
      if (read(key)?.value === token) entries.delete(key);
      return Promise.resolve();
    },
    increment(key, windowMs, by = 1) {
      const entry = read(key);
      if (!entry) {
        write(key, String(by), windowMs);
        return Promise.resolve({ count: by, resetInMs: windowMs });
      }
      const count = Number(entry.value) + by;
      entry.value = String(count);
      return Promise.resolve({ count, resetInMs: entry.expiresAt - clock.now() });
    },
    readCounter(key) {
      const entry = read(key);
      return Promise.resolve(
        entry
          ? { count: Number(entry.value), resetInMs: entry.expiresAt - clock.now() }
          : { count: 0, resetInMs: 0 },
      );
    },
    indexAdd(key, member, endsAtMs, nowMs) {
      const index = prune(key, nowMs) ?? new Map<string, number>();
      if (endsAtMs > nowMs) index.set(member, endsAtMs);
      // No index lists more sessions than the store can hold: past that, the oldest added goes.
      if (index.size > maxEntries) index.delete(index.keys().next().value ?? '');
      if (index.size > 0) indexes.set(key, index);
      return Promise.resolve();
    },
    indexRemove(key, member) {
      const index = indexes.get(key);
      index?.delete(member);
      if (index?.size === 0) indexes.delete(key);
      return Promise.resolve();
    },
    indexMembers: (key, nowMs) => Promise.resolve(liveMembers(key, nowMs)),
    indexSize: (key, nowMs) => Promise.resolve(liveMembers(key, nowMs).length),
    ping: () => Promise.resolve(),
    close() {
      if (timer) clearInterval(timer);
      return Promise.resolve();
    },
    size: () => entries.size,
    indexedMembers: () => [...indexes.values()].reduce((sum, index) => sum + index.size, 0),
    sweep,
  };
}
