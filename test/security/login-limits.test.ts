import { beforeAll, describe, expect, it } from 'vitest';
import { limitedAddress } from '../../src/middleware/rate-limits.js';
import { createMemoryBackend } from '../../src/session/memory-backend.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { uniquePrefix } from '../support/redis.js';
import { startScriptedUpstream, type ScriptedUpstream } from '../support/scripted-upstream.js';
import { startStack, useStack } from '../support/stack.js';
import { createTestClock } from '../support/test-clock.js';

/** A login from client address `ip` (billfold trusts the loopback proxy's X-Forwarded-For here). */
const login = (billfold: RunningBillfold, provider: string, body: object, ip = '203.0.113.1') =>
  createCookieClient(billfold.url, billfold.config.session.cookieName).post(`/auth/${provider}/login`, body, {
    'x-forwarded-for': ip,
  });

const burst = <T>(count: number, call: (index: number) => Promise<T>) =>
  Promise.all(Array.from({ length: count }, (_, index) => call(index)));

describe('login limits reserve before the upstream is called (Redis, a login of ~300 ms)', () => {
  let upstream: ScriptedUpstream;
  beforeAll(async () => {
    upstream = await startScriptedUpstream();
    upstream.loginDelayMs = 300;
    // Closed after the stack's instances.
    return () => upstream.close();
  });
  const stack = useStack({
    sandbox: false,
    env: () => ({
      ...upstream.env,
      TRUST_PROXY: 'loopback',
      STORE_TIMEOUT_MS: '5000',
      LOGIN_MAX_FAILURES_PER_USER: '5',
      LOGIN_MAX_FAILURES_PER_USER_ALL_ADDRESSES: '12',
      LOGIN_MAX_FAILURES_PER_IP: '1000',
      LOGIN_MAX_SUCCESSES_PER_IP: '1000',
    }),
  });

  it('lets 50 parallel wrong passwords for one user from one address reach the upstream 5 times, no more', async () => {
    const before = upstream.logins.length;
    const answers = await burst(50, () =>
      login(stack.billfold, 'billingplatform', { username: 'burst-user', password: 'wrong' }),
    );
    const reached = upstream.logins.length - before;
    console.log(`50 parallel wrong passwords for one user from one address: ${reached} upstream calls`);
    expect(reached).toBe(5);
    expect(answers.filter((answer) => answer.status === 401)).toHaveLength(5);
    const limited = answers.filter((answer) => answer.status === 429);
    expect(limited).toHaveLength(45);
    for (const answer of limited) expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('holds the username ceiling across addresses under a burst: 50 addresses in parallel get 12 guesses and one slowed one', async () => {
    const before = upstream.logins.length;
    await burst(50, (index) =>
      login(
        stack.billfold,
        'billingplatform',
        { username: 'spread-user', password: 'wrong' },
        `198.51.100.${index + 1}`,
      ),
    );
    const reached = upstream.logins.length - before;
    console.log(`50 parallel wrong passwords for one user from 50 addresses: ${reached} upstream calls`);
    expect(reached).toBe(13);
  });

  it('counts other spellings of a username as the same username', async () => {
    const spellings = [
      'Spell-User',
      'SPELL-USER',
      ' spell-user',
      'ｓｐｅｌｌ-ｕｓｅｒ',
      'spell-user ',
      'spell-user',
    ];
    const before = upstream.logins.length;
    for (const username of spellings)
      await login(stack.billfold, 'billingplatform', { username, password: 'wrong' });
    expect(upstream.logins.length - before).toBe(5);
  });

  it('does not let a stranger lock a user out: 5 failures from one address leave the user at another free to sign in', async () => {
    for (let i = 0; i < 5; i++) {
      const answer = await login(
        stack.billfold,
        'billingplatform',
        { username: 'victim', password: 'wrong' },
        '192.0.2.66',
      );
      expect(answer.status).toBe(401);
    }
    expect(
      (
        await login(
          stack.billfold,
          'billingplatform',
          { username: 'victim', password: 'wrong' },
          '192.0.2.66',
        )
      ).status,
    ).toBe(429);
    const victim = await login(
      stack.billfold,
      'billingplatform',
      { username: 'victim', password: upstream.password },
      '192.0.2.7',
    );
    expect(victim.status).toBe(200);
  });
});

describe('failed logins per client address, under a burst of usernames', () => {
  let upstream: ScriptedUpstream;
  beforeAll(async () => {
    upstream = await startScriptedUpstream();
    upstream.loginDelayMs = 300;
    return () => upstream.close();
  });
  const stack = useStack({
    sandbox: false,
    env: () => ({
      ...upstream.env,
      TRUST_PROXY: 'loopback',
      STORE_TIMEOUT_MS: '5000',
      LOGIN_MAX_FAILURES_PER_IP: '7',
    }),
  });

  it('lets 50 parallel wrong passwords for 50 usernames from one address reach the upstream 7 times', async () => {
    await burst(50, (index) =>
      login(
        stack.billfold,
        'billingplatform',
        { username: `user-${index}`, password: 'wrong' },
        '203.0.113.5',
      ),
    );
    expect(upstream.logins).toHaveLength(7);
  });
});

describe('client addresses as the limits count them', () => {
  it.each([
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::ffff', '2001:db8:1:2::/64'],
    ['2001:DB8:0001:0002:aaaa::1', '2001:db8:1:2::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['192.0.2.1', '192.0.2.1'],
  ])('counts %s as %s', (ip, counted) => {
    expect(limitedAddress(ip)).toBe(counted);
  });

  it('counts every address of one IPv6 /64 as one stranger', async () => {
    const upstream = await startScriptedUpstream();
    const stack = await startStack({
      sandbox: false,
      store: 'embedded',
      env: {
        ...upstream.env,
        TRUST_PROXY: 'loopback',
        STORE_TIMEOUT_MS: '5000',
        LOGIN_MAX_FAILURES_PER_USER: '3',
      },
    });
    const billfold = stack.billfold;
    try {
      for (let i = 1; i <= 3; i++) {
        const answer = await login(
          billfold,
          'billingplatform',
          { username: 'v6', password: 'wrong' },
          `2001:db8:7:7::${i}`,
        );
        expect(answer.status).toBe(401);
      }
      const next = await login(
        billfold,
        'billingplatform',
        { username: 'v6', password: 'wrong' },
        '2001:db8:7:7:ffff::9',
      );
      expect(next.status).toBe(429);
      // Another /64 is someone else.
      expect(
        (
          await login(
            billfold,
            'billingplatform',
            { username: 'v6', password: upstream.password },
            '2001:db8:7:8::1',
          )
        ).status,
      ).toBe(200);
    } finally {
      await stack.close();
      await upstream.close();
    }
  });
});

describe('past the username ceiling, the username is slowed, not walled (embedded store, test clock)', () => {
  let upstream: ScriptedUpstream;
  const clock = createTestClock(Date.now());
  beforeAll(async () => {
    upstream = await startScriptedUpstream();
    return () => upstream.close();
  });
  const stack = useStack({
    sandbox: false,
    store: 'embedded',
    clock,
    env: () => ({
      ...upstream.env,
      TRUST_PROXY: 'loopback',
      STORE_TIMEOUT_MS: '5000',
      LOGIN_MAX_FAILURES_PER_USER_ALL_ADDRESSES: '4',
      LOGIN_SLOWED_INTERVAL_S: '10',
    }),
  });

  it('admits one attempt per interval, so the user still gets in while strangers spend the ceiling', async () => {
    for (let i = 0; i < 4; i++) {
      const answer = await login(
        stack.billfold,
        'billingplatform',
        { username: 'slowed', password: 'wrong' },
        `192.0.2.${i + 1}`,
      );
      expect(answer.status).toBe(401);
    }
    // The ceiling is spent: one more attempt passes now (a stranger's), the next must wait seconds, not the window.
    expect(
      (
        await login(
          stack.billfold,
          'billingplatform',
          { username: 'slowed', password: 'wrong' },
          '192.0.2.50',
        )
      ).status,
    ).toBe(401);
    const waiting = await login(
      stack.billfold,
      'billingplatform',
      { username: 'slowed', password: upstream.password },
      '192.0.2.99',
    );
    expect(waiting.status).toBe(429);
    expect(Number(waiting.headers.get('retry-after'))).toBeLessThanOrEqual(10);

    clock.advance(10_000);
    const user = await login(
      stack.billfold,
      'billingplatform',
      { username: 'slowed', password: upstream.password },
      '192.0.2.99',
    );
    expect(user.status).toBe(200);
  });
});

describe('successful logins per client address, and the BILL budget per developer key', () => {
  const stack = useStack({
    env: {
      TRUST_PROXY: 'loopback',
      STORE_TIMEOUT_MS: '5000',
      LOGIN_MAX_SUCCESSES_PER_IP: '5',
      BILL_LOGINS_PER_HOUR: '8',
      BILL_LOGINS_PER_HOUR_PER_IP: '3',
    },
  });

  it('limits successful logins from one address, even in a parallel burst, and not another address', async () => {
    stack.sandbox.billogram.clearRequests();
    const answers = await burst(50, () => login(stack.billfold, 'billogram', demo.billogram, '203.0.113.20'));
    expect(answers.filter((answer) => answer.status === 200)).toHaveLength(5);
    expect(answers.filter((answer) => answer.status === 429)).toHaveLength(45);
    expect(stack.sandbox.billogram.requests).toHaveLength(5);
    expect((await login(stack.billfold, 'billogram', demo.billogram, '203.0.113.21')).status).toBe(200);
  });

  it('answers 429 before BILL does once billfold has spent its budget of BILL logins, whoever asks', async () => {
    stack.sandbox.bill.clearRequests();
    const answers = await burst(50, (index) =>
      login(stack.billfold, 'bill', demo.bill, `203.0.113.${100 + index}`),
    );
    const granted = answers.filter((answer) => answer.status === 200);
    expect(granted).toHaveLength(8);
    const limited = answers.filter((answer) => answer.status === 429);
    expect(limited).toHaveLength(42);
    expect(limited[0]?.body.error).toMatchObject({ code: 'rate_limited', provider: 'bill' });
    expect(Number(limited[0]?.headers.get('retry-after'))).toBeGreaterThan(3000);
    expect(stack.sandbox.bill.requests.filter((request) => request.path.endsWith('Login.json'))).toHaveLength(
      8,
    );
  });

  it('lets no single address spend more than its share of the BILL budget', async () => {
    // Alone on a prefix of its own, with the default successes per address.
    const fresh = await stack.start({
      REDIS_KEY_PREFIX: uniquePrefix(),
      LOGIN_MAX_SUCCESSES_PER_IP: undefined,
      BILL_LOGINS_PER_HOUR: '100',
      BILL_LOGINS_PER_HOUR_PER_IP: '3',
    });
    try {
      stack.sandbox.bill.clearRequests();
      const answers = await burst(20, () =>
        login(fresh, 'bill', { ...demo.bill, password: 'wrong' }, '203.0.113.77'),
      );
      expect(answers.filter((answer) => answer.status === 401)).toHaveLength(3);
      expect(
        stack.sandbox.bill.requests.filter((request) => request.path.endsWith('Login.json')),
      ).toHaveLength(3);
      // Even the right password: the address's share is spent; another address still signs in.
      expect((await login(fresh, 'bill', demo.bill, '203.0.113.77')).status).toBe(429);
      expect((await login(fresh, 'bill', demo.bill, '203.0.113.78')).status).toBe(200);
    } finally {
      await fresh.close();
    }
  });
});

describe('the embedded store keeps counters and locks where sessions cannot evict them', () => {
  it('keeps a failed-login count and a renewal lock while far more sessions than it holds are written', async () => {
    const clock = createTestClock();
    const backend = createMemoryBackend({ clock, maxEntries: 10, sweepIntervalMs: 0 });
    await backend.increment('rl:login:user-ip:x', 60_000);
    expect(await backend.acquireLock('l:renew:s1:billbora', 'token', 60_000)).toBe(true);
    for (let i = 0; i < 100; i++) await backend.compareAndSet(`s:session-${i}`, null, 'sealed', 60_000);
    expect(backend.size()).toBe(10);
    expect((await backend.readCounter('rl:login:user-ip:x')).count).toBe(1);
    expect(await backend.acquireLock('l:renew:s1:billbora', 'other', 60_000)).toBe(false);
    expect(await backend.lockHolder('l:renew:s1:billbora')).toBe('token');
    expect(await backend.lockHolder('l:renew:s2:billbora')).toBeNull();
  });

  it('keeps a user’s failures counted through a flood of other users’ sign-ins', async () => {
    const upstream = await startScriptedUpstream();
    const stack = await startStack({
      sandbox: false,
      store: 'embedded',
      env: {
        ...upstream.env,
        TRUST_PROXY: 'loopback',
        STORE_TIMEOUT_MS: '5000',
        MEMORY_STORE_MAX_SESSIONS: '10',
        LOGIN_MAX_FAILURES_PER_USER: '3',
        LOGIN_MAX_SUCCESSES_PER_IP: '1000',
      },
    });
    const billfold = stack.billfold;
    try {
      for (let i = 0; i < 3; i++)
        await login(billfold, 'billingplatform', { username: 'counted', password: 'wrong' });
      for (let i = 0; i < 40; i++)
        expect(
          (await login(billfold, 'billingplatform', { username: `flood-${i}`, password: upstream.password }))
            .status,
        ).toBe(200);
      expect(
        (await login(billfold, 'billingplatform', { username: 'counted', password: 'wrong' })).status,
      ).toBe(429);
    } finally {
      await stack.close();
      await upstream.close();
    }
  });
});
