import { spawn } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EmulatorControl } from '../../src/sandbox/sandbox-http.js';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { formatSandboxBanner, startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import {
  call,
  startTestSandbox,
  waitFor,
  type CallOptions,
  type TestSandbox,
} from './sandbox-test-client.js';

const demo = SANDBOX_DEMO_CREDENTIALS;

/** One emulator, with a cheap authenticated call against it (`sandbox/...` is its relay-test endpoint prefix). */
interface Upstream {
  name: 'billingplatform' | 'bill' | 'billogram' | 'billbora' | 'supabase';
  method: string;
  /** The path of a resource, and the prefix of the html and cookie endpoints. */
  path: string;
  sandboxPath: (kind: 'html' | 'cookie') => string;
  authorize(t: TestSandbox): Promise<CallOptions>;
}

const UPSTREAMS: Upstream[] = [
  {
    name: 'billingplatform',
    method: 'GET',
    path: '/billingplatform/demo/rest/2.0/ACCOUNT/1001',
    sandboxPath: (kind) => `/billingplatform/demo/rest/2.0/sandbox/${kind}`,
    async authorize(t) {
      const login = await t.call('POST', '/billingplatform/demo/rest/2.0/login', {
        json: demo.billingplatform,
      });
      return { headers: { sessionid: login.body.loginResponse[0].SessionID } };
    },
  },
  {
    name: 'bill',
    method: 'POST',
    path: '/bill/api/v2/GetSessionInfo.json',
    sandboxPath: (kind) => `/bill/api/v2/sandbox/${kind}`,
    async authorize(t) {
      const login = await t.call('POST', '/bill/api/v2/Login.json', {
        form: { ...demo.bill, devKey: demo.billDevKey },
      });
      return { form: { devKey: demo.billDevKey, sessionId: login.body.response_data.sessionId } };
    },
  },
  {
    name: 'billogram',
    method: 'GET',
    path: '/billogram/api/v2/customer/1',
    sandboxPath: (kind) => `/billogram/api/v2/sandbox/${kind}`,
    authorize: () => {
      const basic = Buffer.from(`${demo.billogram.apiUserId}:${demo.billogram.apiPassword}`).toString(
        'base64',
      );
      return Promise.resolve({ headers: { authorization: `Basic ${basic}` } });
    },
  },
  {
    name: 'billbora',
    method: 'GET',
    path: '/billbora/api/v1/invoices/',
    sandboxPath: (kind) => `/billbora/api/v1/sandbox/${kind}/`,
    authorize: () => Promise.resolve({ headers: { authorization: `Bearer ${demo.billboraApiKey}` } }),
  },
  {
    name: 'supabase',
    method: 'GET',
    path: '/supabase/auth/v1/user',
    sandboxPath: (kind) => `/supabase/auth/v1/sandbox/${kind}`,
    async authorize(t) {
      const headers = { apikey: demo.supabaseAnonKey };
      const grant = await t.call('POST', '/supabase/auth/v1/token?grant_type=password', {
        headers,
        json: demo.billbora,
      });
      return { headers: { ...headers, authorization: `Bearer ${grant.body.access_token}` } };
    },
  },
];

describe('the sandbox server', () => {
  let t: TestSandbox;
  beforeAll(async () => {
    t = await startTestSandbox();
  });
  afterAll(() => t.sandbox.close());
  beforeEach(() => t.sandbox.reset());

  const control = (upstream: Upstream): EmulatorControl => t.sandbox[upstream.name];

  it('publishes exactly the environment that points billfold at it', () => {
    const { url } = t.sandbox;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(t.sandbox.env).toEqual({
      BILLINGPLATFORM_BASE_URL: `${url}/billingplatform/demo/rest/2.0`,
      BILL_BASE_URL: `${url}/bill/api/v2`,
      BILL_DEV_KEY: 'demo-dev-key',
      BILLOGRAM_BASE_URL: `${url}/billogram/api/v2`,
      BILLBORA_BASE_URL: `${url}/billbora/api/v1`,
      SUPABASE_URL: `${url}/supabase`,
      SUPABASE_ANON_KEY: 'demo-anon-key',
      ALLOW_INSECURE_UPSTREAMS: 'true',
    });
  });

  it('answers a path under no mount prefix with 404 JSON', async () => {
    for (const path of [
      '/',
      '/nothing',
      '/billingplatform/demo/rest/2.0x/login',
      '/bill/api/v3/Login.json',
    ]) {
      const answer = await t.call('GET', path);
      expect(answer.status).toBe(404);
      expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
      expect(answer.body.error).toBe('not_found');
    }
  });

  it('refuses a body over 1 MiB with 413', async () => {
    const answer = await t.call('POST', '/billingplatform/demo/rest/2.0/login', {
      body: 'x'.repeat(1024 * 1024 + 1),
    });
    expect(answer.status).toBe(413);
  });

  describe.each(UPSTREAMS)('the $name emulator', (upstream) => {
    it('answers with a redirect while the redirect switch is on, then normally again', async () => {
      const auth = await upstream.authorize(t);
      control(upstream).redirectNext('https://elsewhere.example.com/steal', { status: 307 });
      const redirected = await t.call(upstream.method, upstream.path, auth);
      expect(redirected.status).toBe(307);
      expect(redirected.headers.get('location')).toBe('https://elsewhere.example.com/steal');
      expect((await t.call(upstream.method, upstream.path, auth)).status).toBe(200);
    });

    it('accepts a request and never answers while the hang switch is on, and logs it', async () => {
      const auth = await upstream.authorize(t);
      control(upstream).clearRequests();
      control(upstream).hangNext();
      const abort = new AbortController();
      let settled = false;
      const hung = t
        .call(upstream.method, upstream.path, { ...auth, signal: abort.signal })
        .finally(() => (settled = true))
        .catch((error: unknown) => error);
      await waitFor(() => control(upstream).requests.length === 1);
      // A later request is answered while the first still waits.
      expect((await t.call(upstream.method, upstream.path, auth)).status).toBe(200);
      expect(settled).toBe(false);
      abort.abort();
      expect(await hung).toBeInstanceOf(Error);
    });

    it('serves an HTML page behind its auth', async () => {
      const auth = await upstream.authorize(t);
      const answer = await t.call(upstream.method, upstream.sandboxPath('html'), auth);
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
      expect(answer.text).toContain('<script>');
      // BILL refuses inside HTTP 200, so what tells a refusal apart everywhere is that it is no HTML page.
      const refused = await t.call(upstream.method, upstream.sandboxPath('html'));
      expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    });

    it('answers a success with Set-Cookie and WWW-Authenticate headers behind its auth', async () => {
      const auth = await upstream.authorize(t);
      const answer = await t.call(upstream.method, upstream.sandboxPath('cookie'), auth);
      expect(answer.status).toBe(200);
      expect(answer.headers.getSetCookie()).toHaveLength(2);
      expect(answer.headers.get('www-authenticate')).toMatch(/realm="sandbox"/);
    });
  });

  it('reset clears the request logs and the switches, and keeps sessions', async () => {
    const login = await t.call('POST', '/billingplatform/demo/rest/2.0/login', {
      json: demo.billingplatform,
    });
    const sessionId = login.body.loginResponse[0].SessionID;
    t.sandbox.billingplatform.setRateLimited(true);
    t.sandbox.billingplatform.hangNext(Infinity);
    t.sandbox.bill.setStrictMode(true);
    t.sandbox.reset();
    for (const upstream of UPSTREAMS) expect(control(upstream).requests).toEqual([]);
    const answer = await t.call('GET', '/billingplatform/demo/rest/2.0/ACCOUNT/1001', {
      headers: { sessionid: sessionId },
    });
    expect(answer.status).toBe(200);
  });

  it('keeps connections alive between requests', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const reused: boolean[] = [];
    try {
      for (let index = 0; index < 3; index++) {
        const request = http.get(`${t.sandbox.url}/billogram/api/v2/customer`, { agent });
        const [response] = (await once(request, 'response')) as [http.IncomingMessage];
        response.resume();
        await once(response, 'end');
        reused.push(request.reusedSocket);
      }
    } finally {
      agent.destroy();
    }
    expect(reused).toEqual([false, true, true]);
  });
});

