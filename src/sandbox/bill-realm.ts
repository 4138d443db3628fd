import type { Clock } from '../clock.js';
import { SANDBOX_DEMO_CREDENTIALS } from './sandbox-demo.js';
import {
  appendBounded,
  createIdleSessionTable,
  randomToken,
  type EmulatorControl,
  type RecordedRequest,
} from './sandbox-http.js';

/** A BILL credential sent in a query string: names only, never the values. */
export interface SecretInQueryViolation {
  readonly method: string;
  readonly path: string;
  readonly names: readonly string[];
  readonly receivedAt: number;
}

/** The control surface of a BILL API emulator: its own request log, and BILL's shared state. */
export interface BillControl extends EmulatorControl {
  /** The live sessionIds (of both API versions: they share sessions). */
  sessions(): string[];
  /** Kills one session at once, as the idle timeout would. */
  expireSession(sessionId: string): void;
  expireAllSessions(): void;
  /** Whether BILL trusts the session for MFA-protected operations (v3). */
  isTrusted(sessionId: string): boolean;
  /** Takes a session's MFA trust away, as BILL may on its own. */
  distrustSession(sessionId: string): void;
  /** Makes every rememberMeId issued so far worthless, as their 30 days running out would. */
  forgetRememberedDevices(): void;
  /** Past `perHour` logins per devKey in one clock hour, `BDC_1144` (BILL's figure is 200); null turns it off. */
  setLoginLimit(perHour: number | null): void;
  /** Past `max` unanswered requests per devKey and organization, `BDC_1322` (BILL's figure is 3); null turns it off. */
  setConcurrencyLimit(max: number | null): void;
  /** While on, a secret in the query string is refused with HTTP 400 (it is always recorded). */
  setStrictMode(on: boolean): void;
  /** Every request that carried userName, password, devKey or sessionId in its URL (bounded like the request log). */
  readonly violations: readonly SecretInQueryViolation[];
}

/** BILL ends a session after 35 minutes without a call. */
export const BILL_SESSION_IDLE_TIMEOUT_MS = 35 * 60_000;
/** A sync-token session lasts 48 hours without a call *(the docs disagree; ours)*. */
export const BILL_SYNC_TOKEN_IDLE_TIMEOUT_MS = 48 * 3_600_000;
/** A rememberMeId keeps a device trusted for 30 days. */
export const BILL_REMEMBER_ME_MS = 30 * 86_400_000;
/** How long an MFA challenge's code stays valid, and how many wrong codes kill it *(ours)*. */
export const BILL_MFA_CHALLENGE_TTL_MS = 10 * 60_000;
export const BILL_MFA_MAX_ATTEMPTS = 5;

/** BILL's machine codes the emulators answer with; those marked are the sandbox's own *(ours)*. */
export const BILL_CODES = {
  missingField: 'BDC_1108',
  badDevKey: 'BDC_1102',
  badOrg: 'BDC_1123',
  badCredentials: 'BDC_1101',
  invalidSession: 'BDC_1109',
  loginLimit: 'BDC_1144',
  concurrency: 'BDC_1322',
  unknownApi: 'BDC_1121',
  badJson: 'BDC_1122',
  untrustedSession: 'BDC_1361',
  /** *(ours)*: the challenge is unknown, spent, expired, or another session's. */
  mfaChallengeInvalid: 'BDC_1362',
  /** *(ours)*: the code is wrong. */
  mfaTokenWrong: 'BDC_1363',
  /** *(ours)*: a sync-token session asked for MFA or a payment. */
  syncTokenNotAllowed: 'BDC_1364',
  /** *(ours)*: a secret in the query string, in strict mode. */
  secretInQuery: 'SANDBOX_SECRET_IN_QUERY',
} as const;

/** A refusal as both APIs carry it: v2 in its HTTP 200 envelope, v3 with `status`. */
export interface BillRefusal {
  readonly refusal: true;
  readonly code: string;
  readonly message: string;
  /** The HTTP status v3 answers it with. */
  readonly status: number;
}

