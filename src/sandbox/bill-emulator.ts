import type { Clock } from '../clock.js';
import { SANDBOX_DEMO_CREDENTIALS } from './sandbox-demo.js';
import {
  appendBounded,
  createEmulator,
  createIdleSessionTable,
  htmlReply,
  jsonReply,
  parseJson,
  withUpstreamAuthHeaders,
  type Emulator,
  type EmulatorControl,
  type EmulatorLimits,
  type RecordedRequest,
  type Reply,
} from './sandbox-http.js';

/** A BILL credential sent in a query string: names only, never the values. */
export interface SecretInQueryViolation {
  readonly method: string;
  readonly path: string;
  readonly names: readonly string[];
  readonly receivedAt: number;
}

/** The BILL emulator's control surface. */
export interface BillControl extends EmulatorControl {
  /** The live sessionIds. */
  sessions(): string[];
  /** Kills one session at once, as the idle timeout would. */
  expireSession(sessionId: string): void;
  expireAllSessions(): void;
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

/** The BILL error code for a secret refused in a query string in strict mode *(ours)*. */
export const BILL_SECRET_IN_QUERY_CODE = 'SANDBOX_SECRET_IN_QUERY';

const HOUR_MS = 3_600_000;
const FORM_TYPE = 'application/x-www-form-urlencoded';
const SECRET_FIELDS = new Set(['username', 'password', 'devkey', 'sessionid']);
const DEMO_USER_ID = '00601DEMOUSER';

interface BillSession {
  userId: string;
  orgId: string;
}

interface Vendor {
  entity: 'Vendor';
  id: string;
  isActive: '1' | '2';
  name: string;
  [field: string]: unknown;
}

type Operation = (fields: URLSearchParams, session: BillSession) => Reply;

/** A BILL success envelope, always HTTP 200. */
function success(data: unknown): Reply {
  return jsonReply(200, { response_status: 0, response_message: 'Success', response_data: data });
}

/** A BILL error envelope: HTTP 200 unless `status` says otherwise. */
function failure(code: string, message: string, status = 200): Reply {
  return jsonReply(status, {
    response_status: 1,
    response_message: 'Error',
    response_data: { error_code: code, error_message: message },
  });
}

const missing = (name: string) => failure('BDC_1108', `Missing parameter value for parameter: ${name}.`);
const BAD_DEV_KEY = failure('BDC_1102', 'Developer key is invalid.');
const INVALID_SESSION = failure('BDC_1109', 'Session is invalid. Please log in.');
const UNKNOWN_API = failure('BDC_1121', 'API not supported.', 404);

/** The operation's parameters from the `data` field (a JSON object), or the envelope that refuses them. */
function dataOf(
  fields: URLSearchParams,
  required: boolean,
): { data: Record<string, unknown> } | { refusal: Reply } {
  const raw = fields.get('data');
  if (raw === null || raw === '') return required ? { refusal: missing('data') } : { data: {} };
  const value = parseJson(raw);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { refusal: failure('BDC_1122', 'Error Parsing Json Object. Please check your request.') };
  }
  return { data: value as Record<string, unknown> };
}

/**
 * BILL API v2: every call a form POST answered inside an HTTP 200 envelope; sessions from `Login.json`
 * die after 35 idle minutes; secrets in URLs are recorded (and refused in strict mode).
 */