describe('startSandbox', () => {
  it('keeps only the last requestLogLimit requests in each log', async () => {
    const sandbox = await startSandbox({ requestLogLimit: 3 });
    try {
      for (let index = 1; index <= 5; index++)
        await call(`${sandbox.url}/billogram/api/v2/customer/${index}`, 'GET');
      expect(sandbox.billogram.requests.map((request) => request.path)).toEqual([
        '/customer/3',
        '/customer/4',
        '/customer/5',
      ]);
    } finally {
      await sandbox.close();
    }
  });

  it('closes promptly with an idle keep-alive connection and a hung request open', async () => {
    const sandbox = await startSandbox();
    const agent = new http.Agent({ keepAlive: true });
    const idle = http.get(`${sandbox.url}/billogram/api/v2/customer`, { agent });
    const [response] = (await once(idle, 'response')) as [http.IncomingMessage];
    response.resume();
    await once(response, 'end');
    sandbox.billogram.hangNext();
    const hung = call(`${sandbox.url}/billogram/api/v2/customer`, 'GET').catch((error: unknown) => error);
    await waitFor(() => sandbox.billogram.requests.length === 2);
    await sandbox.close();
    await sandbox.close();
    expect(await hung).toBeInstanceOf(Error);
    await expect(call(`${sandbox.url}/billogram/api/v2/customer`, 'GET')).rejects.toThrow();
    agent.destroy();
  });

  it('listens on the port it is given', async () => {
    const first = await startSandbox();
    const port = Number(new URL(first.url).port);
    await first.close();
    const second = await startSandbox({ port, host: '127.0.0.1' });
    try {
      expect(second.url).toBe(`http://127.0.0.1:${port}`);
    } finally {
      await second.close();
    }
  });
});

