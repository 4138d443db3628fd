// `npm run bench`: billfold's relay against the floor it is measured by (docs/performance.md) and against
// the two stacks a team would otherwise assemble, in one run, on one upstream and one Redis:
// (a) the sandbox upstream called directly, (b) the bare Node relay in bench/, (c) Express +
// express-session + connect-redis + http-proxy-middleware, (d) fastify + @fastify/session +
// connect-redis + @fastify/http-proxy with fastify's request log, and the same without it, (e)
// billfold with SESSION_CACHE=off, (f) billfold with its session cache. Every contender is driven in
// turn, fifteen short rounds (every other one in reverse order); figures are medians, and ratios
// medians of each round's own, so the machine's noise falls on all of them alike. Then: Redis
// commands per relayed request, the revocation latency across three billfold instances, the session
// record size and store memory; billfold with traces on (exported over OTLP to a sink in this
// process) runs as one more contender, and the trace hooks' cost with traces off is timed in a loop.
// Prints tables, writes bench/results.json and bench/results.svg.
// `--smoke` runs every step for a second or so, to prove the benchmark works (CI does this).
import { spawn } from 'node:child_process';
import http, { type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { createClient } from 'redis';
import { traceRequests } from '../src/middleware/request-tracing.js';
import { endStoreSpan, endUpstreamSpan, startStoreSpan, startUpstreamSpan } from '../src/tracing.js';
import { billfoldListening, compile, start, stopChildren, track } from './processes.js';
import { wrk, type LoadResult } from './wrk.js';
import { renderChart } from './render-chart.js';
import { measureSessionMemory } from './session-memory.js';

const SMOKE = process.argv.includes('--smoke');
// Many short rounds rather than a few long ones: on a shared machine whose speed drifts by half within
// a minute, contenders measured seconds apart in the same round are what can be compared.
const DURATION_S = SMOKE ? 1 : 2;
const WARMUP_S = SMOKE ? 1 : 2;
const ROUNDS = SMOKE ? 1 : 15;
/** Each connection count of the scale step is one run of this length. */
const SCALE_DURATION_S = SMOKE ? 1 : 5;
const CONNECTIONS = 32;
const SCALE_CONNECTIONS = [1, 8, 64, 256];
const REVOCATIONS = SMOKE ? 5 : 200;
const SECRETS = {
  SESSION_SECRETS: 'bench-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz',
  SESSION_ENCRYPTION_KEYS: 'k1:Wits2s26MrYyhpz0vjD6d3ofciP43yZy8m8app2n6xQ',
};

const step = (message: string) => process.stderr.write(`bench: ${message}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What wrk measured of one contender (rounded for the tables), and its own CPU. */
interface Run extends LoadResult {
  name: string;
  connections: number;
  /** CPU time (user and system) the contender's process spent per request, in microseconds. */
  cpuUsPerRequest: number;
}

interface Contender {
  name: string;
  url: string;
  headers: Record<string, string>;
  /** The process that serves it, whose CPU time is counted. */
  pid: number;
}

/** CPU time a process has used so far, in ms (Linux: /proc/<pid>/stat, in clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

type Redis = Awaited<ReturnType<typeof connectRedis>>;

async function connectRedis(url: string) {
  const client = createClient({ url });
  await client.connect();
  return client;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no free port');
  return address.port;
}

/** A redis-server of the benchmark's own, so that its command counts are billfold's alone. */
async function startRedis(): Promise<string> {
  const port = await freePort();
  track(
    spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    ),
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 100; attempt++) {
    const client = createClient({ url, socket: { reconnectStrategy: false } });
    client.on('error', () => undefined);
    const up = await client.connect().then(
      () => true,
      () => false,
    );
    if (up) {
      client.destroy();
      return url;
    }
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}

/** The commands Redis has run, by name, less the INFO calls that read them. */
async function commandCounts(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const counts = new Map<string, number>();
  for (const [, name = '', calls] of info.matchAll(/cmdstat_([^:]+):calls=(\d+)/g))
    if (name !== 'info') counts.set(name, Number(calls));
  return counts;
}

/** Every command Redis has run, less the INFO calls that read the count. */
async function commandCount(redis: Redis): Promise<number> {
  return [...(await commandCounts(redis)).values()].reduce((sum, calls) => sum + calls, 0);
}

/**
 * Waits until Redis has run nothing for a quarter of a second (at most 20 s): a contender that fell
 * behind (the Express stack queues for seconds) is still answering after its load stopped, and its
 * commands and CPU must not land in the next contender's window.
 */
async function settle(redis: Redis): Promise<void> {
  let last = await commandCount(redis);
  for (let waited = 0; waited < 20_000; waited += 250) {
    await sleep(250);
    const now = await commandCount(redis);
    if (now === last) return;
    last = now;
  }
}

async function load(
  contender: Contender,
  connections: number,
  warmup: boolean,
  durationS = DURATION_S,
): Promise<Run> {
  const { name, url, headers } = contender;
  if (warmup) await wrk({ url, connections, durationS: WARMUP_S, headers });
  const cpuBefore = cpuMs(contender.pid);
  const result = await wrk({ url, connections, durationS, headers });
  const cpu = cpuMs(contender.pid) - cpuBefore;
  return {
    ...result,
    name,
    connections,
    rps: Math.round(result.rps),
    p50: Math.round(100 * result.p50) / 100,
    p99: Math.round(100 * result.p99) / 100,
    cpuUsPerRequest: result.requests > 0 ? Math.round((1000 * cpu) / result.requests) : 0,
  };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

/** The median round of each figure, and every error of every round. */
function medianRun(runs: Run[]): Run {
  return {
    name: runs[0]!.name,
    connections: runs[0]!.connections,
    requests: runs.reduce((sum, run) => sum + run.requests, 0),
    rps: Math.round(median(runs.map((run) => run.rps))),
    p50: median(runs.map((run) => run.p50)),
    p99: median(runs.map((run) => run.p99)),
    errors: runs.reduce((sum, run) => sum + run.errors, 0),
    non2xx: runs.reduce((sum, run) => sum + run.non2xx, 0),
    cpuUsPerRequest: Math.round(median(runs.map((run) => run.cpuUsPerRequest))),
  };
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;

/**
 * What the trace hooks cost a relayed request with no SDK registered (this process registers none):
 * the request's span, one upstream span and two store spans, as the relay makes them, in a loop.
 */
function tracesOffNanosecondsPerRequest(iterations: number): number {
  const req = {
    method: 'GET',
    url: '/api/billingplatform/ACCOUNT/1',
    headers: {
      cookie: 'billfold.sid=x',
      'x-csrf': '1',
      traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`,
    },
  } as unknown as IncomingMessage;
  const res = new http.ServerResponse(req);
  const url = new URL('http://127.0.0.1:4000/ACCOUNT/1');
  const headers = { sessionid: 'x' };
  let sink = 0;
  const relay = traceRequests(() => {
    for (let store = 0; store < 2; store++) endStoreSpan(startStoreSpan('get'), false);
    const upstream = startUpstreamSpan('billingplatform', 'GET', url, headers);
    sink += Object.keys(upstream.headers).length;
    endUpstreamSpan(upstream.span, 200);
  });
  for (let i = 0; i < iterations / 10; i++) relay(req, res);
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) relay(req, res);
  const elapsed = Number(process.hrtime.bigint() - started);
  if (sink === 0) throw new Error('the hooks did not run');
  return elapsed / iterations;
}

