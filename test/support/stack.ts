import { afterAll, beforeAll } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import type { EmulatorControl } from '../../src/sandbox/sandbox-http.js';
import { startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/sandbox.js';
import type { ProviderId } from '../../src/upstream/provider-id.js';
import {
  createCookieClient,
  startBillfold,
  type Answer,
  type CookieClient,
  type RunningBillfold,
} from './billfold-harness.js';
import { spawnBillfold, type BillfoldProcess } from './billfold-process.js';
import { REDIS_URL, uniquePrefix } from './redis.js';

type Env = Record<string, string | undefined>;

/**
 * Where the stack's instances keep sessions: one Redis under a key prefix of their own (the default,
 * REDIS_URL unless `url`), a Redis Cluster's nodes, or each instance's embedded store.
 */
export type StackStore = 'redis' | 'embedded' | { url: string } | { clusterNodes: readonly string[] };

/** How to start a stack; everything is optional. */
export interface StackOptions {
  /** How many billfold instances share the store from the start (default 1; 0 for `start` alone). */
  instances?: number;
  store?: StackStore;
  /**
   * Configuration on top of the sandbox's, for every instance (a function when it needs the
   * sandbox; it is called once, without one, when there is no sandbox).
   */
  env?: Env | ((sandbox: Sandbox) => Env | Promise<Env>);
  /** The Redis key prefix, for a suite that watches it before the stack starts (default a fresh one). */
  prefix?: string;
  /** The clock billfold reads (default the system clock). */
  clock?: Clock;
  /** The sandbox's options, or `false` for a suite that brings its own upstream in `env`. */
  sandbox?: SandboxOptions | false;
}

/** How one more in-process instance starts. */
export type InstanceOptions = Omit<NonNullable<Parameters<typeof startBillfold>[1]>, 'clock'> & {
  clock?: Clock;
};

/** The sandbox upstreams and billfold instances over one store, as an integration suite uses them. */
export interface Stack {
  /** The sandbox upstreams (a stack started with `sandbox: false` has none, and throws). */
  sandbox: Sandbox;
  /** The first instance. */
  billfold: RunningBillfold;
  /** Every in-process instance, in the order they started (those from `start` included). */
  instances: RunningBillfold[];
  /** The Redis key prefix every instance writes under (undefined on the embedded store). */
  prefix: string | undefined;
  /** A client with an empty cookie jar, talking to instance `instance` (default the first). */
  client(instance?: number): CookieClient;
  /** A new client signed in to `providers` with the sandbox's demo users (default BillingPlatform). */
  signIn(providers?: readonly ProviderId[], instance?: number): Promise<CookieClient>;
  /**
   * One more in-process instance on the stack's sandbox and store, `env` on top of the stack's
   * (a suite that wants it alone passes its own `REDIS_KEY_PREFIX`); stopped with the stack.
   */
  start(env?: Env, options?: InstanceOptions): Promise<RunningBillfold>;
  /** The same as a separate process, started as `npm start` starts it; stopped with the stack. */
  spawn(env?: Env): Promise<BillfoldProcess>;
  /** Every log line the in-process instances wrote, stopped ones included. */
  logs(): string[];
  /** Stops the instances, then the sandbox. */
  close(): Promise<void>;
}

/** The demo login body of each provider (Billbora by email and password, so in JWT mode). */
export const DEMO_LOGINS: Record<ProviderId, Record<string, string>> = {
  billingplatform: demo.billingplatform,
  bill: demo.bill,
  billogram: demo.billogram,
  billbora: demo.billbora,
};

/** Every emulator's control surface (BILL's two API versions apart), for reading all their request logs. */
export function emulatorsOf(sandbox: Sandbox): EmulatorControl[] {
  return [
    sandbox.billingplatform,
    sandbox.bill,
    sandbox.billV3,
    sandbox.billogram,
    sandbox.billbora,
    sandbox.supabase,
  ];
}

function storeEnv(store: StackStore, prefix: string | undefined): Record<string, string | undefined> {
  if (store === 'embedded') return {};
  const where =
    store === 'redis'
      ? { REDIS_URL }
      : 'url' in store
        ? { REDIS_URL: store.url }
        : { REDIS_CLUSTER_NODES: store.clusterNodes.join(',') };
  return { ...where, REDIS_KEY_PREFIX: prefix };
}

/** Starts the sandbox and `instances` billfold instances on it, sharing one store under a fresh prefix. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const store = options.store ?? 'redis';
  const prefix = store === 'embedded' ? undefined : (options.prefix ?? uniquePrefix());
  const sandbox = options.sandbox === false ? undefined : await startSandbox(options.sandbox);
  const instances: RunningBillfold[] = [];
  const processes: BillfoldProcess[] = [];
  let baseEnv: Env = {};
  const close = async () => {
    await Promise.all([
      ...instances.map((instance) => instance.close()),
      ...processes.map((child) => child.stop()),
    ]);
    await sandbox?.close();
  };
  const envOf = (env: Env) => ({ ...baseEnv, ...env });
  const start = async (env: Env = {}, { clock = options.clock, ...rest }: InstanceOptions = {}) => {
    const instance = await startBillfold(envOf(env), { ...rest, ...(clock && { clock }) });
    instances.push(instance);
    return instance;
  };
  try {
    const env = typeof options.env === 'function' ? await options.env(sandbox as Sandbox) : options.env;
    baseEnv = { ...sandbox?.env, ...storeEnv(store, prefix), ...env };
    for (let i = 0; i < (options.instances ?? 1); i++) await start();
  } catch (error) {
    await close();
    throw error;
  }
  const instanceAt = (index: number) => {
    const instance = instances[index];
    if (!instance) throw new Error(`the stack has no instance ${index}`);
    return instance;
  };
  const stack: Stack = {
    get sandbox() {
      if (!sandbox) throw new Error('this stack was started without a sandbox');
      return sandbox;
    },
    get billfold() {
      return instanceAt(0);
    },
    instances,
    prefix,
    client(index = 0) {
      const instance = instanceAt(index);
      return createCookieClient(instance.url, instance.config.session.cookieName);
    },
    async signIn(providers = ['billingplatform'], index = 0) {
      const client = stack.client(index);
      for (const provider of providers) {
        const answer: Answer = await client.post(`/auth/${provider}/login`, DEMO_LOGINS[provider]);
        if (answer.status !== 200) throw new Error(`sign-in to ${provider}: ${answer.status} ${answer.text}`);
      }
      return client;
    },
    start,
    async spawn(env = {}) {
      const child = await spawnBillfold(
        Object.fromEntries(
          Object.entries(envOf(env)).filter((entry): entry is [string, string] => entry[1] !== undefined),
        ),
      );
      processes.push(child);
      return child;
    },
    logs: () => instances.flatMap((instance) => instance.logs),
    close,
  };
  return stack;
}

/**
 * A stack started before the suite's tests and stopped after them: the handle is filled in once
 * `beforeAll` has run, so tests (and later hooks) read it as a started stack.
 */
export function useStack(options: StackOptions | (() => StackOptions) = {}): Stack {
  const handle = {} as Stack;
  beforeAll(async () => {
    const stack = await startStack(typeof options === 'function' ? options() : options);
    // Descriptors, not values: `sandbox` and `billfold` stay getters.
    Object.defineProperties(handle, Object.getOwnPropertyDescriptors(stack));
  });
  afterAll(async () => {
    // A stack that never started (its start failed) has nothing to stop.
    if ('close' in handle) await handle.close();
  });
  return handle;
}
