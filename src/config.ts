import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import type { RedisAddress, RedisTlsFiles } from './session/redis-connection.js';
import { PROVIDER_IDS, type ProviderId } from './upstream/provider-id.js';

/** One key of the session encryption keyring. */
export interface EncryptionKey {
  id: string;
  key: Buffer;
}

/** Where one provider's API lives, plus what its adapter needs from the operator. */
export interface ProviderConfig {
  baseUrl: URL;
  /** Operator-set relay path patterns (`RELAY_ALLOW_<PROVIDER>`); empty means every path. */
  relayAllow: readonly RegExp[];
}

/** Which of BILL's APIs billfold speaks: v2 (form posts, long-term support) or v3 (JSON, MFA step-up). */
export type BillApiVersion = 'v2' | 'v3';

/** Limits on failed logins and relayed calls, from the configuration. */
export interface RateLimitConfig {
  /** Failed logins one client address may make per window, across providers. */
  loginFailuresPerIp: number;
  /** Failed logins one username may have per provider per window from one client address. */
  loginFailuresPerUser: number;
  /** Failed logins one username may have per provider per window from every address together. */
  loginFailuresPerUserAllAddresses: number;
  /** Past that ceiling the username is slowed, not walled: one attempt per this interval. */
  loginSlowedIntervalMs: number;
  /** Successful logins one client address may make per window, across providers. */
  loginSuccessesPerIp: number;
  loginWindowMs: number;
  /** BILL logins per hour billfold makes with its developer key (BILL refuses past 200). */
  billLoginsPerHour: number;
  /** The share of that budget one client address may spend per hour. */
  billLoginsPerIpPerHour: number;
  /** Relayed calls one session may make per window; 0 turns the limit off. */
  relayCallsPerSession: number;
  relayWindowMs: number;
  /** Relayed calls one session, and one upstream identity, may have open at once per provider; 0 is off. */
  relayConcurrentPerSession: number;
}

/** Everything billfold reads from its environment, parsed once and frozen. */
export interface Config {
  readonly production: boolean;
  readonly nodeEnv: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string;
  /** Where ADMIN_PORT and METRICS_PORT listen. */
  readonly operatorHost: string;
  /** Failed operator tokens one client address may present per window before it is refused (429). */
  readonly operatorAuth: { readonly maxFailures: number; readonly windowMs: number };
  readonly publicOrigin: string;
  readonly corsOrigins: readonly string[];
  readonly trustProxy: boolean | number | readonly string[];
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly session: {
    readonly secrets: readonly string[];
    readonly encryptionKeys: readonly EncryptionKey[];
    readonly idleTimeoutMs: number;
    readonly absoluteTimeoutMs: number;
    readonly cookieName: string;
    readonly cookieSecure: boolean;
    /** Live sessions one personal identity may hold; a new one past it ends the oldest. */
    readonly maxSessionsPerIdentity: number;
  };
  readonly store: {
    readonly kind: 'memory' | 'redis';
    readonly redisUrl: string | undefined;
    readonly redisClusterNodes: readonly string[];
    /** Sentinel, credentials, TLS and replica acknowledgement, for every Redis topology. */
    readonly redis: RedisSettings;
    readonly keyPrefix: string;
    readonly timeoutMs: number;
    readonly memoryMaxSessions: number;
    /**
     * Session records kept in process, true by Redis's tracking (SESSION_CACHE): how many at most, or
     * undefined when off. Only Redis and Redis Cluster use it.
     */
    readonly sessionCacheEntries: number | undefined;
  };
  readonly upstreamTimeoutMs: number;
  readonly bodyLimitBytes: number;
  readonly providers: {
    readonly billingplatform?: ProviderConfig;
    readonly bill?: ProviderConfig & { readonly devKey: string; readonly apiVersion: BillApiVersion };
    readonly billogram?: ProviderConfig;
    readonly billbora?: ProviderConfig & {
      readonly supabase: { readonly url: URL; readonly anonKey: string } | undefined;
    };
  };
  readonly rateLimits: RateLimitConfig;
  /** Prometheus metrics: on their own port, and/or behind a bearer token (on the main port without one). */
  readonly metrics: { readonly port: number | undefined; readonly token: string | undefined };
  /** The operator API (list and revoke sessions by provider user): on only when its port and token are set. */
  readonly admin: { readonly port: number; readonly token: string } | undefined;
  readonly logLevel: string;
  /** Bytes of log lines held for a slow stdout; past it, lines are dropped and counted. */
  readonly logBufferBytes: number;
}

/** How billfold reaches Redis beyond the URLs: Sentinel, the ACL user, TLS, replica acknowledgement. */
export interface RedisSettings {
  readonly sentinel: { readonly nodes: readonly RedisAddress[]; readonly masterName: string } | undefined;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly sentinelUsername: string | undefined;
  readonly sentinelPassword: string | undefined;
  /** TLS on every Redis connection (with these files, when given), or false. */
  readonly tls: RedisTlsFiles | false;
  /** Replicas that must hold a session write before it is acknowledged (`WAIT`); 0 is off. */
  readonly minReplicasAck: number;
}

/** A loaded configuration and the warnings its defaults deserve (printed at start). */
export interface LoadedConfig {
  config: Config;
  warnings: string[];
}

/** Thrown when the environment is invalid; the message lists every problem at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** The largest BODY_LIMIT accepted. */
export const MAX_BODY_LIMIT_BYTES = 64 * 1024 ** 2;

