import type { Clock } from '../clock.js';
import { SANDBOX_DEMO_CREDENTIALS } from './sandbox-demo.js';
import {
  createEmulator,
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

/** The Billogram emulator's control surface. */
export interface BillogramControl extends EmulatorControl {
  /** The status for `INVALID_AUTH`: 401 (default) or 403, since client libraries disagree. */
  setInvalidAuthStatus(status: 401 | 403): void;
  /**
   * Billogram is stateless, so "expiring" means revoking the API user's credentials (as a rotation
   * would): from then on they get `INVALID_AUTH`, until `reset`.
   */
  expireSession(apiUserId: string): void;
  expireAllSessions(): void;
}

interface Customer {
  customer_no: number;
  name: string;
  company_type: string;
  [field: string]: unknown;
}

type Handler = (request: RecordedRequest, query: URLSearchParams, customerNo: string) => Reply;

const MAX_PAGE_SIZE = 100;
const FILTER_FIELDS = new Set(['customer_no', 'name']);

/** Billogram's error envelope. */
function failure(status: number, code: string, message: string): Reply {
  return jsonReply(status, { status: code, data: { message } });
}

const ok = (data: unknown, meta?: { total_count: number }) =>
  jsonReply(200, meta ? { status: 'OK', data, meta } : { status: 'OK', data });

/** A positive integer query parameter, its default when absent, or undefined when malformed. */
function positiveInteger(value: string | null, fallback: number): number | undefined {
  if (value === null) return fallback;
  return /^[1-9]\d{0,8}$/.test(value) ? Number(value) : undefined;
}

/**
 * Billogram API v2: stateless HTTP Basic (`API_USER_ID:API_PASSWORD`) on every request, answers in a
 * `{"status","data"}` envelope.
 */
export function createBillogramEmulator(options: {
  clock: Clock;
  limits?: EmulatorLimits;
}): Emulator<BillogramControl> {
  const demo = SANDBOX_DEMO_CREDENTIALS.billogram;
  const customers = new Map<number, Customer>([
    [1, { customer_no: 1, name: 'Acme AB', company_type: 'business', org_no: '556000-0001' }],
    [2, { customer_no: 2, name: 'Anna Andersson', company_type: 'individual' }],
  ]);
  const revoked = new Set<string>();
  let invalidAuthStatus: 401 | 403 = 401;

  const authFailure = (request: RecordedRequest): Reply | undefined => {
    const match = /^Basic +([A-Za-z0-9+/=]+)$/i.exec(request.headers.authorization ?? '');
    if (!match?.[1]) return failure(401, 'MISSING_AUTH', 'Authentication is required.');
    const decoded = Buffer.from(match[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = decoded.slice(0, colon);
    if (
      colon === -1 ||
      user !== demo.apiUserId ||
      decoded.slice(colon + 1) !== demo.apiPassword ||
      revoked.has(user)
    ) {
      return failure(invalidAuthStatus, 'INVALID_AUTH', 'Invalid API user id or password.');
    }
    return undefined;
  };

  const list = (_request: RecordedRequest, query: URLSearchParams) => {
    const page = positiveInteger(query.get('page'), 1);
    const pageSize = positiveInteger(query.get('page_size'), MAX_PAGE_SIZE);
    if (page === undefined || pageSize === undefined || pageSize > MAX_PAGE_SIZE) {
      return failure(
        400,
        'INVALID_PARAMETER',
        `page and page_size must be integers, page_size at most ${MAX_PAGE_SIZE}.`,
      );
    }
    const field = query.get('filter_field');
    const value = query.get('filter_value');
    if ((field === null) !== (value === null)) {
      return failure(400, 'MISSING_QUERY_PARAMETER', 'filter_field and filter_value go together.');
    }
    if (field !== null && !FILTER_FIELDS.has(field)) {
      return failure(400, 'INVALID_PARAMETER', `Cannot filter on ${field}.`);
    }
    const all = [...customers.values()].filter(
      (customer) => field === null || String(customer[field]) === value,
    );
    return ok(all.slice((page - 1) * pageSize, page * pageSize), { total_count: all.length });
  };

  const create = (request: RecordedRequest) => {
    const body = parseJsonObject(request.body);
    if (typeof body?.name !== 'string' || body.name === '') {
      return failure(400, 'INVALID_PARAMETER', 'name is required.');
    }
    const customerNo = body.customer_no ?? Math.max(0, ...customers.keys()) + 1;
    if (typeof customerNo !== 'number' || !Number.isInteger(customerNo) || customers.has(customerNo)) {
      return failure(400, 'INVALID_PARAMETER', 'customer_no must be a new integer.');
    }
    const customer: Customer = {
      company_type: 'business',
      ...body,
      customer_no: customerNo,
      name: body.name,
    };
    customers.set(customerNo, customer);
    return ok(customer);
  };

  const route = createRouter<Handler>({
    'GET /customer': list,
    'POST /customer': create,
    'GET /customer/:customer_no': (_request, _query, customerNo) => {
      const customer = customers.get(Number(customerNo));
      return customer ? ok(customer) : failure(404, 'NOT_FOUND', `No customer ${customerNo}.`);
    },
    // The demo API user may read and create, not delete: the one way to meet PERMISSION_DENIED.
    'DELETE /customer/:customer_no': () =>
      failure(403, 'PERMISSION_DENIED', 'The API user may not delete customers.'),
    'GET /sandbox/html': () => htmlReply('Billogram'),
    'GET /sandbox/cookie': () => withUpstreamAuthHeaders(ok({}), 'Basic'),
  });

  return createEmulator({
    clock: options.clock,
    limits: options.limits,
    route(request, query) {
      const refused = authFailure(request);
      if (refused) return refused;
      const match = route(request.method, request.path);
      if (!match) return failure(404, 'NOT_FOUND', 'Unknown resource.');
      return match.handler(request, query, match.params.customer_no ?? '');
    },
    control: {
      setInvalidAuthStatus(status: 401 | 403) {
        invalidAuthStatus = status;
      },
      expireSession: (apiUserId: string) => void revoked.add(apiUserId),
      expireAllSessions: () => void revoked.add(demo.apiUserId),
    },
    resetSwitches() {
      invalidAuthStatus = 401;
      revoked.clear();
    },
  });
}
