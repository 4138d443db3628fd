import { createClient, createCluster } from 'redis';
import { withDeadline } from '../deadline.js';

/** How to reach Redis: one server, or the root nodes of a cluster. */
export interface RedisConnectionOptions {
  url?: string | undefined;
  clusterNodes?: readonly string[] | undefined;
  /** STORE_TIMEOUT_MS: how long to wait for the first connection (every call is bounded by billfold). */
  timeoutMs: number;
  /** Called on connection errors (the client keeps reconnecting by itself). */
  onError: (error: Error) => void;
}

function createSingle(url: string | undefined, options: ReturnType<typeof clientOptionsOf>) {
  return createClient({ ...options, ...(url ? { url } : {}) });
}
function createClusterOf(nodes: readonly string[], options: ReturnType<typeof clientOptionsOf>) {
  return createCluster({
    rootNodes: nodes.map((url) => ({ url })),
    defaults: options,
    commandOptions: options.commandOptions,
  });
}

/** The node-redis client billfold shares between the session store, the locks, counters and indexes. */
export type RedisClient = ReturnType<typeof createSingle> | ReturnType<typeof createClusterOf>;

/** One connection to Redis or Redis Cluster, and whether it is usable. */
export interface RedisConnection {
  readonly client: RedisClient;
  /**
   * Resolves once connected. Until the first connection, it waits for it (within the timeout) and
   * then fails; after that, commands fail fast while the client reconnects.
   */
  ready: () => Promise<void>;
  /** Every master answers. */
  ping: () => Promise<void>;
  close: () => Promise<void>;
}

function clientOptionsOf(timeoutMs: number) {
  return {
    // RESP3, node-redis's default: stated so that a later change of default is a visible one.
    RESP: 3 as const,
    // While disconnected, commands fail at once instead of queueing.
    disableOfflineQueue: true,
    // node-redis's command timeout (5 s by default) bounds a command only until it is written to the
    // socket: a Redis that accepts it and never answers is not bounded by it at all, yet it costs a
    // timer per command. It is off; the session repository and the backend bound every call by
    // STORE_TIMEOUT_MS themselves (withDeadline), which covers the wait for the answer too.
    commandOptions: { timeout: 0 },
    socket: {
      connectTimeout: timeoutMs,
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000),
    },
  };
}

/**
 * The one place billfold builds a node-redis client. Start-up does not wait for Redis: billfold
 * serves (and answers 503 where it needs the store) until the client connects, and reconnects by itself.
 */
export function createRedisConnection(options: RedisConnectionOptions): RedisConnection {
  const clientOptions = clientOptionsOf(options.timeoutMs);
  let client: RedisClient;
  let pingAll: () => Promise<unknown>;
  if (options.clusterNodes && options.clusterNodes.length > 0) {
    const cluster = createClusterOf(options.clusterNodes, clientOptions);
    // A cluster is ready only when every master answers.
    pingAll = () =>
      Promise.all(cluster.masters.map(async (master) => (await cluster.nodeClient(master)).ping()));
    client = cluster;
  } else {
    const single = createSingle(options.url, clientOptions);
    pingAll = () => single.ping();
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
          retry = setTimeout(() => attempt(retries + 1), clientOptions.socket.reconnectStrategy(retries));
        },
      );
    };
    attempt(0);
  });
  // A cluster that has never connected knows no masters, so without this its ping would pass and
  // its commands would fail obscurely.
  const ready = async () => {
    if (connected) return;
    await withDeadline(connecting, options.timeoutMs).catch(() => undefined);
    if (!connected) throw new Error('session store not connected');
  };
  return {
    client,
    ready,
    async ping() {
      await ready();
      await pingAll();
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
