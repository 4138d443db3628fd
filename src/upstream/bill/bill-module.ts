import { z } from 'zod';
import { integer, list, optionalString } from '../../env-fields.js';
import { defineProviderModule } from '../provider-module.js';
import { readProviderSettings } from '../provider-settings.js';
import { billLoginSchema, createBillAdapter, type BillSettings } from './bill-adapter.js';
import { createBillMfaRouter } from './bill-mfa-routes.js';
import { createBillV3Adapter } from './bill-v3-adapter.js';

const HOUR_MS = 3_600_000;

/**
 * BILL, API v2 or v3 behind one provider id: one credential, one identity rule and one login body
 * on both, the version a configuration switch that picks the adapter (and v3's MFA step-up).
 */
export const billModule = defineProviderModule({
  id: 'bill',
  config: {
    env: {
      BILL_BASE_URL: optionalString.describe('BILL API base URL (v2, or v3 with BILL_API_VERSION=v3)'),
      BILL_API_VERSION: optionalString
        .pipe(z.enum(['v2', 'v3']).optional())
        .transform((v) => v ?? 'v2')
        .describe('which BILL API BILL_BASE_URL is: v2 (form posts) or v3 (JSON, MFA step-up)'),
      BILL_DEV_KEY: optionalString.describe('BILL developer key (server-side only)'),
      RELAY_ALLOW_BILL: list.describe('relay path patterns allowed for BILL'),
      BILL_LOGINS_PER_HOUR: integer(180, 1, 100_000).describe(
        'BILL logins per hour with BILL_DEV_KEY, answered 429 past it (BILL allows 200)',
      ),
      BILL_LOGINS_PER_HOUR_PER_IP: integer(10, 1, 100_000).describe(
        'BILL logins per hour one client address may make, so a few addresses cannot spend the budget',
      ),
    },
    read(env, context): BillSettings | undefined {
      const common = readProviderSettings('BILL_BASE_URL', env.BILL_BASE_URL, env.RELAY_ALLOW_BILL, context);
      if (!common) return undefined;
      const apiVersion = env.BILL_API_VERSION;
      // A v3 gateway spoken to as v2 (or the reverse) would fail on every call; say so at start instead.
      const path = common.baseUrl.pathname.toLowerCase();
      if (apiVersion === 'v2' && path.endsWith('/connect/v3'))
        context.problem('BILL_BASE_URL: ends in /connect/v3, BILL API v3; set BILL_API_VERSION=v3');
      else if (apiVersion === 'v3' && path.endsWith('/api/v2'))
        context.problem(
          'BILL_BASE_URL: ends in /api/v2, BILL API v2; unset BILL_API_VERSION or set it to v2',
        );
      if (!env.BILL_DEV_KEY) {
        context.problem('BILL_DEV_KEY: required when BILL_BASE_URL is set');
        return undefined;
      }
      return {
        ...common,
        devKey: env.BILL_DEV_KEY,
        apiVersion,
        loginsPerHour: env.BILL_LOGINS_PER_HOUR,
        loginsPerHourPerIp: env.BILL_LOGINS_PER_HOUR_PER_IP,
      };
    },
  },
  createAdapter: (deps) =>
    deps.config.apiVersion === 'v3' ? createBillV3Adapter(deps) : createBillAdapter(deps),
  loginName(input) {
    const body = billLoginSchema.parse(input);
    return body.userName ?? body.tokenName;
  },
  // BILL counts every login against the key, granted or not; no address may spend much of it.
  loginBudgets: (config) => [
    { name: 'bill-ip', per: 'address', limit: config.loginsPerHourPerIp, windowMs: HOUR_MS },
    {
      name: 'bill',
      per: { label: 'devkey', value: config.devKey },
      limit: config.loginsPerHour,
      windowMs: HOUR_MS,
    },
  ],
  createRoutes: createBillMfaRouter,
  sandbox: { mount: '/bill/api/v2', env: (mountedAt) => ({ BILL_BASE_URL: mountedAt }) },
});
