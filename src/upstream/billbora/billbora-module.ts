import { list, optionalString } from '../../env-fields.js';
import { defineProviderModule } from '../provider-module.js';
import { parseUpstreamUrl, readProviderSettings } from '../provider-settings.js';
import { billboraLoginSchema, createBillboraAdapter, type BillboraSettings } from './billbora-adapter.js';
import { createBillboraRouter } from './billbora-routes.js';

/** Billbora API v1: an organization API key, or Supabase sign-in exchanged for rotating JWTs. */
export const billboraModule = defineProviderModule({
  id: 'billbora',
  config: {
    env: {
      BILLBORA_BASE_URL: optionalString.describe('Billbora API v1 base URL'),
      SUPABASE_URL: optionalString.describe('Supabase project URL, for Billbora email/password sign-in'),
      SUPABASE_ANON_KEY: optionalString.describe('Supabase anon key'),
      RELAY_ALLOW_BILLBORA: list.describe('relay path patterns allowed for Billbora'),
    },
    read(env, context): BillboraSettings | undefined {
      const common = readProviderSettings(
        'BILLBORA_BASE_URL',
        env.BILLBORA_BASE_URL,
        env.RELAY_ALLOW_BILLBORA,
        context,
      );
      if (!common) return undefined;
      let supabase: BillboraSettings['supabase'];
      if (env.SUPABASE_URL) {
        const url = parseUpstreamUrl('SUPABASE_URL', env.SUPABASE_URL, context);
        if (!env.SUPABASE_ANON_KEY) context.problem('SUPABASE_ANON_KEY: required when SUPABASE_URL is set');
        else if (url) supabase = { url, anonKey: env.SUPABASE_ANON_KEY };
      }
      return { ...common, supabase };
    },
  },
  createAdapter: createBillboraAdapter,
  loginName(input) {
    const body = billboraLoginSchema.parse(input);
    return 'email' in body ? body.email : undefined;
  },
  createRoutes: createBillboraRouter,
  sandbox: { mount: '/billbora/api/v1', env: (mountedAt) => ({ BILLBORA_BASE_URL: mountedAt }) },
});
