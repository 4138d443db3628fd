import { list, optionalString } from '../../env-fields.js';
import { defineProviderModule } from '../provider-module.js';
import { readProviderSettings } from '../provider-settings.js';
import { billogramLoginSchema, createBillogramAdapter } from './billogram-adapter.js';

/** Billogram API v2: an API user's HTTP Basic credential, checked upstream before it is stored. */
export const billogramModule = defineProviderModule({
  id: 'billogram',
  config: {
    env: {
      BILLOGRAM_BASE_URL: optionalString.describe('Billogram API v2 base URL'),
      RELAY_ALLOW_BILLOGRAM: list.describe('relay path patterns allowed for Billogram'),
    },
    read: (env, context) =>
      readProviderSettings('BILLOGRAM_BASE_URL', env.BILLOGRAM_BASE_URL, env.RELAY_ALLOW_BILLOGRAM, context),
  },
  createAdapter: createBillogramAdapter,
  loginName: (input) => billogramLoginSchema.parse(input).apiUserId,
  sandbox: { mount: '/billogram/api/v2', env: (mountedAt) => ({ BILLOGRAM_BASE_URL: mountedAt }) },
});
