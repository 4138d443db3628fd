// A/B: CPU per relayed request of billfold builds side by side with the bare relay, interleaved rounds.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { createClient } from 'redis';
const builds = process.argv.slice(2); // e.g. /work/main:on /work/wt18:on /work/wt18:off
const ROUNDS = Number(process.env.ROUNDS ?? 5), DUR = Number(process.env.DUR ?? 5);
const kids: any[] = [];
function run(cwd: string, script: string, args: string[], env: Record<string, string>, ready: (l: string) => string | undefined) {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd, env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  kids.push(child);
  return new Promise<{ pid: number; value: string; out: string[] }>((resolve) => {
    const out: string[] = []; let done = false;
    child.stdout!.on('data', (c: Buffer) => { if (done) return; for (const l of c.toString().split('\n')) { out.push(l); const v = ready(l); if (v !== undefined) { done = true; setTimeout(() => resolve({ pid: child.pid!, value: v, out }), 300); } } });
  });
}
const cpuOf = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) * 10000; };
const sb = await run('/work/wt18', 'src/sandbox/sandbox-cli.ts', ['--port', '0'], {}, (l) => /listening on (http:\/\/\S+)/.exec(l)?.[1]);
const env: Record<string, string> = Object.fromEntries(sb.out.flatMap((l) => { const m = /^export (\w+)=(.*)$/.exec(l.trim()); return m ? [[m[1]!, m[2]!]] : []; }));
const base = env.BILLINGPLATFORM_BASE_URL!; const up = new URL(base);
const redisUrl = 'redis://127.0.0.1:6379';
const redis = createClient({ url: redisUrl }); await redis.connect();
const contenders: { name: string; url: string; pid: number; headers: Record<string, string> }[] = [];
const proxied = { 'x-forwarded-proto': 'https', 'x-csrf': '1' };
let accountId = '';
for (const [i, b] of builds.entries()) {
  const [cwd, cache] = b.split(':');
  const r = await run(cwd!, 'src/main.ts', [], { ...env, SESSION_SECRETS: 'bench-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz', SESSION_ENCRYPTION_KEYS: 'k1:Wits2s26MrYyhpz0vjD6d3ofciP43yZy8m8app2n6xQ', NODE_ENV: 'production', PUBLIC_ORIGIN: 'https://billfold.bench', TRUST_PROXY: 'loopback', PORT: '0', REDIS_URL: redisUrl, REDIS_KEY_PREFIX: `ab:${process.pid}:${i}:`, SESSION_CACHE: cache!, RELAY_RATE_LIMIT: '0', RELAY_MAX_CONCURRENT_PER_SESSION: '0', LOGIN_MAX_SUCCESSES_PER_IP: '1000000', LOG_LEVEL: 'info' }, (l) => l.includes('"billfold listening"') ? String(JSON.parse(l).port) : undefined);
  const url = `http://127.0.0.1:${r.value}`;
  const login = await fetch(`${url}/auth/billingplatform/login`, { method: 'POST', headers: { ...proxied, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'demo', password: 'demo-password' }) });
  const cookie = login.headers.getSetCookie()[0]!.split(';')[0]!;
  if (!accountId) { const c = await fetch(`${url}/api/billingplatform/ACCOUNT`, { method: 'POST', headers: { ...proxied, cookie, 'content-type': 'application/json' }, body: JSON.stringify({ brmObjects: { Name: 'Bench Account', Notes: 'x'.repeat(900) } }) }); accountId = ((await c.json()) as any).createResponse[0].Id; }
  contenders.push({ name: b, url: `${url}/api/billingplatform/ACCOUNT/${accountId}`, pid: r.pid, headers: { ...proxied, cookie } });
}
// bare relay
const upSession = (await (await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'demo', password: 'demo-password' }) })).json() as any).loginResponse[0].SessionID;
await redis.set('bare:bench', upSession);
const bare = await run('/work/wt18', 'bench/bare-relay.ts', [up.origin, up.pathname, redisUrl, '4799', 'bfb'], {}, (l) => l.includes('ready') ? 'ok' : undefined);
contenders.unshift({ name: 'bare', url: `http://127.0.0.1:4799/api/billingplatform/ACCOUNT/${accountId}`, pid: bare.pid, headers: { cookie: 'bfb=bench' } });
const res: Record<string, { rps: number[]; cpu: number[] }> = {};
for (const c of contenders) { const w = await autocannon({ url: c.url, connections: 32, duration: 2, headers: c.headers }); if (w.non2xx) console.log('non2xx', c.name, w.non2xx); }
for (let r = 0; r < ROUNDS; r++) for (const c of contenders) {
  const c0 = cpuOf(c.pid); const a = await autocannon({ url: c.url, connections: 32, duration: DUR, headers: c.headers }); const c1 = cpuOf(c.pid);
  const e = (res[c.name] ??= { rps: [], cpu: [] }); e.rps.push(a.requests.average); e.cpu.push((c1 - c0) / (a.requests.total || 1));
  if (a.non2xx) console.log('non2xx', c.name, a.non2xx);
}
const med = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)]!;
const b0 = res.bare!;
for (const [n, e] of Object.entries(res)) console.log(n.padEnd(20), 'rps', Math.round(med(e.rps)), 'x bare', (med(e.rps) / med(b0.rps)).toFixed(2), 'cpu µs', Math.round(med(e.cpu)), 'x bare', (med(e.cpu) / med(b0.cpu)).toFixed(2), ' per-round cpu', e.cpu.map(Math.round).join(','));
for (const k of kids) k.kill(); await redis.quit(); process.exit(0);
