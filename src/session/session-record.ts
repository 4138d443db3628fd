import type { ProviderId } from '../upstream/provider-id.js';

/** BillingPlatform: the SessionID its login returned. */
export interface BillingPlatformCredential {
  sessionId: string;
  user: string;
  /** The personal upstream identity, canonicalised by the adapter (what the identity indexes use). */
  identity?: string;
  connectedAt: number;
}

/**
 * BILL: its sessionId, and when billfold last used it (BILL ends sessions after 35 idle minutes, a
 * sync-token session after 48 hours).
 */
export interface BillCredential {
  sessionId: string;
  /** The userName, or the sync token's name. */
  user: string;
  orgId: string;
  /** The personal upstream identity, canonicalised by the adapter (what the identity indexes use). */
  identity?: string;
  connectedAt: number;
  lastUsedAt: number;
  /** How it signed in; absent means a password. */
  mode?: 'password' | 'sync-token';
  /** v3: BILL trusts the session for MFA-protected operations, until `trustedUntil` at the latest. */
  trusted?: boolean;
  trustedUntil?: number;
}

/**
 * A device BILL's MFA step-up trusts: the `rememberMeId` BILL issued for it (a secret) and the device
 * name it was issued to. Kept in the session across BILL sign-ins, so a later one is trusted at once.
 */
export interface BillTrustedDevice {
  rememberMeId: string;
  device: string;
  /** The BILL user and organization it was issued for; it is offered to their sign-ins only. */
  user: string;
  orgId: string;
  /** When BILL stops honouring the rememberMeId. */
  until: number;
}

/** Billogram: the HTTP Basic credential, already encoded. */
export interface BillogramCredential {
  basic: string;
  user: string;
  connectedAt: number;
}

/** Billbora signed in through Supabase: rotating JWTs bound to one organization. */
export interface BillboraJwtCredential {
  mode: 'jwt';
  access: string;
  refresh: string;
  accessExpiresAt: number;
  /** Present when billfold signed in to Supabase itself (email and password). */
  supabaseRefresh?: string;
  /**
   * Set once `refresh` was refused, or presented without an answer (so possibly spent): it is never
   * presented again, and the next renewal starts from the Supabase session.
   */
  refreshSpent?: true;
  organization: { id: string; name: string };
  user: string;
  /** The Supabase user id (`sub`): the identity indexes use it, and an organization switch must match it. */
  identity?: string;
  connectedAt: number;
}

/** Billbora with an organization API key. */
export interface BillboraApiKeyCredential {
  mode: 'apiKey';
  apiKey: string;
  connectedAt: number;
}

/** What billfold holds for each provider a session is signed in to. */
export interface ProviderCredentials {
  billingplatform?: BillingPlatformCredential;
  bill?: BillCredential;
  billogram?: BillogramCredential;
  billbora?: BillboraJwtCredential | BillboraApiKeyCredential;
}

/** The credential type of one provider. */
export type CredentialOf<P extends ProviderId> = NonNullable<ProviderCredentials[P]>;

/** One session as the store holds it (encrypted): timestamps in epoch milliseconds. */
export interface SessionRecord {
  createdAt: number;
  lastSeenAt: number;
  providers: ProviderCredentials;
  /** A short description of the client (from its User-Agent), for the session inventory. */
  device?: string;
  /** What outlives one upstream sign-in within this session (BILL's MFA-trusted device). */
  trustedDevices?: { bill?: BillTrustedDevice };
}

/** The idle and absolute limits every session lives under. */
export interface SessionLimits {
  idleTimeoutMs: number;
  absoluteTimeoutMs: number;
}

/** When the session ends: the earlier of its idle and absolute deadlines. */
export function sessionDeadlines(record: SessionRecord, limits: SessionLimits) {
  const idleExpiresAt = record.lastSeenAt + limits.idleTimeoutMs;
  const expiresAt = record.createdAt + limits.absoluteTimeoutMs;
  return { idleExpiresAt, expiresAt, endsAt: Math.min(idleExpiresAt, expiresAt) };
}

/** Whether the record is still within both timeouts at `now`. */
export function isSessionLive(record: SessionRecord, limits: SessionLimits, now: number): boolean {
  return now < sessionDeadlines(record, limits).endsAt;
}

/** Forgets what a provider's sign-ins shared in the session (at its sign-out). */
export function forgetTrustedDevice(record: SessionRecord, provider: ProviderId): void {
  if (provider !== 'bill' || !record.trustedDevices) return;
  delete record.trustedDevices.bill;
  if (Object.keys(record.trustedDevices).length === 0) delete record.trustedDevices;
}

/** Whether any provider is still connected. */
export function hasProviders(record: SessionRecord): boolean {
  return Object.keys(record.providers).length > 0;
}
