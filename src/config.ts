import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { bearerToken, flag, integer, list, optionalPort, optionalString } from './env-fields.js';
import type { RedisAddress, RedisTlsFiles } from './session/redis-connection.js';
import type { EncryptionKey } from './session/session-codec.js';
import type { ProviderConfigs, ProviderModule } from './upstream/provider-module.js';
import { PROVIDER_MODULES, type ProviderModules } from './upstream/provider-modules.js';
import type { ProviderSettings, SliceContext } from './upstream/provider-settings.js';

export type { EncryptionKey } from './session/session-codec.js';
export { compileRelayPattern } from './upstream/provider-settings.js';

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

/** The Express trust-proxy value: off, everyone, a hop count, or named addresses and subnets. */
export type TrustProxy = boolean | number | readonly string[];

/** Thrown when the environment is invalid; the message lists every problem at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** The largest BODY_LIMIT accepted. */
export const MAX_BODY_LIMIT_BYTES = 64 * 1024 ** 2;

/** Whether a listen address is reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  const v4 = bare.replace(/^::ffff:/, '');
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** Every environment variable billfold itself reads, each described; providers add their own. */
const coreShape = {
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
  UPSTREAM_TIMEOUT_MS: integer(30_000, 100, 600_000).describe('upstream call timeout'),
  BODY_LIMIT: optionalString
    .transform((v) => v ?? '1mb')
    .describe('largest accepted request body, at most 64mb'),
  ALLOW_INSECURE_UPSTREAMS: flag.describe('allow http:// upstreams on loopback hosts'),
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
};

type Env = z.output<z.ZodObject<typeof coreShape>>;

/**
 * The one schema of billfold's configuration: the core variables and each provider module's own,
 * every cross-field rule (`review`, in the superRefine), then the frozen configuration and the
 * warnings its defaults deserve.
 */
export function createConfigSchema<const M extends readonly ProviderModule[]>(modules: M) {
  const providerShape: z.ZodRawShape = Object.fromEntries(
    modules.flatMap((module) => Object.entries(module.config.env)),
  );
  // Each module's fields are parsed by its own shape and handed back to its `read`; a module cannot
  // redefine a core variable.
  const shape: typeof coreShape = { ...providerShape, ...coreShape };
  return z
    .object(shape)
    .superRefine((env, context) => {
      for (const message of review(env, modules).problems) context.addIssue({ code: 'custom', message });
    })
    .transform((env) => build(env, modules));
}

/** The name of every environment variable billfold reads: its own and each provider module's. */
export function environmentVariables(modules: readonly ProviderModule[] = PROVIDER_MODULES): Set<string> {
  return new Set([...Object.keys(coreShape), ...modules.flatMap((module) => Object.keys(module.config.env))]);
}

/** Everything billfold reads from its environment, parsed once and frozen. */
export type Config = z.output<ReturnType<typeof createConfigSchema<ProviderModules>>>['config'];

/** Limits on failed logins and relayed calls, from the configuration. */
export type RateLimitConfig = Config['rateLimits'];

/** A loaded configuration and the warnings its defaults deserve (printed at start). */
export interface LoadedConfig {
  config: Config;
  warnings: string[];
}

const describeIssue = (issue: z.core.$ZodIssue) =>
  issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message;

/**
 * Parses and checks the environment once, against the built-in provider modules or `modules`.
 * Every problem is collected and reported together; in development, missing secrets are generated
 * per start (with a warning) so `npm start` just works.
 */
export function loadConfig(
  source: Record<string, string | undefined>,
  modules: readonly ProviderModule[] = PROVIDER_MODULES,
): LoadedConfig {
  const schema = createConfigSchema(modules);
  const parsed = schema.safeParse(source);
  if (parsed.success) return { config: deepFreeze(parsed.data.config), warnings: parsed.data.warnings };
  const problems = parsed.error.issues.map(describeIssue);
  // A variable that does not parse keeps the rules that read it from running: check them again with
  // the bad values left out, so one message lists everything.
  const fields = parsed.error.issues.filter((issue) => issue.path.length > 0);
  if (fields.length > 0) {
    const bad = new Set(fields.map((issue) => String(issue.path[0])));
    const cleaned = Object.fromEntries(Object.entries(source).filter(([name]) => !bad.has(name)));
    const rest = schema.safeParse(cleaned);
    if (!rest.success)
      problems.push(...rest.error.issues.filter((issue) => issue.path.length === 0).map(describeIssue));
  }
  throw new ConfigError(problems);
}

/**
 * Every rule that reads more than one variable, the providers' own included, and what they derive:
 * the one place a problem or a warning is found.
 */
function review(env: Env, modules: readonly ProviderModule[]) {
  const problems: string[] = [];
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

  // Each provider's slice is its module's: it reads its own variables and reports its own problems.
  const context: SliceContext = {
    allowInsecureUpstreams: env.ALLOW_INSECURE_UPSTREAMS,
    problem: (message) => problems.push(message),
  };
  const providers: Record<string, ProviderSettings> = {};
  for (const module of modules) {
    const slice = module.config.read(env, context);
    if (slice) providers[module.id] = slice;
  }

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

  return {
    problems,
    warnings,
    production,
    tls,
    publicOrigin: publicOrigin ?? '',
    corsOrigins,
    secrets,
    encryptionKeys,
    redis,
    storeKind,
    bodyLimitBytes: bodyLimitBytes ?? 0,
    providers,
    trustProxy,
    admin,
    operatorHost,
  };
}

