import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import { createCookieClient, startBillfold, type RunningBillfold } from '../support/billfold-harness.js';
import { spawnBillfold } from '../support/billfold-process.js';
import { startGatedProxy } from '../support/gated-proxy.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';

describe('graceful shutdown', () => {
  it('on SIGTERM finishes the request in flight, refuses new connections, closes Redis and exits 0', async () => {
    const sandbox = await startSandbox();
    const proxy = await startGatedProxy(sandbox.url);
    const billfold = await spawnBillfold({
      ...sandbox.env,
      BILLINGPLATFORM_BASE_URL: `${proxy.url}/billingplatform/demo/rest/2.0`,
      REDIS_URL,
      REDIS_KEY_PREFIX: uniquePrefix(),
    });
    try {
      const client = createCookieClient(billfold.url, 'billfold');
      await client.post('/auth/billingplatform/login', demo.billingplatform);
      proxy.close();
      const inFlight = client.get('/api/billingplatform/ACCOUNT/1001');
      await proxy.arrived();
      const exited = billfold.stop('SIGTERM');
      // New connections are refused once the server has stopped listening.
      let refused = false;
      for (let i = 0; i < 50 && !refused; i++) {
        refused = await fetch(`${billfold.url}/healthz`, { headers: { connection: 'close' } }).then(
          () => false,
          () => true,
        );
        if (!refused) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(refused).toBe(true);
      proxy.open();
      const answer = await inFlight;
      expect(answer.status).toBe(200);
      expect(await exited).toBe(0);
      expect(billfold.lines.some((line) => line.includes('"billfold stopped"'))).toBe(true);
    } finally {
      proxy.open();
      await proxy.stop();
      await sandbox.close();
    }
  });

  it('stops at start with every configuration problem listed in one message', async () => {
    const failure = await spawnBillfold({
      NODE_ENV: 'production',
      SESSION_SECRETS: 'short',
      BILLINGPLATFORM_BASE_URL: 'http://example.com',
    }).then(
      () => 'started',
      (error: Error) => error.message,
    );
    expect(failure).toMatch(/exited with 1/);
    for (const name of ['PUBLIC_ORIGIN', 'SESSION_SECRETS', 'SESSION_STORE', 'BILLINGPLATFORM_BASE_URL']) {
      expect(failure).toContain(`- ${name}:`);
    }
  });
});

describe('audit trail', () => {
  let sandbox: Sandbox;
  let billfold: RunningBillfold;
  beforeAll(async () => {
    sandbox = await startSandbox();
    billfold = await startBillfold(sandbox.env);
  });
  afterAll(async () => {
    await billfold.close();
    await sandbox.close();
  });

  const auditLines = () =>
    billfold.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.audit === true);

  it('writes one line per login, logout, expiry and refusal, with the session id only as a hash', async () => {
    const client = createCookieClient(billfold.url, billfold.config.session.cookieName);
    await client.post('/auth/billingplatform/login', { ...demo.billingplatform, password: 'wrong' });
    await client.post('/auth/billingplatform/login', demo.billingplatform);
    await client.get('/auth/session', { 'x-csrf': '0' });
    await client.get('/auth/session', { origin: 'https://evil.example.com' });
    sandbox.billingplatform.expireAllSessions();
    await client.get('/api/billingplatform/ACCOUNT/1001');
    await client.post('/auth/billingplatform/login', demo.billingplatform);
    await client.post('/auth/logout');

    const events = auditLines().map((entry) => `${String(entry.event)}:${String(entry.outcome)}`);
    expect(events).toEqual([
      'login:failure',
      'login:success',
      'csrf_refused:refused',
      'origin_refused:refused',
      'upstream_session_expired:failure',
      'login:success',
      'logout:success',
    ]);
    for (const entry of auditLines()) {
      expect(entry.requestId).toBeTruthy();
      if (entry.session !== undefined) expect(entry.session).toMatch(/^[A-Za-z0-9_-]{12}$/);
    }
    expect(auditLines()[0]).toMatchObject({ provider: 'billingplatform', reason: 'invalid_credentials' });
  });
});
