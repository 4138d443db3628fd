import type { Clock } from '../clock.js';
import { SANDBOX_DEMO_CREDENTIALS } from './sandbox-demo.js';
import {
  createEmulator,
  createIdleSessionTable,
  createRouter,
  htmlReply,
  jsonReply,
  parseJsonObject,
  withUpstreamAuthHeaders,
  type Emulator,
  type EmulatorControl,
  type EmulatorLimits,
  type RecordedRequest,
  type Reply,
} from './sandbox-http.js';

/** The BillingPlatform emulator's control surface. */
export interface BillingPlatformControl extends EmulatorControl {
  /** The live SessionIDs. */
  sessions(): string[];
  /** Kills one session at once, as an idle timeout would. */
  expireSession(sessionId: string): void;
  expireAllSessions(): void;
  /** The status of a failed login: 401 (default) or 200, as some tenants answer. */
  setLoginFailureStatus(status: 200 | 401): void;
  /** While on, every request is answered 429. */
  setRateLimited(on: boolean): void;
  /**
   * Which header logout accepts: `sessionid` (default, as every other call) or only
   * `Authorization: Session <SessionID>`, the form the vendor's own logout example shows.
   */
  setLogoutForm(form: 'sessionid' | 'authorization'): void;
}

/** BillingPlatform's default idle timeout *(ours)*: 30 minutes. */
export const BILLINGPLATFORM_IDLE_TIMEOUT_MS = 30 * 60_000;

interface Account {
  Id: string;
  Name: string;
  Status: string;
  [field: string]: unknown;
}

type Handler = (request: RecordedRequest, query: URLSearchParams, id: string) => Reply;

const INVALID_SESSION = jsonReply(401, { error: 'unauthorized', message: 'Invalid session ID' });
// The vendor's guidance is about 15 requests a second per tenant; the switch stands in for going past it.
const RATE_LIMITED = jsonReply(
  429,
  { error: 'rate_limited', message: 'Too many requests.' },
  { 'retry-after': '1' },
);

/** An answer in BillingPlatform's `{"error","message"}` shape. */
function errorReply(status: number, error: string, message: string): Reply {
  return jsonReply(status, { error, message });
}

/**
 * BillingPlatform REST 2.0: `POST /login` gives a SessionID that later calls send in a `sessionid`
 * header; sessions die on logout or after an idle timeout that every authenticated call slides.
 */
