import request from 'supertest';
import { createBillfold, type Billfold } from '../../src/billfold.js';
import { systemClock, type Clock } from '../../src/clock.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import type { ProviderModule } from '../../src/upstream/provider-module.js';
import { PROVIDER_MODULES } from '../../src/upstream/provider-modules.js';
import { TEST_SECRETS } from './test-config.js';

/** billfold assembled in-process on the embedded store, driven through supertest: no port, no Redis. */
export interface TestApp {
  config: Config;
  billfold: Billfold;
  /** A client with its own cookie jar that sends `X-CSRF: 1` on every call, as billfold's clients do. */
  client(): ReturnType<typeof request.agent>;
  /** Raw JSON log lines, for asserting what was (not) logged. */
  logs: string[];
  close(): Promise<void>;
}

/** What the test app is built with; every part is optional. */
export interface TestAppOptions {
  /** Environment on top of the test defaults (test secrets, embedded store). */
  env?: Record<string, string | undefined>;
  /** The provider modules to serve: the built-in ones unless given (a spec adds its own). */
  modules?: readonly ProviderModule[];
  clock?: Clock;
}

/** Builds the real app (createBillfold) with the modules and environment a route-level spec names. */
export function createTestApp(options: TestAppOptions = {}): TestApp {
  const modules = options.modules ?? PROVIDER_MODULES;
  const { config } = loadConfig(
    { NODE_ENV: 'test', LOG_LEVEL: 'info', SESSION_STORE: 'memory', ...TEST_SECRETS, ...options.env },
    modules,
  );
  const logs: string[] = [];
  const logger = createLogger(config.logLevel, { write: (line: string) => void logs.push(line) });
  const billfold = createBillfold(config, { clock: options.clock ?? systemClock, logger, modules });
  return {
    config,
    billfold,
    logs,
    client: () => request.agent(billfold.handler).set('X-CSRF', '1'),
    close: () => billfold.close(),
  };
}