describe('formatSandboxBanner', () => {
  it('prints an export line per variable and every demo credential', async () => {
    const sandbox: Sandbox = await startSandbox();
    try {
      const banner = formatSandboxBanner(sandbox);
      for (const [name, value] of Object.entries(sandbox.env))
        expect(banner).toContain(`export ${name}=${value}\n`);
      for (const secret of [
        demo.billingplatform.username,
        demo.billingplatform.password,
        demo.bill.userName,
        demo.bill.orgId,
        demo.billDevKey,
        demo.billogram.apiUserId,
        demo.billogram.apiPassword,
        demo.billbora.email,
        demo.billboraApiKey,
        demo.supabaseAnonKey,
        'org_demo',
        'org_other',
      ]) {
        expect(banner).toContain(secret);
      }
    } finally {
      await sandbox.close();
    }
  });
});

describe('npm run sandbox (sandbox-cli)', () => {
  const runCli = (args: string[]) =>
    spawn(process.execPath, ['--import', 'tsx', 'src/sandbox/sandbox-cli.ts', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'prints the environment and the demo credentials, serves, and exits 0 on %s',
    async (signal) => {
      const child = runCli(['--host', '127.0.0.1', '--port=0']);
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await waitFor(() => output.includes('SUPABASE_ANON_KEY'), 15_000);
      const base = /export BILLOGRAM_BASE_URL=(\S+)/.exec(output)![1]!;
      expect((await call(`${base}/customer`, 'GET')).status).toBe(401);
      expect(output).toContain(demo.billingplatform.password);
      child.kill(signal);
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
    },
  );

  it('refuses an unknown argument with exit code 2 and a usage line', async () => {
    const child = runCli(['--port', 'lots']);
    let errors = '';
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(errors).toMatch(/usage:/);
  });
});
