// `npm run bench`: billfold's relay against the floor it is measured by (docs/performance.md), in one run,
// on one upstream: (a) the sandbox upstream called directly, (b) the bare Node relay in bench/, and
// (c) billfold on Redis. Prints a table, writes bench/results.json and bench/results.svg.
// `--smoke` runs every step for a second or two, to prove the benchmark works (CI does this).
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import autocannon from 'autocannon';
import { createClient } from 'redis';
import { billfoldListening, start, stopChildren } from './processes.js';
import { renderChart } from './render-chart.js';
import { measureSessionMemory } from './session-memory.js';

const SMOKE = process.argv.includes('--smoke');
const DURATION_S = SMOKE ? 1 : 10;
const WARMUP_S = SMOKE ? 1 : 3;
const CONNECTIONS = 32;
const SCALE_CONNECTIONS = [1, 8, 64, 256];
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `billfold-bench:${process.pid}:`;
const SECRETS = {
  SESSION_SECRETS: 'bench-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz',
  SESSION_ENCRYPTION_KEYS: 'k1:Wits2s26MrYyhpz0vjD6d3ofciP43yZy8m8app2n6xQ',
};

const step = (message: string) => process.stderr.write(`bench: ${message}\n`);

interface Run {
  name: string;
  connections: number;
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(
  name: string,
  url: string,
  headers: Record<string, string>,
  connections = CONNECTIONS,
): Promise<Run> {
  step(`${name}, ${connections} connections`);
  await autocannon({ url, connections, duration: WARMUP_S, headers });
  const result = await autocannon({ url, connections, duration: DURATION_S, headers });
  return {
    name,
    connections,
    requests: result.requests.total,
    rps: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

async function commandCount(redis: { info(section: string): Promise<string> }): Promise<number> {
  const info = await redis.info('commandstats');
  return [...info.matchAll(/calls=(\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
}

async function main() {
  const redis = createClient({ url: REDIS_URL });
  await redis.connect();

  step('starting the sandbox upstream');
  const sandbox = await start(
    'src/sandbox/sandbox-cli.ts',
    ['--port', '0'],
    {},
    (line) => /listening on (http:\/\/\S+)/.exec(line)?.[1],
  );
  const sandboxEnv = Object.fromEntries(
    sandbox.output.flatMap((line) => {
      const match = /^export (\w+)=(.*)$/.exec(line.trim());
      return match ? [[match[1]!, match[2]!]] : [];
    }),
  );
  // The banner may arrive after the listening line.
  for (let i = 0; i < 50 && !sandboxEnv.BILLINGPLATFORM_BASE_URL; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    for (const line of sandbox.output) {
      const match = /^export (\w+)=(.*)$/.exec(line.trim());
      if (match) sandboxEnv[match[1]!] = match[2]!;
    }
  }
  const upstreamBase = sandboxEnv.BILLINGPLATFORM_BASE_URL!;
  const upstream = new URL(upstreamBase);

  step('starting billfold on Redis');
  const billfold = await start(
    'src/main.ts',
    [],
    {
      ...sandboxEnv,
      ...SECRETS,
      NODE_ENV: 'production',
      PUBLIC_ORIGIN: 'https://billfold.bench',
      TRUST_PROXY: 'loopback',
      PORT: '0',
      REDIS_URL,
      REDIS_KEY_PREFIX: PREFIX,
      RELAY_RATE_LIMIT: '100000000',
      LOG_LEVEL: 'info',
    },
    billfoldListening,
  );
  const billfoldUrl = `http://127.0.0.1:${billfold.value}`;
  // Production mode behind a trusted TLS-terminating proxy: the load generator plays the proxy.
  const proxied = { 'x-forwarded-proto': 'https', 'x-csrf': '1' };

  step('signing in');
  const loginStarted = performance.now();
  const login = await fetch(`${billfoldUrl}/auth/billingplatform/login`, {
    method: 'POST',
    headers: { ...proxied, 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'demo', password: 'demo-password' }),
  });
  const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0]!;
  const created = await fetch(`${billfoldUrl}/api/billingplatform/ACCOUNT`, {
    method: 'POST',
    headers: { ...proxied, cookie, 'content-type': 'application/json' },
    body: JSON.stringify({ brmObjects: { Name: 'Bench Account', Notes: 'x'.repeat(900) } }),
  });
  const accountId = ((await created.json()) as { createResponse: Array<{ Id: string }> }).createResponse[0]!
    .Id;
  const loginToFirstRelayMs = performance.now() - loginStarted;

  // The bare relay holds the upstream session id in Redis under a plain key.
  const upstreamLogin = await fetch(`${upstreamBase}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'demo', password: 'demo-password' }),
  });
  const upstreamSession = ((await upstreamLogin.json()) as { loginResponse: Array<{ SessionID: string }> })
    .loginResponse[0]!.SessionID;
  await redis.set('bare:bench', upstreamSession, { EX: 3600 });
  step('starting the bare relay');
  const barePort = 40_000 + (process.pid % 10_000);
  await start(
    'bench/bare-relay.ts',
    [upstream.origin, upstream.pathname, REDIS_URL, String(barePort), 'bare'],
    {},
    (line) => (line.includes('ready') ? 'ready' : undefined),
  );

  const path = `/ACCOUNT/${accountId}`;
  const runs: Run[] = [];
  runs.push(await load('direct upstream', `${upstreamBase}${path}`, { sessionid: upstreamSession }));
  runs.push(
    await load('bare Node relay', `http://127.0.0.1:${barePort}/api/billingplatform${path}`, {
      cookie: 'bare=bench',
    }),
  );
  const before = await commandCount(redis);
  const billfoldRun = await load('billfold', `${billfoldUrl}/api/billingplatform${path}`, {
    ...proxied,
    cookie,
  });
  const after = await commandCount(redis);
  runs.push(billfoldRun);
  // Warm-up requests count too; INFO itself adds one call per read.
  const warmupRequests = billfoldRun.requests * (WARMUP_S / DURATION_S);
  const commandsPerRequest = (after - before - 1) / (billfoldRun.requests + warmupRequests);

  const scale: Run[] = [];
  for (const connections of SCALE_CONNECTIONS) {
    scale.push(
      await load(
        'bare Node relay',
        `http://127.0.0.1:${barePort}/api/billingplatform${path}`,
        { cookie: 'bare=bench' },
        connections,
      ),
    );
    scale.push(
      await load(
        'billfold',
        `${billfoldUrl}/api/billingplatform${path}`,
        { ...proxied, cookie },
        connections,
      ),
    );
  }

  // Four providers connected: the record as Redis holds it.
  const four = await fetch(`${billfoldUrl}/auth/bill/login`, {
    method: 'POST',
    headers: { ...proxied, cookie, 'content-type': 'application/json' },
    body: JSON.stringify({ userName: 'demo@example.com', password: 'demo-password', orgId: '00801DEMOORG' }),
  });
  let fourCookie = (four.headers.getSetCookie()[0] ?? '').split(';')[0]!;
  for (const [provider, body] of [
    ['billogram', { apiUserId: 'demo-api-user', apiPassword: 'demo-api-password' }],
    ['billbora', { email: 'demo@example.com', password: 'demo-password' }],
  ] as const) {
    const answer = await fetch(`${billfoldUrl}/auth/${provider}/login`, {
      method: 'POST',
      headers: { ...proxied, cookie: fourCookie, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    fourCookie = (answer.headers.getSetCookie()[0] ?? fourCookie).split(';')[0]!;
  }
  const sessionId = decodeURIComponent(fourCookie.split('=')[1]!).slice(2).split('.')[0]!;
  const recordBytes = await redis.strLen(`${PREFIX}s:${sessionId}`);

  step('store memory per session');
  const memory = await measureSessionMemory(SMOKE ? 1000 : 100_000, REDIS_URL);

  const bare = runs[1]!;
  const table = runs.map((run) => ({
    contender: run.name,
    'req/s': run.rps,
    'p50 ms': run.p50,
    'p99 ms': run.p99,
    'x bare req/s': (run.rps / bare.rps).toFixed(2),
    'x bare p99': bare.p99 > 0 ? (run.p99 / bare.p99).toFixed(2) : 'n/a',
    errors: run.errors + run.non2xx,
  }));
  console.table(table);
  console.table(
    SCALE_CONNECTIONS.map((connections, i) => ({
      connections,
      'bare req/s': scale[2 * i]!.rps,
      'billfold req/s': scale[2 * i + 1]!.rps,
      ratio: (scale[2 * i + 1]!.rps / scale[2 * i]!.rps).toFixed(2),
      'bare p99': scale[2 * i]!.p99,
      'billfold p99': scale[2 * i + 1]!.p99,
    })),
  );
  const targets = {
    throughputRatio: billfoldRun.rps / bare.rps,
    p99Ratio: bare.p99 > 0 ? billfoldRun.p99 / bare.p99 : 0,
    redisCommandsPerRelay: commandsPerRequest,
    sessionRecordBytes: recordBytes,
  };
  console.log(
    [
      `cores: ${cpus().length}${SMOKE ? ' (smoke run: figures are not meaningful)' : ''}`,
      `throughput: billfold ${targets.throughputRatio.toFixed(2)} x bare (target >= 0.6)`,
      `p99: billfold ${targets.p99Ratio.toFixed(2)} x bare (target <= 2)`,
      `Redis commands per relayed request: ${commandsPerRequest.toFixed(3)} (target <= 1)`,
      `session record with four providers: ${recordBytes} bytes (target <= 2048)`,
      `login to first relayed answer: ${loginToFirstRelayMs.toFixed(1)} ms`,
      `store memory at ${memory.sessions.toLocaleString('en')} sessions: embedded ${memory.embeddedBytesPerSession} bytes/session, Redis ${memory.redisBytesPerSession} bytes/session`,
    ].join('\n'),
  );

  const results = {
    date: new Date().toISOString(),
    smoke: SMOKE,
    cores: cpus().length,
    cpu: cpus()[0]?.model,
    node: process.version,
    durationS: DURATION_S,
    connections: CONNECTIONS,
    runs,
    scale,
    targets,
    loginToFirstRelayMs,
    memory,
  };
  if (!SMOKE) {
    await writeFile(new URL('results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
    await writeFile(new URL('results.svg', import.meta.url), renderChart(runs, scale));
  }
  await redis.del(['bare:bench', ...(await redis.keys(`${PREFIX}*`))]);
  redis.destroy();
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(stopChildren);
