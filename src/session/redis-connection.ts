import { readFileSync } from 'node:fs';
import { createClient, createCluster, createSentinel } from 'redis';
import { withDeadline } from '../deadline.js';
import { SessionRecordCache } from './session-cache.js';

/** A `host:port` a client connects to. */
export interface RedisAddress {
  host: string;
  port: number;
}

/** The files TLS to Redis reads: the CA that signed the servers, and an optional client certificate. */
export interface RedisTlsFiles {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

/**
 * Where Redis is and how to log in, as the configuration gives it: one server (`url`), the root nodes
 * of a cluster, or the sentinels watching a named master. The ACL user, password and TLS apply to
 * every connection opened: the server, every cluster node (the discovered ones too), each sentinel
 * and every master a sentinel names.
 */
export interface RedisConnectionOptions {
  url?: string | undefined;
  clusterNodes?: readonly string[] | undefined;
  sentinel?: { nodes: readonly RedisAddress[]; masterName: string } | undefined;
  username?: string | undefined;
  password?: string | undefined;
  /** Sentinels' own ACL user and password, when they differ from the data nodes'. */
  sentinelUsername?: string | undefined;
  sentinelPassword?: string | undefined;
  /** TLS on every connection; `rediss://` URLs turn it on too. */
  tls?: RedisTlsFiles | boolean | undefined;
  /**
   * Replicas that must hold a write sent through `durably` (`WAIT`) before it counts; 0 sends it
   * plainly, on the master's word alone.
   */
  minReplicasAck?: number | undefined;
  /** STORE_TIMEOUT_MS: how long to wait for the first connection, and the replicas' `WAIT`. */
  timeoutMs: number;
  /**
   * Keep session records (GETs of keys under `keyPrefix`) in process, true by Redis's tracking: on
   * one server and on a cluster (every node tracked). Sentinel connections cache nothing.
   */
  sessionCache?: { keyPrefix: string; maxEntries: number } | undefined;
  /** Called on connection errors (the client keeps reconnecting by itself). */
  onError: (error: Error) => void;
}

// RESP3 clients with no modules, functions or scripts of billfold's own.
/* eslint-disable @typescript-eslint/no-empty-object-type -- node-redis's own defaults */
type SingleClient = ReturnType<typeof createClient<{}, {}, {}, 3, {}>>;
type ClusterClient = ReturnType<typeof createCluster<{}, {}, {}, 3, {}>>;
type SentinelClient = ReturnType<typeof createSentinel<{}, {}, {}, 3, {}>>;
/* eslint-enable @typescript-eslint/no-empty-object-type */

/** One node-redis client, whichever topology it talks to. */
export type RedisClient = SingleClient | ClusterClient | SentinelClient;

/** One node-redis client of any topology, with what differs between topologies hidden. */
interface Topology {
  readonly client: RedisClient;
  readonly sessionCache: SessionRecordCache | undefined;
  /** Resolves when every master answers PING (on a cluster, each one). */
  ping(): Promise<void>;
  /**
   * Sends `commands` in order on one connection, to the master holding `key`, in a single write, and
   * returns their replies. Nothing else can run between them on that connection, so a `WAIT` sent last
   * counts exactly the writes before it.
   */
  pipeline(key: string, commands: readonly (readonly string[])[]): Promise<unknown[]>;
  connect(): Promise<unknown>;
  readonly isOpen: boolean;
  destroy(): void;
}

/** The connection billfold shares between the session store, the locks, counters and indexes. */
export interface RedisConnection {
  readonly client: RedisClient;
  /**
   * Resolves once connected. Until the first connection, it waits for it (within the timeout) and
   * then fails; after that, commands fail fast while the client reconnects.
   */
  ready: () => Promise<void>;
  /** Every master answers. */
  ping: () => Promise<void>;
  /**
   * Sends a write that must outlive a failover: with `minReplicasAck`, followed by `WAIT` on the
   * same connection and failed unless that many replicas hold it within the timeout; otherwise as is.
   */
  durably: (key: string, command: readonly string[]) => Promise<unknown>;
  /** Whether `durably` waits for replicas (REDIS_MIN_REPLICAS_ACK above 0). */
  readonly acknowledges: boolean;
  /** The session record cache on the main client, when SESSION_CACHE is on and the topology allows it. */
  readonly sessionCache: SessionRecordCache | undefined;
  close: () => Promise<void>;
}

/** How long node-redis waits before each reconnection attempt. */
export const reconnectStrategy = (retries: number) => Math.min(50 * 2 ** retries, 1000);

function parseRedisUrl(url: string) {
  const parsed = new URL(url);
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port === '' ? 6379 : Number(parsed.port),
    tls: parsed.protocol === 'rediss:',
    username: parsed.username === '' ? undefined : decodeURIComponent(parsed.username),
    password: parsed.password === '' ? undefined : decodeURIComponent(parsed.password),
  };
}

