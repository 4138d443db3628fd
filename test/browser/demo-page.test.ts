import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type * as BillfoldClientModule from '../../src/client/billfold-client.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import type { BillfoldProcess } from '../support/billfold-process.js';
import { freePort } from '../support/redis-server.js';
import {
  createSelfSignedCertificate,
  launchChromium,
  startOtherOrigin,
  type OtherOrigin,
  type TestCertificate,
} from './browser-support.js';
import { signedOut } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

const COOKIE = '__Host-billfold';
const SCREENSHOT = fileURLToPath(new URL('../../test-results/demo-page-signed-in.png', import.meta.url));
const WAIT = { timeout: 15_000 };

/** What a page script could learn from one fetch. */
interface Probe {
  ok: boolean;
  status?: number;
  body?: string;
  requestId?: string | null;
  error?: string;
}

/** Runs fetch inside the page, as the page's own script would. */
function probe(page: Page, url: string, init: RequestInit): Promise<Probe> {
  return page.evaluate(
    async ({ url, init }) => {
      try {
        const response = await fetch(url, init);
        return {
          ok: true,
          status: response.status,
          body: await response.text(),
          requestId: response.headers.get('x-request-id'),
        };
      } catch (error) {
        return { ok: false, error: String(error) };
      }
    },
    { url, init },
  );
}

