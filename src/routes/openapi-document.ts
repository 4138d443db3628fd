import { z } from 'zod';
import { ERROR_STATUS, type ErrorCode } from '../errors.js';
import { billLoginSchema } from '../upstream/bill/bill-adapter.js';
import { billMfaChallengeSchema, billMfaValidateSchema } from '../upstream/bill/bill-mfa-routes.js';
import { billboraLoginSchema, organizationSwitchSchema } from '../upstream/billbora/billbora-adapter.js';
import { billingPlatformLoginSchema } from '../upstream/billingplatform/billingplatform-adapter.js';
import { billogramLoginSchema } from '../upstream/billogram/billogram-adapter.js';
import { PROVIDER_IDS, type BuiltInProviderId as ProviderId } from '../upstream/provider-modules.js';

/** The body each provider's `POST /auth/<provider>/login` validates with. */
const LOGIN_SCHEMAS: Record<ProviderId, z.ZodType> = {
  billingplatform: billingPlatformLoginSchema,
  bill: billLoginSchema,
  billogram: billogramLoginSchema,
  billbora: billboraLoginSchema,
};

const PROVIDER_TITLES: Record<ProviderId, string> = {
  billingplatform: 'BillingPlatform',
  bill: 'BILL (API v2 or v3)',
  billogram: 'Billogram',
  billbora: 'Billbora',
};

const providerId = z.enum(PROVIDER_IDS).meta({ id: 'ProviderId' });
const errorCode = z
  .enum(Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]])
  .meta({ id: 'ErrorCode', description: 'The closed list of codes billfold answers errors with.' });

/** The body of every error billfold itself answers; relayed upstream answers never carry X-Billfold-Error. */
export const errorBodySchema = z
  .strictObject({
    error: z.strictObject({
      code: errorCode,
      message: z.string(),
      provider: providerId.optional(),
      requestId: z.string().meta({ description: 'The same value as the X-Request-Id header.' }),
    }),
  })
  .meta({ id: 'ErrorBody' });

const connectedProvider = z.looseObject({ connected: z.literal(true) }).meta({
  id: 'ConnectedProvider',
  description: 'What the provider shows of the signed-in user; never a secret.',
});
const disconnectedProvider = z.strictObject({ connected: z.literal(false) });

/** The session view: every configured provider (signed out, none connected), never a secret. */
export const sessionViewSchema = z
  .union([
    z.strictObject({
      authenticated: z.literal(false),
      providers: z.partialRecord(providerId, disconnectedProvider),
    }),
    z.strictObject({
      authenticated: z.literal(true),
      expiresAt: z.iso.datetime(),
      idleExpiresAt: z.iso.datetime(),
      providers: z.partialRecord(providerId, z.union([connectedProvider, disconnectedProvider])),
    }),
  ])
  .meta({ id: 'SessionView' });

const sessionSummary = {
  id: z.string().meta({ description: 'A handle for the session, never its id or cookie.' }),
  device: z.string(),
  createdAt: z.iso.datetime(),
  lastSeenAt: z.iso.datetime(),
  providers: z.array(providerId),
};

/** The answers besides the session view, by their id in the document's components. */
const ANSWERS = {
  Health: z.strictObject({ status: z.literal('ok') }),
  Ready: z.strictObject({ status: z.literal('ready') }),
  PoolExhausted: z.strictObject({ status: z.literal('pool_exhausted'), providers: z.array(providerId) }),
  MfaChallenge: z.strictObject({ challengeId: z.string() }),
  OwnSessions: z.strictObject({
    sessions: z.array(z.strictObject({ ...sessionSummary, current: z.boolean() })),
  }),
  OperatorSessions: z.strictObject({ sessions: z.array(z.strictObject(sessionSummary)) }),
  Revoked: z.strictObject({ revoked: z.number().int().min(0) }),
};

/**
 * Codes any answer of the main port may carry, whatever the route: the request-line and header
 * checks that run before routing, and the last-resort error.
 */