/** The TLS socket options, read from disk once per client built. */
function tlsSocket(tls: RedisConnectionOptions['tls'], fromUrl: boolean) {
  if (!tls && !fromUrl) return {};
  const files = typeof tls === 'object' ? tls : {};
  return {
    tls: true as const,
    ...(files.caFile ? { ca: readFileSync(files.caFile) } : {}),
    ...(files.certFile ? { cert: readFileSync(files.certFile) } : {}),
    ...(files.keyFile ? { key: readFileSync(files.keyFile) } : {}),
  };
}

const credentials = (username: string | undefined, password: string | undefined) => ({
  ...(username !== undefined ? { username } : {}),
  ...(password !== undefined ? { password } : {}),
});

const commonOptions = {
  // RESP3, node-redis's default: stated so that a later change of default is a visible one.
  RESP: 3 as const,
  // While disconnected, commands fail at once instead of queueing.
  disableOfflineQueue: true,
  // node-redis's command timeout (5 s by default) bounds a command only until it is written to the
  // socket: a Redis that accepts it and never answers is not bounded by it at all, yet it costs a
  // timer per command. It is off; the session repository and the backend bound every call by
  // STORE_TIMEOUT_MS themselves (withDeadline), which covers the wait for the answer too.
  commandOptions: { timeout: 0 },
};

/** Turns the configuration into a node-redis client of the topology it names. */
function createTopology(options: RedisConnectionOptions): Topology {
  const socketBase = { connectTimeout: options.timeoutMs, reconnectStrategy };
  const sessionCache =
    options.sessionCache && !options.sentinel
      ? new SessionRecordCache(options.sessionCache.keyPrefix, options.sessionCache.maxEntries)
      : undefined;
  const caching = sessionCache ? { clientSideCache: sessionCache } : {};

  if (options.sentinel) {
    const node = {
      ...credentials(options.username, options.password),
      disableOfflineQueue: true,
      commandOptions: commonOptions.commandOptions,
      socket: { ...socketBase, ...tlsSocket(options.tls, false) },
    };
    const sentinelNode = {
      ...credentials(
        options.sentinelUsername ?? options.username,
        options.sentinelPassword ?? options.password,
      ),
      socket: { ...socketBase, ...tlsSocket(options.tls, false) },
    };
    const sentinel = createSentinel({
      RESP: commonOptions.RESP,
      commandOptions: commonOptions.commandOptions,
      name: options.sentinel.masterName,
      sentinelRootNodes: options.sentinel.nodes.map(({ host, port }) => ({ host, port })),
      nodeClientOptions: node,
      sentinelClientOptions: sentinelNode,
      // Sentinel announcements are pushed; the scan is the backstop when one is missed.
      scanInterval: 1000,
    });
    return {
      client: sentinel,
      sessionCache: undefined,
      ping: async () => {
        await sentinel.sendCommand(false, ['PING']);
      },
      pipeline: (_key, commands) => {
        const multi = sentinel.multi();
        for (const command of commands) multi.addCommand(false, [...command]);
        return multi.execAsPipeline();
      },
      connect: () => sentinel.connect(),
      get isOpen() {
        return sentinel.isOpen;
      },
      destroy: () => void sentinel.destroy().catch(() => undefined),
    };
  }

  const roots = (options.clusterNodes ?? []).map(parseRedisUrl);
  const first = roots[0];
  if (first) {
    // node-redis builds the clients of discovered nodes from `defaults` alone (plus the host and port
    // the slot map names), so the credentials and TLS written in the root URLs are moved there.
    const defaults = {
      ...credentials(options.username ?? first.username, options.password ?? first.password),
      ...commonOptions,
      socket: { ...socketBase, ...tlsSocket(options.tls, first.tls) },
    };
    const cluster = createCluster({
      rootNodes: roots.map(({ host, port }) => ({ socket: { host, port } })),
      defaults,
      commandOptions: commonOptions.commandOptions,
      // One cache for every node's connection: any of them dropping drops all of it.
      ...caching,
    });
    // node-redis asks for the slot map again only when a node answers MOVED or ASK: a master that
    // dies keeps its slots pointing at a client that reconnects forever, even once a replica has
    // taken over. So while any master's client is down, the map is asked for again (through a node
    // that still answers) every half second.
    let refresh: NodeJS.Timeout | undefined;
    const refreshWhileDown = () => {
      if (refresh || !cluster.isOpen) return;
      refresh = setTimeout(() => {
        void (async () => {
          const live = cluster.masters.find((node) => node.client?.isReady)?.client;
          if (live) await cluster._slots.rediscover(live).catch(() => undefined);
          refresh = undefined;
          if (cluster.masters.some((node) => !node.client?.isReady)) refreshWhileDown();
        })();
      }, 500);
      refresh.unref();
    };
    cluster.on('node-reconnecting', refreshWhileDown);
    sessionCache?.watch(() => cluster.masters.every((node) => node.client?.isReady === true));
    return {
      client: cluster,
      sessionCache,
      // A cluster is ready only when every master answers.
      ping: async () => {
        await Promise.all(cluster.masters.map(async (master) => (await cluster.nodeClient(master)).ping()));
      },
      pipeline: (key, commands) => {
        const multi = cluster.multi(key);
        for (const command of commands) multi.addCommand(key, false, [...command]);
        return multi.execAsPipeline();
      },
      connect: () => cluster.connect(),
      get isOpen() {
        return cluster.isOpen;
      },
      destroy: () => {
        clearTimeout(refresh);
        cluster.destroy();
      },
    };
  }

  const fromUrl = options.url ? parseRedisUrl(options.url) : undefined;
  const single = createClient({
    ...(options.url ? { url: options.url } : {}),
    ...credentials(options.username, options.password),
    ...commonOptions,
    ...caching,
    socket: { ...socketBase, ...tlsSocket(options.tls, fromUrl?.tls ?? false) },
  });
  sessionCache?.watch(() => single.isReady);
  return {
    client: single,
    sessionCache,
    ping: async () => {
      await single.ping();
    },
    pipeline: (_key, commands) => {
      const multi = single.multi();
      for (const command of commands) multi.addCommand([...command]);
      return multi.execAsPipeline();
    },
    connect: () => single.connect(),
    get isOpen() {
      return single.isOpen;
    },
    destroy: () => single.destroy(),
  };
}

