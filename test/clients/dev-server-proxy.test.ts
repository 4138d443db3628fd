import { createServer, type ViteDevServer } from 'vite';
import { afterAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { freePort } from '../support/redis-server.js';
import { useStack } from '../support/stack.js';

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
  const stack = useStack({ instances: 0, store: 'embedded', env: { NODE_ENV: 'development' } });
  const vites: ViteDevServer[] = [];
  // Before the stack's own teardown: each proxy goes before the billfold behind it.
  afterAll(async () => {
    for (const vite of vites) await vite.close();
  });

  /** A billfold with `env`, and a Vite dev server in front of it on a port chosen first. */
  async function behindVite(env: (origin: string) => Record<string, string>): Promise<string> {
    const port = await freePort();
    const origin = `http://localhost:${port}`;
    const billfold = await stack.start(env(origin));
    vites.push(await startVite(billfold.url, port));
    return origin;
  }

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
