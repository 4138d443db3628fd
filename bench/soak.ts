// `npm run soak`: billfold on Redis for ten minutes over 10,000 sessions, mixing logins, relayed
// calls, credential renewals (Billbora's rotating JWTs) and logouts, with billfold's RSS and Redis's memory sampled every 10 s.
// `--minutes N` and `--sessions N` change the length and the population (CI runs one minute).
// Fails when any answer is not the one expected (a 5xx, a lost session), or when billfold's memory
// keeps growing once the population is steady.
import { readFile } from 'node:fs/promises';
import { createClient } from 'redis';
import { startSandbox } from '../src/sandbox/sandbox.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../src/sandbox/sandbox-demo.js';
import { billfoldListening, start, stopChildren } from './processes.js';

const argument = (name: string, fallback: number) => {
  const at = process.argv.indexOf(`--${name}`);
  const value = at < 0 ? fallback : Number(process.argv[at + 1]);
  if (!(value > 0)) throw new Error(`--${name} must be a positive number`);
  return value;
};
const MINUTES = argument('minutes', 10);
const SESSIONS = Math.round(argument('sessions', 10_000));
const WORKERS = 24;
const SAMPLE_EVERY_MS = 10_000;
const REDIS_URL = process.env.SOAK_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `billfold-soak:${process.pid}:`;
const SECRETS = {
  SESSION_SECRETS: 'soak-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz',
  SESSION_ENCRYPTION_KEYS: 'k1:_T2JUcpYxDKdmFNmQzp3g8RLs4sPrBvDcne3oHCMnjM',
};

const step = (message: string) => process.stderr.write(`soak: ${message}\n`);

type Provider = 'billingplatform' | 'billbora' | 'billogram';
const LOGINS: Record<Provider, unknown> = {
  billingplatform: demo.billingplatform,
  billbora: demo.billbora,
  billogram: demo.billogram,
};
const RELAYS: Record<Provider, string> = {
  billingplatform: '/api/billingplatform/ACCOUNT/1001',
  billbora: '/api/billbora/invoices/',
  billogram: '/api/billogram/customer/1',
};
const PROVIDERS = Object.keys(LOGINS) as Provider[];

interface Sample {
  atS: number;
  sessions: number;
  requests: number;
  billfoldRssMiB: number;
  redisUsedMiB: number;
  redisKeys: number;
}

const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

