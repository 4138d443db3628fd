import { readFileSync } from 'node:fs';
import { createClient, createCluster, createSentinel } from 'redis';

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
  /** How long a connection attempt may take. */
  connectTimeoutMs: number;
}

type SingleClient = ReturnType<typeof createClient>;
type ClusterClient = ReturnType<typeof createCluster>;
type SentinelClient = ReturnType<typeof createSentinel>;

/** One node-redis client, whichever topology it talks to. */
export type RedisClient = SingleClient | ClusterClient | SentinelClient;

/** A node-redis client built from the configuration, with what differs between topologies hidden. */
export interface RedisConnection {
  readonly kind: 'single' | 'cluster' | 'sentinel';
  readonly client: RedisClient;
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

/**
 * Turns the configuration into a node-redis client. Commands fail at once while disconnected instead
 * of queueing (callers bound and retry them); node-redis reconnects by itself.
 */
export function createRedisConnection(options: RedisConnectionOptions): RedisConnection {
  const socketBase = { connectTimeout: options.connectTimeoutMs, reconnectStrategy };

  if (options.sentinel) {
    const node = {
      ...credentials(options.username, options.password),
      disableOfflineQueue: true,
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
      name: options.sentinel.masterName,
      sentinelRootNodes: options.sentinel.nodes.map(({ host, port }) => ({ host, port })),
      nodeClientOptions: node,
      sentinelClientOptions: sentinelNode,
      // Sentinel announcements are pushed; the scan is the backstop when one is missed.
      scanInterval: 1000,
    });
    return {
      kind: 'sentinel',
      client: sentinel,
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

  if (options.clusterNodes && options.clusterNodes.length > 0) {
    const roots = options.clusterNodes.map(parseRedisUrl);
    const first = roots[0]!;
    // node-redis builds the clients of discovered nodes from `defaults` alone (plus the host and port
    // the slot map names), so the credentials and TLS written in the root URLs are moved there.
    const defaults = {
      ...credentials(options.username ?? first.username, options.password ?? first.password),
      disableOfflineQueue: true,
      socket: { ...socketBase, ...tlsSocket(options.tls, first.tls) },
    };
    const cluster = createCluster({
      rootNodes: roots.map(({ host, port }) => ({ socket: { host, port } })),
      defaults,
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
    return {
      kind: 'cluster',
      client: cluster,
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
    disableOfflineQueue: true,
    socket: { ...socketBase, ...tlsSocket(options.tls, fromUrl?.tls ?? false) },
  });
  return {
    kind: 'single',
    client: single,
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
