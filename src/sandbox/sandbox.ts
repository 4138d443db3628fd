import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from '../clock.js';
import { createBillEmulator } from './bill-emulator.js';
import { createBillRealm, type BillControl } from './bill-realm.js';
import { createBillV3Emulator } from './bill-v3-emulator.js';
import { createBillboraEmulator, type BillboraControl } from './billbora-emulator.js';
import { createBillingPlatformEmulator, type BillingPlatformControl } from './billingplatform-emulator.js';
import { createBillogramEmulator, type BillogramControl } from './billogram-emulator.js';
import { billModule } from '../upstream/bill/bill-module.js';
import { billboraModule } from '../upstream/billbora/billbora-module.js';
import { billingPlatformModule } from '../upstream/billingplatform/billingplatform-module.js';
import { billogramModule } from '../upstream/billogram/billogram-module.js';
import { PROVIDER_MODULES } from '../upstream/provider-modules.js';
import { SANDBOX_DEMO_CREDENTIALS } from './sandbox-demo.js';
import {
  jsonReply,
  sendReply,
  type Emulator,
  type EmulatorControl,
  type EmulatorLimits,
} from './sandbox-http.js';
import { createSupabaseEmulator, type SupabaseControl } from './supabase-emulator.js';

/** Where each emulator is mounted on the sandbox server: where its provider module says. */
export const SANDBOX_MOUNTS = {
  billingplatform: billingPlatformModule.sandbox.mount,
  bill: billModule.sandbox.mount,
  billV3: '/bill/connect/v3',
  billogram: billogramModule.sandbox.mount,
  billbora: billboraModule.sandbox.mount,
  supabase: '/supabase',
} as const;

/**
 * The running sandbox: one loopback HTTP server with the four emulated upstreams and Supabase Auth
 * mounted under `SANDBOX_MOUNTS`, the environment that points billfold at them, and each emulator's
 * control surface (for tests; billfold never mounts it).
 *
 * Besides each upstream's documented resources, every emulator serves two endpoints for billfold's
 * relay tests, both behind that emulator's usual auth:
 * - an HTML page (`text/html`): BillingPlatform `GET {base}/sandbox/html`, BILL `POST {base}/sandbox/html`,
 *   Billogram `GET {base}/sandbox/html`, Billbora `GET {base}/sandbox/html/`, Supabase `GET /auth/v1/sandbox/html`;
 * - a success with `Set-Cookie` and `WWW-Authenticate`: the same paths with `cookie` for `html`.
 */
export interface Sandbox {
  /** The server's origin, e.g. `http://127.0.0.1:4000`. */
  readonly url: string;
  /** The environment that points billfold at the sandbox (BILL at the API version asked for). */
  readonly env: Readonly<Record<string, string>>;
  /** What to add to `env` to point billfold at BILL API v3 instead. */
  readonly billV3Env: Readonly<Record<string, string>>;
  readonly billingplatform: BillingPlatformControl;
  /** BILL API v2; it shares users, sessions and switches with `billV3`, each keeps its own request log. */
  readonly bill: BillControl;
  readonly billV3: BillControl;
  readonly billogram: BillogramControl;
  readonly billbora: BillboraControl;
  readonly supabase: SupabaseControl;
  /** Clears every request log and switch (sessions and data stay). */
  reset(): void;
  /** Stops listening and ends every connection, idle keep-alive and hung ones included. */
  close(): Promise<void>;
}

/** How to start the sandbox; everything is optional. */
export interface SandboxOptions {
  /** The clock every expiry reads (default the system clock). */
  clock?: Clock;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: an ephemeral port. */
  port?: number;
  /** How many requests each emulator's log keeps (default 1000). */
  requestLogLimit?: number;
  /** Which BILL API `env` points billfold at (default v2; both are always served). */
  billApiVersion?: 'v2' | 'v3';
  /** How long (real time) a Supabase refresh waits for a concurrent one of its session before a 409 (default 5 s). */
  supabaseConcurrentRefreshWaitMs?: number;
}