/** Whether a listen address is reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  const v4 = bare.replace(/^::ffff:/, '');
  return isIP(v4) === 4 && v4.startsWith('127.');
}

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const integer = (fallback: number, min: number, max: number) =>
  optionalString
    .pipe(
      z
        .string()
        .regex(/^\d+$/, 'must be a whole number')
        .transform(Number)
        .pipe(z.number().min(min).max(max))
        .optional(),
    )
    .transform((v) => v ?? fallback);

const optionalPort = optionalString.pipe(
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(0).max(65535))
    .optional(),
);

// Bearer tokens an operator generates; short ones could be guessed.
const bearerToken = optionalString.pipe(z.string().min(32, 'must be at least 32 characters').optional());

const flag = optionalString
  .pipe(z.enum(['true', 'false', '1', '0']).optional())
  .transform((v) => v === 'true' || v === '1');

const list = optionalString.transform((v) =>
  v === undefined
    ? []
    : v
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== ''),
);

/** Every environment variable billfold reads, each described. */
const envSchema = z.object({
  NODE_ENV: optionalString
    .pipe(z.enum(['development', 'production', 'test']).optional())
    .transform((v) => v ?? 'development')
    .describe('`production` turns on every strict check'),
  PORT: integer(3000, 0, 65535).describe('listen port'),
  HOST: optionalString.transform((v) => v ?? '127.0.0.1').describe('listen address'),
  ALLOW_DEVELOPMENT_ON_NETWORK: flag.describe(
    'let development mode (any NODE_ENV but production) listen on a non-loopback HOST',
  ),
  OPERATOR_HOST: optionalString.describe(
    'listen address of ADMIN_PORT and METRICS_PORT (default HOST); production needs TLS or loopback',
  ),
  OPERATOR_AUTH_MAX_FAILURES: integer(10, 1, 1_000_000).describe(
    'wrong operator tokens one client address may send per window before it is refused',
  ),
  OPERATOR_AUTH_WINDOW_S: integer(900, 1, 86_400).describe('wrong operator token counting window'),
  PUBLIC_ORIGIN: optionalString.describe("billfold's own origin; required in production"),
  CORS_ORIGINS: list.describe('comma-separated exact origins allowed to call with credentials'),
  TRUST_PROXY: optionalString.describe('Express trust-proxy value: hop count or addresses'),
  TLS_CERT_FILE: optionalString.describe('serve HTTPS directly with this certificate'),
  TLS_KEY_FILE: optionalString.describe('and this private key'),
  SESSION_SECRETS: list.describe('cookie signing secrets; the first signs, all verify'),
  SESSION_ENCRYPTION_KEYS: list.describe('kid:base64url-32-bytes; the first encrypts, all decrypt'),
  SESSION_IDLE_TIMEOUT_S: integer(1800, 60, 86_400 * 30).describe('idle timeout'),
  SESSION_ABSOLUTE_TIMEOUT_S: integer(43_200, 60, 86_400 * 365).describe('absolute timeout'),
  SESSION_STORE: optionalString.pipe(z.enum(['memory', 'redis']).optional()).describe('session store kind'),
  MEMORY_STORE_MAX_SESSIONS: integer(100_000, 1, 10_000_000).describe(
    'embedded store capacity: sessions, and as many counters and locks kept apart from them',
  ),
  REDIS_URL: optionalString.describe('redis:// or rediss:// URL'),
  REDIS_CLUSTER_NODES: list.describe('comma-separated Redis Cluster root nodes'),
  REDIS_SENTINEL_NODES: list.describe('comma-separated Redis Sentinel addresses as host:port'),
  REDIS_SENTINEL_MASTER: optionalString.describe('the name of the master the sentinels watch'),
  REDIS_USERNAME: optionalString.describe('Redis ACL user for every connection (unless the URLs name one)'),
  REDIS_PASSWORD: optionalString.describe('password of the Redis ACL user (unless the URLs carry one)'),
  REDIS_SENTINEL_USERNAME: optionalString.describe("sentinels' ACL user, when not REDIS_USERNAME"),
  REDIS_SENTINEL_PASSWORD: optionalString.describe("sentinels' password, when not REDIS_PASSWORD"),
  REDIS_TLS: optionalString
    .pipe(z.enum(['true', 'false', '1', '0']).optional())
    .transform((v) => (v === undefined ? undefined : v === 'true' || v === '1'))
    .describe('TLS on every Redis connection; on by default with rediss:// URLs or REDIS_TLS_CA_FILE'),
  REDIS_TLS_CA_FILE: optionalString.describe('PEM file of the CA that signed the Redis servers'),
  REDIS_TLS_CERT_FILE: optionalString.describe('PEM client certificate presented to Redis'),
  REDIS_TLS_KEY_FILE: optionalString.describe('PEM private key of the client certificate'),
  REDIS_MIN_REPLICAS_ACK: integer(0, 0, 16).describe(
    'replicas that must hold a session write (WAIT) before it is acknowledged; 0 is off',
  ),
  REDIS_KEY_PREFIX: optionalString.transform((v) => v ?? 'billfold:').describe('prefix of every Redis key'),
  STORE_TIMEOUT_MS: integer(1000, 10, 60_000).describe('session store operation timeout'),
  SESSION_CACHE: optionalString
    .pipe(z.enum(['on', 'off']).optional())
    .transform((v) => v ?? 'on')
    .describe(
      'keep session records in process, invalidated by Redis (CLIENT TRACKING); off reads Redis per request',
    ),
  SESSION_CACHE_MAX_ENTRIES: integer(10_000, 1, 1_000_000).describe(
    'session records the process cache holds at most (least recently used go first)',
  ),
  BILLINGPLATFORM_BASE_URL: optionalString.describe('BillingPlatform REST 2.0 base URL'),
  BILL_BASE_URL: optionalString.describe('BILL API base URL (v2, or v3 with BILL_API_VERSION=v3)'),
  BILL_API_VERSION: optionalString
    .pipe(z.enum(['v2', 'v3']).optional())
    .transform((v) => v ?? 'v2')
    .describe('which BILL API BILL_BASE_URL is: v2 (form posts) or v3 (JSON, MFA step-up)'),
  BILL_DEV_KEY: optionalString.describe('BILL developer key (server-side only)'),
  BILLOGRAM_BASE_URL: optionalString.describe('Billogram API v2 base URL'),
  BILLBORA_BASE_URL: optionalString.describe('Billbora API v1 base URL'),
  SUPABASE_URL: optionalString.describe('Supabase project URL, for Billbora email/password sign-in'),
  SUPABASE_ANON_KEY: optionalString.describe('Supabase anon key'),
  UPSTREAM_TIMEOUT_MS: integer(30_000, 100, 600_000).describe('upstream call timeout'),
  BODY_LIMIT: optionalString
    .transform((v) => v ?? '1mb')
    .describe('largest accepted request body, at most 64mb'),
  ALLOW_INSECURE_UPSTREAMS: flag.describe('allow http:// upstreams on loopback hosts'),
  RELAY_ALLOW_BILLINGPLATFORM: list.describe('relay path patterns allowed for BillingPlatform'),
  RELAY_ALLOW_BILL: list.describe('relay path patterns allowed for BILL'),
  RELAY_ALLOW_BILLOGRAM: list.describe('relay path patterns allowed for Billogram'),
  RELAY_ALLOW_BILLBORA: list.describe('relay path patterns allowed for Billbora'),
  LOGIN_MAX_FAILURES_PER_IP: integer(20, 1, 1_000_000).describe(
    'failed logins per client address per window',
  ),
  LOGIN_MAX_FAILURES_PER_USER: integer(5, 1, 1_000_000).describe(
    'failed logins per username per provider per window from one client address',
  ),
  LOGIN_MAX_FAILURES_PER_USER_ALL_ADDRESSES: integer(100, 1, 1_000_000).describe(
    'failed logins per username per provider per window from all addresses; past it, slowed',
  ),
  LOGIN_SLOWED_INTERVAL_S: integer(10, 1, 3600).describe(
    'one login attempt per this interval for a username past its all-addresses ceiling',
  ),
  LOGIN_MAX_SUCCESSES_PER_IP: integer(30, 1, 1_000_000).describe(
    'successful logins per client address per window, across providers',
  ),
  LOGIN_FAILURE_WINDOW_S: integer(900, 1, 86_400).describe('login counting window (failures and successes)'),
  BILL_LOGINS_PER_HOUR: integer(180, 1, 100_000).describe(
    'BILL logins per hour with BILL_DEV_KEY, answered 429 past it (BILL allows 200)',
  ),
  BILL_LOGINS_PER_HOUR_PER_IP: integer(10, 1, 100_000).describe(
    'BILL logins per hour one client address may make, so a few addresses cannot spend the budget',
  ),
  MAX_SESSIONS_PER_IDENTITY: integer(20, 1, 10_000).describe(
    'live sessions per personal upstream identity; a new one past it ends the oldest',
  ),
  RELAY_RATE_LIMIT: integer(1200, 0, 100_000_000).describe('relayed calls per session per window; 0 is off'),
  RELAY_RATE_WINDOW_S: integer(60, 1, 86_400).describe('relay counting window'),
  RELAY_MAX_CONCURRENT_PER_SESSION: integer(16, 0, 256).describe(
    'relayed calls one session (and one upstream identity) may have open at once per provider, per instance; 0 is off',
  ),
  METRICS_PORT: optionalPort.describe(
    'serve GET /metrics on this port (on OPERATOR_HOST) instead of the main one',
  ),
  METRICS_TOKEN: bearerToken.describe(
    'bearer token GET /metrics requires (on the main port, it is off without one)',
  ),
  ADMIN_PORT: optionalPort.describe('serve the operator API on this port (on OPERATOR_HOST)'),
  ADMIN_TOKEN: bearerToken.describe('bearer token the operator API requires'),
  LOG_LEVEL: optionalString
    .pipe(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional())
    .transform((v) => v ?? 'info')
    .describe('pino log level'),
  LOG_BUFFER_BYTES: integer(8 * 1024 ** 2, 64 * 1024, 1024 ** 3).describe(
    'log bytes held while stdout is slow; past it lines are dropped and counted',
  ),
});

