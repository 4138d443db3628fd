/**
 * What a session holds for one provider: the fields its adapter's `login` and `renew` returned, the
 * provider module owning their shape. The session layer reads only the two fields every one carries.
 */
export type StoredCredential = {
  readonly connectedAt: number;
  /** The personal upstream identity, canonicalised by the adapter (what the identity indexes use). */
  readonly identity?: string;
} & { readonly [field: string]: unknown };

/** What billfold holds for each provider a session is signed in to, by provider id. */
export type ProviderCredentials = Record<string, StoredCredential>;

/**
 * What outlives one upstream sign-in within a session, by provider id (BILL's MFA-trusted device);
 * the provider module owning the shape.
 */
export type TrustedDevice = { readonly [field: string]: unknown };

/** One session as the store holds it (encrypted): timestamps in epoch milliseconds. */
export interface SessionRecord {
  createdAt: number;
  lastSeenAt: number;
  providers: ProviderCredentials;
  /** A short description of the client (from its User-Agent), for the session inventory. */
  device?: string;
  /** What outlives one upstream sign-in within this session, by provider (BILL's MFA-trusted device). */
  trustedDevices?: Record<string, TrustedDevice>;
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

/** A map without one key (the maps of a record are plain objects, as they are stored). */
const without = <T>(map: Readonly<Record<string, T>>, key: string): Record<string, T> =>
  Object.fromEntries(Object.entries(map).filter(([name]) => name !== key));

/** Removes a provider's credential from the session. */
export function forgetCredential(record: SessionRecord, provider: string): void {
  record.providers = without(record.providers, provider);
}

/** Forgets what a provider's sign-ins shared in the session (at its sign-out). */
export function forgetTrustedDevice(record: SessionRecord, provider: string): void {
  if (!record.trustedDevices || !Object.hasOwn(record.trustedDevices, provider)) return;
  const kept = without(record.trustedDevices, provider);
  if (Object.keys(kept).length === 0) delete record.trustedDevices;
  else record.trustedDevices = kept;
}

/** Whether any provider is still connected. */
export function hasProviders(record: SessionRecord): boolean {
  return Object.keys(record.providers).length > 0;
}
