import { withDeadline } from '../deadline.js';
import type { RedisConnection } from './redis-connection.js';
import type { SessionBackend } from './session-backend.js';

/** What the Redis backend is built from: the shared connection and where its keys live. */
export interface RedisBackendOptions {
  connection: RedisConnection;
  keyPrefix: string;
  /** The bound on deletes, locks and counters (STORE_TIMEOUT_MS). */
  timeoutMs: number;
}

// Each script touches one key, so every operation is slot-safe on Redis Cluster.
const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const EXTEND_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const INCREMENT_WINDOW = `
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}`;

const READ_COUNTER = `
return {tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('PTTL', KEYS[1])}`;

// Count, compare and refuse in one step. A release never takes a count below zero, nor recreates a
// counter whose window has ended (which would leave it without a TTL); one given back to nothing goes.
const RESERVE = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[2]) then return {0, count, redis.call('PTTL', KEYS[1])} end
count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {1, count, redis.call('PTTL', KEYS[1])}`;

const RELEASE = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 1 then redis.call('DECR', KEYS[1]) else redis.call('DEL', KEYS[1]) end
return 1`;

// Indexes are sorted sets scored by when each member ends. Times come from billfold's clock (ARGV),
// and the key's expiry is relative (PEXPIRE), so Redis's own clock never has to agree with billfold's.
// Every index operation is a script, so each one is a single EVAL naming its one key.
const INDEX_ADD = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(last[2]) - tonumber(ARGV[3]))) end
return 1`;

const INDEX_REMOVE = `
return redis.call('ZREM', KEYS[1], ARGV[1])`;

const INDEX_MEMBERS = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)`;

const INDEX_NEWEST = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], -tonumber(ARGV[2]), -1)`;

const INDEX_OVERFLOW = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -tonumber(ARGV[2]) - 1)`;

const INDEX_SIZE = `
return redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')`;

/**
 * Locks, counters and identity indexes on Redis or Redis Cluster, over the connection the session
 * store uses (the session records themselves are connect-redis's: see redis-session-store.ts).
 */
export function createRedisBackend(options: RedisBackendOptions): SessionBackend {
  const { client, ready } = options.connection;
  // The session repository bounds get, compare-and-set, the indexes and ping itself (so the relay's
  // one read per request pays one timer, not two). Deletes, locks and counters are also called
  // straight from the rate limiters and the credential renewer, so they are bounded here: a Redis
  // that accepts connections and never replies must not hold a login or a renewal.
  const within = <T>(operation: () => Promise<T>): Promise<T> => withDeadline(operation(), options.timeoutMs);

  const key = (name: string) => options.keyPrefix + name;
  const evaluate = async (script: string, name: string, args: string[]): Promise<unknown> => {
    await ready();
    return client.eval(script, { keys: [key(name)], arguments: args });
  };

  return {
    async get(name) {
      await ready();
      return client.get(key(name));
    },
    delete: (name) =>
      within(async () => {
        await ready();
        await client.del(key(name));
      }),
    acquireLock: (name, token, ttlMs) =>
      within(async () => {
        await ready();
        const reply = await client.set(key(name), token, { NX: true, PX: Math.max(1, Math.ceil(ttlMs)) });
        return reply === 'OK';
      }),
    releaseLock: (name, token) =>
      within(async () => {
        await evaluate(RELEASE_LOCK, name, [token]);
      }),
    lockHolder: (name) =>
      within(async () => {
        await ready();
        return client.get(key(name));
      }),
    extendLock: (name, token, ttlMs) =>
      within(
        async () => (await evaluate(EXTEND_LOCK, name, [token, String(Math.max(1, Math.ceil(ttlMs)))])) === 1,
      ),
    increment: (name, windowMs, by = 1) =>
      within(async () =>
        toCounter(
          await evaluate(INCREMENT_WINDOW, name, [String(Math.max(1, Math.ceil(windowMs))), String(by)]),
        ),
      ),
    readCounter: (name) => within(async () => toCounter(await evaluate(READ_COUNTER, name, []))),
    reserve: (name, limit, windowMs) =>
      within(async () => {
        const reply = await evaluate(RESERVE, name, [
          String(Math.max(1, Math.ceil(windowMs))),
          String(limit),
        ]);
        const [granted, count, ttl] = reply as [number, number, number];
        return { granted: granted === 1, count, resetInMs: Math.max(0, ttl) };
      }),
    release: (name) =>
      within(async () => {
        await evaluate(RELEASE, name, []);
      }),
    async indexAdd(name, member, endsAtMs, nowMs) {
      await evaluate(INDEX_ADD, name, [member, String(Math.ceil(endsAtMs)), String(Math.floor(nowMs))]);
    },
    async indexRemove(name, member) {
      await evaluate(INDEX_REMOVE, name, [member]);
    },
    async indexMembers(name, nowMs) {
      return (await evaluate(INDEX_MEMBERS, name, [String(Math.floor(nowMs))])) as string[];
    },
    async indexNewest(name, limit, nowMs) {
      if (limit <= 0) return [];
      return (await evaluate(INDEX_NEWEST, name, [String(Math.floor(nowMs)), String(limit)])) as string[];
    },
    async indexOverflow(name, keep, nowMs) {
      return (await evaluate(INDEX_OVERFLOW, name, [
        String(Math.floor(nowMs)),
        String(Math.max(0, keep)),
      ])) as string[];
    },
    async indexSize(name, nowMs) {
      return (await evaluate(INDEX_SIZE, name, [String(Math.floor(nowMs))])) as number;
    },
    ping: () => options.connection.ping(),
    close: () => options.connection.close(),
  };
}

function toCounter(reply: unknown) {
  const [count, ttl] = reply as [number, number];
  return { count, resetInMs: Math.max(0, ttl) };
}