async function main() {
  const redisUrl = process.env.BENCH_REDIS_URL ?? (await startRedis());
  const redis = await connectRedis(redisUrl);
  const prefix = `billfold-bench:${process.pid}:`;

  step('compiling billfold and the baselines');
  compile();
  step('starting the sandbox upstream');
  const sandbox = await start(
    'dist/sandbox/sandbox-cli.js',
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
    await sleep(20);
    for (const line of sandbox.output) {
      const match = /^export (\w+)=(.*)$/.exec(line.trim());
      if (match) sandboxEnv[match[1]!] = match[2]!;
    }
  }
  const upstreamBase = sandboxEnv.BILLINGPLATFORM_BASE_URL!;
  const upstream = new URL(upstreamBase);

  // Production mode behind a trusted TLS-terminating proxy: the load generator plays the proxy.
  const proxied = { 'x-forwarded-proto': 'https', 'x-csrf': '1' };
  // The OTLP sink for the traced instance: counts what it is sent and answers at once.
  let exports = 0;
  let exportedBytes = 0;
  const collector = http.createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (exportedBytes += chunk.length));
    req.on('end', () => {
      exports++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const tracesOn = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
    OTEL_SERVICE_NAME: 'billfold-bench',
  };
  const startBillfold = async (sessionCache: 'on' | 'off', keyPrefix: string, extra = {}) => {
    const started = await start(
      'dist/main.js',
      [],
      {
        ...sandboxEnv,
        ...SECRETS,
        NODE_ENV: 'production',
        PUBLIC_ORIGIN: 'https://billfold.bench',
        TRUST_PROXY: 'loopback',
        PORT: '0',
        REDIS_URL: redisUrl,
        REDIS_KEY_PREFIX: keyPrefix,
        SESSION_CACHE: sessionCache,
        // One cookie drives every connection: no per-session limit is under test.
        RELAY_RATE_LIMIT: '0',
        RELAY_MAX_CONCURRENT_PER_SESSION: '0',
        LOGIN_MAX_SUCCESSES_PER_IP: '1000000',
        MAX_SESSIONS_PER_IDENTITY: '10000',
        LOG_LEVEL: 'info',
        ...extra,
      },
      billfoldListening,
      process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [],
    );
    return { url: `http://127.0.0.1:${started.value}`, pid: started.child.pid! };
  };
  step('starting billfold: SESSION_CACHE=off, three instances with it on, one with traces on');
  const [off, on, peerOne, peerTwo, traced] = await Promise.all([
    startBillfold('off', `${prefix}off:`),
    startBillfold('on', `${prefix}on:`),
    startBillfold('on', `${prefix}on:`),
    startBillfold('on', `${prefix}on:`),
    startBillfold('on', `${prefix}traced:`, tracesOn),
  ]);

  const signIn = async (billfoldUrl: string) => {
    const login = await fetch(`${billfoldUrl}/auth/billingplatform/login`, {
      method: 'POST',
      headers: { ...proxied, 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'demo', password: 'demo-password' }),
    });
    if (login.status !== 200) throw new Error(`billfold login answered ${login.status}`);
    return (login.headers.getSetCookie()[0] ?? '').split(';')[0]!;
  };
  const [billfoldOff, billfoldOn] = [off.url, on.url];
  const loginStarted = performance.now();
  const cookieOn = await signIn(billfoldOn);
  const created = await fetch(`${billfoldOn}/api/billingplatform/ACCOUNT`, {
    method: 'POST',
    headers: { ...proxied, cookie: cookieOn, 'content-type': 'application/json' },
    body: JSON.stringify({ brmObjects: { Name: 'Bench Account', Notes: 'x'.repeat(900) } }),
  });
  const accountId = ((await created.json()) as { createResponse: Array<{ Id: string }> }).createResponse[0]!
    .Id;
  const loginToFirstRelayMs = performance.now() - loginStarted;
  const cookieOff = await signIn(billfoldOff);
  const cookieTraced = await signIn(traced.url);

  // The other contenders hold the upstream session id in their own sessions.
  const upstreamLogin = await fetch(`${upstreamBase}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'demo', password: 'demo-password' }),
  });
  const upstreamSession = ((await upstreamLogin.json()) as { loginResponse: Array<{ SessionID: string }> })
    .loginResponse[0]!.SessionID;
  await redis.set('bare:bench', upstreamSession, { EX: 3600 });
  step('starting the bare relay and the Express and fastify stacks');
  const [barePort, expressPort, fastifyPort, quietFastifyPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const ready = (line: string) => (line.includes('ready') ? 'ready' : undefined);
  const fastifyStack = (port: number, logging: 'logged' | 'quiet') =>
    start(
      'dist/bench/fastify-stack.js',
      [upstream.origin, upstream.pathname, redisUrl, String(port), `${prefix}fastify-${logging}:`, logging],
      {},
      ready,
    );
  const [bareProcess, expressProcess, fastifyProcess, quietFastifyProcess] = await Promise.all([
    start(
      'dist/bench/bare-relay.js',
      [upstream.origin, upstream.pathname, redisUrl, String(barePort), 'bare'],
      {},
      ready,
    ),
    start(
      'dist/bench/express-stack.js',
      [upstream.origin, upstream.pathname, redisUrl, String(expressPort), `${prefix}express:`],
      {},
      ready,
    ),
    fastifyStack(fastifyPort, 'logged'),
    fastifyStack(quietFastifyPort, 'quiet'),
  ]);
  const stackCookie = async (port: number) => {
    const answer = await fetch(`http://127.0.0.1:${port}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sessionId: upstreamSession }),
    });
    if (answer.status !== 204) throw new Error(`stack login on ${port} answered ${answer.status}`);
    return (answer.headers.getSetCookie()[0] ?? '').split(';')[0]!;
  };

  const path = `/ACCOUNT/${accountId}`;
  const relayPath = `/api/billingplatform${path}`;
  const bare: Contender = {
    name: 'bare Node relay',
    url: `http://127.0.0.1:${barePort}${relayPath}`,
    headers: { cookie: 'bare=bench' },
    pid: bareProcess.child.pid!,
  };
  const cached: Contender = {
    name: 'billfold',
    url: `${billfoldOn}${relayPath}`,
    headers: { ...proxied, cookie: cookieOn },
    pid: on.pid,
  };
  const contenders: Contender[] = [
    {
      name: 'direct upstream',
      url: `${upstreamBase}${path}`,
      headers: { sessionid: upstreamSession },
      pid: sandbox.child.pid!,
    },
    bare,
    {
      name: 'Express stack',
      url: `http://127.0.0.1:${expressPort}${relayPath}`,
      headers: { cookie: await stackCookie(expressPort) },
      pid: expressProcess.child.pid!,
    },
    {
      name: 'fastify stack',
      url: `http://127.0.0.1:${fastifyPort}${relayPath}`,
      headers: { cookie: await stackCookie(fastifyPort) },
      pid: fastifyProcess.child.pid!,
    },
    {
      name: 'fastify stack, no log',
      url: `http://127.0.0.1:${quietFastifyPort}${relayPath}`,
      headers: { cookie: await stackCookie(quietFastifyPort) },
      pid: quietFastifyProcess.child.pid!,
    },
    {
      name: 'billfold, cache off',
      url: `${billfoldOff}${relayPath}`,
      headers: { ...proxied, cookie: cookieOff },
      pid: off.pid,
    },
    cached,
    {
      name: 'billfold, traces on',
      url: `${traced.url}${relayPath}`,
      headers: { ...proxied, cookie: cookieTraced },
      pid: traced.pid,
    },
  ];
  for (const contender of contenders) {
    const answer = await fetch(contender.url, { headers: contender.headers });
    if (answer.status !== 200) throw new Error(`${contender.name} answered ${answer.status}`);
    await answer.arrayBuffer();
  }

  const rounds: Run[][] = contenders.map(() => []);
  const commands: Array<{ commands: number; requests: number; byName: Record<string, number> }> =
    contenders.map(() => ({ commands: 0, requests: 0, byName: {} }));
  for (let round = 0; round < ROUNDS; round++) {
    // Every other round runs the contenders in reverse order, so that no contender always runs
    // right after the same neighbour or at the same point of a slow drift in the machine's speed.
    const order = [...contenders.entries()];
    if (round % 2 === 1) order.reverse();
    for (const [i, contender] of order) {
      step(`round ${round + 1} of ${ROUNDS}: ${contender.name}, ${CONNECTIONS} connections`);
      if (round === 0) await wrk({ ...contender, connections: CONNECTIONS, durationS: WARMUP_S });
      await settle(redis);
      const before = await commandCounts(redis);
      const run = await load(contender, CONNECTIONS, false);
      const counted = commands[i]!;
      for (const [name, calls] of await commandCounts(redis)) {
        const ran = calls - (before.get(name) ?? 0);
        if (ran === 0) continue;
        counted.commands += ran;
        counted.byName[name] = (counted.byName[name] ?? 0) + ran;
      }
      counted.requests += run.requests;
      rounds[i]!.push(run);
    }
  }
  const runs = rounds.map(medianRun);
  const perRequest = commands.map(({ commands: count, requests }) => (requests > 0 ? count / requests : 0));

  const scale: Run[] = [];
  for (const connections of SCALE_CONNECTIONS) {
    for (const contender of [bare, cached]) {
      step(`${contender.name}, ${connections} connections`);
      scale.push(await load(contender, connections, true, SCALE_DURATION_S));
    }
  }

  step(`revocation across three instances, ${REVOCATIONS} times`);
  const revocation = await measureRevocation(
    billfoldOn,
    [peerOne.url, peerTwo.url],
    relayPath,
    proxied,
    signIn,
  );

  // Four providers connected: the record as Redis holds it.
  const four = await fetch(`${billfoldOn}/auth/bill/login`, {
    method: 'POST',
    headers: { ...proxied, cookie: cookieOn, 'content-type': 'application/json' },
    body: JSON.stringify({ userName: 'demo@example.com', password: 'demo-password', orgId: '00801DEMOORG' }),
  });
  let fourCookie = (four.headers.getSetCookie()[0] ?? cookieOn).split(';')[0]!;
  for (const [provider, body] of [
    ['billogram', { apiUserId: 'demo-api-user', apiPassword: 'demo-api-password' }],
    ['billbora', { email: 'demo@example.com', password: 'demo-password' }],
  ] as const) {
    const answer = await fetch(`${billfoldOn}/auth/${provider}/login`, {
      method: 'POST',
      headers: { ...proxied, cookie: fourCookie, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    fourCookie = (answer.headers.getSetCookie()[0] ?? fourCookie).split(';')[0]!;
  }
  const sessionId = decodeURIComponent(fourCookie.split('=')[1]!).slice(2).split('.')[0]!;
  const recordBytes = await redis.strLen(`${prefix}on:s:${sessionId}`);

  step('trace hooks with traces off');
  const hooksOffNs = tracesOffNanosecondsPerRequest(SMOKE ? 100_000 : 2_000_000);
  collector.close();

  step('store memory per session');
  const memory = await measureSessionMemory(SMOKE ? 1000 : 100_000, redisUrl);

  const byName = (name: string) => runs.find((run) => run.name === name)!;
  const floor = byName('bare Node relay');
  const cacheOff = byName('billfold, cache off');
  const cacheOn = byName('billfold');
  const tracedRun = byName('billfold, traces on');
  // A ratio between two contenders is the median of their ratios round by round: each round compares
  // runs seconds apart, so a slow minute of the machine weighs on both sides of it alike.
  const paired = (a: Run, b: Run, figure: 'rps' | 'p99' | 'cpuUsPerRequest') => {
    const [ours, theirs] = [rounds[runs.indexOf(a)]!, rounds[runs.indexOf(b)]!];
    return median(
      ours.map((run, round) => run[figure] / (theirs[round]?.[figure] ?? 0)).filter(Number.isFinite),
    );
  };
  const ratio = (a: Run, b: Run, figure: 'rps' | 'p99' = 'rps') => paired(a, b, figure).toFixed(2);
  const [fastify, quietFastify, express] = [
    byName('fastify stack'),
    byName('fastify stack, no log'),
    byName('Express stack'),
  ];
  console.table(
    runs.map((run, i) => ({
      contender: run.name,
      'req/s': run.rps,
      'p50 ms': run.p50,
      'p99 ms': run.p99,
      'x bare': ratio(run, floor),
      'x bare p99': ratio(run, floor, 'p99'),
      'x fastify': ratio(run, fastify),
      'x Express': ratio(run, express),
      'Redis cmds/req': perRequest[i]!.toFixed(3),
      'CPU µs/req': run.cpuUsPerRequest,
      errors: run.errors + run.non2xx,
    })),
  );
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
    cacheOffRatio: paired(cacheOff, floor, 'rps'),
    cacheOffVsFastify: paired(cacheOff, fastify, 'rps'),
    cacheOffVsFastifyNoLog: paired(cacheOff, quietFastify, 'rps'),
    cacheOnRatio: paired(cacheOn, floor, 'rps'),
    cacheOnVsFastify: paired(cacheOn, fastify, 'rps'),
    cacheOnVsFastifyNoLog: paired(cacheOn, quietFastify, 'rps'),
    p99Ratio: paired(cacheOn, floor, 'p99'),
    cacheOffP99Ratio: paired(cacheOff, floor, 'p99'),
    cpuRatioCacheOff: paired(cacheOff, floor, 'cpuUsPerRequest'),
    cpuRatioCacheOn: paired(cacheOn, floor, 'cpuUsPerRequest'),
    redisCommandsPerRelayCacheOff: perRequest[runs.indexOf(cacheOff)]!,
    redisCommandsPerRelayCacheOn: perRequest[runs.indexOf(cacheOn)]!,
    sessionRecordBytes: recordBytes,
    tracesOnVsOff: {
      rps: paired(tracedRun, cacheOn, 'rps'),
      p99: paired(tracedRun, cacheOn, 'p99'),
    },
    traceHooksOffNsPerRequest: hooksOffNs,
  };
  console.log(
    [
      `cores: ${cpus().length}${SMOKE ? ' (smoke run: figures are not meaningful)' : ''}; medians of ${ROUNDS} rounds of ${DURATION_S} s; ratios are medians of the rounds' own ratios`,
      `cache off: ${targets.cacheOffRatio.toFixed(2)} x bare (target >= 0.8), ${targets.cacheOffVsFastify.toFixed(2)} x fastify (target >= 1.5; ${targets.cacheOffVsFastifyNoLog.toFixed(2)} x fastify without its log), p99 ${targets.cacheOffP99Ratio.toFixed(2)} x bare`,
      `cache on: ${targets.cacheOnRatio.toFixed(2)} x bare (target > 1), ${targets.cacheOnVsFastify.toFixed(2)} x fastify (${targets.cacheOnVsFastifyNoLog.toFixed(2)} x without its log), p99 ${targets.p99Ratio.toFixed(2)} x bare (target <= 1.3)`,
      `CPU per relayed request: bare ${floor.cpuUsPerRequest} µs, billfold cache off ${cacheOff.cpuUsPerRequest} µs (${targets.cpuRatioCacheOff.toFixed(2)} x), cache on ${cacheOn.cpuUsPerRequest} µs (${targets.cpuRatioCacheOn.toFixed(2)} x)`,
      `Redis commands per relayed request: cache off ${targets.redisCommandsPerRelayCacheOff.toFixed(3)}, cache on ${targets.redisCommandsPerRelayCacheOn.toFixed(3)} (target 0)`,
      `revocation seen by the two other instances (${revocation.samples} samples): p50 ${revocation.p50} ms, p90 ${revocation.p90} ms, p99 ${revocation.p99} ms, max ${revocation.max} ms (target p99 <= 50); revoked sessions served afterwards: ${revocation.servedAfter}`,
      `traces on (every call sampled and exported) / off: ${targets.tracesOnVsOff.rps.toFixed(2)} x req/s, ${targets.tracesOnVsOff.p99.toFixed(2)} x p99; ${exports} OTLP requests, ${(exportedBytes / 1024).toFixed(0)} KiB`,
      `traces off: the hooks cost ${hooksOffNs.toFixed(0)} ns per relayed request, ${((hooksOffNs / (1e9 / cacheOn.rps)) * 100).toFixed(3)} % of a request's share of time at ${Math.round(cacheOn.rps)} req/s`,
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
    rounds: ROUNDS,
    connections: CONNECTIONS,
    runs,
    everyRound: rounds,
    redisCommandsPerRequest: Object.fromEntries(runs.map((run, i) => [run.name, perRequest[i]])),
    // Which commands those were, all rounds together: what a contender's figure above is made of.
    redisCommandsByName: Object.fromEntries(runs.map((run, i) => [run.name, commands[i]!.byName])),
    scale,
    revocation,
    targets,
    loginToFirstRelayMs,
    memory,
  };
  if (!SMOKE) {
    await writeFile(new URL('results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
    await writeFile(new URL('results.svg', import.meta.url), renderChart(runs, scale));
  }
  if (process.env.BENCH_REDIS_URL) await redis.del(['bare:bench', ...(await redis.keys(`${prefix}*`))]);
  redis.destroy();
}

/**
 * Signs in on `origin`, relays on every instance until each holds the record in its cache, logs out
 * on `origin`, and times how long after the logout's answer each of `peers` first refuses the cookie
 * (polling it with relayed calls). Any 200 after the logout's answer is a revoked session served.
 */
async function measureRevocation(
  origin: string,
  peers: string[],
  relayPath: string,
  proxied: Record<string, string>,
  signIn: (url: string) => Promise<string>,
) {
  const relay = async (url: string, cookie: string) => {
    const answer = await fetch(`${url}${relayPath}`, { headers: { ...proxied, cookie } });
    const text = await answer.text();
    return answer.status === 200 ? '200' : `${answer.status} ${/"code":"(\w+)"/.exec(text)?.[1] ?? ''}`;
  };
  const latencies: number[] = [];
  let servedAfter = 0;
  for (let trial = 0; trial < REVOCATIONS; trial++) {
    const cookie = await signIn(origin);
    for (const url of [origin, ...peers])
      for (let i = 0; i < 2; i++)
        if ((await relay(url, cookie)) !== '200') throw new Error('a fresh session was refused');
    const logout = await fetch(`${origin}/auth/logout`, { method: 'POST', headers: { ...proxied, cookie } });
    if (logout.status !== 204) throw new Error(`logout answered ${logout.status}`);
    const revokedAt = performance.now();
    await Promise.all(
      peers.map(async (url) => {
        for (;;) {
          const outcome = await relay(url, cookie);
          if (outcome === '401 unauthenticated') {
            latencies.push(performance.now() - revokedAt);
            return;
          }
          if (outcome === '200') servedAfter++;
          if (performance.now() - revokedAt > 5000) throw new Error(`${url} still answers ${outcome}`);
        }
      }),
    );
  }
  const sorted = latencies.sort((a, b) => a - b);
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    samples: sorted.length,
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? 0),
    servedAfter,
  };
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(stopChildren);
