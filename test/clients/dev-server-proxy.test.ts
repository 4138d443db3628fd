import { createServer, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import { startBillfold, type RunningBillfold } from '../support/billfold-harness.js';
import { freePort } from '../support/redis-server.js';

/** Vite's dev server as docs/clients.md configures it: /auth and /api proxied to billfold. */
async function startVite(target: string, port: number): Promise<ViteDevServer> {
  const vite = await createServer({
    configFile: false,
    root: new URL('../../public', import.meta.url).pathname,
    logLevel: 'silent',
    server: {
      host: '127.0.0.1',
      port,
      strictPort: true,
      proxy: {
        '/auth': { target, changeOrigin: true },
        '/api': { target, changeOrigin: true },
      },
    },
  });
  await vite.listen();
  return vite;
}

/** A sign-in as the dev server's page sends it: same-origin, with the page's Origin. */
async function signInThrough(origin: string) {
  const response = await fetch(`${origin}/auth/billingplatform/login`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-csrf': '1',
      origin,
      'sec-fetch-site': 'same-origin',
    },
    body: JSON.stringify(demo.billingplatform),
  });
  return { status: response.status, code: response.headers.get('x-billfold-error') };
}

describe('billfold behind Vite’s server.proxy, as docs/clients.md says', () => {
  let sandbox: Sandbox;
  const running: { billfold: RunningBillfold; vite: ViteDevServer }[] = [];

  /** A billfold with `env`, and a Vite dev server in front of it on a port chosen first. */
  async function behindVite(env: (origin: string) => Record<string, string>): Promise<string> {
    const port = await freePort();
    const origin = `http://localhost:${port}`;
    const billfold = await startBillfold({ ...sandbox.env, NODE_ENV: 'development', ...env(origin) });
    running.push({ billfold, vite: await startVite(billfold.url, port) });
    return origin;
  }

  beforeAll(async () => {
    sandbox = await startSandbox();
  });
  afterAll(async () => {
    for (const { billfold, vite } of running) {
      await vite.close();
      await billfold.close();
    }
    await sandbox.close();
  });

  it('answers origin_not_allowed while billfold knows only its own origin: changeOrigin leaves Origin alone', async () => {
    const origin = await behindVite(() => ({ PUBLIC_ORIGIN: 'http://localhost:3000' }));
    expect(await signInThrough(origin)).toEqual({ status: 403, code: 'origin_not_allowed' });
  });

  it('signs in through the proxy once PUBLIC_ORIGIN is the dev server’s origin', async () => {
    const origin = await behindVite((dev) => ({ PUBLIC_ORIGIN: dev }));
    expect(await signInThrough(origin)).toEqual({ status: 200, code: null });
  });

  it('signs in through the proxy with the dev server’s origin in CORS_ORIGINS instead', async () => {
    const origin = await behindVite((dev) => ({ PUBLIC_ORIGIN: 'http://localhost:3000', CORS_ORIGINS: dev }));
    expect(await signInThrough(origin)).toEqual({ status: 200, code: null });
  });
});
