import type { z } from 'zod';

/** What every provider's slice of the configuration holds: where its API lives and what the relay may reach. */
export interface ProviderSettings {
  readonly baseUrl: URL;
  /** Operator-set relay path patterns (`RELAY_ALLOW_<PROVIDER>`); empty means every path. */
  readonly relayAllow: readonly RegExp[];
}

/** What a provider's slice is read with besides its own variables. */
export interface SliceContext {
  /** `ALLOW_INSECURE_UPSTREAMS`: http:// upstreams on loopback hosts. */
  readonly allowInsecureUpstreams: boolean;
  /** Records one configuration problem; every problem is reported together at start. */
  problem(message: string): void;
}

/**
 * One provider's slice of the configuration: its environment variables (each described) and how they
 * become its settings. `read` reports its own cross-field problems through the context and answers
 * undefined when the provider is off (no base URL) or misconfigured.
 */
export interface ProviderConfigSlice<Shape extends z.ZodRawShape, Slice extends ProviderSettings> {
  readonly env: Shape;
  read(env: z.output<z.ZodObject<Shape>>, context: SliceContext): Slice | undefined;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Turns a RELAY_ALLOW pattern (`*` matches within a segment, `**` across segments) into a RegExp. */
export function compileRelayPattern(pattern: string): RegExp {
  const source = pattern
    .replace(/^\/+/, '')
    .split(/(\*\*|\*)/)
    .map((part) =>
      part === '**' ? '.*' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('');
  return new RegExp(`^${source}$`, 'i');
}

/** An upstream URL: https://, or http:// on a loopback host when insecure upstreams are allowed. */
export function parseUpstreamUrl(name: string, value: string, context: SliceContext): URL | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    context.problem(`${name}: "${value}" is not a URL`);
    return undefined;
  }
  if (url.search || url.hash || url.username || url.password) {
    context.problem(`${name}: must not carry credentials, a query or a fragment`);
    return undefined;
  }
  if (url.protocol === 'http:') {
    if (!context.allowInsecureUpstreams || !LOOPBACK_HOSTS.has(url.hostname)) {
      context.problem(
        `${name}: must be https:// (http:// only for loopback hosts with ALLOW_INSECURE_UPSTREAMS=true)`,
      );
      return undefined;
    }
  } else if (url.protocol !== 'https:') {
    context.problem(`${name}: must be https://`);
    return undefined;
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

/**
 * The settings every provider has, from its base URL variable and its `RELAY_ALLOW_<PROVIDER>`
 * patterns; undefined when the base URL is unset (the provider is off) or invalid (a problem is reported).
 */
export function readProviderSettings(
  variable: string,
  baseUrl: string | undefined,
  relayAllow: readonly string[],
  context: SliceContext,
): ProviderSettings | undefined {
  if (baseUrl === undefined) return undefined;
  const url = parseUpstreamUrl(variable, baseUrl, context);
  return url && { baseUrl: url, relayAllow: relayAllow.map(compileRelayPattern) };
}
