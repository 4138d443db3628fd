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
  /** Counters and locks held (kept apart from the sessions, which can never evict them). */
  talliesHeld(): number;
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
  // Counters and locks live apart from the sessions, with a bound of their own, so no number of new
  // sessions can evict a failed-login count or a renewal lock to make room.
  const tallies = new Map<string, Entry>();
  // Indexes (member -> when it ends) live apart from the entries, so evicting old sessions never
  // evicts the index that lets an operator find a live one.
  const indexes = new Map<string, Map<string, number>>();

  const readFrom = (space: Map<string, Entry>, key: string): Entry | undefined => {
    const entry = space.get(key);
    if (entry && entry.expiresAt <= clock.now()) {
      space.delete(key);
      return undefined;
    }
    return entry;
  };
  const read = (key: string) => readFrom(entries, key);
  const readTally = (key: string) => readFrom(tallies, key);
  const dropExpired = (space: Map<string, Entry>, now: number) => {
    for (const [key, entry] of space) if (entry.expiresAt <= now) space.delete(key);
  };
  const writeTo = (space: Map<string, Entry>, key: string, value: string, ttlMs: number) => {
    space.delete(key);
    // Full: the oldest-written goes (for counters, about the first to expire anyway), in constant time.
    if (space.size >= maxEntries) {
      const oldest = space.keys().next();
      if (!oldest.done) space.delete(oldest.value);
    }
    space.set(key, { value, expiresAt: clock.now() + ttlMs });
  };
  const write = (key: string, value: string, ttlMs: number) => writeTo(entries, key, value, ttlMs);
  const counterOf = (entry: Entry | undefined) =>
    entry
      ? { count: Number(entry.value), resetInMs: entry.expiresAt - clock.now() }
      : { count: 0, resetInMs: 0 };
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
  // Oldest-ending first, as Redis orders a sorted set.
  const byEnd = (key: string, now: number) =>
    [...(prune(key, now)?.entries() ?? [])]
      .filter(([, endsAt]) => endsAt > now)
      .sort((a, b) => a[1] - b[1])
      .map(([member]) => member);
  const sweep = () => {
    const now = clock.now();
    dropExpired(entries, now);
    dropExpired(tallies, now);
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
      tallies.delete(key);
      return Promise.resolve();
    },
    take(key) {
      const value = read(key)?.value ?? null;
      entries.delete(key);
      return Promise.resolve(value);
    },
    acquireLock(key, token, ttlMs) {
      if (readTally(key)) return Promise.resolve(false);
      writeTo(tallies, key, token, ttlMs);
      return Promise.resolve(true);
    },
    lockHolder: (key) => Promise.resolve(readTally(key)?.value ?? null),
    releaseLock(key, token) {
      if (readTally(key)?.value === token) tallies.delete(key);
      return Promise.resolve();
    },
    extendLock(key, token, ttlMs) {
      if (readTally(key)?.value !== token) return Promise.resolve(false);
      writeTo(tallies, key, token, ttlMs);
      return Promise.resolve(true);
    },
    increment(key, windowMs, by = 1) {
      const entry = readTally(key);
      if (!entry) {
        writeTo(tallies, key, String(by), windowMs);
        return Promise.resolve({ count: by, resetInMs: windowMs });
      }
      const count = Number(entry.value) + by;
      entry.value = String(count);
      return Promise.resolve({ count, resetInMs: entry.expiresAt - clock.now() });
    },
    readCounter: (key) => Promise.resolve(counterOf(readTally(key))),
    reserve(key, limit, windowMs) {
      const entry = readTally(key);
      const counter = counterOf(entry);
      if (counter.count >= limit) return Promise.resolve({ granted: false, ...counter });
      if (!entry) {
        writeTo(tallies, key, '1', windowMs);
        return Promise.resolve({ granted: true, count: 1, resetInMs: windowMs });
      }
      entry.value = String(counter.count + 1);
      return Promise.resolve({ granted: true, count: counter.count + 1, resetInMs: counter.resetInMs });
    },
    release(key) {
      const entry = readTally(key);
      const count = entry ? Number(entry.value) - 1 : 0;
      // A count given back to nothing is dropped: an absent counter reads the same, and takes no room.
      if (entry && count > 0) entry.value = String(count);
      else tallies.delete(key);
      return Promise.resolve();
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
    indexNewest: (key, limit, nowMs) => Promise.resolve(limit > 0 ? byEnd(key, nowMs).slice(-limit) : []),
    indexOverflow(key, keep, nowMs) {
      const members = byEnd(key, nowMs);
      return Promise.resolve(members.slice(0, Math.max(0, members.length - keep)));
    },
    indexSize: (key, nowMs) => Promise.resolve(liveMembers(key, nowMs).length),
    ping: () => Promise.resolve(),
    close() {
      if (timer) clearInterval(timer);
      return Promise.resolve();
    },
    size: () => entries.size,
    talliesHeld: () => tallies.size,
    indexedMembers: () => [...indexes.values()].reduce((sum, index) => sum + index.size, 0),
    sweep,
  };
}