const EVERYWHERE: ErrorCode[] = [
  'invalid_request',
  'secret_in_query',
  'https_required',
  'expectation_failed',
  'internal_error',
];
/** What the CSRF/origin policy, the body rules and the session store add on /auth and /api. */
const AUTH_EDGE: ErrorCode[] = [
  ...EVERYWHERE,
  'csrf_header_missing',
  'origin_not_allowed',
  'payload_too_large',
  'unsupported_media_type',
  'session_store_unavailable',
];
/** An operator endpoint's refusals: its bearer token, wrong guesses of it, its own route. */
const OPERATOR: ErrorCode[] = [
  'invalid_request',
  'secret_in_query',
  'unauthenticated',
  'rate_limited',
  'not_found',
  'method_not_allowed',
  'internal_error',
];
const OPERATOR_ADMIN: ErrorCode[] = [...OPERATOR, 'provider_not_configured', 'session_store_unavailable'];
const UPSTREAM: ErrorCode[] = ['upstream_unavailable', 'upstream_timeout', 'rate_limited'];

type Schema = Record<string, unknown>;
type Responses = Record<string, Schema>;

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const header = (description: string, schema: Schema = { type: 'string' }) => ({ description, schema });
const REQUEST_ID = header('The request id, also in the logs and in every error body.');

/** The JSON schema of a zod schema, as a request body (its input side), inline. */
function inputSchema(schema: z.ZodType): Schema {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
  }) as Schema;
  return json;
}

/** Error answers grouped by status, each naming the codes it may carry and restricting the body to them. */
function errorResponses(codes: readonly ErrorCode[]): Responses {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Responses = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[String(status)] = {
      description: `billfold refused or failed: ${list.join(', ')}.`,
      headers: {
        'X-Billfold-Error': {
          ...header('The error code; never on a relayed upstream answer.', { type: 'string', enum: list }),
          required: true,
        },
        'X-Request-Id': REQUEST_ID,
        ...(status === 429 || status === 503
          ? { 'Retry-After': header('Seconds to wait before retrying.', { type: 'integer' }) }
          : {}),
      },
      content: {
        'application/json': {
          schema: {
            allOf: [ref('ErrorBody'), { properties: { error: { properties: { code: { enum: list } } } } }],
          },
        },
      },
    };
  }
  // Node's parser refuses oversized request headers before any route runs.
  responses['431'] = {
    description: 'The request headers are too large (code invalid_request).',
    headers: {
      'X-Billfold-Error': {
        ...header('invalid_request', { type: 'string', enum: ['invalid_request'] }),
        required: true,
      },
      'X-Request-Id': REQUEST_ID,
    },
    content: { 'application/json': { schema: ref('ErrorBody') } },
  };
  return responses;
}

const json = (schema: Schema, description: string) => ({
  description,
  headers: { 'X-Request-Id': REQUEST_ID },
  content: { 'application/json': { schema } },
});
const NO_CONTENT = { description: 'Done; no body.', headers: { 'X-Request-Id': REQUEST_ID } };
const CSRF = {
  name: 'X-CSRF',
  in: 'header',
  required: true,
  description: 'Must be `1`. Browsers cannot send it cross-origin without a CORS preflight billfold refuses.',
  schema: { type: 'string', enum: ['1'] },
};
const jsonBody = (schema: z.ZodType, required = true) => ({
  required,
  content: { 'application/json': { schema: inputSchema(schema) } },
});

interface Operation {
  summary: string;
  tags: string[];
  errors: ErrorCode[];
  responses: Responses;
  parameters?: Schema[];
  requestBody?: Schema;
  security?: Schema[];
  servers?: Schema[];
  description?: string;
}

function operation({ errors, responses, ...rest }: Operation): Schema {
  const merged: Responses = { ...errorResponses(errors) };
  for (const [status, answer] of Object.entries(responses)) {
    const error = merged[status] as { description: string; headers: Schema; content: Schema } | undefined;
    // A status both an answer and an error use (/readyz's 503): either body, the header on the error only.
    merged[status] = error
      ? {
          description: `${answer.description as string} Or ${error.description}`,
          headers: {
            ...error.headers,
            'X-Billfold-Error': { ...(error.headers['X-Billfold-Error'] as Schema), required: false },
          },
          content: {
            'application/json': {
              schema: {
                oneOf: [
                  (answer.content as Record<string, Schema>)['application/json']?.schema,
                  (error.content['application/json'] as Schema).schema,
                ],
              },
            },
          },
        }
      : answer;
  }
  return { ...rest, responses: merged };
}

