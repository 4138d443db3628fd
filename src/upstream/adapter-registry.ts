import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { createBillingPlatformAdapter } from './billingplatform-adapter.js';
import type { AdapterRegistry } from './provider-adapter.js';
import type { UpstreamClient } from './upstream-client.js';

/** One adapter for each provider whose base URL is configured. */
export function createAdapters(config: Config, client: UpstreamClient, clock: Clock): AdapterRegistry {
  const { providers } = config;
  return {
    ...(providers.billingplatform && {
      billingplatform: createBillingPlatformAdapter({ config: providers.billingplatform, client, clock }),
    }),
  };
}