/** The configuration of an environment `review` found no problem in. */
function build<const M extends readonly ProviderModule[]>(env: Env, modules: M) {
  const derived = review(env, modules);
  const { production, tls, publicOrigin } = derived;
  const cookieSecure =
    production ||
    tls !== undefined ||
    !/^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(publicOrigin);
  const config = {
    production,
    nodeEnv: env.NODE_ENV,
    port: env.PORT,
    host: env.HOST,
    /** Where ADMIN_PORT and METRICS_PORT listen. */
    operatorHost: derived.operatorHost,
    /** Failed operator tokens one client address may present per window before it is refused (429). */
    operatorAuth: {
      maxFailures: env.OPERATOR_AUTH_MAX_FAILURES,
      windowMs: env.OPERATOR_AUTH_WINDOW_S * 1000,
    },
    publicOrigin,
    corsOrigins: derived.corsOrigins as readonly string[],
    trustProxy: derived.trustProxy,
    tls,
    session: {
      secrets: derived.secrets as readonly string[],
      encryptionKeys: derived.encryptionKeys as readonly EncryptionKey[],
      idleTimeoutMs: env.SESSION_IDLE_TIMEOUT_S * 1000,
      absoluteTimeoutMs: env.SESSION_ABSOLUTE_TIMEOUT_S * 1000,
      cookieName: cookieSecure ? '__Host-billfold' : 'billfold',
      cookieSecure,
      /** Live sessions one personal identity may hold; a new one past it ends the oldest. */
      maxSessionsPerIdentity: env.MAX_SESSIONS_PER_IDENTITY,
    },
    store: {
      kind: derived.storeKind,
      redisUrl: env.REDIS_URL,
      redisClusterNodes: env.REDIS_CLUSTER_NODES as readonly string[],
      /** Sentinel, credentials, TLS and replica acknowledgement, for every Redis topology. */
      redis: derived.redis,
      keyPrefix: env.REDIS_KEY_PREFIX,
      timeoutMs: env.STORE_TIMEOUT_MS,
      memoryMaxSessions: env.MEMORY_STORE_MAX_SESSIONS,
      sessionCacheEntries: env.SESSION_CACHE === 'on' ? env.SESSION_CACHE_MAX_ENTRIES : undefined,
    },
    upstreamTimeoutMs: env.UPSTREAM_TIMEOUT_MS,
    bodyLimitBytes: derived.bodyLimitBytes,
    /** Each configured provider's slice, as its module read it; a provider that is off is absent. */
    providers: derived.providers as ProviderConfigs<M>,
    rateLimits: {
      /** Failed logins one client address may make per window, across providers. */
      loginFailuresPerIp: env.LOGIN_MAX_FAILURES_PER_IP,
      /** Failed logins one username may have per provider per window from one client address. */
      loginFailuresPerUser: env.LOGIN_MAX_FAILURES_PER_USER,
      /** Failed logins one username may have per provider per window from every address together. */
      loginFailuresPerUserAllAddresses: env.LOGIN_MAX_FAILURES_PER_USER_ALL_ADDRESSES,
      /** Past that ceiling the username is slowed, not walled: one attempt per this interval. */
      loginSlowedIntervalMs: env.LOGIN_SLOWED_INTERVAL_S * 1000,
      /** Successful logins one client address may make per window, across providers. */
      loginSuccessesPerIp: env.LOGIN_MAX_SUCCESSES_PER_IP,
      loginWindowMs: env.LOGIN_FAILURE_WINDOW_S * 1000,
      /** Relayed calls one session may make per window; 0 turns the limit off. */
      relayCallsPerSession: env.RELAY_RATE_LIMIT,
      relayWindowMs: env.RELAY_RATE_WINDOW_S * 1000,
      /** Relayed calls one session, and one upstream identity, may have open at once per provider; 0 is off. */
      relayConcurrentPerSession: env.RELAY_MAX_CONCURRENT_PER_SESSION,
    },
    /** Prometheus metrics: on their own port, and/or behind a bearer token (on the main port without one). */
    metrics: { port: env.METRICS_PORT, token: env.METRICS_TOKEN },
    /** The operator API (list and revoke sessions by provider user): on only when its port and token are set. */
    admin: derived.admin,
    logLevel: env.LOG_LEVEL,
    /** Bytes of log lines held for a slow stdout; past it, lines are dropped and counted. */
    logBufferBytes: env.LOG_BUFFER_BYTES,
  };
  return { config, warnings: derived.warnings };
}

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

const codePoints = (text: string) => Array.from(text, (c) => c.codePointAt(0) ?? 0);

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

function parseTrustProxy(value: string | undefined, problems: string[]): TrustProxy {
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
  if (urls[0]?.protocol === 'redis:' && tlsOn)
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
 * Production trusts named proxies only: `true` (or a /0 subnet) would let any peer claim HTTPS and any
 * client address. Hop counts and whole private ranges trust whatever connects from there; they are
 * accepted with a warning, since an isolated network can make them right.
 */
function checkProductionTrust(trust: TrustProxy, problems: string[], warnings: string[]): void {
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

function parseOperatorPorts(
  env: Env,
  problems: string[],
): { readonly port: number; readonly token: string } | undefined {
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

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof URL) && !Buffer.isBuffer(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
