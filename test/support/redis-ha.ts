import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createClient } from 'redis';
import { freePort } from './redis-server.js';

const run = promisify(execFile);

/** The ACL user every test Redis, replica and sentinel accepts; the default user is off. */
export const REDIS_USER = { username: 'billfold', password: 'ha-test-password-0123456789' };

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in `dir`. */
export interface TlsFiles {
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** Makes the test's CA and the certificates it signs (EC P-256: quick to generate). */
export async function makeTlsFiles(dir: string): Promise<TlsFiles> {
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => run('openssl', args, { timeout: 20_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    path('ca.key'),
    '-out',
    path('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=billfold test CA',
  );
  await writeFile(path('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await writeFile(path('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, subject] of [
    ['server', '/CN=127.0.0.1'],
    ['client', '/CN=billfold'],
  ] as const) {
    await openssl(
      'req',
      ...ec,
      '-keyout',
      path(`${name}.key`),
      '-out',
      path(`${name}.csr`),
      '-subj',
      subject,
    );
    await openssl(
      'x509',
      '-req',
      '-in',
      path(`${name}.csr`),
      '-CA',
      path('ca.crt'),
      '-CAkey',
      path('ca.key'),
      '-CAcreateserial',
      '-out',
      path(`${name}.crt`),
      '-days',
      '2',
      '-extfile',
      path(`${name}.ext`),
    );
  }
  return {
    caFile: path('ca.crt'),
    serverCert: path('server.crt'),
    serverKey: path('server.key'),
    clientCert: path('client.crt'),
    clientKey: path('client.key'),
  };
}

/** billfold's environment for TLS with a client certificate, to add to the topology's own. */
export const tlsEnv = (tls: TlsFiles) => ({
  REDIS_TLS_CA_FILE: tls.caFile,
  REDIS_TLS_CERT_FILE: tls.clientCert,
  REDIS_TLS_KEY_FILE: tls.clientKey,
});

/** Server-side TLS (client certificates required) and the ACL user, as redis-server arguments. */
function secureArgs(tls: TlsFiles, port: number): string[] {
  return [
    '--port',
    '0',
    '--tls-port',
    String(port),
    '--tls-cert-file',
    tls.serverCert,
    '--tls-key-file',
    tls.serverKey,
    '--tls-ca-cert-file',
    tls.caFile,
    '--tls-auth-clients',
    'yes',
    '--tls-replication',
    'yes',
    '--user',
    'default',
    'off',
    '--user',
    REDIS_USER.username,
    'on',
    `>${REDIS_USER.password}`,
    '~*',
    '&*',
    '+@all',
    // Replicas sync at once (not after the default five seconds of waiting for more of them).
    '--repl-diskless-sync-delay',
    '0',
    '--masteruser',
    REDIS_USER.username,
    '--masterauth',
    REDIS_USER.password,
  ];
}

/** redis-cli over TLS as the ACL user. */
export function redisCli(tls: TlsFiles, port: number, ...args: string[]) {
  return run(
    'redis-cli',
    [
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '--tls',
      '--cacert',
      tls.caFile,
      '--cert',
      tls.clientCert,
      '--key',
      tls.clientKey,
      '--user',
      REDIS_USER.username,
      '--pass',
      REDIS_USER.password,
      '--no-auth-warning',
      ...args,
    ],
    { timeout: 15_000 },
  ).then(({ stdout }) => stdout.trim());
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** One redis-server process the test started: it can be killed, frozen and thawed. */
export interface RedisProcess {
  port: number;
  kill(): Promise<void>;
  freeze(): void;
  thaw(): void;
}

function processOf(port: number, child: ChildProcess): RedisProcess {
  let running: ChildProcess | undefined = child;
  return {
    port,
    async kill() {
      const current = running;
      running = undefined;
      if (!current || current.exitCode !== null) return;
      const exited = new Promise((resolve) => current.once('exit', resolve));
      current.kill('SIGCONT');
      current.kill('SIGKILL');
      await exited;
    },
    freeze: () => running?.kill('SIGSTOP'),
    thaw: () => running?.kill('SIGCONT'),
  };
}

async function distinctPorts(count: number, below = 65_535): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = await freePort();
    if (port < below && !ports.includes(port)) ports.push(port);
  }
  return ports;
}

/** A Sentinel deployment: one master, two replicas, three sentinels, all over TLS behind the ACL user. */
export interface OwnSentinel {
  masterName: string;
  tls: TlsFiles;
  /** The data nodes, the first being the master at start. */
  nodes: RedisProcess[];
  sentinels: RedisProcess[];
  /** billfold's environment for this deployment. */
  env: Record<string, string>;
  /** The port of the master the sentinels name right now. */
  masterPort(): Promise<number>;
  dispose(): Promise<void>;
}

export async function startOwnSentinel(): Promise<OwnSentinel> {
  const dir = await mkdtemp(join(tmpdir(), 'billfold-sentinel-'));
  const tls = await makeTlsFiles(dir);
  const masterName = 'billfold-master';
  const [masterPort, ...rest] = await distinctPorts(6);
  const dataPorts = [masterPort!, rest[0]!, rest[1]!];
  const sentinelPorts = rest.slice(2, 5);
  const nodes: RedisProcess[] = [];
  const sentinels: RedisProcess[] = [];
  const dispose = async () => {
    await Promise.all([...nodes, ...sentinels].map((each) => each.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const [index, port] of dataPorts.entries()) {
      const child = spawn(
        'redis-server',
        [
          ...secureArgs(tls, port),
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
          '--dbfilename',
          `dump-${port}.rdb`,
          ...(index === 0 ? [] : ['--replicaof', '127.0.0.1', String(masterPort)]),
        ],
        { stdio: 'ignore' },
      );
      nodes.push(processOf(port, child));
    }
    await Promise.all(
      dataPorts.map((port) =>
        waitFor(`redis ${port} answering`, async () => (await redisCli(tls, port, 'PING')) === 'PONG'),
      ),
    );
    await waitFor(
      'both replicas in sync',
      async () =>
        ((await redisCli(tls, masterPort!, 'INFO', 'replication')).match(/state=online/g) ?? []).length === 2,
    );
    for (const port of sentinelPorts) {
      const file = join(dir, `sentinel-${port}.conf`);
      await writeFile(
        file,
        [
          'port 0',
          `tls-port ${port}`,
          'bind 127.0.0.1',
          `tls-cert-file ${tls.serverCert}`,
          `tls-key-file ${tls.serverKey}`,
          `tls-ca-cert-file ${tls.caFile}`,
          'tls-auth-clients yes',
          'tls-replication yes',
          `dir ${dir}`,
          'user default off',
          `user ${REDIS_USER.username} on >${REDIS_USER.password} ~* &* +@all`,
          `sentinel sentinel-user ${REDIS_USER.username}`,
          `sentinel sentinel-pass ${REDIS_USER.password}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
          `sentinel auth-user ${masterName} ${REDIS_USER.username}`,
          `sentinel auth-pass ${masterName} ${REDIS_USER.password}`,
          `sentinel down-after-milliseconds ${masterName} 1500`,
          `sentinel failover-timeout ${masterName} 10000`,
          `sentinel parallel-syncs ${masterName} 2`,
          '',
        ].join('\n'),
      );
      sentinels.push(processOf(port, spawn('redis-server', [file, '--sentinel'], { stdio: 'ignore' })));
    }
    await Promise.all(
      sentinelPorts.map((port) =>
        waitFor(`sentinel ${port} sees the others`, async () =>
          /num-other-sentinels\s+2/.test(
            (await redisCli(tls, port, 'SENTINEL', 'MASTER', masterName)).replace(/\n/g, ' '),
          ),
        ),
      ),
    );
  } catch (error) {
    await dispose();
    throw error;
  }
  return {
    masterName,
    tls,
    nodes,
    sentinels,
    env: {
      REDIS_SENTINEL_NODES: sentinelPorts.map((port) => `127.0.0.1:${port}`).join(','),
      REDIS_SENTINEL_MASTER: masterName,
      REDIS_USERNAME: REDIS_USER.username,
      REDIS_PASSWORD: REDIS_USER.password,
      ...tlsEnv(tls),
    },
    async masterPort() {
      for (const port of sentinelPorts) {
        const answer = await redisCli(tls, port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName).catch(
          () => '',
        );
        const found = Number(answer.split('\n')[1]);
        if (found > 0) return found;
      }
      throw new Error('no sentinel names a master');
    },
    dispose,
  };
}

/** A Redis Cluster of three masters, each with one replica, over TLS behind the ACL user. */
export interface OwnSecureCluster {
  tls: TlsFiles;
  nodes: RedisProcess[];
  /** `rediss://user:password@127.0.0.1:P` for one master only: billfold must discover the rest. */
  rootUrl: string;
  env: Record<string, string>;
  /** The master ports, and for each its replica's port. */
  topology(): Promise<{ master: number; replica: number | undefined }[]>;
  dispose(): Promise<void>;
}

export async function startOwnSecureCluster(): Promise<OwnSecureCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'billfold-secure-cluster-'));
  const tls = await makeTlsFiles(dir);
  // The cluster bus listens on port + 10000.
  const ports = await distinctPorts(6, 55_000);
  const nodes: RedisProcess[] = [];
  const dispose = async () => {
    await Promise.all(nodes.map((each) => each.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      const child = spawn(
        'redis-server',
        [
          ...secureArgs(tls, port),
          '--tls-cluster',
          'yes',
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '2000',
          '--cluster-require-full-coverage',
          'no',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
        ],
        { stdio: 'ignore' },
      );
      nodes.push(processOf(port, child));
    }
    await Promise.all(
      ports.map((port) =>
        waitFor(`cluster node ${port} answering`, async () => (await redisCli(tls, port, 'PING')) === 'PONG'),
      ),
    );
    await redisCli(
      tls,
      ports[0]!,
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    );
    await waitFor('cluster_state:ok with three masters and three replicas', async () => {
      const states = await Promise.all(ports.map((port) => redisCli(tls, port, 'CLUSTER', 'INFO')));
      if (!states.every((info) => info.includes('cluster_state:ok'))) return false;
      const shards = await clusterTopology(tls, ports[0]!);
      if (shards.length !== 3 || !shards.every((shard) => shard.replica !== undefined && shard.linked))
        return false;
      const replication = await Promise.all(
        shards.map((shard) => redisCli(tls, shard.master, 'INFO', 'replication')),
      );
      return replication.every((info) => info.includes('state=online'));
    });
  } catch (error) {
    await dispose();
    throw error;
  }
  const rootUrl = `rediss://${REDIS_USER.username}:${REDIS_USER.password}@127.0.0.1:${ports[0]}`;
  return {
    tls,
    nodes,
    rootUrl,
    env: { REDIS_CLUSTER_NODES: rootUrl, ...tlsEnv(tls) },
    topology: async () => {
      for (const node of nodes) {
        const found = await clusterTopology(tls, node.port).catch(() => undefined);
        if (found) return found.map(({ master, replica }) => ({ master, replica }));
      }
      throw new Error('no cluster node answers');
    },
    dispose,
  };
}

/** Masters and their replicas as CLUSTER NODES lists them (`linked`: the replica's link is up). */
async function clusterTopology(tls: TlsFiles, port: number) {
  const lines = (await redisCli(tls, port, 'CLUSTER', 'NODES')).split('\n');
  const parsed = lines.map((line) => {
    const [id, address, flags, masterId, , , , link] = line.split(' ');
    return { id, port: Number(/:(\d+)@/.exec(address ?? '')?.[1]), flags: flags ?? '', masterId, link };
  });
  return parsed
    .filter((node) => node.flags.includes('master') && !node.flags.includes('fail'))
    .map((master) => {
      const replica = parsed.find((node) => node.masterId === master.id && !node.flags.includes('fail'));
      return { master: master.port, replica: replica?.port, linked: replica?.link === 'connected' };
    });
}

/**
 * Makes replication lag for real: with the replicas frozen, one large write (`bytes`) fills the
 * socket buffers between the master and them, so every write after it waits in the master's own
 * memory and dies with it. (A frozen replica alone would still find everything in its kernel buffer
 * when it thaws.) `key` must live on the master at `port`.
 */
export async function saturateReplication(
  tls: TlsFiles,
  port: number,
  key: string,
  bytes = 48 * 1024 * 1024,
) {
  const client = createClient({
    ...REDIS_USER,
    socket: {
      host: '127.0.0.1',
      port,
      tls: true,
      ca: await readFile(tls.caFile),
      cert: await readFile(tls.clientCert),
      key: await readFile(tls.clientKey),
    },
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.set(key, Buffer.alloc(bytes, 120), { PX: 120_000 });
  } finally {
    client.destroy();
  }
}

/** A key whose slot the cluster master at `port` serves. */
export async function keyServedBy(tls: TlsFiles, port: number): Promise<string> {
  const myself = (await redisCli(tls, port, 'CLUSTER', 'NODES'))
    .split('\n')
    .find((line) => line.includes('myself'));
  const ranges = (myself ?? '')
    .split(' ')
    .slice(8)
    .map((range) => range.split('-').map(Number) as [number, number?]);
  for (let i = 0; i < 1000; i++) {
    const key = `replication-lag:${i}`;
    const slot = Number(await redisCli(tls, port, 'CLUSTER', 'KEYSLOT', key));
    if (ranges.some(([from, to = from]) => slot >= from && slot <= to)) return key;
  }
  throw new Error(`no key found for the node at ${port}`);
}
