import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { createMemoryBackend, type MemoryBackend } from '../../src/session/memory-backend.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { useStack } from '../support/stack.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdefghijklmnopqrstuvwxyz';

/** One sample of the exposition text. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseSamples(text: string): Sample[] {
  return text.split('\n').flatMap((line) => {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) return [];
    const labels = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]),
    );
    return [{ name: match[1]!, labels, value: Number(match[3]) }];
  });
}

/** The sum of the samples named `name` whose labels include `labels` (0 when there are none). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** Scrapes `url`, with the right token unless told another (null: none). */
async function scrape(url: string, token: string | null = METRICS_TOKEN) {
  const response = await fetch(`${url}/metrics`, {
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  return { response, text, samples: parseSamples(text) };
}

describe('GET /metrics on the main port, behind METRICS_TOKEN', () => {
  const stack = useStack({
    store: 'embedded',
    env: {
      METRICS_TOKEN,
      UPSTREAM_TIMEOUT_MS: '300',
      LOGIN_MAX_FAILURES_PER_USER: '2',
      RELAY_RATE_LIMIT: '3',
    },
  });
  const client = () => createCookieClient(stack.billfold.url, stack.billfold.config.session.cookieName);

  it('refuses a scrape without the token, or with a wrong one, 401 in the documented shape', async () => {
    for (const token of [null, 'wrong', `${METRICS_TOKEN}x`, METRICS_TOKEN.slice(1), '']) {
      const { response, text } = await scrape(stack.billfold.url, token);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      expect(JSON.parse(text).error.code).toBe('unauthenticated');
    }
    const wrongScheme = await fetch(`${stack.billfold.url}/metrics`, {
      headers: { authorization: `Basic ${METRICS_TOKEN}` },
    });
    expect(wrongScheme.status).toBe(401);
  });

  it('counts a relayed request under its route template and provider, never its path', async () => {
    const user = client();
    const login = { route: '/auth/:provider/login', status: '200' };
    const loginsBefore = valueOf((await scrape(stack.billfold.url)).samples, 'http_requests_total', login);
    // Billogram: the failure-counting test locks the BillingPlatform demo user out of this instance.
    await user.post('/auth/billogram/login', demo.billogram);
    const relayed = { route: '/api/:provider', method: 'GET', status: '200', provider: 'billogram' };
    const before = valueOf((await scrape(stack.billfold.url)).samples, 'http_requests_total', relayed);
    for (let i = 0; i < 2; i++) expect((await user.get('/api/billogram/customer/1')).status).toBe(200);
    const { response, text, samples } = await scrape(stack.billfold.url);

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(valueOf(samples, 'http_requests_total', relayed) - before).toBe(2);
    expect(
      valueOf(samples, 'http_request_duration_seconds_count', {
        route: '/api/:provider',
        provider: 'billogram',
      }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      valueOf(samples, 'upstream_request_duration_seconds_count', {
        provider: 'billogram',
        status_class: '2xx',
      }),
    ).toBeGreaterThanOrEqual(3);
    expect(valueOf(samples, 'store_operation_duration_seconds_count', { operation: 'get' })).toBeGreaterThan(
      0,
    );
    expect(valueOf(samples, 'http_requests_total', login) - loginsBefore).toBe(1);
    // Labels are templates: no raw path, query or session id reaches the exposition.
    expect(text).not.toContain('customer');
    expect(text).not.toContain(user.cookie!.split('=')[1]!.slice(0, 20));
    const routes = new Set(samples.flatMap((s) => (s.labels.route ? [s.labels.route] : [])));
    for (const route of routes) expect(route).toMatch(/^(\/[\w:/]+|other)$/);
  });

  it('counts login failures, rate-limit refusals, renewals and upstream errors from what was audited', async () => {
    const user = client();
    await user.post('/auth/billingplatform/login', { ...demo.billingplatform, password: 'wrong' });
    await user.post('/auth/billingplatform/login', { ...demo.billingplatform, password: 'wrong' });
    expect((await user.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(429);

    const relaying = client();
    await relaying.post('/auth/billbora/login', demo.billbora);
    stack.sandbox.billbora.expireAccessTokens();
    expect((await relaying.get('/api/billbora/invoices/')).status).toBe(200);
    // RELAY_RATE_LIMIT is 3 calls per session: the fourth is refused.
    for (let i = 0; i < 2; i++) await relaying.get('/api/billbora/invoices/');
    expect((await relaying.get('/api/billbora/invoices/')).status).toBe(429);

    const timingOut = client();
    await timingOut.post('/auth/billogram/login', demo.billogram);
    stack.sandbox.billogram.hangNext(1);
    expect((await timingOut.get('/api/billogram/customer')).status).toBe(504);

    const { samples } = await scrape(stack.billfold.url);
    expect(
      valueOf(samples, 'login_failures_total', {
        provider: 'billingplatform',
        reason: 'invalid_credentials',
      }),
    ).toBe(2);
    expect(valueOf(samples, 'rate_limited_total', { kind: 'login' })).toBe(1);
    expect(valueOf(samples, 'rate_limited_total', { kind: 'relay' })).toBe(1);
    expect(valueOf(samples, 'renewals_total', { provider: 'billbora', outcome: 'success' })).toBe(1);
    expect(
      valueOf(samples, 'upstream_errors_total', { provider: 'billogram', code: 'upstream_timeout' }),
    ).toBe(1);
    expect(
      valueOf(samples, 'upstream_request_duration_seconds_count', {
        provider: 'billogram',
        status_class: 'error',
      }),
    ).toBe(1);
  });

  it('reports the active sessions and Node process figures', async () => {
    const { samples } = await scrape(stack.billfold.url);
    const active = valueOf(samples, 'active_sessions');
    // (BillingPlatform's demo user is past its failed-login limit by now.)
    expect((await client().post('/auth/billogram/login', demo.billogram)).status).toBe(200);
    expect(valueOf((await scrape(stack.billfold.url)).samples, 'active_sessions')).toBe(active + 1);
    expect(samples.some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true);
    expect(samples.some((s) => s.name === 'nodejs_eventloop_lag_p99_seconds')).toBe(true);
  });
});

describe('GET /metrics elsewhere', () => {
  // Instances of each test's own, each on its embedded store.
  const stack = useStack({ store: 'embedded', instances: 0 });

  it('is a 404 on the main port when neither METRICS_PORT nor METRICS_TOKEN is set', async () => {
    const billfold = await stack.start();
    const { response, text } = await scrape(billfold.url);
    expect(response.status).toBe(404);
    expect(JSON.parse(text).error.code).toBe('not_found');
  });

  it('is served on METRICS_PORT alone (404 on the main port), with METRICS_TOKEN required there when set', async () => {
    const open = await stack.start({ METRICS_PORT: '0' });
    const guarded = await stack.start({ METRICS_PORT: '0', METRICS_TOKEN });
    expect((await scrape(open.url, null)).response.status).toBe(404);
    const served = await scrape(open.metricsUrl!, null);
    expect(served.response.status).toBe(200);
    expect(valueOf(served.samples, 'active_sessions')).toBe(0);
    expect((await fetch(`${open.metricsUrl!}/other`)).status).toBe(404);
    expect((await fetch(`${open.metricsUrl!}/metrics`, { method: 'POST' })).status).toBe(405);

    expect((await scrape(guarded.url)).response.status).toBe(404);
    expect((await scrape(guarded.metricsUrl!, null)).response.status).toBe(401);
    expect((await scrape(guarded.metricsUrl!)).response.status).toBe(200);
  });

  it('counts store failures, and still answers a scrape while the store is down', async () => {
    let down = false;
    const memory = createMemoryBackend({ clock: systemClock, maxEntries: 100 });
    const flaky: MemoryBackend = {
      ...memory,
      get: (key) => (down ? Promise.reject(new Error('store down')) : memory.get(key)),
      indexSize: (key, now) => (down ? Promise.reject(new Error('store down')) : memory.indexSize(key, now)),
    };
    const billfold = await stack.start({ METRICS_TOKEN }, { backend: flaky });
    const user = createCookieClient(billfold.url, billfold.config.session.cookieName);
    await user.post('/auth/billingplatform/login', demo.billingplatform);
    expect(valueOf((await scrape(billfold.url)).samples, 'active_sessions')).toBe(1);
    down = true;
    expect((await user.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(503);
    const { response, samples } = await scrape(billfold.url);
    expect(response.status).toBe(200);
    // The gauge keeps its last value; its failed count shows in the next scrape (a scrape reads the
    // counters while the gauge is still asking the store).
    expect(valueOf(samples, 'active_sessions')).toBe(1);
    expect(valueOf(samples, 'store_errors_total')).toBe(1);
    expect(valueOf((await scrape(billfold.url)).samples, 'store_errors_total')).toBe(2);
  });
});