export function createBillEmulator(options: {
  clock: Clock;
  /** The `apiEndPoint` a login answers with (the sandbox's `/bill/api`). */
  apiEndPoint: string;
  devKey?: string;
  idleTimeoutMs?: number;
  limits?: EmulatorLimits;
}): Emulator<BillControl> {
  const { clock } = options;
  const devKey = options.devKey ?? SANDBOX_DEMO_CREDENTIALS.billDevKey;
  const demo = SANDBOX_DEMO_CREDENTIALS.bill;
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
  const violations: SecretInQueryViolation[] = [];
  const logLimit = options.limits?.requestLogLimit ?? 1000;
  const inFlight = new Set<RecordedRequest>();
  const fieldCache = new WeakMap<RecordedRequest, URLSearchParams>();
  const loginWindows = new Map<string, { hour: number; count: number }>();
  let loginLimit: number | null = null;
  let concurrencyLimit: number | null = null;
  let strict = false;

  // Form fields, then query parameters the form does not set (as a servlet's getParameter merges them).
  const fieldsOf = (request: RecordedRequest) => {
    let fields = fieldCache.get(request);
    if (!fields) {
      const type = request.headers['content-type'] ?? '';
      fields = new URLSearchParams(type.toLowerCase().startsWith(FORM_TYPE) ? request.body : '');
      for (const [name, value] of new URLSearchParams(request.query)) {
        if (!fields.has(name)) fields.append(name, value);
      }
      fieldCache.set(request, fields);
    }
    return fields;
  };

  const concurrencyKey = (request: RecordedRequest) => {
    const fields = fieldsOf(request);
    const orgId =
      request.path === '/Login.json'
        ? fields.get('orgId')
        : sessions.peek(fields.get('sessionId') ?? '')?.orgId;
    return orgId ? `${fields.get('devKey')}|${orgId}` : undefined;
  };

  const overConcurrency = (request: RecordedRequest) => {
    if (concurrencyLimit === null) return false;
    const key = concurrencyKey(request);
    if (key === undefined) return false;
    let others = 0;
    for (const other of inFlight) if (other !== request && concurrencyKey(other) === key) others += 1;
    return others >= concurrencyLimit;
  };

  const login = (fields: URLSearchParams) => {
    for (const name of ['userName', 'password', 'orgId', 'devKey'])
      if (!fields.get(name)) return missing(name);
    if (fields.get('devKey') !== devKey) return BAD_DEV_KEY;
    // BILL counts logins per developer key per clock hour, and the window reopens at the next hour.
    const hour = Math.floor(clock.now() / HOUR_MS);
    const window = loginWindows.get(devKey);
    const count = window?.hour === hour ? window.count : 0;
    loginWindows.set(devKey, { hour, count: count + 1 });
    if (loginLimit !== null && count >= loginLimit) {
      return failure('BDC_1144', 'Max number of login calls per developer key per hour exceeded.');
    }
    if (fields.get('orgId') !== demo.orgId) return failure('BDC_1123', 'Invalid organization id.');
    if (fields.get('userName') !== demo.userName || fields.get('password') !== demo.password) {
      return failure('BDC_1101', 'User name and/or password do not match our records.');
    }
    const sessionId = sessions.create({ userId: DEMO_USER_ID, orgId: demo.orgId });
    return success({ sessionId, orgId: demo.orgId, apiEndPoint: options.apiEndPoint, usersId: DEMO_USER_ID });
  };

  const vendorsOf = (session: BillSession) => {
    let table = vendors.get(session.orgId);
    if (!table) vendors.set(session.orgId, (table = new Map<string, Vendor>()));
    return table;
  };

  const operations: Record<string, Operation> = {
    '/Logout.json': (fields) => {
      sessions.delete(fields.get('sessionId') ?? '');
      return success({});
    },
    '/GetSessionInfo.json': (_fields, session) =>
      success({ organizationId: session.orgId, userId: session.userId }),
    '/List/Vendor.json': (fields, session) => {
      const parsed = dataOf(fields, false);
      if ('refusal' in parsed) return parsed.refusal;
      const { data } = parsed;
      const start = typeof data.start === 'number' ? data.start : 0;
      const max = typeof data.max === 'number' ? data.max : 999;
      return success([...vendorsOf(session).values()].slice(start, start + max));
    },
    '/Crud/Read/Vendor.json': (fields, session) => {
      const parsed = dataOf(fields, true);
      if ('refusal' in parsed) return parsed.refusal;
      const { data } = parsed;
      if (typeof data.id !== 'string') return failure('BDC_1117', 'Missing required data for: id.');
      const vendor = vendorsOf(session).get(data.id);
      return vendor ? success(vendor) : failure('BDC_1120', 'No data found.');
    },
    '/Crud/Create/Vendor.json': (fields, session) => {
      const parsed = dataOf(fields, true);
      if ('refusal' in parsed) return parsed.refusal;
      const obj = parsed.data.obj as Record<string, unknown> | undefined;
      if (typeof obj !== 'object' || obj === null)
        return failure('BDC_1117', 'Missing required data for: obj.');
      if (obj.entity !== 'Vendor') {
        return failure(
          'BDC_1118',
          `Entity from CRUD operation: Vendor does not match the entity specified in the data: ${String(obj.entity)}.`,
        );
      }
      if (typeof obj.name !== 'string' || obj.name === '') {
        return failure('BDC_1117', 'Missing required data for: name.');
      }
      const id = `00901SBXVEND${String(nextVendor++).padStart(2, '0')}`;
      const vendor: Vendor = { isActive: '1', ...obj, entity: 'Vendor', id, name: obj.name };
      vendorsOf(session).set(id, vendor);
      return success(vendor);
    },
    '/sandbox/html': () => htmlReply('BILL'),
    '/sandbox/cookie': () => withUpstreamAuthHeaders(success({}), 'Session'),
  };

  return createEmulator({
    clock,
    limits: options.limits,
    inFlight,
    route(request) {
      const names = [...new URLSearchParams(request.query).keys()].filter((name) =>
        SECRET_FIELDS.has(name.toLowerCase()),
      );
      if (names.length > 0) {
        appendBounded(
          violations,
          { method: request.method, path: request.path, names, receivedAt: request.receivedAt },
          logLimit,
        );
        if (strict) {
          return failure(BILL_SECRET_IN_QUERY_CODE, `Credentials in the URL: ${names.join(', ')}.`, 400);
        }
      }
      const operation = operations[request.path];
      if (request.method !== 'POST' || !(operation || request.path === '/Login.json')) return UNKNOWN_API;
      if (overConcurrency(request)) {
        return failure('BDC_1322', 'Too many concurrent requests for this developer key and organization.');
      }
      const fields = fieldsOf(request);
      if (!operation) return login(fields);
      for (const name of ['devKey', 'sessionId']) if (!fields.get(name)) return missing(name);
      if (fields.get('devKey') !== devKey) return BAD_DEV_KEY;
      const session = sessions.touch(fields.get('sessionId') ?? '');
      return session ? operation(fields, session) : INVALID_SESSION;
    },
    control: {
      violations,
      sessions: () => sessions.ids(),
      expireSession: (sessionId: string) => sessions.delete(sessionId),
      expireAllSessions: () => sessions.clear(),
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
  });
}