type Env = z.infer<typeof envSchema>;

/** Parses a size such as `1mb`, `512kb` or `1048576`. */
export function parseByteSize(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(value.trim());
  if (!match?.[1]) return undefined;
  const units: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
  return Math.floor(Number(match[1]) * (units[(match[2] ?? 'b').toLowerCase()] ?? 1));
}

const shannonBits = (symbols: readonly number[]): number => {
  const counts = new Map<number, number>();
  for (const symbol of symbols) counts.set(symbol, (counts.get(symbol) ?? 0) + 1);
  let bits = 0;
  for (const count of counts.values()) bits -= count * Math.log2(count / symbols.length);
  return bits;
};

/**
 * A rough upper estimate, in bits, of what a secret holds: the lesser of the Shannon entropy of its
 * symbols and of the steps between neighbours (so `aaaa…`, `abcd…` and `0123…` score near zero), and
 * a string that repeats a shorter run scores as that run. Random secrets of the documented sizes score
 * well above 100; it catches the placeholder an operator typed, not a clever weak secret.
 */
export function estimateEntropyBits(symbols: readonly number[]): number {
  for (let unit = 1; unit <= symbols.length / 2; unit++) {
    if (symbols.length % unit === 0 && symbols.every((symbol, i) => symbol === symbols[i % unit])) {
      return estimateEntropyBits(symbols.slice(0, unit));
    }
  }
  const steps = symbols.slice(1).map((symbol, i) => symbol - (symbols[i] ?? 0));
  return Math.min(shannonBits(symbols), shannonBits(steps) + (symbols.length > 0 ? 8 : 0));
}

