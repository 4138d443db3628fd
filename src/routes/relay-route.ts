import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { audit, type Logger } from '../logger.js';
import type { RelayLimiter } from '../middleware/rate-limits.js';
import type { RequestContext } from '../middleware/request-context.js';
import { refuseOversizedBody, type RequestPolicy } from '../middleware/request-guards.js';
import type { CredentialOf } from '../session/session-record.js';
import type { LoadedSession, SessionRepository } from '../session/session-repository.js';
import {
  isSameCredential,
  resolveProvider,
  upstreamUrl,
  type AdapterRegistry,
  type ProviderAdapter,
  type RelayCall,
} from '../upstream/provider-adapter.js';
import { isProviderId, type ProviderId } from '../upstream/provider-id.js';
import {
  disconnectProvider,
  replaceCredential,
  type CredentialRenewer,
} from '../upstream/credential-renewer.js';
import {
  canonicalRelayPath,
  checkQuery,
  checkRelayPath,
  filterResponseHeaders,
  forwardRequestHeaders,
  RELAY_METHODS,
  RELAY_RESPONSE_HEADERS,
} from '../upstream/relay-policy.js';
import type { UpstreamClient, UpstreamResponse } from '../upstream/upstream-client.js';

/** What the relay is built from. */
export interface RelayDeps {
  config: Config;
  adapters: AdapterRegistry;
  repository: SessionRepository;
  renewer: CredentialRenewer;
  client: UpstreamClient;
  clock: Clock;
  logger: Logger;
  policy: RequestPolicy;
  readSessionId: (cookieHeader: string | undefined) => string | undefined;
  relayLimiter: RelayLimiter;
}

type Credential = CredentialOf<ProviderId>;

/** Largest JSON answer read whole to judge it (BILL's envelope); larger ones pass through unjudged. */
const JUDGED_BODY_LIMIT = 4 * 1024 * 1024;

/**
 * `ANY /api/:provider/*` on the lean road: no router, no body parsing, no session write-back. A
 * relayed request costs one store read in steady state; the policy checks are the same functions
 * the Express routes call.
 */
