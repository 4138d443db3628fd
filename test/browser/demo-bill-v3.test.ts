import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { freePort } from '../support/redis-server.js';
import { useStack } from '../support/stack.js';
import { launchChromium } from './browser-support.js';

const WAIT = { timeout: 15_000 };

describe('the demo page with BILL v3, in Chromium', () => {
  const stack = useStack({ instances: 0, store: 'embedded', sandbox: { billApiVersion: 'v3' } });
  let browser: Browser | undefined;
  let launchError: unknown;
  let origin = '';

  beforeAll(async () => {
    // Kept, not thrown: every test then fails with the reason, rather than being reported as skipped.
    browser = await launchChromium().catch((error: unknown) => {
      launchError = error;
      return undefined;
    });
    const port = await freePort();
    origin = `http://localhost:${port}`;
    await stack.spawn({
      NODE_ENV: 'development',
      PORT: String(port),
      PUBLIC_ORIGIN: origin,
    });
  }, 120_000);

  // Before the stack's own teardown, which stops billfold and the sandbox.
  afterAll(async () => {
    await browser?.close();
  }, 60_000);

  async function openDemo(): Promise<{ page: Page; problems: string[] }> {
    if (!browser) throw launchError;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
    });
    await page.goto(`${origin}/`);
    await expect.poll(() => page.locator('#session-summary').textContent(), WAIT).toBe('Not signed in.');
    return { page, problems };
  }

  it('signs in to BILL v3, is refused a payment until the step-up, and pays after it, all by clicks', async () => {
    const { page, problems } = await openDemo();
    const bill = page.locator('[data-provider="bill"]');
    const status = () => bill.locator('.status').textContent();
    await bill.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(status, WAIT).toMatch(/^Connected as demo@example\.com · v3 · not MFA-trusted$/);

    await bill.getByRole('button', { name: 'Call the API' }).click();
    await expect.poll(() => page.locator('#output').textContent(), WAIT).toContain('Acme Supplies');

    await bill.getByRole('button', { name: 'Pay a bill' }).click();
    await expect.poll(() => page.locator('#error').textContent(), WAIT).toMatch(/^mfa_required \(bill\)/);
    await expect.poll(() => bill.locator('.mfa').isVisible(), WAIT).toBe(true);
    await bill.getByRole('button', { name: 'Send code' }).click();
    await expect.poll(() => page.locator('#output').textContent(), WAIT).toContain('challengeId');
    await bill.locator('.mfa input[name="token"]').fill(demo.billMfaCode);
    await bill.getByRole('button', { name: 'Verify' }).click();
    // The refused payment is repeated by itself once the session is trusted.
    await expect.poll(() => page.locator('#output').textContent(), WAIT).toContain('SCHEDULED');
    expect(await page.locator('#answer').textContent()).toBe('POST /api/bill/payments: HTTP 200');
    await expect.poll(status, WAIT).toMatch(/ · v3 · MFA-trusted until /);
    expect(await bill.locator('.mfa').isVisible()).toBe(false);
    expect(await page.content()).not.toMatch(/rememberMeId/);
    expect(problems).toEqual([]);
  });

  it('signs in to BILL with the sync token', async () => {
    const { page, problems } = await openDemo();
    const bill = page.locator('[data-provider="bill"]');
    await bill.getByRole('button', { name: 'Use the sync token' }).click();
    await expect
      .poll(() => bill.locator('.status').textContent(), WAIT)
      .toBe(`Connected as ${demo.billSyncToken.tokenName} · v3 · sync token`);
    expect(await bill.getByRole('button', { name: 'Pay a bill' }).isVisible()).toBe(false);
    await bill.getByRole('button', { name: 'Call the API' }).click();
    await expect.poll(() => page.locator('#output').textContent(), WAIT).toContain('Acme Supplies');
    expect(problems).toEqual([]);
  });
});