/** Starts the sandbox upstreams on one loopback server. */
export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const clock = options.clock ?? systemClock;
  const host = options.host ?? '127.0.0.1';
  const limits: EmulatorLimits =
    options.requestLogLimit === undefined ? {} : { requestLogLimit: options.requestLogLimit };

  const server = http.createServer();
  // Longer than undici's default keep-alive, so pooled clients rarely meet a socket the server just closed.
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  // Built once the port is known, because BILL's login answers with its own apiEndPoint URL.
  const supabaseJwtSecret = randomBytes(32);
  const billingplatform = createBillingPlatformEmulator({ clock, limits });
  const billRealm = createBillRealm({ clock, requestLogLimit: options.requestLogLimit });
  const bill = createBillEmulator({ realm: billRealm, limits, apiEndPoint: `${url}/bill/api` });
  const billV3 = createBillV3Emulator({ realm: billRealm, limits });
  const billogram = createBillogramEmulator({ clock, limits });
  const billbora = createBillboraEmulator({ clock, limits, supabaseJwtSecret });
  const supabase = createSupabaseEmulator({
    clock,
    limits,
    jwtSecret: supabaseJwtSecret,
    ...(options.supabaseConcurrentRefreshWaitMs !== undefined && {
      concurrentRefreshWaitMs: options.supabaseConcurrentRefreshWaitMs,
    }),
  });
  const mounts: [string, Emulator<EmulatorControl>][] = [
    [SANDBOX_MOUNTS.billingplatform, billingplatform],
    [SANDBOX_MOUNTS.bill, bill],
    [SANDBOX_MOUNTS.billV3, billV3],
    [SANDBOX_MOUNTS.billogram, billogram],
    [SANDBOX_MOUNTS.billbora, billbora],
    [SANDBOX_MOUNTS.supabase, supabase],
  ];
  const notMounted = jsonReply(404, {
    error: 'not_found',
    message: 'No sandbox upstream is mounted at this path.',
  });

  server.on('request', (req, res) => {
    const target = req.url ?? '/';
    for (const [prefix, emulator] of mounts) {
      const next = target.charAt(prefix.length);
      if (target.startsWith(prefix) && (next === '' || next === '/' || next === '?')) {
        const rest = target.slice(prefix.length);
        emulator.handle(req, res, rest.startsWith('/') ? rest : `/${rest}`);
        return;
      }
    }
    sendReply(res, notMounted);
  });

  let closing: Promise<void> | undefined;
  const billV3Env = { BILL_API_VERSION: 'v3', BILL_BASE_URL: `${url}${SANDBOX_MOUNTS.billV3}` };
  return {
    url,
    billV3Env,
    env: {
      // Each provider module names its emulator's mount and the variables that point billfold there.
      ...Object.fromEntries(
        PROVIDER_MODULES.flatMap((module) =>
          Object.entries(module.sandbox.env(`${url}${module.sandbox.mount}`)),
        ),
      ),
      ...(options.billApiVersion === 'v3' && billV3Env),
      BILL_DEV_KEY: SANDBOX_DEMO_CREDENTIALS.billDevKey,
      SUPABASE_URL: `${url}${SANDBOX_MOUNTS.supabase}`,
      SUPABASE_ANON_KEY: SANDBOX_DEMO_CREDENTIALS.supabaseAnonKey,
      ALLOW_INSECURE_UPSTREAMS: 'true',
    },
    billingplatform: billingplatform.control,
    bill: bill.control,
    billV3: billV3.control,
    billogram: billogram.control,
    billbora: billbora.control,
    supabase: supabase.control,
    reset() {
      for (const [, emulator] of mounts) emulator.control.reset();
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive and hung requests would otherwise hold close() open.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Quotes a value for a POSIX shell only when it needs it. */
function shellValue(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/** The text `npm run sandbox` and a development `npm start` print: the environment lines and the demo credentials. */
export function formatSandboxBanner(sandbox: Pick<Sandbox, 'url' | 'env' | 'billV3Env'>): string {
  const demo = SANDBOX_DEMO_CREDENTIALS;
  const organizations = demo.billboraOrganizations.map((org) => `${org.id} (${org.name})`).join(', ');
  return [
    `Sandbox upstreams listening on ${sandbox.url}`,
    '',
    'Point billfold at them:',
    ...Object.entries(sandbox.env).map(([name, value]) => `export ${name}=${shellValue(value)}`),
    '',
    'Demo credentials:',
    `  BillingPlatform  username ${demo.billingplatform.username}, password ${demo.billingplatform.password}`,
    `  BILL             userName ${demo.bill.userName}, password ${demo.bill.password}, orgId ${demo.bill.orgId} (devKey ${demo.billDevKey} is BILL_DEV_KEY)`,
    `                   sync token: tokenName ${demo.billSyncToken.tokenName}, tokenValue ${demo.billSyncToken.tokenValue}`,
    `                   v3 MFA code ${demo.billMfaCode}; BILL API v3 is at ${sandbox.billV3Env.BILL_BASE_URL ?? ''} (BILL_API_VERSION=v3)`,
    `  Billogram        apiUserId ${demo.billogram.apiUserId}, apiPassword ${demo.billogram.apiPassword}`,
    `  Billbora         email ${demo.billbora.email}, password ${demo.billbora.password}; organizations ${organizations}; API key ${demo.billboraApiKey}`,
    `                   (Supabase anon key ${demo.supabaseAnonKey} is SUPABASE_ANON_KEY)`,
  ].join('\n');
}