/** One live session. */
export interface BillSession {
  userId: string;
  orgId: string;
  kind: 'user' | 'sync-token';
  trusted: boolean;
}

/** A vendor as v2 shows it (v3 renders the same record its own way). */
export interface Vendor {
  entity: 'Vendor';
  id: string;
  isActive: '1' | '2';
  name: string;
  [field: string]: unknown;
}

/** A signed-in session: its id and what it is. */
export interface BillSignedIn {
  readonly sessionId: string;
  readonly session: BillSession;
}

/** BILL's users, sync tokens, sessions, vendors, MFA and limits, shared by its v2 and v3 APIs. */
export interface BillRealm {
  readonly clock: Clock;
  /** Signs in with a user's password or a sync token (name as userName, value as password). */
  signIn(fields: {
    userName: string;
    password: string;
    orgId: string;
    devKey: string;
    rememberMeId?: string | undefined;
    device?: string | undefined;
  }): BillSignedIn | BillRefusal;
  /** The session a call names, its idle timer restarted; or why not. */
  authenticate(devKey: string, sessionId: string): BillSignedIn | BillRefusal;
  /** Without touching the idle timer (for concurrency keys). */
  peek(sessionId: string): BillSession | undefined;
  endSession(sessionId: string): void;
  vendorsOf(orgId: string): Map<string, Vendor>;
  newVendorId(): string;
  newPaymentId(): string;
  /** Sends the code to the user's phone; answers the challenge's id. */
  challenge(signedIn: BillSignedIn): { challengeId: string } | BillRefusal;
  /** Checks the code; trusts the session, and issues a rememberMeId when asked. */
  validate(
    signedIn: BillSignedIn,
    input: { challengeId: string; token: string; device: string; rememberMe: boolean },
  ): { rememberMeId?: string } | BillRefusal;
  /** Trusts the session on a rememberMeId issued to this user and device. */
  stepUp(signedIn: BillSignedIn, rememberMeId: string, device: string): BillRefusal | undefined;
  /** Refuses a sync-token session, and (for MFA-protected operations) an untrusted one. */
  requireTrusted(session: BillSession): BillRefusal | undefined;
  /** Records credentials in the query string; answers the refusal in strict mode. */
  screenQuery(request: RecordedRequest): BillRefusal | undefined;
  /** Counts one API's unanswered requests, keyed by devKey and organization, toward the shared limit. */
  countInFlight(
    requests: Set<RecordedRequest>,
    keyOf: (request: RecordedRequest) => string | undefined,
  ): void;
  /** Whether `request` is past the concurrency limit (answer BDC_1322). */
  overConcurrency(request: RecordedRequest, keyOf: (request: RecordedRequest) => string | undefined): boolean;
  /** The shared part of both emulators' controls. */
  readonly control: Omit<BillControl, keyof EmulatorControl>;
  resetSwitches(): void;
}

const HOUR_MS = 3_600_000;
const SECRET_FIELDS = new Set(['username', 'password', 'devkey', 'sessionid']);
const DEMO_USER_ID = '00601DEMOUSER';

const refuse = (code: string, message: string, status: number): BillRefusal => ({
  refusal: true,
  code,
  message,
  status,
});

/** Whether a realm answer is a refusal. */
export function isRefusal(value: object): value is BillRefusal {
  return 'refusal' in value;
}