/** Below this estimate a key, secret or token is refused in production (and warned about elsewhere). */
const WEAK_SECRET_BITS = 64;

function checkStrength(
  name: string,
  symbols: readonly number[],
  production: boolean,
  problems: string[],
  warnings: string[],
): void {
  const allZero = symbols.every((symbol) => symbol === 0);
  if (!allZero && estimateEntropyBits(symbols) >= WEAK_SECRET_BITS) return;
  const what = allZero ? 'is all zeros' : 'is low-entropy (one repeated or sequential run)';
  const message = `${name}: a value ${what}; generate one with node -e "console.log(require('node:crypto').randomBytes(32).toString('base64url'))"`;
  if (production) problems.push(message);
  else warnings.push(message);
}

const codePoints = (text: string) => [...text].map((c) => c.codePointAt(0) ?? 0);

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

function parseOrigin(value: string, name: string, problems: string[]): string | undefined {
  try {
    const url = new URL(value);
    if (url.hostname.includes('*')) {
      problems.push(`${name}: "${value}" is a pattern; origins are matched exactly, so list each one`);
      return undefined;
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== value.replace(/\/$/, '')) {
      problems.push(`${name}: "${value}" must be an origin such as https://app.example.com (no path)`);
      return undefined;
    }
    return url.origin;
  } catch {
    problems.push(`${name}: "${value}" is not a URL`);
    return undefined;
  }
}

function parseEncryptionKeys(items: string[], problems: string[]): EncryptionKey[] {
  const keys: EncryptionKey[] = [];
  for (const item of items) {
    const separator = item.indexOf(':');
    const id = item.slice(0, separator);
    const key = Buffer.from(item.slice(separator + 1), 'base64url');
    if (separator < 1 || !/^[A-Za-z0-9_-]{1,32}$/.test(id) || key.length !== 32) {
      problems.push(
        'SESSION_ENCRYPTION_KEYS: each key must be kid:base64url of 32 bytes (kid of [A-Za-z0-9_-])',
      );
    } else if (keys.some((k) => k.id === id)) {
      problems.push(`SESSION_ENCRYPTION_KEYS: key id "${id}" appears twice`);
    } else {
      keys.push({ id, key });
    }
  }
  return keys;
}

function parseUpstreamUrl(
  name: string,
  value: string,
  allowInsecure: boolean,
  problems: string[],
): URL | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push(`${name}: "${value}" is not a URL`);
    return undefined;
  }
  if (url.search || url.hash || url.username || url.password) {
    problems.push(`${name}: must not carry credentials, a query or a fragment`);
    return undefined;
  }
  if (url.protocol === 'http:') {
    if (!allowInsecure || !LOOPBACK_HOSTS.has(url.hostname)) {
      problems.push(
        `${name}: must be https:// (http:// only for loopback hosts with ALLOW_INSECURE_UPSTREAMS=true)`,
      );
      return undefined;
    }
  } else if (url.protocol !== 'https:') {
    problems.push(`${name}: must be https://`);
    return undefined;
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

function parseTrustProxy(value: string | undefined, problems: string[]): Config['trustProxy'] {
  if (value === undefined || value === 'false' || value === 'off') return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) return Number(value);
  const entries = value.split(',').map((v) => v.trim());
  for (const entry of entries) {
    const address = entry.split('/')[0] ?? '';
    if (!['loopback', 'linklocal', 'uniquelocal'].includes(entry) && isIP(address) === 0) {
      problems.push(
        `TRUST_PROXY: "${entry}" is not a hop count, address, subnet or loopback/linklocal/uniquelocal`,
      );
    }
  }
  return entries;
}

