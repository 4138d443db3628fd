import { createClient, createCluster } from 'redis';
import type { SessionBackend } from './session-backend.js';

/** How to reach Redis: one server, or the root nodes of a cluster. */
export interface RedisBackendOptions {
  url?: string | undefined;
  clusterNodes?: readonly string[];
  keyPrefix: string;
  /** How long to wait for the first connection; commands fail at once while disconnected instead of queueing. */
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

const INCREMENT_WINDOW = `
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}`;

const READ_COUNTER = `
return {tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('PTTL', KEYS[1])}`;

/**
 * Redis or Redis Cluster through node-redis. Start-up does not wait for Redis: billfold serves (and
 * answers 503 where it needs the store) until the client connects, and reconnects by itself.
 */
export function createRedisBackend(options: RedisBackendOptions): SessionBackend {
  const socket = {
    connectTimeout: options.timeoutMs,
    reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000),
  };
  // No per-command timeout here: the repository bounds every call itself, and node-redis's timeout
  // costs an AbortSignal timer per command.
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
  const connecting = client.connect().then(
    () => {
      connected = true;
    },
    (error: unknown) => options.onError(error as Error),
  );
  // Until the first connection, a command waits for it (within the timeout) rather than failing at
  // once; after that, commands fail fast while the client reconnects.
  const ready = async () => {
    if (connected) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      connecting,
      new Promise((resolve) => (timer = setTimeout(resolve, options.timeoutMs))),
    ]);
    clearTimeout(timer);
  };

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
    async delete(name) {
      await ready();
      await client.del(key(name));
    },
    async acquireLock(name, token, ttlMs) {
      await ready();
      const reply = await client.set(key(name), token, { NX: true, PX: Math.max(1, Math.ceil(ttlMs)) });
      return reply === 'OK';
    },
    async releaseLock(name, token) {
      await evaluate(RELEASE_LOCK, name, [token]);
    },
    async increment(name, windowMs, by = 1) {
      const reply = await evaluate(INCREMENT_WINDOW, name, [
        String(Math.max(1, Math.ceil(windowMs))),
        String(by),
      ]);
      return toCounter(reply);
    },
    async readCounter(name) {
      return toCounter(await evaluate(READ_COUNTER, name, []));
    },
    async ping() {
      await ready();
      await ping();
    },
    async close() {
      await connecting;
      if (client.isOpen) client.destroy();
    },
  };
}

function toCounter(reply: unknown) {
  const [count, ttl] = reply as [number, number];
  return { count, resetInMs: Math.max(0, ttl) };
}
