// `node --import tsx bench/profile-relay.ts <dir> [on|off]`: billfold under the benchmark's load with
// `--cpu-prof`, the profile written to <dir> when it stops; then the top self-time functions printed.
// How docs/performance.md's profile findings were made.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { billfoldListening, start, stopChildren } from './processes.js';

const [given, cache = 'on', redisUrl = 'redis://127.0.0.1:6379'] = process.argv.slice(2);
if (!given) throw new Error('usage: profile-relay <profile dir> [on|off] [redis url]');
const dir: string = given;

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

async function main() {
  const sandbox = await start(
    'src/sandbox/sandbox-cli.ts',
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
  const billfold = await start(
    'src/main.ts',
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
    ['--cpu-prof', `--cpu-prof-dir=${dir}`],
  );
  const url = `http://127.0.0.1:${billfold.value}`;
  const proxied = { 'x-forwarded-proto': 'https', 'x-csrf': '1' };
  const login = await fetch(`${url}/auth/billingplatform/login`, {
    method: 'POST',
    headers: { ...proxied, 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'demo', password: 'demo-password' }),
  });
  const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0]!;
  const headers = { ...proxied, cookie };
  await autocannon({ url: `${url}/api/billingplatform/ACCOUNT/1001`, connections: 32, duration: 3, headers });
  const result = await autocannon({
    url: `${url}/api/billingplatform/ACCOUNT/1001`,
    connections: 32,
    duration: 10,
    headers,
  });
  process.stderr.write(
    `profile-relay: ${Math.round(result.requests.average)} req/s, non-2xx ${result.non2xx}\n`,
  );
  const exited = new Promise((resolve) => billfold.child.once('exit', resolve));
  billfold.child.kill('SIGTERM');
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
    const name = `${functionName || '(anonymous)'} ${file.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*wt18\//, '')}:${lineNumber + 1}`;
    bySelf.set(name, (bySelf.get(name) ?? 0) + (node.hitCount ?? 0));
  }
  for (const [name, hits] of [...bySelf].sort((a, b) => b[1] - a[1]).slice(0, 45))
    console.log(`${((100 * hits) / total).toFixed(1).padStart(5)}%  ${name}`);
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(stopChildren);