function parseRedisNodes(env: Env, problems: string[]): RedisSettings {
  const urls: URL[] = [];
  for (const [name, values] of [
    ['REDIS_URL', env.REDIS_URL ? [env.REDIS_URL] : []],
    ['REDIS_CLUSTER_NODES', env.REDIS_CLUSTER_NODES],
  ] as const) {
    for (const value of values) {
      if (!/^rediss?:\/\/[^\s]+$/.test(value) || !URL.canParse(value))
        problems.push(`${name}: "${value}" must be a redis:// or rediss:// URL`);
      else urls.push(new URL(value));
    }
  }
  const sentinelNodes: RedisAddress[] = [];
  for (const value of env.REDIS_SENTINEL_NODES) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]@]+):(\d{1,5})$/.exec(value);
    const port = Number(match?.[2]);
    if (!match?.[1] || !(port >= 1 && port <= 65535))
      problems.push(`REDIS_SENTINEL_NODES: "${value}" must be host:port`);
    else sentinelNodes.push({ host: match[1].replace(/^\[(.*)\]$/, '$1'), port });
  }
  const topologies = [
    env.REDIS_URL && 'REDIS_URL',
    env.REDIS_CLUSTER_NODES.length > 0 && 'REDIS_CLUSTER_NODES',
    env.REDIS_SENTINEL_NODES.length > 0 && 'REDIS_SENTINEL_NODES',
  ].filter(Boolean);
  if (topologies.length > 1) problems.push(`${topologies.join(' and ')}: set one, not several`);
  if (env.REDIS_SENTINEL_NODES.length > 0 && !env.REDIS_SENTINEL_MASTER)
    problems.push("REDIS_SENTINEL_MASTER: required with REDIS_SENTINEL_NODES (the master's name)");
  if (env.REDIS_SENTINEL_MASTER && env.REDIS_SENTINEL_NODES.length === 0)
    problems.push('REDIS_SENTINEL_MASTER: set REDIS_SENTINEL_NODES too');

  // Every connection gets the same scheme and ACL user, so the URLs must agree with each other and
  // with REDIS_USERNAME / REDIS_PASSWORD: a setting that reached only some nodes would be a trap.
  const same = (values: string[]) => new Set(values).size <= 1;
  if (!same(urls.map((url) => url.protocol)))
    problems.push('REDIS_CLUSTER_NODES: use redis:// for every node or rediss:// for every node');
  const userOf = (url: URL) => decodeURIComponent(url.username);
  const passwordOf = (url: URL) => decodeURIComponent(url.password);
  if (!same(urls.map(userOf)) || !same(urls.map(passwordOf)))
    problems.push('REDIS_CLUSTER_NODES: every node must carry the same user and password');
  const urlUser = urls.map(userOf).find((v) => v !== '');
  const urlPassword = urls.map(passwordOf).find((v) => v !== '');
  if (urlUser !== undefined && env.REDIS_USERNAME !== undefined && urlUser !== env.REDIS_USERNAME)
    problems.push('REDIS_USERNAME: differs from the user in the Redis URL; set it in one place');
  if (urlPassword !== undefined && env.REDIS_PASSWORD !== undefined && urlPassword !== env.REDIS_PASSWORD)
    problems.push('REDIS_PASSWORD: differs from the password in the Redis URL; set it in one place');
  if (env.REDIS_USERNAME !== undefined && env.REDIS_PASSWORD === undefined && urlPassword === undefined)
    problems.push('REDIS_USERNAME: set REDIS_PASSWORD too');

  const urlTls = urls.length > 0 && urls.every((url) => url.protocol === 'rediss:');
  const filesGiven = Boolean(env.REDIS_TLS_CA_FILE || env.REDIS_TLS_CERT_FILE || env.REDIS_TLS_KEY_FILE);
  const tlsOn = env.REDIS_TLS ?? (urlTls || filesGiven);
  if (urls.length > 0 && urls[0]!.protocol === 'redis:' && tlsOn)
    problems.push('REDIS_TLS: the Redis URLs say redis://; write rediss:// for TLS');
  if (urlTls && env.REDIS_TLS === false) problems.push('REDIS_TLS=false: the Redis URLs say rediss://');
  if (filesGiven && !tlsOn) problems.push('REDIS_TLS_CA_FILE: TLS files are set but REDIS_TLS=false');
  if (Boolean(env.REDIS_TLS_CERT_FILE) !== Boolean(env.REDIS_TLS_KEY_FILE))
    problems.push('REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE: set both or neither');
  for (const name of ['REDIS_TLS_CA_FILE', 'REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'] as const) {
    const file = env[name];
    if (!file) continue;
    try {
      accessSync(file, constants.R_OK);
    } catch {
      problems.push(`${name}: cannot read ${file}`);
    }
  }

  return {
    sentinel:
      sentinelNodes.length > 0 && env.REDIS_SENTINEL_MASTER
        ? { nodes: sentinelNodes, masterName: env.REDIS_SENTINEL_MASTER }
        : undefined,
    username: env.REDIS_USERNAME,
    password: env.REDIS_PASSWORD,
    sentinelUsername: env.REDIS_SENTINEL_USERNAME,
    sentinelPassword: env.REDIS_SENTINEL_PASSWORD,
    tls: tlsOn
      ? { caFile: env.REDIS_TLS_CA_FILE, certFile: env.REDIS_TLS_CERT_FILE, keyFile: env.REDIS_TLS_KEY_FILE }
      : false,
    minReplicasAck: env.REDIS_MIN_REPLICAS_ACK,
  };
}

/**
 * Parses and checks the environment once. Every problem is collected and reported together; in
 * development, missing secrets are generated per start (with a warning) so `npm start` just works.
 */