export function createBillingPlatformEmulator(options: {
  clock: Clock;
  idleTimeoutMs?: number;
  limits?: EmulatorLimits;
}): Emulator<BillingPlatformControl> {
  const sessions = createIdleSessionTable<{ user: string }>(
    options.clock,
    options.idleTimeoutMs ?? BILLINGPLATFORM_IDLE_TIMEOUT_MS,
  );
  const accounts = new Map<string, Account>([
    ['1001', { Id: '1001', Name: 'Acme Corporation', Status: 'ACTIVE', AccountTypeId: '1' }],
    ['1002', { Id: '1002', Name: 'Globex Ltd', Status: 'ACTIVE', AccountTypeId: '1' }],
  ]);
  let nextAccountId = 1003;
  let loginFailureStatus: 200 | 401 = 401;
  let rateLimited = false;
  let logoutForm: 'sessionid' | 'authorization' = 'sessionid';

  const loginFailure = (message: string) =>
    jsonReply(loginFailureStatus, {
      loginResponse: [{ SessionID: '', ErrorCode: '1', ErrorText: [message] }],
    });

  const login = (request: RecordedRequest) => {
    const body = parseJsonObject(request.body);
    if (!body) return loginFailure('The request body must be a JSON object.');
    const { username, password } = SANDBOX_DEMO_CREDENTIALS.billingplatform;
    if (body.username !== username || body.password !== password) {
      return loginFailure('Invalid username or password.');
    }
    const SessionID = sessions.create({ user: username });
    return jsonReply(200, { loginResponse: [{ SessionID, ErrorCode: '0', ErrorText: [] }] });
  };

  const createAccounts = (request: RecordedRequest) => {
    const objects = parseJsonObject(request.body)?.brmObjects;
    const list = Array.isArray(objects) ? (objects as unknown[]) : [objects];
    if (objects === undefined || !list.every((item) => typeof item === 'object' && item !== null)) {
      return errorReply(400, 'invalid_request', 'brmObjects must be an object or a list of objects.');
    }
    const createResponse = (list as Record<string, unknown>[]).map((fields) => {
      const Id = String(nextAccountId++);
      accounts.set(Id, { Name: '', Status: 'ACTIVE', ...fields, Id });
      return { Id, ErrorCode: '0', ErrorText: [] };
    });
    return jsonReply(200, { createResponse });
  };

  const query = (_request: RecordedRequest, params: URLSearchParams) => {
    const sql = params.get('sql');
    // Just enough SQL for tests: SELECT … FROM ACCOUNT [WHERE Id = n].
    const match = sql ? /\bfrom\s+account\b(?:\s+where\s+id\s*=\s*'?(\w+)'?)?/i.exec(sql) : null;
    if (!match)
      return errorReply(400, 'invalid_query', 'Only SELECT … FROM ACCOUNT [WHERE Id = n] is emulated.');
    const id = match[1];
    const rows = id === undefined ? [...accounts.values()] : [accounts.get(id)].filter(Boolean);
    return jsonReply(200, { queryResponse: rows });
  };

  const logout = (request: RecordedRequest) => {
    const sessionId =
      logoutForm === 'authorization'
        ? /^Session +(\S+)$/i.exec(request.headers.authorization ?? '')?.[1]
        : request.headers.sessionid;
    if (typeof sessionId !== 'string' || !sessions.touch(sessionId)) return INVALID_SESSION;
    sessions.delete(sessionId);
    return jsonReply(200, { logoutResponse: [{ ErrorCode: '0', ErrorText: [] }] });
  };

  const route = createRouter<Handler>({
    'GET /ACCOUNT/:id': (_request, _query, id) => {
      const account = accounts.get(id);
      return account
        ? jsonReply(200, { retrieveResponse: [account] })
        : errorReply(404, 'not_found', `No ACCOUNT with Id ${id}.`);
    },
    'POST /ACCOUNT': createAccounts,
    'GET /query': query,
    'GET /sandbox/html': () => htmlReply('BillingPlatform'),
    'GET /sandbox/cookie': () => withUpstreamAuthHeaders(jsonReply(200, { retrieveResponse: [] }), 'Session'),
  });

  return createEmulator({
    clock: options.clock,
    limits: options.limits,
    route(request, query) {
      if (rateLimited) return RATE_LIMITED;
      if (request.method === 'POST' && request.path === '/login') return login(request);
      if (request.method === 'POST' && request.path === '/logout') return logout(request);
      // Node lower-cases header names, so `sessionid` matches whatever case the client sent.
      const sessionId = request.headers.sessionid;
      if (typeof sessionId !== 'string' || !sessions.touch(sessionId)) return INVALID_SESSION;
      const match = route(request.method, request.path);
      if (!match) return errorReply(404, 'not_found', 'Unknown resource.');
      return match.handler(request, query, match.params.id ?? '');
    },
    control: {
      sessions: () => sessions.ids(),
      expireSession: (sessionId: string) => sessions.delete(sessionId),
      expireAllSessions: () => sessions.clear(),
      setLoginFailureStatus(status: 200 | 401) {
        loginFailureStatus = status;
      },
      setRateLimited(on: boolean) {
        rateLimited = on;
      },
      setLogoutForm(form: 'sessionid' | 'authorization') {
        logoutForm = form;
      },
    },
    resetSwitches() {
      loginFailureStatus = 401;
      rateLimited = false;
      logoutForm = 'sessionid';
    },
  });
}
