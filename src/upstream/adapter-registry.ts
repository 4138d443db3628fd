import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { createBillAdapter } from './bill-adapter.js';
import { createBillV3Adapter } from './bill-v3-adapter.js';
import { createBillboraAdapter } from './billbora-adapter.js';
import { createBillingPlatformAdapter } from './billingplatform-adapter.js';
import { createBillogramAdapter } from './billogram-adapter.js';
import type { AdapterRegistry } from './provider-adapter.js';
import type { UpstreamClient } from './upstream-client.js';

/** One adapter for each provider whose base URL is configured. */
export function createAdapters(config: Config, client: UpstreamClient, clock: Clock): AdapterRegistry {
  const { billingplatform, bill, billogram, billbora } = config.providers;
  return {
    ...(billingplatform && {
      billingplatform: createBillingPlatformAdapter({ config: billingplatform, client, clock }),
    }),
    ...(bill && {
      bill:
        bill.apiVersion === 'v3'
          ? createBillV3Adapter({ config: bill, client, clock })
          : createBillAdapter({ config: bill, client, clock }),
    }),
    ...(billogram && { billogram: createBillogramAdapter({ config: billogram, client, clock }) }),
    ...(billbora && { billbora: createBillboraAdapter({ config: billbora, client, clock }) }),
  };
}
