import { createClient, createCluster } from 'redis';
import { withDeadline } from '../deadline.js';
import type { SessionBackend } from './session-backend.js';

/** How to reach Redis: one server, or the root nodes of a cluster. */
export interface RedisBackendOptions {
  url?: string | undefined;
  clusterNodes?: readonly string[];
  keyPrefix: string;
  /**
   * How long to wait for the first connection, and the bound on deletes, locks and counters; other
   * commands fail at once while disconnected instead of queueing.
   */
  timeoutMs: number;
  /** Called on connection errors (the client keeps reconnecting by itself). */
  onError: (error: Error) => void;
}

// Each script touches one key, so every operation is slot-safe on Redis Cluster.
const COMPARE_AND_SET = `
local current = redis.call('GET', KEYS[1])
if (ARGV[1] == '' and not current) or current == ARGV[1] then
  if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
  return 1
end
return 0`;

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

const INDEX_SIZE = `
return redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')`;

/**
 * Redis or Redis Cluster through node-redis. Start-up does not wait for Redis: billfold serves (and
 * answers 503 where it needs the store) until the client connects, and reconnects by itself.
 */
export function createRedisBackend(options: RedisBackendOptions): SessionBackend {
  const socket = {
    connectTimeout: options.timeoutMs,
    reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000),
  };
  // No node-redis per-command timeout: it costs an AbortSignal timer per command. Every call is
  // bounded by the session repository or by `within` below instead.
  const clientOptions = { disableOfflineQueue: true, socket };
  let client: ReturnType<typeof createClient> | ReturnType<typeof createCluster>;
  let ping: () => Promise<unknown>;
  if (options.clusterNodes && options.clusterNodes.length > 0) {
    const cluster = createCluster({
      rootNodes: options.clusterNodes.map((url) => ({ url })),
      defaults: clientOptions,
    });
    // A cluster is ready only when every master answers.
    ping = () =>
      Promise.all(cluster.masters.map(async (master) => (await cluster.nodeClient(master)).ping()));
    client = cluster;
  } else {
    const single = createClient({ ...clientOptions, ...(options.url ? { url: options.url } : {}) });
    ping = () => single.ping();
    client = single;
  }
  client.on('error', options.onError);
  let connected = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  // A lost connection is re-established by node-redis itself, and so is a single server's first
  // one; but a cluster whose root nodes all refuse at start is given up on, so it is asked again
  // until it answers or billfold stops.
  const connecting = new Promise<void>((resolve) => {
    const attempt = (retries: number) => {
      client.connect().then(
        () => {
          connected = true;
          resolve();
        },
        (error: unknown) => {
          options.onError(error as Error);
          if (closed) return resolve();
          retry = setTimeout(() => attempt(retries + 1), socket.reconnectStrategy(retries));
        },
      );
    };
    attempt(0);
  });
  // Until the first connection, a command waits for it (within the timeout) and then fails; after
  // that, commands fail fast while the client reconnects. A cluster that has never connected knows
  // no masters, so without this its ping would pass and its commands would fail obscurely.
  const ready = async () => {
    if (connected) return;
    await withDeadline(connecting, options.timeoutMs).catch(() => undefined);
    if (!connected) throw new Error('session store not connected');
  };
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
    async compareAndSet(name, expected, value, ttlMs) {
      const reply = await evaluate(COMPARE_AND_SET, name, [
        expected ?? '',
        value ?? '',
        String(Math.max(1, Math.ceil(ttlMs))),
      ]);
      return reply === 1;
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
    async indexAdd(name, member, endsAtMs, nowMs) {
      await evaluate(INDEX_ADD, name, [member, String(Math.ceil(endsAtMs)), String(Math.floor(nowMs))]);
    },
    async indexRemove(name, member) {
      await evaluate(INDEX_REMOVE, name, [member]);
    },
    async indexMembers(name, nowMs) {
      return (await evaluate(INDEX_MEMBERS, name, [String(Math.floor(nowMs))])) as string[];
    },
    async indexSize(name, nowMs) {
      return (await evaluate(INDEX_SIZE, name, [String(Math.floor(nowMs))])) as number;
    },
    async ping() {
      await ready();
      await ping();
    },
    close() {
      // Not waiting for a first connection that may never come: shutdown must not hang on Redis.
      closed = true;
      clearTimeout(retry);
      if (client.isOpen) client.destroy();
      return Promise.resolve();
    },
  };
}

function toCounter(reply: unknown) {
  const [count, ttl] = reply as [number, number];
  return { count, resetInMs: Math.max(0, ttl) };
}
