import { describe, expect, it } from 'vitest';
import { createCookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { uniquePrefix } from '../support/redis.js';
import { DEMO_LOGINS as demo, useStack } from '../support/stack.js';
import { randomEncryptionKey } from '../support/test-config.js';

const OLD_KEY = randomEncryptionKey('k1');
const NEW_KEY = randomEncryptionKey('k2');
const OLD_SECRET = 'old-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz';
const NEW_SECRET = 'new-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz';

describe('rotating keys across instances that share a Redis', () => {
  const stack = useStack({ instances: 0 });
  // Each test's instances share a store of their own, apart from the other tests' sessions.
  let prefix: string;

  /** An instance with these keys and secrets, on the test's store. */
  const instance = (keys: string[], secrets: string[]) =>
    stack.start({
      REDIS_KEY_PREFIX: prefix,
      SESSION_ENCRYPTION_KEYS: keys.join(','),
      SESSION_SECRETS: secrets.join(','),
    });
  const signIn = async (billfold: RunningBillfold) => {
    const client = createCookieClient(billfold.url, 'billfold');
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    return client.cookie!;
  };
  const signedInOn = async (billfold: RunningBillfold, cookie: string) =>
    (await createCookieClient(billfold.url, 'billfold').get('/auth/session', { cookie })).body
      .authenticated as boolean;

  it('logs nobody out when the new key and secret are added everywhere first, then put first everywhere', async () => {
    prefix = uniquePrefix();
    const before = await signIn(await instance([OLD_KEY], [OLD_SECRET]));
    // Step 1, rolled out instance by instance: every instance can read the new key; none writes with it.
    const added = [
      await instance([OLD_KEY, NEW_KEY], [OLD_SECRET, NEW_SECRET]),
      await instance([OLD_KEY], [OLD_SECRET]),
    ];
    const duringStep1 = await signIn(added[0]!);
    for (const billfold of added) {
      expect(await signedInOn(billfold, before)).toBe(true);
      expect(await signedInOn(billfold, duringStep1)).toBe(true);
    }
    // Step 2, once step 1 is everywhere: the new key and secret go first, instance by instance.
    const first = await instance([NEW_KEY, OLD_KEY], [NEW_SECRET, OLD_SECRET]);
    const notYet = await instance([OLD_KEY, NEW_KEY], [OLD_SECRET, NEW_SECRET]);
    const duringStep2 = await signIn(first);
    for (const billfold of [first, notYet]) {
      for (const cookie of [before, duringStep1, duringStep2])
        expect(await signedInOn(billfold, cookie)).toBe(true);
    }
  });

  it.each([
    ['encryption key', [NEW_KEY, OLD_KEY], [OLD_SECRET]],
    ['cookie secret', [OLD_KEY], [NEW_SECRET, OLD_SECRET]],
  ])(
    'signs people out on instances that do not know a new %s yet, when it is put first in one step',
    async (_what, keys, secrets) => {
      prefix = uniquePrefix();
      const updated = await instance(keys, secrets);
      const notYet = await instance([OLD_KEY], [OLD_SECRET]);
      const cookie = await signIn(updated);
      expect(await signedInOn(updated, cookie)).toBe(true);
      expect(await signedInOn(notYet, cookie)).toBe(false);
    },
  );
  it('keeps finding the sessions signed in before a signing-secret rotation in their identity index', async () => {
    prefix = uniquePrefix();
    const old = await instance([OLD_KEY], [OLD_SECRET]);
    const first = await signIn(old);
    const second = await signIn(old);
    // Promoted: the new secret signs and names keys; the old one still verifies and is still read.
    const rotated = await instance([OLD_KEY], [NEW_SECRET, OLD_SECRET]);
    const third = await signIn(rotated);
    const client = createCookieClient(rotated.url, 'billfold');
    client.cookie = third;
    expect((await client.get('/auth/sessions')).body.sessions).toHaveLength(3);
    expect((await client.request('DELETE', '/auth/sessions?others=true')).body).toEqual({ revoked: 2 });
    expect(await signedInOn(rotated, first)).toBe(false);
    expect(await signedInOn(rotated, second)).toBe(false);
  });
});