describe('the demo page in Chromium, against billfold over HTTPS', () => {
  const stack = useStack({ instances: 0, store: 'embedded' });
  let tls: TestCertificate | undefined;
  let billfold: BillfoldProcess | undefined;
  let browser: Browser | undefined;
  let listed: OtherOrigin | undefined;
  let unlisted: OtherOrigin | undefined;
  let origin = '';
  let launchError: unknown;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    // Kept, not thrown: every test then fails with the reason, rather than being reported as skipped.
    browser = await launchChromium().catch((error: unknown) => {
      launchError = error;
      return undefined;
    });
    tls = await createSelfSignedCertificate();
    listed = await startOtherOrigin(tls, 'listed SPA origin');
    unlisted = await startOtherOrigin(tls, 'unlisted origin');
    const port = await freePort();
    origin = `https://localhost:${port}`;
    billfold = await stack.spawn({
      NODE_ENV: 'development',
      PORT: String(port),
      PUBLIC_ORIGIN: origin,
      TLS_CERT_FILE: tls.certFile,
      TLS_KEY_FILE: tls.keyFile,
      CORS_ORIGINS: listed.origin,
      LOG_LEVEL: 'info',
    });
  }, 120_000);

  // Before the stack's own teardown, which stops billfold and the sandbox.
  afterAll(async () => {
    await Promise.allSettled(contexts.map((context) => context.close()));
    await browser?.close();
    await Promise.allSettled([listed?.close(), unlisted?.close(), tls?.remove()]);
  }, 60_000);

  /** A fresh browser profile (its own cookie jar) with the demo page open. */
  async function openDemo(): Promise<{ page: Page; context: BrowserContext; problems: string[] }> {
    if (!browser) throw launchError;
    // The certificate is self-signed; everything else about TLS is real.
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1280, height: 900 },
    });
    contexts.push(context);
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
    });
    await page.goto(`${origin}/`);
    await expect.poll(() => page.locator('#session-summary').textContent(), WAIT).toBe('Not signed in.');
    return { page, context, problems };
  }

  const card = (page: Page, provider: string) => page.locator(`[data-provider="${provider}"]`);
  const textOf = (page: Page, selector: string) => () => page.locator(selector).textContent();

  async function signIn(page: Page, provider: string, expected: RegExp): Promise<void> {
    await card(page, provider).getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => card(page, provider).locator('.status').textContent(), WAIT).toMatch(expected);
  }

  /** The call and sign-out buttons a user can see on a provider's card. */
  async function actionsShown(page: Page, provider: string): Promise<string[]> {
    const shown: string[] = [];
    for (const name of ['Call the API', 'Sign out']) {
      if (await card(page, provider).getByRole('button', { name, exact: true }).isVisible()) shown.push(name);
    }
    return shown;
  }

  async function callApi(page: Page, provider: string, expected: string): Promise<void> {
    await card(page, provider).getByRole('button', { name: 'Call the API' }).click();
    await expect.poll(textOf(page, '#output'), WAIT).toContain(expected);
    expect(await page.locator('#answer').textContent()).toMatch(/HTTP 200$/);
  }

  it('signs in to each provider, calls it, switches the Billbora organization, re-prompts on upstream expiry and signs out, all by clicks', async () => {
    const { page, context, problems } = await openDemo();

    // An error is shown by its code.
    await card(page, 'billingplatform').locator('input[name="password"]').fill('not-the-password');
    await card(page, 'billingplatform').getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(textOf(page, '#error'), WAIT).toMatch(/^invalid_credentials\b/);
    expect(await card(page, 'billingplatform').locator('.status').textContent()).toBe('Not connected');
    await card(page, 'billingplatform').locator('input[name="password"]').fill('demo-password');

    // Signed out, no card offers a call or a sign-out; each offers them once its provider is connected.
    for (const provider of ['billingplatform', 'bill', 'billogram', 'billbora']) {
      expect(await actionsShown(page, provider), provider).toEqual([]);
    }
    await signIn(page, 'billingplatform', /^Connected as demo$/);
    expect(await actionsShown(page, 'billingplatform')).toEqual(['Call the API', 'Sign out']);
    expect(await actionsShown(page, 'billogram')).toEqual([]);
    await callApi(page, 'billingplatform', 'Acme Corporation');
    await signIn(page, 'bill', /^Connected as demo@example\.com$/);
    await callApi(page, 'bill', 'Acme Supplies');
    await signIn(page, 'billogram', /^Connected as demo-api-user$/);
    await callApi(page, 'billogram', 'Acme AB');
    await signIn(page, 'billbora', /^Connected as demo@example\.com · Demo Organization$/);
    await callApi(page, 'billbora', 'INV-2026-001');
    expect(await page.locator('#session-summary').textContent()).toMatch(/^Signed in\./);
    expect(await page.locator('#error').isHidden()).toBe(true);
    // The relayed calls really reached each upstream, with billfold's credential attached.
    expect(
      stack.sandbox.billingplatform.requests.some((r) => r.path === '/ACCOUNT/1001' && r.headers.sessionid),
    ).toBe(true);
    expect(
      stack.sandbox.billogram.requests.some((r) => r.path === '/customer' && r.headers.authorization),
    ).toBe(true);

    await mkdir(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // Billbora's organizations come from Billbora itself, through the relay.
    const billbora = card(page, 'billbora');
    await expect
      .poll(() => billbora.locator('select option').allTextContents(), WAIT)
      .toEqual(['Demo Organization', 'Other Organization']);
    await billbora.locator('select').selectOption('org_other');
    await billbora.getByRole('button', { name: 'Switch' }).click();
    await expect
      .poll(() => billbora.locator('.status').textContent(), WAIT)
      .toBe('Connected as demo@example.com · Other Organization');
    await callApi(page, 'billbora', 'OTH-2026-001');
    expect(await page.locator('#output').textContent()).not.toContain('INV-2026-001');

    // The provider ends its session: the page says so by code and asks for the sign-in again.
    stack.sandbox.billingplatform.expireAllSessions();
    const billingplatform = card(page, 'billingplatform');
    await billingplatform.getByRole('button', { name: 'Call the API' }).click();
    await expect.poll(textOf(page, '#error'), WAIT).toMatch(/^upstream_session_expired \(billingplatform\)/);
    await expect
      .poll(() => billingplatform.locator('.status').textContent(), WAIT)
      .toBe('BillingPlatform ended the session. Sign in again.');
    expect(await billingplatform.locator('form.login').isVisible()).toBe(true);
    await expect
      .poll(
        () =>
          page.evaluate(() =>
            document.activeElement?.closest('[data-provider]')?.getAttribute('data-provider'),
          ),
        WAIT,
      )
      .toBe('billingplatform');
    await signIn(page, 'billingplatform', /^Connected as demo$/);
    await callApi(page, 'billingplatform', 'Acme Corporation');

    await card(page, 'billogram').getByRole('button', { name: 'Sign out' }).click();
    await expect
      .poll(() => card(page, 'billogram').locator('.status').textContent(), WAIT)
      .toBe('Not connected');
    expect(await actionsShown(page, 'billogram')).toEqual([]);
    expect(await card(page, 'bill').locator('.status').textContent()).toMatch(/^Connected/);

    await page.getByRole('button', { name: 'Sign out of everything' }).click();
    await expect.poll(textOf(page, '#session-summary'), WAIT).toBe('Not signed in.');
    expect((await context.cookies()).map((cookie) => cookie.name)).not.toContain(COOKIE);
    const after = await probe(page, '/api/bill/List/Vendor.json', {
      method: 'POST',
      headers: { 'X-CSRF': '1' },
    });
    expect(after.status).toBe(401);
    expect(JSON.parse(after.body!).error.code).toBe('unauthenticated');
    expect(problems).toEqual([]);
  }, 120_000);

  it('runs the typed client in the page: sign-in, relay, errors typed by code, the expiry event, sign-out', async () => {
    const { page, problems } = await openDemo();
    const loaded: string[] = [];
    page.on('request', (request) => loaded.push(new URL(request.url()).pathname));
    await page.reload();
    expect(loaded).toContain('/client/billfold-client.js');
    // A module the page loads, handed to the functions below (which run in the page, not here).
    await page.evaluate(
      "import('/client/billfold-client.js').then((module) => { globalThis.billfold = module; })",
    );
    const outcome = await page.evaluate(async (credentials) => {
      const { createBillfoldClient, isBillfoldError } = (
        globalThis as unknown as { billfold: typeof BillfoldClientModule }
      ).billfold;
      const client = createBillfoldClient({ baseUrl: location.origin });
      const signedOut = await client.session();
      const refused = await client
        .signIn('billingplatform', { ...credentials, password: 'wrong' })
        .catch((error: unknown) => (isBillfoldError(error, 'invalid_credentials') ? error.code : 'untyped'));
      const view = await client.signIn('billingplatform', credentials);
      const account = await client.relay<string>('billingplatform', 'ACCOUNT/1001');
      return {
        signedOut,
        refused,
        connected: view.authenticated && view.providers.billingplatform?.connected,
        status: account.status,
        body: JSON.stringify(account.data),
        cookie: document.cookie,
      };
    }, SANDBOX_DEMO_CREDENTIALS.billingplatform);
    expect(outcome).toMatchObject({
      refused: 'invalid_credentials',
      connected: true,
      status: 200,
      cookie: '',
      signedOut: { authenticated: false, providers: { billingplatform: { connected: false } } },
    });
    expect(outcome.body).toContain('Acme Corporation');

    stack.sandbox.billingplatform.expireAllSessions();
    const expiry = await page.evaluate(async () => {
      const { createBillfoldClient } = (globalThis as unknown as { billfold: typeof BillfoldClientModule })
        .billfold;
      const client = createBillfoldClient({ baseUrl: location.origin });
      const events: string[] = [];
      client.on('upstream-expired', ({ provider }) => events.push(`upstream-expired ${provider}`));
      client.on('session-expired', () => events.push('session-expired'));
      await client.session();
      const code = await client
        .relay('billingplatform', 'ACCOUNT/1001')
        .then(() => 'answered')
        .catch((error: unknown) => (error as { code?: string }).code);
      const after = await client.session();
      return { code, events, after: after.authenticated };
    });
    expect(expiry).toEqual({
      code: 'upstream_session_expired',
      events: ['upstream-expired billingplatform', 'session-expired'],
      after: false,
    });
    expect(problems).toEqual([]);
  });

  it('never lets page script read the session cookie', async () => {
    const { page, context } = await openDemo();
    await signIn(page, 'billogram', /^Connected as demo-api-user$/);

    const cookie = (await context.cookies()).find((c) => c.name === COOKIE);
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    expect(await page.evaluate(() => document.cookie)).toBe('');
    const stored = await page.evaluate(() =>
      JSON.stringify([Object.keys(localStorage), Object.keys(sessionStorage)]),
    );
    expect(stored).toBe('[[],[]]');
    // Nor does it sit anywhere in the page: the session view names no session ID.
    expect(await page.content()).not.toContain(decodeURIComponent(cookie!.value).slice(2, 34));
  }, 60_000);

  it('lets a page from an unlisted origin neither read the session nor relay with the user’s cookie', async () => {
    const { page, context } = await openDemo();
    await signIn(page, 'billingplatform', /^Connected as demo$/);
    const other = await context.newPage();
    await other.goto(`${unlisted!.origin}/`);
    const upstreamCalls = () =>
      [
        stack.sandbox.billingplatform,
        stack.sandbox.bill,
        stack.sandbox.billogram,
        stack.sandbox.billbora,
        stack.sandbox.supabase,
      ].reduce((sum, emulator) => sum + emulator.requests.length, 0);
    const callsBefore = upstreamCalls();
    // billfold writes its log in batches, in order: once a marker request's line is out, every line
    // before it is too, and the lines after it are this test's.
    const marker = `/log-marker-${Date.now()}`;
    await page.request.get(`${origin}${marker}`);
    const markerAt = () => billfold!.lines.findIndex((line) => line.includes(`"path":"${marker}"`));
    await expect.poll(markerAt, WAIT).toBeGreaterThan(-1);
    const linesBefore = markerAt() + 1;

    const credentialed = { credentials: 'include', headers: { 'X-CSRF': '1' } } as const;
    const session = await probe(other, `${origin}/auth/session`, credentialed);
    const relay = await probe(other, `${origin}/api/billingplatform/ACCOUNT/1001`, credentialed);
    // A form-like POST needs no preflight and carries the cookie (same site), but cannot carry X-CSRF.
    const logout = await probe(other, `${origin}/auth/logout`, {
      method: 'POST',
      mode: 'no-cors',
      credentials: 'include',
    });

    expect(session).toMatchObject({ ok: false, error: expect.stringMatching(/TypeError/) });
    expect(relay).toMatchObject({ ok: false, error: expect.stringMatching(/TypeError/) });
    // Not even an opaque answer: helmet's Cross-Origin-Resource-Policy keeps it from another origin.
    expect(logout).toMatchObject({ ok: false, error: expect.stringMatching(/TypeError/) });
    // billfold refused both preflights on the Origin check and the POST on the missing X-CSRF; nothing
    // else arrived from that page, so no relayed call went upstream.
    const lines = () =>
      billfold!.lines.slice(linesBefore).map((line) => JSON.parse(line) as Record<string, unknown>);
    await expect
      .poll(
        () =>
          lines()
            .filter((line) => line.msg === 'request')
            .map((line) => `${String(line.method)} ${String(line.path)} ${String(line.status)}`)
            .sort(),
        WAIT,
      )
      .toEqual([
        'OPTIONS /api/billingplatform/ACCOUNT/1001 403',
        'OPTIONS /auth/session 403',
        'POST /auth/logout 403',
      ]);
    expect(lines().filter((line) => line.event === 'origin_refused')).toHaveLength(2);
    expect(lines().filter((line) => line.event === 'csrf_refused')).toHaveLength(1);
    expect(upstreamCalls()).toBe(callsBefore);

    // The user's session is untouched.
    await card(page, 'billingplatform').getByRole('button', { name: 'Call the API' }).click();
    await expect.poll(textOf(page, '#output'), WAIT).toContain('Acme Corporation');
  }, 60_000);

  it('lets a page from an origin listed in CORS_ORIGINS read the session and relay with the user’s cookie', async () => {
    const { page, context } = await openDemo();
    await signIn(page, 'billingplatform', /^Connected as demo$/);
    const spa = await context.newPage();
    await spa.goto(`${listed!.origin}/`);
    const before = stack.sandbox.billingplatform.requests.length;

    const session = await probe(spa, `${origin}/auth/session`, {
      credentials: 'include',
      headers: { 'X-CSRF': '1' },
    });
    expect(session.status).toBe(200);
    expect(JSON.parse(session.body!)).toMatchObject({
      authenticated: true,
      providers: { billingplatform: { connected: true } },
    });
    // Exposed to the SPA, so it can quote billfold's request ID in a support ticket.
    expect(session.requestId).toMatch(/\S/);

    const relay = await probe(spa, `${origin}/api/billingplatform/ACCOUNT/1001`, {
      credentials: 'include',
      headers: { 'X-CSRF': '1' },
    });
    expect(relay.status).toBe(200);
    expect(JSON.parse(relay.body!).retrieveResponse[0].Name).toBe('Acme Corporation');
    expect(stack.sandbox.billingplatform.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /ACCOUNT/1001',
    ]);

    // Without credentials: 'include' the browser sends no cookie, even to a listed origin.
    const anonymous = await probe(spa, `${origin}/auth/session`, { headers: { 'X-CSRF': '1' } });
    expect(JSON.parse(anonymous.body!)).toEqual(signedOut());
  }, 60_000);
});