export function loadConfig(source: Record<string, string | undefined>): LoadedConfig {
  const problems: string[] = [];
  const parsed = envSchema.safeParse(source);
  let env: Env;
  if (parsed.success) {
    env = parsed.data;
  } else {
    // Report these, then check the rest with the bad values left out, so one message lists everything.
    problems.push(...parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
    const cleaned = { ...source };
    for (const issue of parsed.error.issues) delete cleaned[String(issue.path[0])];
    env = envSchema.parse(cleaned);
  }
  const warnings: string[] = [];
  const production = env.NODE_ENV === 'production';

  const tls =
    env.TLS_CERT_FILE && env.TLS_KEY_FILE
      ? { certFile: env.TLS_CERT_FILE, keyFile: env.TLS_KEY_FILE }
      : undefined;
  if (Boolean(env.TLS_CERT_FILE) !== Boolean(env.TLS_KEY_FILE)) {
    problems.push('TLS_CERT_FILE and TLS_KEY_FILE: set both or neither');
  }

  let publicOrigin: string | undefined;
  if (env.PUBLIC_ORIGIN) {
    publicOrigin = parseOrigin(env.PUBLIC_ORIGIN, 'PUBLIC_ORIGIN', problems);
  } else if (production) {
    problems.push('PUBLIC_ORIGIN: required in production');
  } else {
    publicOrigin = `${tls ? 'https' : 'http'}://localhost:${env.PORT}`;
  }
  if (production && publicOrigin?.startsWith('http:'))
    problems.push('PUBLIC_ORIGIN: must be https:// in production');

  const corsOrigins = env.CORS_ORIGINS.map((o) => parseOrigin(o, 'CORS_ORIGINS', problems)).filter(
    (o): o is string => o !== undefined,
  );

  let secrets = env.SESSION_SECRETS;
  for (const secret of secrets) {
    if (secret.length < 32) problems.push('SESSION_SECRETS: every secret must be at least 32 characters');
  }
  let encryptionKeys = parseEncryptionKeys(env.SESSION_ENCRYPTION_KEYS, problems);
  if (secrets.length === 0) {
    if (production) problems.push('SESSION_SECRETS: required in production');
    else {
      secrets = [randomBytes(32).toString('base64url')];
      warnings.push(
        'SESSION_SECRETS is not set: using a random secret, so sessions end when billfold restarts',
      );
    }
  }
  if (env.SESSION_ENCRYPTION_KEYS.length === 0) {
    if (production) problems.push('SESSION_ENCRYPTION_KEYS: required in production');
    else {
      encryptionKeys = [{ id: 'dev', key: randomBytes(32) }];
      warnings.push(
        'SESSION_ENCRYPTION_KEYS is not set: using a random key, so sessions end when billfold restarts',
      );
    }
  }
  if (env.SESSION_ABSOLUTE_TIMEOUT_S < env.SESSION_IDLE_TIMEOUT_S) {
    problems.push('SESSION_ABSOLUTE_TIMEOUT_S: must not be shorter than SESSION_IDLE_TIMEOUT_S');
  }

  const redis = parseRedisNodes(env, problems);
  const redisConfigured =
    Boolean(env.REDIS_URL) || env.REDIS_CLUSTER_NODES.length > 0 || env.REDIS_SENTINEL_NODES.length > 0;
  const storeKind = env.SESSION_STORE ?? (redisConfigured ? 'redis' : 'memory');
  if (storeKind === 'redis' && !redisConfigured) {
    problems.push('SESSION_STORE=redis: set REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINEL_NODES');
  }
  if (storeKind === 'memory' && redis.minReplicasAck > 0)
    problems.push('REDIS_MIN_REPLICAS_ACK: the embedded store has no replicas; use Redis');
  if (production && storeKind === 'memory' && env.SESSION_STORE !== 'memory') {
    problems.push(
      'SESSION_STORE: production needs REDIS_URL or REDIS_CLUSTER_NODES; set SESSION_STORE=memory to run one instance on the embedded store knowingly',
    );
  }

  const bodyLimitBytes = parseByteSize(env.BODY_LIMIT);
  if (bodyLimitBytes === undefined || bodyLimitBytes < 1)
    problems.push(`BODY_LIMIT: "${env.BODY_LIMIT}" is not a size`);
  // Infinity (a few hundred digits) lands here too.
  else if (bodyLimitBytes > MAX_BODY_LIMIT_BYTES)
    problems.push(`BODY_LIMIT: "${env.BODY_LIMIT}" is over the ceiling of 64mb`);

  const providers = parseProviders(env, problems);
  const trustProxy = parseTrustProxy(env.TRUST_PROXY, problems);
  if (production) checkProductionTrust(trustProxy, problems, warnings);
  const admin = parseOperatorPorts(env, problems);
  const operatorHost = env.OPERATOR_HOST ?? env.HOST;
  checkListeners(env, { production, tls: tls !== undefined, operatorHost }, problems);
  for (const secret of env.SESSION_SECRETS)
    checkStrength('SESSION_SECRETS', codePoints(secret), production, problems, warnings);
  for (const { key } of env.SESSION_ENCRYPTION_KEYS.length > 0 ? encryptionKeys : [])
    checkStrength('SESSION_ENCRYPTION_KEYS', [...key], production, problems, warnings);
  // A scrape configuration leaks more easily than an admin credential; neither may open the other.
  if (env.ADMIN_TOKEN !== undefined && env.ADMIN_TOKEN === env.METRICS_TOKEN) {
    problems.push('ADMIN_TOKEN: must differ from METRICS_TOKEN, so a scraper’s token cannot revoke sessions');
  }
  if (
    [env.ADMIN_TOKEN, env.METRICS_TOKEN].some(
      (token) => token !== undefined && env.SESSION_SECRETS.includes(token),
    )
  ) {
    problems.push('ADMIN_TOKEN, METRICS_TOKEN: must differ from every SESSION_SECRETS entry');
  }
  for (const [name, token] of [
    ['ADMIN_TOKEN', env.ADMIN_TOKEN],
    ['METRICS_TOKEN', env.METRICS_TOKEN],
  ] as const) {
    if (token !== undefined) checkStrength(name, codePoints(token), production, problems, warnings);
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const cookieSecure =
    production ||
    tls !== undefined ||
    !/^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(publicOrigin ?? '');

  const config: Config = {
    production,
    nodeEnv: env.NODE_ENV,
    port: env.PORT,
    host: env.HOST,
    operatorHost,
    operatorAuth: {
      maxFailures: env.OPERATOR_AUTH_MAX_FAILURES,
      windowMs: env.OPERATOR_AUTH_WINDOW_S * 1000,
    },
    publicOrigin: publicOrigin ?? '',
    corsOrigins,
    trustProxy,
    tls,
    session: {
      secrets,
      encryptionKeys,
      idleTimeoutMs: env.SESSION_IDLE_TIMEOUT_S * 1000,
      absoluteTimeoutMs: env.SESSION_ABSOLUTE_TIMEOUT_S * 1000,
      cookieName: cookieSecure ? '__Host-billfold' : 'billfold',
      cookieSecure,
      maxSessionsPerIdentity: env.MAX_SESSIONS_PER_IDENTITY,
    },
    store: {
      kind: storeKind,
      redisUrl: env.REDIS_URL,
      redisClusterNodes: env.REDIS_CLUSTER_NODES,
      redis,
      keyPrefix: env.REDIS_KEY_PREFIX,
      timeoutMs: env.STORE_TIMEOUT_MS,
      memoryMaxSessions: env.MEMORY_STORE_MAX_SESSIONS,
      sessionCacheEntries: env.SESSION_CACHE === 'on' ? env.SESSION_CACHE_MAX_ENTRIES : undefined,
    },
    upstreamTimeoutMs: env.UPSTREAM_TIMEOUT_MS,
    bodyLimitBytes: bodyLimitBytes ?? 0,
    providers,
    rateLimits: {
      loginFailuresPerIp: env.LOGIN_MAX_FAILURES_PER_IP,
      loginFailuresPerUser: env.LOGIN_MAX_FAILURES_PER_USER,
      loginFailuresPerUserAllAddresses: env.LOGIN_MAX_FAILURES_PER_USER_ALL_ADDRESSES,
      loginSlowedIntervalMs: env.LOGIN_SLOWED_INTERVAL_S * 1000,
      loginSuccessesPerIp: env.LOGIN_MAX_SUCCESSES_PER_IP,
      loginWindowMs: env.LOGIN_FAILURE_WINDOW_S * 1000,
      billLoginsPerHour: env.BILL_LOGINS_PER_HOUR,
      billLoginsPerIpPerHour: env.BILL_LOGINS_PER_HOUR_PER_IP,
      relayCallsPerSession: env.RELAY_RATE_LIMIT,
      relayWindowMs: env.RELAY_RATE_WINDOW_S * 1000,
      relayConcurrentPerSession: env.RELAY_MAX_CONCURRENT_PER_SESSION,
    },
    metrics: { port: env.METRICS_PORT, token: env.METRICS_TOKEN },
    admin,
    logLevel: env.LOG_LEVEL,
    logBufferBytes: env.LOG_BUFFER_BYTES,
  };
  return { config: deepFreeze(config), warnings };
}

/**
 * Production trusts named proxies only: `true` (or a /0 subnet) would let any peer claim HTTPS and any
 * client address. Hop counts and whole private ranges trust whatever connects from there; they are
 * accepted with a warning, since an isolated network can make them right.
 */
function checkProductionTrust(trust: Config['trustProxy'], problems: string[], warnings: string[]): void {
  const entries: readonly string[] = typeof trust === 'object' ? trust : [];
  const everyone = trust === true || entries.some((entry) => /\/0+$/.test(entry.trim()));
  if (everyone) {
    problems.push(
      "TRUST_PROXY: in production it must name the proxy's own address (e.g. TRUST_PROXY=10.0.0.7); trusting every peer lets any client claim HTTPS and any address",
    );
  } else if (typeof trust === 'number' && trust > 0) {
    warnings.push(
      `TRUST_PROXY=${trust} trusts whatever connects to billfold as a proxy; name the proxy's address unless only the proxy can reach billfold`,
    );
  } else if (entries.some((entry) => entry === 'uniquelocal' || entry === 'linklocal')) {
    warnings.push(
      "TRUST_PROXY trusts a whole private range as proxies; name the proxy's own address instead",
    );
  }
}

/**
 * Where each listener may listen. Development mode stays on loopback unless told otherwise; in
 * production an operator port carries its bearer token (or serves metrics) over TLS, or listens on
 * loopback where no network can reach it.
 */
function checkListeners(
  env: Env,
  where: { production: boolean; tls: boolean; operatorHost: string },
  problems: string[],
): void {
  const operatorPorts = [
    ...(env.ADMIN_PORT !== undefined ? ['ADMIN_PORT'] : []),
    ...(env.METRICS_PORT !== undefined ? ['METRICS_PORT'] : []),
  ];
  if (!where.production && !env.ALLOW_DEVELOPMENT_ON_NETWORK) {
    const exposed = [
      ...(isLoopbackHost(env.HOST) ? [] : [`HOST=${env.HOST}`]),
      ...(operatorPorts.length > 0 && !isLoopbackHost(where.operatorHost)
        ? [`OPERATOR_HOST=${where.operatorHost}`]
        : []),
    ];
    if (exposed.length > 0) {
      problems.push(
        `HOST: ${exposed.join(' and ')} is reachable from the network, and NODE_ENV=${env.NODE_ENV} is not production (random secrets, a cookie without Secure, no HTTPS rule, the demo page); set NODE_ENV=production, a loopback address, or ALLOW_DEVELOPMENT_ON_NETWORK=true to do it knowingly`,
      );
    }
  }
  if (!where.production || isLoopbackHost(where.operatorHost)) return;
  // TLS keeps a token secret, but a scrape port with none would still answer anyone on the network.
  if (env.METRICS_PORT !== undefined && env.METRICS_TOKEN === undefined) {
    problems.push(
      `METRICS_TOKEN: required in production when METRICS_PORT listens on ${where.operatorHost}, a network address`,
    );
  }
  if (where.tls) return;
  for (const name of operatorPorts) {
    problems.push(
      `${name}: in production an operator port needs TLS (TLS_CERT_FILE and TLS_KEY_FILE) or a loopback OPERATOR_HOST; it would listen on ${where.operatorHost} in clear`,
    );
  }
}

function parseOperatorPorts(env: Env, problems: string[]): Config['admin'] {
  if ((env.ADMIN_PORT === undefined) !== (env.ADMIN_TOKEN === undefined)) {
    problems.push('ADMIN_PORT and ADMIN_TOKEN: set both or neither (the operator API is off without both)');
  }
  const ports: Array<[string, number | undefined]> = [
    ['PORT', env.PORT],
    ['METRICS_PORT', env.METRICS_PORT],
    ['ADMIN_PORT', env.ADMIN_PORT],
  ];
  for (const [index, [name, port]] of ports.entries()) {
    // Port 0 asks for any free port, so it clashes with nothing.
    const clash = ports
      .slice(0, index)
      .find(([, other]) => port !== undefined && port !== 0 && other === port);
    if (clash) problems.push(`${name}: must differ from ${clash[0]}`);
  }
  return env.ADMIN_PORT !== undefined && env.ADMIN_TOKEN !== undefined
    ? { port: env.ADMIN_PORT, token: env.ADMIN_TOKEN }
    : undefined;
}

function parseProviders(env: Env, problems: string[]): Config['providers'] {
  const relayAllow: Record<ProviderId, string[]> = {
    billingplatform: env.RELAY_ALLOW_BILLINGPLATFORM,
    bill: env.RELAY_ALLOW_BILL,
    billogram: env.RELAY_ALLOW_BILLOGRAM,
    billbora: env.RELAY_ALLOW_BILLBORA,
  };
  const baseUrls: Record<ProviderId, [string, string | undefined]> = {
    billingplatform: ['BILLINGPLATFORM_BASE_URL', env.BILLINGPLATFORM_BASE_URL],
    bill: ['BILL_BASE_URL', env.BILL_BASE_URL],
    billogram: ['BILLOGRAM_BASE_URL', env.BILLOGRAM_BASE_URL],
    billbora: ['BILLBORA_BASE_URL', env.BILLBORA_BASE_URL],
  };
  const common: Partial<Record<ProviderId, ProviderConfig>> = {};
  for (const id of PROVIDER_IDS) {
    const [name, value] = baseUrls[id];
    if (value === undefined) continue;
    const baseUrl = parseUpstreamUrl(name, value, env.ALLOW_INSECURE_UPSTREAMS, problems);
    if (baseUrl) common[id] = { baseUrl, relayAllow: relayAllow[id].map(compileRelayPattern) };
  }

  const providers: {
    -readonly [K in keyof Config['providers']]: Config['providers'][K];
  } = {};
  if (common.billingplatform) providers.billingplatform = common.billingplatform;
  if (common.billogram) providers.billogram = common.billogram;
  if (common.bill) {
    const apiVersion = env.BILL_API_VERSION;
    // A v3 gateway spoken to as v2 (or the reverse) would fail on every call; say so at start instead.
    const path = common.bill.baseUrl.pathname.toLowerCase();
    if (apiVersion === 'v2' && path.endsWith('/connect/v3'))
      problems.push('BILL_BASE_URL: ends in /connect/v3, BILL API v3; set BILL_API_VERSION=v3');
    else if (apiVersion === 'v3' && path.endsWith('/api/v2'))
      problems.push('BILL_BASE_URL: ends in /api/v2, BILL API v2; unset BILL_API_VERSION or set it to v2');
    if (env.BILL_DEV_KEY) providers.bill = { ...common.bill, devKey: env.BILL_DEV_KEY, apiVersion };
    else problems.push('BILL_DEV_KEY: required when BILL_BASE_URL is set');
  }
  if (common.billbora) {
    let supabase: { url: URL; anonKey: string } | undefined;
    if (env.SUPABASE_URL) {
      const url = parseUpstreamUrl('SUPABASE_URL', env.SUPABASE_URL, env.ALLOW_INSECURE_UPSTREAMS, problems);
      if (!env.SUPABASE_ANON_KEY) problems.push('SUPABASE_ANON_KEY: required when SUPABASE_URL is set');
      else if (url) supabase = { url, anonKey: env.SUPABASE_ANON_KEY };
    }
    providers.billbora = { ...common.billbora, supabase };
  }
  return providers;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof URL) && !Buffer.isBuffer(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
