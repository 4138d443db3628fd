/**
 * The demo identities the sandbox upstreams accept, as UPSTREAMS.md lists them. Each provider's entry
 * is exactly billfold's login body for that provider, so tests and the demo page can send it as is.
 */
export const SANDBOX_DEMO_CREDENTIALS = {
  billingplatform: { username: 'demo', password: 'demo-password' },
  bill: { userName: 'demo@example.com', password: 'demo-password', orgId: '00801DEMOORG' },
  /** BILL's developer key is server configuration (BILL_DEV_KEY), never part of a login body. */
  billDevKey: 'demo-dev-key',
  /** A BILL sync token of the demo organization (token-based sign-in, v2 and v3). */
  billSyncToken: { tokenName: 'demo-sync-token', tokenValue: 'demo-sync-token-value', orgId: '00801DEMOORG' },
  /** The code BILL's MFA challenge "sends" to the demo user's phone (v3). */
  billMfaCode: '246810',
  billogram: { apiUserId: 'demo-api-user', apiPassword: 'demo-api-password' },
  billbora: { email: 'demo@example.com', password: 'demo-password' },
  billboraApiKey: 'bb_demo_key',
  /** The demo user belongs to both; any other organization id is refused. */
  billboraOrganizations: [
    { id: 'org_demo', name: 'Demo Organization' },
    { id: 'org_other', name: 'Other Organization' },
  ],
  /** The Supabase anon key (SUPABASE_ANON_KEY) Billbora's email sign-in sends as `apikey`. */
  supabaseAnonKey: 'demo-anon-key',
} as const;
