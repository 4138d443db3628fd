import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './redis-server.js';

const run = promisify(execFile);

/** A three-master Redis Cluster of the test's own, on free loopback ports, with nothing written but its node files. */
export interface OwnRedisCluster {
  /** `redis://127.0.0.1:P` for each master, as `REDIS_CLUSTER_NODES` lists them. */
  nodes: string[];
  ports: number[];
  /** Kills one node (SIGKILL). It keeps its node file, so a restart rejoins with the same slots (and no data). */
  kill(index: number): Promise<void>;
  /** Starts a killed node again and waits until the cluster is whole. */
  restart(index: number): Promise<void>;
  /** Freezes one node (SIGSTOP): its connections stay open and nothing answers. */
  pause(index: number): void;
  resume(index: number): void;
  /** Stops every node and removes the directory. */
  dispose(): Promise<void>;
}

const redisCli = (port: number, ...args: string[]) =>
  run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5000 });

async function clusterState(port: number): Promise<string> {
  const { stdout } = await redisCli(port, 'CLUSTER', 'INFO').catch(() => ({ stdout: '' }));
  return /cluster_state:(\w+)/.exec(stdout)?.[1] ?? 'down';
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis cluster: ${what} did not happen`);
}

/**
 * Starts three `redis-server --cluster-enabled yes` masters, joins them with
 * `redis-cli --cluster create`, and waits until every node reports `cluster_state:ok`.
 */
export async function startOwnRedisCluster(): Promise<OwnRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'billfold-cluster-'));
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    let port = await freePort();
    // The cluster bus listens on port + 10000, so both must be free and distinct from the others'.
    while (port > 55_000 || ports.includes(port)) port = await freePort();
    ports.push(port);
  }
  const children: (ChildProcess | undefined)[] = [];

  const start = async (index: number) => {
    const port = ports[index]!;
    children[index] = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '2000',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    );
    await waitFor(`node ${port} answering`, async () =>
      redisCli(port, 'PING').then(
        ({ stdout }) => stdout.trim() === 'PONG',
        () => false,
      ),
    );
  };
  const whole = () =>
    waitFor('cluster_state:ok on every node', async () =>
      (await Promise.all(ports.map(clusterState))).every((state) => state === 'ok'),
    );

  const cluster: OwnRedisCluster = {
    nodes: ports.map((port) => `redis://127.0.0.1:${port}`),
    ports,
    async kill(index) {
      const child = children[index];
      children[index] = undefined;
      if (!child) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await exited;
    },
    async restart(index) {
      await start(index);
      await whole();
    },
    pause: (index) => children[index]?.kill('SIGSTOP'),
    resume: (index) => children[index]?.kill('SIGCONT'),
    async dispose() {
      await Promise.all(ports.map((_, index) => cluster.kill(index)));
      await rm(dir, { recursive: true, force: true });
    },
  };

  try {
    await Promise.all(ports.map((_, index) => start(index)));
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((port) => `127.0.0.1:${port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { timeout: 15_000 },
    );
    await whole();
  } catch (error) {
    await cluster.dispose();
    throw error;
  }
  return cluster;
}