/**
 * The one place billfold builds its Redis clients. Start-up does not wait for Redis: billfold serves
 * (and answers 503 where it needs the store) until the client connects, and reconnects by itself.
 */
export function createRedisConnection(options: RedisConnectionOptions): RedisConnection {
  const main = createTopology(options);
  const minReplicasAck = options.minReplicasAck ?? 0;
  // Acknowledged writes travel on a connection of their own: a WAIT holds the connection it is sent
  // on, and reads, locks and counters must not queue behind it while replicas are slow or gone.
  const acknowledged =
    minReplicasAck > 0 ? createTopology({ ...options, sessionCache: undefined }) : undefined;
  const topologies = acknowledged ? [main, acknowledged] : [main];
  for (const each of topologies) each.client.on('error', options.onError);
  let connected = false;
  let closed = false;
  const retries = new Set<NodeJS.Timeout>();
  // A lost connection is re-established by node-redis itself, and so is a single server's first
  // one; but a cluster whose root nodes all refuse at start is given up on, so it is asked again
  // until it answers or billfold stops.
  const connectUntilUp = (each: Topology) =>
    new Promise<void>((resolve) => {
      const attempt = (tries: number) => {
        each.connect().then(
          () => resolve(),
          (error: unknown) => {
            options.onError(error as Error);
            if (closed) {
              resolve();
              return;
            }
            const retry = setTimeout(() => {
              retries.delete(retry);
              attempt(tries + 1);
            }, reconnectStrategy(tries));
            retries.add(retry);
          },
        );
      };
      attempt(0);
    });
  const connecting = Promise.all(topologies.map(connectUntilUp)).then(() => {
    connected = !closed;
  });
  // A cluster that has never connected knows no masters, so without this its ping would pass and
  // its commands would fail obscurely.
  const ready = async () => {
    if (connected) return;
    await withDeadline(connecting, options.timeoutMs).catch(() => undefined);
    // `connected` is set by the client's events while the wait above runs.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    if (!connected) throw new Error('session store not connected');
  };
  return {
    client: main.client,
    acknowledges: acknowledged !== undefined,
    sessionCache: main.sessionCache,
    ready,
    async ping() {
      await ready();
      await Promise.all(topologies.map((each) => each.ping()));
    },
    async durably(key, command) {
      await ready();
      if (!acknowledged) return (await main.pipeline(key, [command]))[0];
      const [reply, replicas] = await acknowledged.pipeline(key, [
        command,
        ['WAIT', String(minReplicasAck), String(options.timeoutMs)],
      ]);
      if (typeof replicas !== 'number' || replicas < minReplicasAck)
        throw new Error(`${String(replicas)} of ${minReplicasAck} replicas acknowledged the write in time`);
      return reply;
    },
    close() {
      // Not waiting for a first connection that may never come: shutdown must not hang on Redis.
      closed = true;
      for (const retry of retries) clearTimeout(retry);
      for (const each of topologies) if (each.isOpen) each.destroy();
      return Promise.resolve();
    },
  };
}
