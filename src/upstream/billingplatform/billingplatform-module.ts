import { list, optionalString } from '../../env-fields.js';
import { defineProviderModule } from '../provider-module.js';
import { readProviderSettings } from '../provider-settings.js';
import { billingPlatformLoginSchema, createBillingPlatformAdapter } from './billingplatform-adapter.js';

/** BillingPlatform REST 2.0: a username and password sign in; the SessionID is the credential. */
export const billingPlatformModule = defineProviderModule({
  id: 'billingplatform',
  config: {
    env: {
      BILLINGPLATFORM_BASE_URL: optionalString.describe('BillingPlatform REST 2.0 base URL'),
      RELAY_ALLOW_BILLINGPLATFORM: list.describe('relay path patterns allowed for BillingPlatform'),
    },
    read: (env, context) =>
      readProviderSettings(
        'BILLINGPLATFORM_BASE_URL',
        env.BILLINGPLATFORM_BASE_URL,
        env.RELAY_ALLOW_BILLINGPLATFORM,
        context,
      ),
  },
  createAdapter: createBillingPlatformAdapter,
  loginName: (input) => billingPlatformLoginSchema.parse(input).username,
  sandbox: {
    mount: '/billingplatform/demo/rest/2.0',
    env: (mountedAt) => ({ BILLINGPLATFORM_BASE_URL: mountedAt }),
  },
});
