/** The four upstreams billfold signs in to, in the order the session view lists them. */
export const PROVIDER_IDS = ['billingplatform', 'bill', 'billogram', 'billbora'] as const;

/** One of the four upstreams. */
export type ProviderId = (typeof PROVIDER_IDS)[number];

/** Narrows a path segment to a provider id. */
export function isProviderId(value: string): value is ProviderId {
  return (PROVIDER_IDS as readonly string[]).includes(value);
}