async function main() {
  const redis = createClient({ url: REDIS_URL });
  await redis.connect();
  const sandbox = await startSandbox();

  step(`billfold on ${REDIS_URL}, ${SESSIONS.toLocaleString('en')} sessions, ${MINUTES} min`);
  const billfold = await start(
    'src/main.ts',
    [],
    {
      ...sandbox.env,
      ...SECRETS,
      NODE_ENV: 'production',
      PUBLIC_ORIGIN: 'https://billfold.soak',
      TRUST_PROXY: 'loopback',
      PORT: '0',
      REDIS_URL,
      REDIS_KEY_PREFIX: PREFIX,
      RELAY_RATE_LIMIT: '100000000',
      // Every session is one of three demo users signing in from one address: no login limit is
      // what this run measures.
      MAX_SESSIONS_PER_IDENTITY: String(Math.min(SESSIONS * 2, 10_000)),
      LOGIN_MAX_SUCCESSES_PER_IP: '1000000',
      LOGIN_MAX_FAILURES_PER_IP: '1000000',
      LOGIN_MAX_FAILURES_PER_USER: '1000000',
      LOGIN_MAX_FAILURES_PER_USER_ALL_ADDRESSES: '1000000',
      LOG_LEVEL: 'info',
    },
    billfoldListening,
  );
  const pid = billfold.child.pid!;
  const base = `http://127.0.0.1:${billfold.value}`;
  const proxied = { 'x-forwarded-proto': 'https', 'x-csrf': '1' };

  const outcomes = new Map<string, number>();
  const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
  const unexpected: string[] = [];
  let requests = 0;

  const call = async (method: string, path: string, cookie?: string, body?: unknown) => {
    requests++;
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...proxied,
        ...(cookie && { cookie }),
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? null : JSON.stringify(body),
    });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };

  const sessions: { cookie: string; provider: Provider; ended?: boolean }[] = [];
  const login = async () => {
    const provider = PROVIDERS[Math.floor(Math.random() * PROVIDERS.length)]!;
    const answer = await call('POST', `/auth/${provider}/login`, undefined, LOGINS[provider]);
    count(`login ${answer.status}`);
    const cookie = (answer.headers.getSetCookie()[0] ?? '').split(';')[0]!;
    if (answer.status !== 200 || !cookie) unexpected.push(`login ${provider}: ${answer.status}`);
    else sessions.push({ cookie, provider });
  };
  const relay = async () => {
    const session = sessions[Math.floor(Math.random() * sessions.length)];
    if (!session) return;
    const answer = await call('GET', RELAYS[session.provider], session.cookie);
    // A call that raced its session's logout may find it gone; any other refusal is a lost session.
    const raced = answer.status === 401 && session.ended;
    count(`relay ${answer.status}${raced ? ' (raced its logout)' : ''}`);
    if (answer.status !== 200 && !raced)
      unexpected.push(`relay ${session.provider}: ${answer.status} ${answer.text.slice(0, 200)}`);
  };
  const logout = async () => {
    const at = Math.floor(Math.random() * sessions.length);
    const [session] = sessions.splice(at, 1);
    if (!session) return;
    session.ended = true;
    const answer = await call('POST', '/auth/logout', session.cookie);
    count(`logout ${answer.status}`);
    if (answer.status !== 204) unexpected.push(`logout: ${answer.status}`);
    const after = await call('GET', RELAYS[session.provider], session.cookie);
    count(`relay after logout ${after.status}`);
    if (after.status !== 401) unexpected.push(`relay after logout: ${after.status}, not 401`);
  };

  // Only this run's keys: the Redis may be shared.
  const prefixedKeys = async () => {
    let total = 0;
    for await (const keys of redis.scanIterator({ MATCH: `${PREFIX}*`, COUNT: 1000 })) total += keys.length;
    return total;
  };

  const started = performance.now();
  const endsAt = started + MINUTES * 60_000;
  const samples: Sample[] = [];
  const sample = async () => {
    const [rss, info, keys] = await Promise.all([rssOf(pid), redis.info('memory'), prefixedKeys()]);
    const taken: Sample = {
      atS: Math.round((performance.now() - started) / 1000),
      sessions: sessions.length,
      requests,
      billfoldRssMiB: mib(rss),
      redisUsedMiB: mib(Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0)),
      redisKeys: keys,
    };
    samples.push(taken);
    step(JSON.stringify(taken));
  };
  await sample();
  const sampler = setInterval(() => void sample().catch(() => undefined), SAMPLE_EVERY_MS);
  // Billbora access tokens live 75 s and billfold renews them 60 s ahead: a Billbora session's calls
  // renew its token every 15 s or so, through the single-flight renewer.
  sandbox.billbora.setAccessTokenLifetime(75_000);

  const worker = async () => {
    while (performance.now() < endsAt && unexpected.length < 20) {
      const roll = Math.random();
      try {
        if (sessions.length < SESSIONS) await login();
        else if (roll < 0.9) await relay();
        else await logout();
      } catch (error) {
        unexpected.push(`request failed: ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  clearInterval(sampler);
  await sample();

  const at = (fraction: number) =>
    samples[Math.min(samples.length - 1, Math.floor(samples.length * fraction))]!;
  const [first, middle, last] = [samples[0]!, at(0.5), samples.at(-1)!];
  console.table([first, middle, last].map((s, i) => ({ when: ['start', 'middle', 'end'][i], ...s })));
  console.table(Object.fromEntries([...outcomes].sort()));
  const refreshes = sandbox.billbora.refreshCalls();
  const reused = sandbox.billbora.revokedFamilies().length;
  console.log(
    `${requests.toLocaleString('en')} requests in ${MINUTES} min, ${refreshes.toLocaleString('en')} Billbora renewals, ${reused} token families revoked for refresh-token reuse, ${unexpected.length} unexpected answers`,
  );

  // Steady state: between the middle sample and the end, RSS may move with the collector, not climb
  // by half again.
  const growth = last.billfoldRssMiB / middle.billfoldRssMiB;
  const problems = [...unexpected.slice(0, 10)];
  if (MINUTES >= 5 && growth > 1.5)
    problems.push(`billfold RSS grew ${growth.toFixed(2)} x from the middle to the end`);

  for await (const keys of redis.scanIterator({ MATCH: `${PREFIX}*`, COUNT: 1000 }))
    if (keys.length > 0) await redis.unlink(keys);
  redis.destroy();
  await sandbox.close();
  if (problems.length > 0) throw new Error(`soak failed:\n${problems.join('\n')}`);
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(stopChildren);
