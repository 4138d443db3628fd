import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { z } from 'zod';
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
  /** Failed logins one username may have per provider per window. */
  loginFailuresPerUser: number;
  loginWindowMs: number;
  /** Relayed calls one session may make per window; 0 turns the limit off. */
  relayCallsPerSession: number;
  relayWindowMs: number;
}

/** Everything billfold reads from its environment, parsed once and frozen. */
export interface Config {
  readonly production: boolean;
  readonly nodeEnv: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string;
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
  };
  readonly store: {
    readonly kind: 'memory' | 'redis';
    readonly redisUrl: string | undefined;
    readonly redisClusterNodes: readonly string[];
    readonly keyPrefix: string;
    readonly timeoutMs: number;
    readonly memoryMaxSessions: number;
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
  MEMORY_STORE_MAX_SESSIONS: integer(100_000, 1, 10_000_000).describe('embedded store capacity'),
  REDIS_URL: optionalString.describe('redis:// or rediss:// URL'),
  REDIS_CLUSTER_NODES: list.describe('comma-separated Redis Cluster root nodes'),
  REDIS_KEY_PREFIX: optionalString.transform((v) => v ?? 'billfold:').describe('prefix of every Redis key'),
  STORE_TIMEOUT_MS: integer(1000, 10, 60_000).describe('session store operation timeout'),
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
  BODY_LIMIT: optionalString.transform((v) => v ?? '1mb').describe('largest accepted request body'),
  ALLOW_INSECURE_UPSTREAMS: flag.describe('allow http:// upstreams on loopback hosts'),
  RELAY_ALLOW_BILLINGPLATFORM: list.describe('relay path patterns allowed for BillingPlatform'),
  RELAY_ALLOW_BILL: list.describe('relay path patterns allowed for BILL'),
  RELAY_ALLOW_BILLOGRAM: list.describe('relay path patterns allowed for Billogram'),
  RELAY_ALLOW_BILLBORA: list.describe('relay path patterns allowed for Billbora'),
  LOGIN_MAX_FAILURES_PER_IP: integer(20, 1, 1_000_000).describe(
    'failed logins per client address per window',
  ),
  LOGIN_MAX_FAILURES_PER_USER: integer(5, 1, 1_000_000).describe(
    'failed logins per username per provider per window',
  ),
  LOGIN_FAILURE_WINDOW_S: integer(900, 1, 86_400).describe('failed-login counting window'),
  RELAY_RATE_LIMIT: integer(1200, 0, 100_000_000).describe('relayed calls per session per window; 0 is off'),
  RELAY_RATE_WINDOW_S: integer(60, 1, 86_400).describe('relay counting window'),
  METRICS_PORT: optionalPort.describe('serve GET /metrics on this port (on HOST) instead of the main one'),
  METRICS_TOKEN: bearerToken.describe(
    'bearer token GET /metrics requires (on the main port, it is off without one)',
  ),
  ADMIN_PORT: optionalPort.describe('serve the operator API on this port (on HOST)'),
  ADMIN_TOKEN: bearerToken.describe('bearer token the operator API requires'),
  LOG_LEVEL: optionalString
    .pipe(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional())
    .transform((v) => v ?? 'info')
    .describe('pino log level'),
});

type Env = z.infer<typeof envSchema>;

/** Parses a size such as `1mb`, `512kb` or `1048576`. */
export function parseByteSize(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(value.trim());
  if (!match?.[1]) return undefined;
  const units: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
  return Math.floor(Number(match[1]) * (units[(match[2] ?? 'b').toLowerCase()] ?? 1));
}

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

function parseRedisNodes(env: Env, problems: string[]): void {
  for (const [name, values] of [
    ['REDIS_URL', env.REDIS_URL ? [env.REDIS_URL] : []],
    ['REDIS_CLUSTER_NODES', env.REDIS_CLUSTER_NODES],
  ] as const) {
    for (const value of values) {
      if (!/^rediss?:\/\/[^\s]+$/.test(value))
        problems.push(`${name}: "${value}" must be a redis:// or rediss:// URL`);
    }
  }
  if (env.REDIS_URL && env.REDIS_CLUSTER_NODES.length > 0) {
    problems.push('REDIS_URL and REDIS_CLUSTER_NODES: set one, not both');
  }
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

  parseRedisNodes(env, problems);
  const redisConfigured = Boolean(env.REDIS_URL) || env.REDIS_CLUSTER_NODES.length > 0;
  const storeKind = env.SESSION_STORE ?? (redisConfigured ? 'redis' : 'memory');
  if (storeKind === 'redis' && !redisConfigured) {
    problems.push('SESSION_STORE=redis: set REDIS_URL or REDIS_CLUSTER_NODES');
  }
  if (production && storeKind === 'memory' && env.SESSION_STORE !== 'memory') {
    problems.push(
      'SESSION_STORE: production needs REDIS_URL or REDIS_CLUSTER_NODES; set SESSION_STORE=memory to run one instance on the embedded store knowingly',
    );
  }

  const bodyLimitBytes = parseByteSize(env.BODY_LIMIT);
  if (bodyLimitBytes === undefined || bodyLimitBytes < 1)
    problems.push(`BODY_LIMIT: "${env.BODY_LIMIT}" is not a size`);

  const providers = parseProviders(env, problems);
  const trustProxy = parseTrustProxy(env.TRUST_PROXY, problems);
  const admin = parseOperatorPorts(env, problems);

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
    },
    store: {
      kind: storeKind,
      redisUrl: env.REDIS_URL,
      redisClusterNodes: env.REDIS_CLUSTER_NODES,
      keyPrefix: env.REDIS_KEY_PREFIX,
      timeoutMs: env.STORE_TIMEOUT_MS,
      memoryMaxSessions: env.MEMORY_STORE_MAX_SESSIONS,
    },
    upstreamTimeoutMs: env.UPSTREAM_TIMEOUT_MS,
    bodyLimitBytes: bodyLimitBytes ?? 0,
    providers,
    rateLimits: {
      loginFailuresPerIp: env.LOGIN_MAX_FAILURES_PER_IP,
      loginFailuresPerUser: env.LOGIN_MAX_FAILURES_PER_USER,
      loginWindowMs: env.LOGIN_FAILURE_WINDOW_S * 1000,
      relayCallsPerSession: env.RELAY_RATE_LIMIT,
      relayWindowMs: env.RELAY_RATE_WINDOW_S * 1000,
    },
    metrics: { port: env.METRICS_PORT, token: env.METRICS_TOKEN },
    admin,
    logLevel: env.LOG_LEVEL,
  };
  return { config: deepFreeze(config), warnings };
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
