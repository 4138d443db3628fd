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
  createRouter,
  htmlReply,
  jsonReply,
  parseJsonObject,
  withUpstreamAuthHeaders,
  type Emulator,
  type EmulatorLimits,
  type RecordedRequest,
  type Reply,
} from './sandbox-http.js';

type Handler = (
  signedIn: BillSignedIn,
  body: Record<string, unknown>,
  query: URLSearchParams,
  params: Record<string, string>,
) => Reply;

/** A v3 error: a JSON array of `{code, message}` with a real HTTP status. */
function errorReply(status: number, code: string, message: string): Reply {
  return jsonReply(status, [{ code, message }]);
}

const refused = (refusal: BillRefusal) => errorReply(refusal.status, refusal.code, refusal.message);
const missing = (name: string) =>
  errorReply(400, BILL_CODES.missingField, `Missing required field: ${name}.`);
const UNKNOWN_API = errorReply(404, BILL_CODES.unknownApi, 'API not supported.');
const BAD_JSON = errorReply(400, BILL_CODES.badJson, 'The request body must be a JSON object.');

const MAX_PAGE = 100;

/** v3's view of a vendor record. */
function vendorView(vendor: Vendor) {
  const { entity: _entity, isActive, ...fields } = vendor;
  return { ...fields, archived: isActive === '2' };
}

/** An opaque page cursor (the offset, encoded so clients do not build one). */
const encodePage = (offset: number) => Buffer.from(`o:${offset}`).toString('base64url');
function decodePage(page: string): number | undefined {
  const match = /^o:(\d{1,9})$/.exec(Buffer.from(page, 'base64url').toString('utf8'));
  return match ? Number(match[1]) : undefined;
}

const nonEmpty = (value: unknown): value is string => typeof value === 'string' && value !== '';

/**
 * BILL API v3: JSON bodies and answers with real statuses, errors as a JSON array of `{code, message}`.
 * Calls carry `devKey` and `sessionId` headers; MFA challenges trust a session, a rememberMeId trusts a
 * later sign-in, and payments need a trusted session (403 `BDC_1361`). Shares its users, sessions and
 * data with the v2 emulator through the realm.
 */
