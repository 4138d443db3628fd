import {
  BILL_CODES,
  isRefusal,
  type BillControl,
  type BillRealm,
  type BillRefusal,
  type BillSignedIn,
  type Vendor,
} from './bill-realm.js';
import {
  createEmulator,
  htmlReply,
  jsonReply,
  parseJson,
  withUpstreamAuthHeaders,
  type Emulator,
  type EmulatorLimits,
  type RecordedRequest,
  type Reply,
} from './sandbox-http.js';

/** The BILL error code for a secret refused in a query string in strict mode *(ours)*. */
export const BILL_SECRET_IN_QUERY_CODE = BILL_CODES.secretInQuery;

const FORM_TYPE = 'application/x-www-form-urlencoded';

type Operation = (fields: URLSearchParams, signedIn: BillSignedIn) => Reply;

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

const missing = (name: string) =>
  failure(BILL_CODES.missingField, `Missing parameter value for parameter: ${name}.`);
const UNKNOWN_API = failure(BILL_CODES.unknownApi, 'API not supported.', 404);
/** A realm refusal in v2's envelope (HTTP 200, as BILL v2 answers every error). */
const refused = (refusal: BillRefusal) => failure(refusal.code, refusal.message);

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
 * die after 35 idle minutes (sync-token ones after 48 hours); secrets in URLs are recorded (and refused
 * in strict mode). Users, sessions and data live in the realm it shares with the v3 emulator.
 */
export function createBillEmulator(options: {
  realm: BillRealm;
  /** The `apiEndPoint` a login answers with (the sandbox's `/bill/api`). */
  apiEndPoint: string;
  limits?: EmulatorLimits;
}): Emulator<BillControl> {
  const { realm } = options;
  const inFlight = new Set<RecordedRequest>();
  const fieldCache = new WeakMap<RecordedRequest, URLSearchParams>();

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
      request.path === '/Login.json' ? fields.get('orgId') : realm.peek(fields.get('sessionId') ?? '')?.orgId;
    return orgId ? `${fields.get('devKey')}|${orgId}` : undefined;
  };
  realm.countInFlight(inFlight, concurrencyKey);

  const login = (fields: URLSearchParams) => {
    for (const name of ['userName', 'password', 'orgId', 'devKey'])
      if (!fields.get(name)) return missing(name);
    const signedIn = realm.signIn({
      userName: fields.get('userName') ?? '',
      password: fields.get('password') ?? '',
      orgId: fields.get('orgId') ?? '',
      devKey: fields.get('devKey') ?? '',
    });
    if (isRefusal(signedIn)) return refused(signedIn);
    const { sessionId, session } = signedIn;
    return success({
      sessionId,
      orgId: session.orgId,
      apiEndPoint: options.apiEndPoint,
      usersId: session.userId,
    });
  };

  const vendorsOf = (signedIn: BillSignedIn) => realm.vendorsOf(signedIn.session.orgId);

  const operations: Record<string, Operation> = {
    '/Logout.json': (_fields, signedIn) => {
      realm.endSession(signedIn.sessionId);
      return success({});
    },
    '/GetSessionInfo.json': (_fields, { session }) =>
      success({ organizationId: session.orgId, userId: session.userId }),
    '/List/Vendor.json': (fields, signedIn) => {
      const parsed = dataOf(fields, false);
      if ('refusal' in parsed) return parsed.refusal;
      const { data } = parsed;
      const start = typeof data.start === 'number' ? data.start : 0;
      const max = typeof data.max === 'number' ? data.max : 999;
      return success([...vendorsOf(signedIn).values()].slice(start, start + max));
    },
    '/Crud/Read/Vendor.json': (fields, signedIn) => {
      const parsed = dataOf(fields, true);
      if ('refusal' in parsed) return parsed.refusal;
      const { data } = parsed;
      if (typeof data.id !== 'string') return failure('BDC_1117', 'Missing required data for: id.');
      const vendor = vendorsOf(signedIn).get(data.id);
      return vendor ? success(vendor) : failure('BDC_1120', 'No data found.');
    },
    '/Crud/Create/Vendor.json': (fields, signedIn) => {
      const parsed = dataOf(fields, true);
      if ('refusal' in parsed) return parsed.refusal;
      const obj = parsed.data.obj as Record<string, unknown> | null | undefined;
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
      const id = realm.newVendorId();
      const vendor: Vendor = { isActive: '1', ...obj, entity: 'Vendor', id, name: obj.name };
      vendorsOf(signedIn).set(id, vendor);
      return success(vendor);
    },
    '/sandbox/html': () => htmlReply('BILL'),
    '/sandbox/cookie': () => withUpstreamAuthHeaders(success({}), 'Session'),
  };

  return createEmulator({
    clock: realm.clock,
    limits: options.limits,
    inFlight,
    route(request) {
      const screened = realm.screenQuery(request);
      if (screened) return failure(screened.code, screened.message, 400);
      const operation = operations[request.path];
      if (request.method !== 'POST' || !(operation || request.path === '/Login.json')) return UNKNOWN_API;
      if (realm.overConcurrency(request, concurrencyKey)) {
        return failure(
          BILL_CODES.concurrency,
          'Too many concurrent requests for this developer key and organization.',
        );
      }
      const fields = fieldsOf(request);
      if (!operation) return login(fields);
      for (const name of ['devKey', 'sessionId']) if (!fields.get(name)) return missing(name);
      const signedIn = realm.authenticate(fields.get('devKey') ?? '', fields.get('sessionId') ?? '');
      return isRefusal(signedIn) ? refused(signedIn) : operation(fields, signedIn);
    },
    control: realm.control,
    resetSwitches: () => realm.resetSwitches(),
  });
}
