import { describe, expect, it } from 'vitest';

// Each test starts one to three billfold processes; on a busy machine each start takes seconds.
const SPAWNS_MS = 90_000;
import { spawnBillfold } from '../support/billfold-process.js';
import { useStack, type StackOptions } from '../support/stack.js';

const PRODUCTION = {
  PUBLIC_ORIGIN: 'https://billfold.example.com',
  SESSION_STORE: 'memory',
};
const ADMIN_TOKEN = 'Qz7hV2mK9pXw4sLc8RbT1nYe6uJa3dFg';

/** Processes on nothing but their own configuration: no sandbox, no Redis. */
const PROCESSES = { sandbox: false, store: 'embedded', instances: 0 } satisfies StackOptions;

/** The start-up failure's message, or 'started' (then stopped) when billfold started. */
async function startOrFailure(env: Record<string, string>): Promise<string> {
  try {
    const billfold = await spawnBillfold(env);
    await billfold.stop();
    return 'started';
  } catch (error) {
    return (error as Error).message;
  }
}

describe('src/main.ts deciding production', () => {
  const stack = useStack(PROCESSES);

  it(
    'runs NODE_ENV="production " as production: no sandbox, no demo credentials, no demo page',
    async () => {
      const billfold = await stack.spawn({ ...PRODUCTION, NODE_ENV: 'production ' });
      const listening = JSON.parse(billfold.lines.find((line) => line.includes('"billfold listening"'))!);
      expect(listening).toMatchObject({ production: true, providers: [] });
      expect(billfold.lines.join('\n')).not.toMatch(/Demo page|sandbox/i);
      // Plain HTTP to the demo page's path is refused as production refuses it.
      const page = await fetch(`${billfold.url}/`);
      expect(page.status).toBe(403);
    },
    SPAWNS_MS,
  );

  it(
    'starts the sandbox only in development with no upstream configured',
    async () => {
      const billfold = await stack.spawn({ NODE_ENV: ' development' });
      const listening = JSON.parse(billfold.lines.find((line) => line.includes('"billfold listening"'))!);
      expect(listening.production).toBe(false);
      expect(listening.providers).toHaveLength(4);
    },
    SPAWNS_MS,
  );
});

describe('src/main.ts refusing to start', () => {
  it(
    'in development mode on a network address, unless ALLOW_DEVELOPMENT_ON_NETWORK=true',
    async () => {
      for (const nodeEnv of ['development', 'test']) {
        const failure = await startOrFailure({ NODE_ENV: nodeEnv, HOST: '0.0.0.0' });
        expect(failure).toMatch(/exited with 1/);
        expect(failure).toMatch(/HOST: HOST=0.0.0.0 is reachable from the network/);
        expect(failure).toMatch(/ALLOW_DEVELOPMENT_ON_NETWORK=true/);
      }
      expect(
        await startOrFailure({
          NODE_ENV: 'development',
          HOST: '0.0.0.0',
          ALLOW_DEVELOPMENT_ON_NETWORK: 'true',
          BILLINGPLATFORM_BASE_URL: 'https://billing.example.com/rest/2.0',
        }),
      ).toBe('started');
    },
    SPAWNS_MS,
  );

  it(
    'in production with an operator port on the network in clear, every problem in one message',
    async () => {
      const failure = await startOrFailure({
        ...PRODUCTION,
        NODE_ENV: 'production',
        HOST: '0.0.0.0',
        ADMIN_PORT: '0',
        ADMIN_TOKEN,
        METRICS_PORT: '0',
        TRUST_PROXY: 'true',
        BODY_LIMIT: '100gb',
      });
      expect(failure).toMatch(/exited with 1/);
      for (const line of [
        /- ADMIN_PORT: in production an operator port needs TLS/,
        /- METRICS_PORT: in production an operator port needs TLS/,
        /- METRICS_TOKEN: required in production/,
        /- TRUST_PROXY: in production it must name the proxy's own address/,
        /- BODY_LIMIT: "100gb" is over the ceiling/,
      ]) {
        expect(failure).toMatch(line);
      }
      // The same ports on loopback start.
      expect(
        await startOrFailure({
          ...PRODUCTION,
          NODE_ENV: 'production',
          HOST: '0.0.0.0',
          OPERATOR_HOST: '127.0.0.1',
          ADMIN_PORT: '0',
          ADMIN_TOKEN,
          METRICS_PORT: '0',
        }),
      ).toBe('started');
    },
    SPAWNS_MS,
  );
});

describe('src/main.ts on SIGHUP without TLS', () => {
  const stack = useStack(PROCESSES);

  it(
    'keeps serving (a log rotation or a closed terminal must not stop billfold)',
    async () => {
      const billfold = await stack.spawn({
        BILLINGPLATFORM_BASE_URL: 'https://billing.example.com/rest/2.0',
      });
      try {
        billfold.child.kill('SIGHUP');
        for (
          let i = 0;
          i < 100 && !billfold.lines.some((l) => l.includes('no TLS certificate to reload'));
          i++
        ) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        expect(billfold.lines.some((l) => l.includes('no TLS certificate to reload'))).toBe(true);
        expect((await fetch(`${billfold.url}/healthz`)).status).toBe(200);
        expect(billfold.child.exitCode).toBeNull();
      } finally {
        expect(await billfold.stop()).toBe(0);
      }
    },
    SPAWNS_MS,
  );
});