const SESSION_VIEW = json(ref('SessionView'), 'The session view.');

function authPaths(): Record<string, Schema> {
  const paths: Record<string, Schema> = {};
  for (const id of PROVIDER_IDS) {
    paths[`/auth/${id}/login`] = {
      post: operation({
        summary: `Sign in to ${PROVIDER_TITLES[id]}`,
        description:
          'Signs in upstream, keeps the credential sealed server-side, and sets the httpOnly session cookie ' +
          '(a fresh session id on every sign-in). Joins the current session when there is one; when that ' +
          'session ends while the sign-in runs (another sign-in beside it moved it to a new id, or a sign-out ' +
          'ended it), or was moved by a sign-in within the last two minutes, the answer is 401 unauthenticated ' +
          'with no cookie (and any upstream sign-in made is ended): sign in again, with the cookie the browser ' +
          'holds by then.',
        tags: ['auth'],
        parameters: [CSRF],
        requestBody: jsonBody(LOGIN_SCHEMAS[id]),
        responses: { '200': SESSION_VIEW },
        errors: [
          ...AUTH_EDGE,
          'unauthenticated',
          'invalid_credentials',
          'provider_not_configured',
          'organization_access_denied',
          ...UPSTREAM,
        ],
      }),
    };
    paths[`/auth/${id}/logout`] = {
      post: operation({
        summary: `Sign out of ${PROVIDER_TITLES[id]}`,
        description: 'Signing out of the last provider ends the session and clears the cookie.',
        tags: ['auth'],
        parameters: [CSRF],
        responses: { '200': SESSION_VIEW },
        errors: [...AUTH_EDGE, 'unauthenticated', 'provider_not_configured'],
      }),
    };
  }
  return paths;
}

