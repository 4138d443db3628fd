import type { Sandbox } from '../../src/sandbox/sandbox.js';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient, receivedBodies, type RunningBillfold } from './billfold-harness.js';
import { leaksOf } from './secrets.js';
import { emulatorsOf } from './stack.js';

/** Body fields whose values are credentials, in what billfold sends upstream. */
const SECRET_FIELD = /pass|session_?id|dev_?key|refresh|token|api_?key|secret|remember_?me_?id/i;
/** Shorter values would match by accident; every real secret here is longer. */
const MIN_SECRET_LENGTH = 8;

/** The sandbox's fixed secrets: passwords, keys and the Basic credential built from them. */
export const DEMO_SECRETS: readonly string[] = [
  SANDBOX_DEMO_CREDENTIALS.billingplatform.password,
  SANDBOX_DEMO_CREDENTIALS.bill.password,
  SANDBOX_DEMO_CREDENTIALS.billDevKey,
  SANDBOX_DEMO_CREDENTIALS.billSyncToken.tokenValue,
  SANDBOX_DEMO_CREDENTIALS.billogram.apiPassword,
  Buffer.from(
    `${SANDBOX_DEMO_CREDENTIALS.billogram.apiUserId}:${SANDBOX_DEMO_CREDENTIALS.billogram.apiPassword}`,
  ).toString('base64'),
  SANDBOX_DEMO_CREDENTIALS.billbora.password,
  SANDBOX_DEMO_CREDENTIALS.billboraApiKey,
];

function fieldValues(value: unknown, into: Set<string>, key = ''): void {
  if (typeof value === 'string') {
    if (SECRET_FIELD.test(key)) into.add(value);
  } else if (Array.isArray(value)) {
    for (const item of value) fieldValues(item, into, key);
  } else if (typeof value === 'object' && value !== null) {
    for (const [name, inner] of Object.entries(value)) fieldValues(inner, into, name);
  }
}

/**
 * Every secret a security spec used, so its checks can prove none reached a client or a log line:
 * the demo secrets, anything the spec adds, and every credential the emulators saw billfold send
 * (upstream session ids, tokens, Basic credentials), read from their request logs.
 */
export interface SecretLedger {
  /** Adds every string among `values` (fields read from a stored credential are untyped). */
  add(...values: unknown[]): void;
  /** Reads the credentials out of every emulator's request log; call it before `sandbox.reset()`. */
  collect(sandbox: Sandbox): void;
  readonly secrets: ReadonlySet<string>;
  /**
   * Where a secret leaked: into a response this process received or into `logs`; and any billfold
   * session id (taken from the Set-Cookie answers) found in `logs`, where only its hash may appear.
   */
  leaks(logs: readonly string[]): string[];
}

export function createSecretLedger(): SecretLedger {
  const secrets = new Set<string>(DEMO_SECRETS);
  const add = (...values: unknown[]) => {
    for (const value of values)
      if (typeof value === 'string' && value.length >= MIN_SECRET_LENGTH) secrets.add(value);
  };
  return {
    secrets,
    add,
    collect(sandbox) {
      for (const control of emulatorsOf(sandbox)) {
        for (const request of control.requests) {
          const found = new Set<string>();
          const { authorization, sessionid } = request.headers;
          const credential = authorization?.split(' ')[1];
          if (credential) {
            found.add(credential);
            if (/^basic /i.test(authorization))
              found.add(Buffer.from(credential, 'base64').toString().split(':')[1] ?? '');
          }
          if (typeof sessionid === 'string') found.add(sessionid);
          let body: unknown;
          try {
            body = JSON.parse(request.body);
          } catch {
            body = Object.fromEntries(new URLSearchParams(request.body));
          }
          fieldValues(body, found);
          add(...found);
        }
      }
    },
    leaks(logs) {
      const found = leaksOf([...secrets], logs);
      // Every session cookie billfold set: its id and its signature may appear in no log line.
      const cookieParts = new Set<string>();
      for (const text of receivedBodies) {
        for (const [, encoded = ''] of text.matchAll(/billfold=(s%3A[A-Za-z0-9_.%-]+)/g)) {
          const value = decodeURIComponent(encoded).slice(2);
          const dot = value.lastIndexOf('.');
          cookieParts
            .add(encoded)
            .add(value.slice(0, dot))
            .add(value.slice(dot + 1));
        }
      }
      for (const part of cookieParts) {
        if (part.length >= 16 && logs.some((line) => line.includes(part)))
          found.push(`log contains session cookie part ${part.slice(0, 6)}…`);
      }
      return found;
    },
  };
}

/**
 * Signs in to every provider with the demo users, relays a call to each and signs out, whatever the
 * answers: traffic full of secrets for a leak check to read, so the check never depends on which
 * tests ran before it.
 */
export async function exerciseEveryProvider(billfold: RunningBillfold): Promise<void> {
  const client = createCookieClient(billfold.url, billfold.config.session.cookieName);
  const demo = SANDBOX_DEMO_CREDENTIALS;
  for (const provider of ['billingplatform', 'bill', 'billogram', 'billbora'] as const)
    await client.post(`/auth/${provider}/login`, demo[provider]);
  await client.get('/api/billingplatform/ACCOUNT/1001');
  await client.request('POST', '/api/bill/GetSessionInfo.json', { body: '' });
  await client.get('/api/billogram/customer');
  await client.get('/api/billbora/invoices/');
  await client.post('/auth/logout');
}