export function createBillRealm(options: {
  clock: Clock;
  devKey?: string | undefined;
  idleTimeoutMs?: number | undefined;
  requestLogLimit?: number | undefined;
}): BillRealm {
  const { clock } = options;
  const devKey = options.devKey ?? SANDBOX_DEMO_CREDENTIALS.billDevKey;
  const demo = SANDBOX_DEMO_CREDENTIALS.bill;
  const syncToken = SANDBOX_DEMO_CREDENTIALS.billSyncToken;
  const sessions = createIdleSessionTable<BillSession>(
    clock,
    options.idleTimeoutMs ?? BILL_SESSION_IDLE_TIMEOUT_MS,
  );
  const vendors = new Map<string, Map<string, Vendor>>([
    [
      demo.orgId,
      new Map([
        [
          '00901DEMOVEND01',
          { entity: 'Vendor', id: '00901DEMOVEND01', isActive: '1', name: 'Acme Supplies' },
        ],
        ['00901DEMOVEND02', { entity: 'Vendor', id: '00901DEMOVEND02', isActive: '1', name: 'Initech' }],
      ]),
    ],
  ]);
  let nextVendor = 3;
  let nextPayment = 1;
  const challenges = new Map<
    string,
    { sessionId: string; userId: string; expiresAt: number; attempts: number }
  >();
  const remembered = new Map<string, { userId: string; device: string; expiresAt: number }>();
  const violations: SecretInQueryViolation[] = [];
  const logLimit = options.requestLogLimit ?? 1000;
  const inFlightSources: [Set<RecordedRequest>, (request: RecordedRequest) => string | undefined][] = [];
  const loginWindows = new Map<string, { hour: number; count: number }>();
  let loginLimit: number | null = null;
  let concurrencyLimit: number | null = null;
  let strict = false;

  const badDevKey = refuse(BILL_CODES.badDevKey, 'Developer key is invalid.', 401);
  const invalidSession = refuse(BILL_CODES.invalidSession, 'Session is invalid. Please log in.', 401);
  const syncTokenRefused = refuse(
    BILL_CODES.syncTokenNotAllowed,
    'A sync-token session cannot use MFA or make payments.',
    403,
  );

  const isTrustedDevice = (rememberMeId: string | undefined, device: string | undefined, userId: string) => {
    const entry = rememberMeId === undefined ? undefined : remembered.get(rememberMeId);
    return (
      entry !== undefined &&
      entry.userId === userId &&
      entry.device === device &&
      clock.now() < entry.expiresAt
    );
  };

  return {
    clock,
    signIn(fields) {
      if (fields.devKey !== devKey) return badDevKey;
      // BILL counts logins per developer key per clock hour, and the window reopens at the next hour.
      const hour = Math.floor(clock.now() / HOUR_MS);
      const window = loginWindows.get(devKey);
      const count = window?.hour === hour ? window.count : 0;
      loginWindows.set(devKey, { hour, count: count + 1 });
      if (loginLimit !== null && count >= loginLimit) {
        return refuse(
          BILL_CODES.loginLimit,
          'Max number of login calls per developer key per hour exceeded.',
          429,
        );
      }
      if (fields.orgId !== demo.orgId) return refuse(BILL_CODES.badOrg, 'Invalid organization id.', 401);
      let session: BillSession;
      let idleMs: number | undefined;
      if (fields.userName === demo.userName && fields.password === demo.password) {
        const trusted = isTrustedDevice(fields.rememberMeId, fields.device, DEMO_USER_ID);
        session = { userId: DEMO_USER_ID, orgId: demo.orgId, kind: 'user', trusted };
      } else if (fields.userName === syncToken.tokenName && fields.password === syncToken.tokenValue) {
        session = { userId: DEMO_USER_ID, orgId: demo.orgId, kind: 'sync-token', trusted: false };
        idleMs = BILL_SYNC_TOKEN_IDLE_TIMEOUT_MS;
      } else {
        return refuse(BILL_CODES.badCredentials, 'User name and/or password do not match our records.', 401);
      }
      return { sessionId: sessions.create(session, idleMs), session };
    },

    authenticate(key, sessionId) {
      if (key !== devKey) return badDevKey;
      const session = sessions.touch(sessionId);
      return session ? { sessionId, session } : invalidSession;
    },

    peek: (sessionId) => sessions.peek(sessionId),

    endSession(sessionId) {
      sessions.delete(sessionId);
      for (const [id, challenge] of challenges) if (challenge.sessionId === sessionId) challenges.delete(id);
    },

    vendorsOf(orgId) {
      let table = vendors.get(orgId);
      if (!table) vendors.set(orgId, (table = new Map<string, Vendor>()));
      return table;
    },
    newVendorId: () => `00901SBXVEND${String(nextVendor++).padStart(2, '0')}`,
    newPaymentId: () => `00p01SBXPAY${String(nextPayment++).padStart(3, '0')}`,

    challenge({ sessionId, session }) {
      if (session.kind === 'sync-token') return syncTokenRefused;
      const challengeId = randomToken(12);
      challenges.set(challengeId, {
        sessionId,
        userId: session.userId,
        expiresAt: clock.now() + BILL_MFA_CHALLENGE_TTL_MS,
        attempts: 0,
      });
      return { challengeId };
    },

    validate({ sessionId, session }, input) {
      if (session.kind === 'sync-token') return syncTokenRefused;
      const challenge = challenges.get(input.challengeId);
      if (!challenge || challenge.sessionId !== sessionId || clock.now() >= challenge.expiresAt) {
        return refuse(BILL_CODES.mfaChallengeInvalid, 'The MFA challenge is invalid or has expired.', 400);
      }
      if (input.token !== SANDBOX_DEMO_CREDENTIALS.billMfaCode) {
        // A code can be guessed only a few times before the challenge is spent.
        if (++challenge.attempts >= BILL_MFA_MAX_ATTEMPTS) challenges.delete(input.challengeId);
        return refuse(BILL_CODES.mfaTokenWrong, 'The MFA token is incorrect.', 400);
      }
      challenges.delete(input.challengeId);
      session.trusted = true;
      if (!input.rememberMe) return {};
      const rememberMeId = randomToken(24);
      remembered.set(rememberMeId, {
        userId: session.userId,
        device: input.device,
        expiresAt: clock.now() + BILL_REMEMBER_ME_MS,
      });
      return { rememberMeId };
    },

    stepUp({ session }, rememberMeId, device) {
      if (session.kind === 'sync-token') return syncTokenRefused;
      if (!isTrustedDevice(rememberMeId, device, session.userId)) {
        return refuse(BILL_CODES.mfaChallengeInvalid, 'The rememberMeId is invalid for this device.', 400);
      }
      session.trusted = true;
      return undefined;
    },

    requireTrusted(session) {
      if (session.kind === 'sync-token') return syncTokenRefused;
      return session.trusted ? undefined : refuse(BILL_CODES.untrustedSession, 'Untrusted session', 403);
    },

    screenQuery(request) {
      const names = [...new URLSearchParams(request.query).keys()].filter((name) =>
        SECRET_FIELDS.has(name.toLowerCase()),
      );
      if (names.length === 0) return undefined;
      appendBounded(
        violations,
        { method: request.method, path: request.path, names, receivedAt: request.receivedAt },
        logLimit,
      );
      return strict
        ? refuse(BILL_CODES.secretInQuery, `Credentials in the URL: ${names.join(', ')}.`, 400)
        : undefined;
    },

    countInFlight(requests, keyOf) {
      inFlightSources.push([requests, keyOf]);
    },

    overConcurrency(request, keyOf) {
      if (concurrencyLimit === null) return false;
      const key = keyOf(request);
      if (key === undefined) return false;
      let others = 0;
      for (const [requests, keyOfOther] of inFlightSources)
        for (const other of requests) if (other !== request && keyOfOther(other) === key) others += 1;
      return others >= concurrencyLimit;
    },

    control: {
      violations,
      sessions: () => sessions.ids(),
      expireSession: (sessionId: string) => sessions.delete(sessionId),
      expireAllSessions: () => sessions.clear(),
      isTrusted: (sessionId: string) => sessions.peek(sessionId)?.trusted === true,
      forgetRememberedDevices: () => remembered.clear(),
      distrustSession(sessionId: string) {
        const session = sessions.peek(sessionId);
        if (session) session.trusted = false;
      },
      setLoginLimit(perHour: number | null) {
        loginLimit = perHour;
      },
      setConcurrencyLimit(max: number | null) {
        concurrencyLimit = max;
      },
      setStrictMode(on: boolean) {
        strict = on;
      },
    },

    resetSwitches() {
      violations.length = 0;
      loginWindows.clear();
      loginLimit = null;
      concurrencyLimit = null;
      strict = false;
    },
  };
}
