import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';

/** A redis-server of the test's own, on a free loopback port, that the test can stop, restart or freeze. */
export interface OwnRedis {
  url: string;
  port: number;
  /** Saves its data to disk and exits, as an orderly restart would. */
  stop(): Promise<void>;
  /** Starts (again) on the same port, loading the saved data. */
  start(): Promise<void>;
  /** Kills the process (SIGKILL): no save, connections drop. Only an append-only Redis keeps its data. */
  kill(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open and nothing answers. */
  pause(): void;
  resume(): void;
  /** Stops for good and removes its files. */
  dispose(): Promise<void>;
}

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

async function waitForPing(url: string, up: boolean): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const client = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 200 } });
    client.on('error', () => undefined);
    const answered = await client
      .connect()
      .then(async () => (await client.ping()) === 'PONG')
      .catch(() => false);
    if (client.isOpen) client.destroy();
    if (answered === up) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis at ${url} did not come ${up ? 'up' : 'down'}`);
}

/** How the test's Redis persists: by default a snapshot on `stop()` only. */
export interface OwnRedisOptions {
  /** Log every write to an append-only file, fsynced before the reply, so data survives `kill()`. */
  appendOnly?: boolean;
}

/** A Redis of the test's own that is not running yet (`start()` it), for tests that begin with an outage. */
export async function createOwnRedis(options: OwnRedisOptions = {}): Promise<OwnRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'billfold-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const own: OwnRedis = {
    url,
    port,
    async start() {
      child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--dir',
          dir,
          '--save',
          '',
          ...(options.appendOnly
            ? ['--appendonly', 'yes', '--appendfsync', 'always']
            : ['--appendonly', 'no']),
          '--dbfilename',
          'dump.rdb',
        ],
        { stdio: 'ignore' },
      );
      await waitForPing(url, true);
    },
    async stop() {
      const client = createClient({ url });
      client.on('error', () => undefined);
      await client.connect();
      await client.sendCommand(['SHUTDOWN', 'SAVE']).catch(() => undefined);
      client.destroy();
      await waitForPing(url, false);
      child = undefined;
    },
    async kill() {
      const running = child;
      child = undefined;
      if (!running) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGCONT');
      running.kill('SIGKILL');
      await exited;
    },
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    async dispose() {
      child?.kill('SIGCONT');
      child?.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
  return own;
}

export async function startOwnRedis(options: OwnRedisOptions = {}): Promise<OwnRedis> {
  const own = await createOwnRedis(options);
  await own.start();
  return own;
}