export function createBillV3Emulator(options: {
  realm: BillRealm;
  limits?: EmulatorLimits;
}): Emulator<BillControl> {
  const { realm } = options;
  const inFlight = new Set<RecordedRequest>();

  const header = (request: RecordedRequest, name: string) => {
    const value = request.headers[name];
    return typeof value === 'string' ? value : undefined;
  };
  const concurrencyKey = (request: RecordedRequest) => {
    const orgId =
      request.path === '/login'
        ? parseJsonObject(request.body)?.organizationId
        : realm.peek(header(request, 'sessionid') ?? '')?.orgId;
    return typeof orgId === 'string' ? `${header(request, 'devkey') ?? ''}|${orgId}` : undefined;
  };
  realm.countInFlight(inFlight, concurrencyKey);

  const login = (body: Record<string, unknown>) => {
    for (const name of ['username', 'password', 'organizationId', 'devKey'])
      if (!nonEmpty(body[name])) return missing(name);
    const signedIn = realm.signIn({
      userName: body.username as string,
      password: body.password as string,
      orgId: body.organizationId as string,
      devKey: body.devKey as string,
      rememberMeId: typeof body.rememberMeId === 'string' ? body.rememberMeId : undefined,
      device: typeof body.device === 'string' ? body.device : undefined,
    });
    if (isRefusal(signedIn)) return refused(signedIn);
    const { sessionId, session } = signedIn;
    return jsonReply(200, {
      sessionId,
      organizationId: session.orgId,
      userId: session.userId,
      trusted: session.trusted,
    });
  };

  const routes = createRouter<Handler>({
    'POST /logout': ({ sessionId }) => {
      realm.endSession(sessionId);
      return jsonReply(200, {});
    },
    'GET /login/session': ({ session }) =>
      jsonReply(200, {
        organizationId: session.orgId,
        userId: session.userId,
        mfaStatus: session.trusted ? 'TRUSTED' : 'UNTRUSTED',
      }),
    'POST /mfa/challenge': (signedIn) => {
      const answer = realm.challenge(signedIn);
      return isRefusal(answer) ? refused(answer) : jsonReply(200, answer);
    },
    'POST /mfa/challenge/validate': (signedIn, body) => {
      for (const name of ['challengeId', 'token', 'device', 'machineName'])
        if (!nonEmpty(body[name])) return missing(name);
      const answer = realm.validate(signedIn, {
        challengeId: body.challengeId as string,
        token: body.token as string,
        device: body.device as string,
        rememberMe: body.rememberMe === true,
      });
      if (isRefusal(answer)) return refused(answer);
      return jsonReply(200, { ...answer, device: body.device });
    },
    'POST /mfa/step-up': (signedIn, body) => {
      for (const name of ['rememberMeId', 'device']) if (!nonEmpty(body[name])) return missing(name);
      const refusal = realm.stepUp(signedIn, body.rememberMeId as string, body.device as string);
      return refusal ? refused(refusal) : jsonReply(200, {});
    },
    'GET /vendors': ({ session }, _body, query) => {
      const max = Number(query.get('max') ?? MAX_PAGE);
      if (!Number.isInteger(max) || max < 1 || max > MAX_PAGE)
        return errorReply(400, BILL_CODES.badJson, `max must be a whole number from 1 to ${MAX_PAGE}.`);
      const page = query.get('page');
      const offset = page === null ? 0 : decodePage(page);
      if (offset === undefined) return errorReply(400, BILL_CODES.badJson, 'The page cursor is invalid.');
      const all = [...realm.vendorsOf(session.orgId).values()];
      const results = all.slice(offset, offset + max).map(vendorView);
      const next = offset + max < all.length ? { nextPage: encodePage(offset + max) } : {};
      return jsonReply(200, { results, ...next });
    },
    'GET /vendors/:id': ({ session }, _body, _query, params) => {
      const vendor = realm.vendorsOf(session.orgId).get(params.id ?? '');
      return vendor ? jsonReply(200, vendorView(vendor)) : errorReply(404, 'BDC_1120', 'No data found.');
    },
    'POST /vendors': ({ session }, body) => {
      if (!nonEmpty(body.name)) return missing('name');
      const id = realm.newVendorId();
      const vendor: Vendor = { ...body, entity: 'Vendor', id, isActive: '1', name: body.name };
      realm.vendorsOf(session.orgId).set(id, vendor);
      return jsonReply(200, vendorView(vendor));
    },
    'POST /payments': ({ session }, body) => {
      const refusal = realm.requireTrusted(session);
      if (refusal) return refused(refusal);
      if (!nonEmpty(body.vendorId)) return missing('vendorId');
      if (typeof body.amount !== 'number' || !(body.amount > 0))
        return errorReply(400, BILL_CODES.badJson, 'amount must be a positive number.');
      if (!realm.vendorsOf(session.orgId).has(body.vendorId))
        return errorReply(404, 'BDC_1120', 'No vendor with that id.');
      return jsonReply(200, {
        id: realm.newPaymentId(),
        vendorId: body.vendorId,
        amount: body.amount,
        status: 'SCHEDULED',
      });
    },
    'GET /sandbox/html': () => htmlReply('BILL v3'),
    'GET /sandbox/cookie': () => withUpstreamAuthHeaders(jsonReply(200, {}), 'Session'),
  });

  return createEmulator({
    clock: realm.clock,
    limits: options.limits,
    inFlight,
    route(request, query) {
      const screened = realm.screenQuery(request);
      if (screened) return refused(screened);
      const isLogin = request.method === 'POST' && request.path === '/login';
      const match = isLogin ? undefined : routes(request.method, request.path);
      if (!isLogin && !match) return UNKNOWN_API;
      if (realm.overConcurrency(request, concurrencyKey)) {
        return errorReply(
          429,
          BILL_CODES.concurrency,
          'Too many concurrent requests for this developer key and organization.',
        );
      }
      const body = request.body === '' ? {} : parseJsonObject(request.body);
      if (!body) return BAD_JSON;
      if (isLogin || !match) return login(body);
      const devKey = header(request, 'devkey');
      const sessionId = header(request, 'sessionid');
      if (!devKey) return missing('devKey');
      if (!sessionId) return missing('sessionId');
      const signedIn = realm.authenticate(devKey, sessionId);
      if (isRefusal(signedIn)) return refused(signedIn);
      return match.handler(signedIn, body, query, match.params);
    },
    control: realm.control,
    resetSwitches: () => realm.resetSwitches(),
  });
}