export function createRelayHandler(deps: RelayDeps) {
  const { config, repository, client, clock, logger } = deps;

  const send = (
    id: ProviderId,
    adapter: ProviderAdapter,
    call: RelayCall,
    credential: Credential,
    stream: Readable | undefined,
  ) => {
    const authorized = adapter.authorize({ ...call, headers: { ...call.headers } }, credential);
    if (authorized.body !== undefined) authorized.headers['content-length'] = String(authorized.body.length);
    return client.send(id, { ...authorized, body: authorized.body ?? stream });
  };

  const judge = async (adapter: ProviderAdapter, response: UpstreamResponse) => {
    const type = response.headers['content-type'] ?? '';
    const length = Number(response.headers['content-length'] ?? 0);
    if (!adapter.needsResponseBody(response.status) || !type.includes('json') || length > JUDGED_BODY_LIMIT) {
      return { verdict: adapter.judge(response.status, undefined), body: undefined };
    }
    const text = await response.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { verdict: adapter.judge(response.status, json), body: Buffer.from(text) };
  };

  return async function relay(
    req: IncomingMessage,
    res: ServerResponse,
    context: RequestContext,
  ): Promise<void> {
    const url = req.url ?? '';
    const queryAt = url.indexOf('?');
    const pathname = queryAt === -1 ? url : url.slice(0, queryAt);
    const search = queryAt === -1 ? '' : url.slice(queryAt);
    const afterApi = pathname.slice('/api/'.length);
    const slash = afterApi.indexOf('/');
    const providerName = slash === -1 ? afterApi : afterApi.slice(0, slash);
    const path = checkRelayPath(slash === -1 ? '' : afterApi.slice(slash + 1));

    if (!RELAY_METHODS.has(req.method ?? '')) throw new AppError('method_not_allowed');
    deps.policy.check(req);
    if (isProviderId(providerName)) context.provider = providerName;
    const adapter = resolveProvider(deps.adapters, providerName);
    const { id } = adapter;
    const providerConfig = config.providers[id];
    if (!providerConfig) throw new AppError('provider_not_configured', { provider: id });
    checkQuery(search);
    if (adapter.isAuthEndpoint(canonicalRelayPath(path)))
      throw new AppError('forbidden_upstream_path', { provider: id });
    if (
      providerConfig.relayAllow.length > 0 &&
      !providerConfig.relayAllow.some((pattern) => pattern.test(path))
    ) {
      throw new AppError('forbidden_upstream_path', { provider: id });
    }
    refuseOversizedBody(req, config.bodyLimitBytes);

    const sessionId = deps.readSessionId(req.headers.cookie);
    if (!sessionId) throw new AppError('unauthenticated');
    context.sessionId = sessionId;
    let session = await repository.load(sessionId);
    if (!session) throw new AppError('unauthenticated');
    deps.relayLimiter.take(sessionId);
    let credential = session.record.providers[id];
    if (!credential) throw new AppError('provider_not_connected', { provider: id });
    if (adapter.needsRenewal?.(credential, clock.now())) {
      ({ session, credential } = await deps.renewer.renew(session, id, credential));
    }

    const call: RelayCall = {
      method: req.method ?? 'GET',
      url: upstreamUrl(providerConfig.baseUrl, path, search),
      headers: forwardRequestHeaders(req.headers, context.id),
      body: undefined,
    };
    const hasBody =
      Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && adapter.buffersRequestBody(credential, call)) {
      call.body = await readBody(req, config.bodyLimitBytes);
    }
    const stream =
      hasBody && call.body === undefined ? req.pipe(limitBytes(config.bodyLimitBytes)) : undefined;

    let response = await send(id, adapter, call, credential, stream).catch(rethrowBodyLimit);
    let judged = await judge(adapter, response);
    if (judged.verdict === 'renew' && adapter.renew && stream === undefined) {
      await response.body.dump();
      ({ session, credential } = await deps.renewer.renew(session, id, credential));
      response = await send(id, adapter, call, credential, undefined);
      judged = await judge(adapter, response);
    }
    if (judged.verdict === 'untrusted') {
      // The credential is fine; the call needs a stepped-up session (BILL's MFA), then a retry.
      await response.body.dump();
      const distrusted = adapter.afterUntrusted?.(credential);
      if (distrusted) await replaceCredential(repository, session.id, adapter, credential, distrusted);
      throw new AppError('mfa_required', { provider: id });
    }
    if (judged.verdict !== 'ok') {
      await response.body.dump();
      await disconnectProvider(repository, session.id, adapter, credential);
      audit(logger, {
        event: 'upstream_session_expired',
        outcome: 'failure',
        provider: id,
        sessionId,
        requestId: context.id,
      });
      throw new AppError('upstream_session_expired', { provider: id });
    }
    res.writeHead(response.status, {
      ...filterResponseHeaders(response.headers, adapter.secretsOf(credential)),
      ...RELAY_RESPONSE_HEADERS,
    });
    recordUse(session, id, adapter, credential);
    if (judged.body !== undefined) res.end(judged.body);
    else forward(response.body, res);
  };

  // Bookkeeping after a successful call (the idle timer, BILL's last use) is written in the background,
  // throttled, and compare-and-set, so it neither delays the answer nor overwrites a concurrent change.
  function recordUse(
    session: LoadedSession,
    id: ProviderId,
    adapter: ProviderAdapter,
    credential: Credential,
  ) {
    const used = adapter.afterUse?.(credential, clock.now());
    const also = used
      ? (record: LoadedSession['record']) => {
          const stored = record.providers[id];
          if (!stored || !isSameCredential(adapter, stored, credential)) return undefined;
          return {
            ...record,
            providers: { ...record.providers, [id]: adapter.afterUse?.(stored, clock.now()) ?? stored },
          };
        }
      : undefined;
    repository.touch(session, also).catch((error: unknown) => {
      logger.warn({ code: (error as AppError).code }, 'could not record session use');
    });
  }
}

/**
 * Streams the upstream body to the client. Plain `pipe` with both failure paths handled: cheaper
 * than `pipeline`, which builds an AbortController per call.
 */
function forward(body: Readable, res: ServerResponse): void {
  body.once('error', () => res.destroy());
  res.once('close', () => {
    if (!body.readableEnded) body.destroy();
  });
  body.pipe(res);
}

const BODY_LIMIT_EXCEEDED = Symbol('body limit exceeded');

/** A pass-through stream that fails once more than `limit` bytes have gone through it. */
function limitBytes(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limit)
        callback(Object.assign(new Error('body limit exceeded'), { [BODY_LIMIT_EXCEEDED]: true }));
      else callback(null, chunk);
    },
  });
}

function rethrowBodyLimit(error: unknown): never {
  const cause = error instanceof AppError ? error.cause : error;
  if (typeof cause === 'object' && cause !== null && BODY_LIMIT_EXCEEDED in cause)
    throw new AppError('payload_too_large');
  throw error;
}

/** Reads the whole body, refusing past `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AppError('payload_too_large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
