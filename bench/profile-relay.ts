// `node --import tsx bench/profile-relay.ts <dir> [on|off|bare]`: billfold (session cache on or off) or
// the bare relay under the benchmark's load with `--cpu-prof`, the profile written to <dir> when it
// stops; then the top self-time functions printed. How docs/performance.md's profile findings were made.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createClient } from 'redis';
import { billfoldListening, compile, ROOT, start, stopChildren } from './processes.js';
import { wrk } from './wrk.js';

const [given, cache = 'on', redisUrl = 'redis://127.0.0.1:6379'] = process.argv.slice(2);
if (!given) throw new Error('usage: profile-relay <profile dir> [on|off|bare] [redis url]');
const dir: string = given;

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

async function main() {
  compile();
  const sandbox = await start(
    'dist/sandbox/sandbox-cli.js',
    ['--port', '0'],
    {},
    (line) => /listening on (http:\/\/\S+)/.exec(line)?.[1],
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  const env = Object.fromEntries(
    sandbox.output.flatMap((line) => {
      const match = /^export (\w+)=(.*)$/.exec(line.trim());
      return match ? [[match[1]!, match[2]!]] : [];
    }),
  );
  const profiled = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  const { child, url, headers } =
    cache === 'bare' ? await startBare(env, profiled) : await startBillfold(env, profiled);
  const target = `${url}/api/billingplatform/ACCOUNT/1001`;
  await wrk({ url: target, connections: 32, durationS: 3, headers });
  const result = await wrk({ url: target, connections: 32, durationS: 10, headers });
  process.stderr.write(`profile-relay: ${Math.round(result.rps)} req/s, non-2xx ${result.non2xx}\n`);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;

  const written = (await readdir(dir)).filter((name) => name.endsWith('.cpuprofile'));
  // The main thread's profile is the largest (tsx's loader thread writes one too).
  const sizes = await Promise.all(written.map(async (name) => (await stat(join(dir, name))).size));
  const newest = written[sizes.indexOf(Math.max(...sizes))]!;
  const profile = JSON.parse(await readFile(join(dir, newest), 'utf8')) as { nodes: Node[] };
  const total = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0);
  const bySelf = new Map<string, number>();
  for (const node of profile.nodes) {
    const { functionName, url: file, lineNumber } = node.callFrame;
    const name = `${functionName || '(anonymous)'} ${file.replace(/^.*node_modules\//, '').replace(`file://${ROOT}`, '')}:${lineNumber + 1}`;
    bySelf.set(name, (bySelf.get(name) ?? 0) + (node.hitCount ?? 0));
  }
  for (const [name, hits] of [...bySelf].sort((a, b) => b[1] - a[1]).slice(0, 45))
    console.log(`${((100 * hits) / total).toFixed(1).padStart(5)}%  ${name}`);
}

async function startBillfold(env: Record<string, string>, profiled: string[]) {
  const billfold = await start(
    'dist/main.js',
    [],
    {
      ...env,
      SESSION_SECRETS: 'bench-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz',
      SESSION_ENCRYPTION_KEYS: 'k1:Wits2s26MrYyhpz0vjD6d3ofciP43yZy8m8app2n6xQ',
      NODE_ENV: 'production',
      PUBLIC_ORIGIN: 'https://billfold.bench',
      TRUST_PROXY: 'loopback',
      PORT: '0',
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: `billfold-profile:${process.pid}:`,
      SESSION_CACHE: cache,
      RELAY_RATE_LIMIT: '0',
      RELAY_MAX_CONCURRENT_PER_SESSION: '0',
      LOG_LEVEL: 'info',
    },
    billfoldListening,
    profiled,
  );
  const url = `http://127.0.0.1:${billfold.value}`;
  const proxied = { 'x-forwarded-proto': 'https', 'x-csrf': '1' };
  const login = await fetch(`${url}/auth/billingplatform/login`, {
    method: 'POST',
    headers: { ...proxied, 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'demo', password: 'demo-password' }),
  });
  const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0]!;
  return { child: billfold.child, url, headers: { ...proxied, cookie } };
}

// The bare relay holds the upstream session id under `bare:<cookie value>`, as the benchmark sets it.
async function startBare(env: Record<string, string>, profiled: string[]) {
  const upstream = new URL(env.BILLINGPLATFORM_BASE_URL ?? '');
  const login = await fetch(`${upstream.href}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'demo', password: 'demo-password' }),
  });
  const session = ((await login.json()) as { loginResponse: Array<{ SessionID: string }> }).loginResponse[0]!
    .SessionID;
  const redis = createClient({ url: redisUrl });
  await redis.connect();
  const key = `profile-${process.pid}`;
  await redis.set(`bare:${key}`, session, { EX: 600 });
  await redis.close();
  const port = String(20_000 + (process.pid % 10_000));
  const bare = await start(
    'dist/bench/bare-relay.js',
    [upstream.origin, upstream.pathname, redisUrl, port, 'bare'],
    {},
    (line) => (line.includes('ready') ? 'ready' : undefined),
    profiled,
  );
  return { child: bare.child, url: `http://127.0.0.1:${port}`, headers: { cookie: `bare=${key}` } };
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(stopChildren);
