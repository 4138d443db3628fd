import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { SUPABASE_DEMO_USER_ID } from '../../src/sandbox/supabase-emulator.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { connectRedis } from '../support/redis.js';
import { useStack } from '../support/stack.js';

/** What a dictionary attack on the store would try: unkeyed hashes of every likely value. */
function dictionary(values: string[]): Set<string> {
  const hashes = new Set<string>();
  for (const value of values) {
    for (const spelling of [value, value.toLowerCase(), value.trim().toLowerCase()]) {
      const hash = createHash('sha256').update(spelling).digest('base64url');
      hashes.add(hash);
      hashes.add(hash.slice(0, 22));
      hashes.add(createHash('sha256').update(spelling).digest('hex'));
    }
  }
  return hashes;
}

describe('store key names', () => {
  let keys: string[];
  const stack = useStack();
  beforeAll(async () => {
    const client = createCookieClient(stack.billfold.url, stack.billfold.config.session.cookieName);
    for (const [provider, body] of [
      ['billingplatform', demo.billingplatform],
      ['bill', demo.bill],
      ['billogram', demo.billogram],
      ['billbora', demo.billbora],
    ] as const) {
      expect((await client.post(`/auth/${provider}/login`, body)).status).toBe(200);
    }
    await client.post('/auth/billingplatform/login', { username: 'someone', password: 'wrong' });
    for (let i = 0; i < 3; i++) await client.get('/api/billogram/customer');
    // The relay counter is written at most once a second.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await client.get('/api/billogram/customer');
    const redis = await connectRedis();
    keys = (await redis.keys(`${stack.billfold.config.store.keyPrefix}*`)).map((key) =>
      key.slice(stack.billfold.config.store.keyPrefix.length),
    );
    redis.destroy();
  });

  it('hold no hash a dictionary of addresses, usernames, emails, ids and API keys reverses', () => {
    const known = dictionary([
      '127.0.0.1',
      '::ffff:127.0.0.1',
      demo.billingplatform.username,
      demo.bill.userName,
      `${demo.bill.orgId}\n${demo.bill.userName}`,
      demo.billogram.apiUserId,
      demo.billbora.email,
      SUPABASE_DEMO_USER_ID,
      demo.billboraApiKey,
      'someone',
    ]);
    expect(keys.some((key) => key.startsWith('rl:login:'))).toBe(true);
    expect(keys.some((key) => key.startsWith('ix:billbora:'))).toBe(true);
    for (const key of keys) {
      for (const part of key.split(':')) expect(known.has(part), key).toBe(false);
      expect(key).not.toMatch(/demo|someone|127\.0\.0\.1/);
    }
  });

  it('are each a kind SECURITY.md lists, with what it reveals', async () => {
    const security = await readFile(new URL('../../SECURITY.md', import.meta.url), 'utf8');
    const kinds = new Set(
      keys.map((key) =>
        key
          .replace(/[A-Za-z0-9_-]{16,}/g, '<…>')
          .replace(/(?<!^rl:login):(billingplatform|bill|billogram|billbora)(?=:|$)/g, ':<provider>'),
      ),
    );
    for (const kind of kinds) {
      // Documented as `kind<…>` in the table: what stands for the hash or id is the table's to name.
      const cut = kind.indexOf('<…>');
      expect(security, `SECURITY.md names ${kind}`).toContain(
        `\`${cut === -1 ? `${kind}\`` : `${kind.slice(0, cut)}<`}`,
      );
    }
  });
});