/** Builds billfold's HTTP contract: every route, its bodies, its answers and the error codes each can carry. */
export function createOpenApiDocument(version: string): Schema {
  const registry = z.registry<{ id: string }>();
  for (const schema of [providerId, errorCode, errorBodySchema, connectedProvider, sessionViewSchema]) {
    registry.add(schema, { id: schema.meta()?.id as string });
  }
  for (const [id, schema] of Object.entries(ANSWERS)) registry.add(schema, { id });
  const generated = z.toJSONSchema(registry, { uri: (id) => `#/components/schemas/${id}` }).schemas;
  const schemas = Object.fromEntries(
    Object.entries(generated).map(([id, { $schema: _dialect, $id: _id, ...schema }]) => [id, schema]),
  );
  const answer = (id: keyof typeof ANSWERS) => ref(id);
  const operatorServer = (variable: string) => [
    { url: '/', description: `The ${variable} port, or the main port when ${variable} is unset.` },
  ];

  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'billfold',
      version,
      description:
        'A backend-for-frontend session server: the client holds one httpOnly cookie; billfold keeps every ' +
        'billing-API credential server-side and relays `/api/<provider>/...` with the right upstream auth. ' +
        'Every `/auth/*` and `/api/*` request sends `X-CSRF: 1`; answers carry `Cache-Control: no-store`. ' +
        'An error billfold answers itself carries `X-Billfold-Error: <code>` and an `ErrorBody`; a path ' +
        'that is no route answers 404 `not_found`.',
    },
    tags: [
      { name: 'auth', description: 'Sign-in, sign-out and the session view (cookie session).' },
      { name: 'relay', description: 'Calls to the providers, with their auth attached by billfold.' },
      { name: 'operations', description: 'Probes, this document, and the operator endpoints.' },
    ],
    components: {
      schemas,
      securitySchemes: {
        session: {
          type: 'apiKey',
          in: 'cookie',
          name: '__Host-billfold',
          description: 'The session cookie (its name is SESSION_COOKIE_NAME).',
        },
        operatorToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN or METRICS_TOKEN.' },
      },
    },
    paths: {
      '/healthz': {
        get: operation({
          summary: 'The process serves',
          tags: ['operations'],
          responses: { '200': json(answer('Health'), 'Serving.') },
          errors: EVERYWHERE.filter((code) => code !== 'https_required'),
        }),
      },
      '/readyz': {
        get: operation({
          summary: 'The session store answers and no provider connection pool is exhausted',
          tags: ['operations'],
          responses: {
            '200': json(answer('Ready'), 'Ready.'),
            '503': json(answer('PoolExhausted'), 'Not ready: the named providers queue for a connection.'),
          },
          errors: [...EVERYWHERE.filter((code) => code !== 'https_required'), 'session_store_unavailable'],
        }),
      },
      '/openapi.json': {
        get: operation({
          summary: 'This document',
          tags: ['operations'],
          responses: { '200': json({ type: 'object' }, 'The OpenAPI 3.1 document.') },
          errors: EVERYWHERE,
        }),
      },
      '/auth/session': {
        get: operation({
          summary: 'The session view',
          description: 'Reading it never extends the idle timer, unless `touch=true`.',
          tags: ['auth'],
          parameters: [
            CSRF,
            { name: 'touch', in: 'query', required: false, schema: { type: 'string', enum: ['true'] } },
          ],
          responses: { '200': SESSION_VIEW },
          errors: AUTH_EDGE,
        }),
      },
      ...authPaths(),
      '/auth/logout': {
        post: operation({
          summary: 'Sign out of every provider and end the session',
          description:
            'Sent with a session id a sign-in (in another tab) moved to a new id within the last two minutes, ' +
            'it ends the session where that id went. Clears the cookie either way.',
          tags: ['auth'],
          parameters: [CSRF],
          responses: { '204': NO_CONTENT },
          errors: AUTH_EDGE,
        }),
      },
      '/auth/bill/mfa/challenge': {
        post: operation({
          summary: 'Ask BILL (API v3) to send the signed-in user an MFA code',
          tags: ['auth'],
          parameters: [CSRF],
          requestBody: jsonBody(billMfaChallengeSchema, false),
          responses: { '200': json(answer('MfaChallenge'), 'The challenge to validate.') },
          errors: [
            ...AUTH_EDGE,
            'unauthenticated',
            'provider_not_connected',
            'provider_not_configured',
            'not_found',
            'upstream_session_expired',
            ...UPSTREAM,
          ],
        }),
      },
      '/auth/bill/mfa/validate': {
        post: operation({
          summary: 'Complete the BILL MFA step-up; the session becomes MFA-trusted',
          tags: ['auth'],
          parameters: [CSRF],
          requestBody: jsonBody(billMfaValidateSchema),
          responses: { '200': SESSION_VIEW },
          errors: [
            ...AUTH_EDGE,
            'unauthenticated',
            'invalid_credentials',
            'provider_not_connected',
            'provider_not_configured',
            'not_found',
            'upstream_session_expired',
            ...UPSTREAM,
          ],
        }),
      },
      '/auth/billbora/organization': {
        post: operation({
          summary: 'Switch the Billbora organization of the session',
          description:
            'Exchanges a Supabase token for the other organization: the one given, or one billfold obtains ' +
            'with the Supabase session it holds. When Supabase has ended that session (a password change, a ' +
            'sign-out everywhere), the answer is 401 invalid_credentials: send supabaseToken.',
          tags: ['auth'],
          parameters: [CSRF],
          requestBody: jsonBody(organizationSwitchSchema),
          responses: { '200': SESSION_VIEW },
          errors: [
            ...AUTH_EDGE,
            'unauthenticated',
            'invalid_credentials',
            'provider_not_connected',
            'provider_not_configured',
            'organization_access_denied',
            ...UPSTREAM,
          ],
        }),
      },
      '/auth/sessions': {
        get: operation({
          summary: 'The caller’s own sessions, signed in as one of the caller’s upstream identities',
          tags: ['auth'],
          parameters: [CSRF],
          responses: { '200': json(answer('OwnSessions'), 'The current session first.') },
          errors: [...AUTH_EDGE, 'unauthenticated'],
        }),
        delete: operation({
          summary: 'Revoke every other session of the caller',
          tags: ['auth'],
          parameters: [
            CSRF,
            { name: 'others', in: 'query', required: true, schema: { type: 'string', enum: ['true'] } },
          ],
          responses: { '200': json(answer('Revoked'), 'How many sessions ended.') },
          errors: [...AUTH_EDGE, 'unauthenticated'],
        }),
      },
      '/auth/sessions/{id}': {
        delete: operation({
          summary: 'Revoke one of the caller’s sessions by its handle',
          tags: ['auth'],
          parameters: [CSRF, { name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '204': NO_CONTENT },
          errors: [...AUTH_EDGE, 'unauthenticated', 'not_found'],
        }),
      },
      '/api/{provider}/{path}': {
        parameters: [
          { name: 'provider', in: 'path', required: true, schema: ref('ProviderId') },
          {
            name: 'path',
            in: 'path',
            required: true,
            description:
              'The upstream path below its base URL; may hold slashes. No dot segments or encoded separators.',
            schema: { type: 'string' },
          },
          CSRF,
        ],
        ...Object.fromEntries(
          ['get', 'post', 'put', 'patch', 'delete'].map((method) => [
            method,
            operation({
              summary: `Relay a ${method.toUpperCase()} to the provider with its auth attached`,
              description:
                'Any status, content type and body an upstream answers is passed on (without X-Billfold-Error). ' +
                'Its own login, logout and token endpoints are refused, and so is a body with a content coding, or ' +
                'a transfer coding other than chunked (unsupported_media_type). BILL v2 calls are form POSTs (else method_not_allowed or ' +
                'unsupported_media_type) whose devKey and sessionId billfold sets; a form that is not UTF-8, or ' +
                'holds a % that starts no escape, is refused (invalid_request) rather than changed, and one of more ' +
                'than 1,000 fields is payload_too_large.',
              tags: ['relay'],
              security: [{ session: [] }],
              responses: { default: { description: 'The upstream’s answer, relayed.' } },
              errors: [
                ...AUTH_EDGE,
                'invalid_path',
                'unauthenticated',
                'provider_not_connected',
                'upstream_session_expired',
                'mfa_required',
                'forbidden_upstream_path',
                'provider_not_configured',
                'not_found',
                'method_not_allowed',
                ...UPSTREAM,
              ],
            }),
          ]),
        ),
      },
      '/admin/sessions': {
        servers: operatorServer('ADMIN_PORT'),
        parameters: [
          { name: 'provider', in: 'query', required: true, schema: ref('ProviderId') },
          { name: 'user', in: 'query', required: true, schema: { type: 'string', maxLength: 320 } },
          {
            name: 'orgId',
            in: 'query',
            required: false,
            description: 'Required for BILL.',
            schema: { type: 'string' },
          },
        ],
        get: operation({
          summary: 'An upstream user’s live sessions',
          tags: ['operations'],
          security: [{ operatorToken: [] }],
          responses: { '200': json(answer('OperatorSessions'), 'Newest use first.') },
          errors: OPERATOR_ADMIN,
        }),
        delete: operation({
          summary: 'Revoke all of an upstream user’s sessions, with upstream logout',
          tags: ['operations'],
          security: [{ operatorToken: [] }],
          responses: { '200': json(answer('Revoked'), 'How many sessions ended.') },
          errors: OPERATOR_ADMIN,
        }),
      },
      '/metrics': {
        servers: operatorServer('METRICS_PORT'),
        get: operation({
          summary: 'Prometheus metrics of this instance',
          description: 'On the main port only with METRICS_TOKEN set (else 404 not_found).',
          tags: ['operations'],
          security: [{ operatorToken: [] }],
          responses: {
            '200': {
              description: 'The Prometheus text exposition.',
              content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: { type: 'string' } } },
            },
          },
          errors: OPERATOR,
        }),
      },
    },
  };
}
