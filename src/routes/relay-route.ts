import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { memoize } from '../bounded-cache.js';
import { AppError } from '../errors.js';
import { audit, type Logger } from '../logger.js';
import type { RelayLimiter } from '../middleware/rate-limits.js';
import type { RequestContext } from '../middleware/request-context.js';
import { refuseOversizedBody, type RequestPolicy } from '../middleware/request-guards.js';
import type { StoredCredential } from '../session/session-record.js';
import type { LoadedSession, SessionRepository } from '../session/session-repository.js';
import {
  adapterFor,
  isKnownProvider,
  isSameCredential,
  resolveProvider,
  upstreamUrl,
  type AdapterRegistry,
  type ProviderAdapter,
  type AuthVerdict,
  type RelayCall,
} from '../upstream/provider-adapter.js';
import type { ProviderId } from '../upstream/provider-id.js';
import {
  disconnectProvider,
  replaceCredential,
  type CredentialRenewer,
} from '../upstream/credential-renewer.js';
import {
  checkQuery,
  checkedRelayPath,
  forwardRequestHeaders,
  relayedResponseHeaders,
  relayFixedHeaders,
  RELAY_METHODS,
  REMEMBERED_ENTRIES,
  REMEMBERED_LENGTH,
} from '../upstream/relay-policy.js';
import type { UpstreamBody } from '../upstream/upstream-body.js';
import {
  toUpstreamError,
  type CancelSignal,
  type UpstreamClient,
  type UpstreamResponse,
} from '../upstream/upstream-client.js';
import { continueIfExpected } from '../middleware/expectations.js';
import type { RelayConcurrency } from '../middleware/relay-concurrency.js';
import type { SecurityHeaders } from '../middleware/security-headers.js';

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
  concurrency: RelayConcurrency;
  /** The headers every answer carries; the relay writes them itself, with the upstream's, at once. */
  securityHeaders: SecurityHeaders;
}

type Credential = StoredCredential;

/**
 * Largest answer read whole to judge it (BILL's envelope, Billogram's 403), declared or not; a larger
 * one passes through unjudged, the bytes already read first.
 */
export const JUDGED_BODY_LIMIT = 4 * 1024 * 1024;

/** Why a relayed call was cancelled: its client went away. */
class ClientGoneError extends Error {}

/**
 * Cancels a relayed request's upstream calls once its client goes away: what an AbortController
 * does for them, without an EventTarget and a signal built for every request.
 */
class ClientWatch implements CancelSignal {
  aborted = false;
  /** Set when (and only when) it aborted. */
  reason: Error | undefined;
  #listeners: Array<() => void> = [];

  addEventListener(_type: 'abort', listener: () => void): void {
    this.#listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.#listeners.indexOf(listener);
    if (at !== -1) this.#listeners.splice(at, 1);
  }

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    for (const listener of this.#listeners.splice(0)) listener();
  }
}

/**
 * `ANY /api/:provider/*` on the lean road: no router, no body parsing, no session write-back. A
 * relayed request costs one store read in steady state; the policy checks are the same functions
 * the Express routes call.
 */
export function createRelayHandler(deps: RelayDeps) {
  const { config, repository, client, clock, logger } = deps;
  const fixedHeaders = relayFixedHeaders(deps.securityHeaders.fixed);

  const send = (
    id: ProviderId,
    adapter: ProviderAdapter,
    call: RelayCall,
    credential: Credential,
    stream: Readable | undefined,
    signal: CancelSignal,
  ) => {
    const authorized = adapter.authorize({ ...call, headers: { ...call.headers } }, credential);
    if (authorized.body !== undefined) authorized.headers['content-length'] = String(authorized.body.length);
    return client.send(id, { ...authorized, body: authorized.body ?? stream, signal });
  };

  // The body is read as bytes and sent on as those same bytes; only the verdict uses its text.
  const judge = async (adapter: ProviderAdapter, response: UpstreamResponse): Promise<Judged> => {
    const type = response.headers['content-type'] ?? '';
    const declared = Number(response.headers['content-length'] ?? 0);
    if (
      !adapter.needsResponseBody(response.status) ||
      !type.includes('json') ||
      declared > JUDGED_BODY_LIMIT
    ) {
      return { verdict: adapter.judge(response.status, undefined), read: undefined, complete: false };
    }
    const { chunks, ended } = await response.body.readUpTo(JUDGED_BODY_LIMIT).catch((error: unknown) => {
      throw toUpstreamError(adapter.id, error);
    });
    // Past the bound the answer is not judged: it passes through, the bytes read so far first.
    if (!ended) return { verdict: 'ok', read: chunks, complete: false };
    const bytes = Buffer.concat(chunks);
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8').replace(/^\uFEFF/, ''));
    } catch {
      json = undefined;
    }
    return { verdict: adapter.judge(response.status, json), read: [bytes], complete: true };
  };

  return async function relay(
    req: IncomingMessage,
    res: ServerResponse,
    context: RequestContext,
  ): Promise<void> {
    const url = req.url ?? '';
    // A request target holds no fragment; a raw `#` would reach the upstream as `%23`.
    if (url.includes('#')) throw new AppError('invalid_path');
    const queryAt = url.indexOf('?');
    const pathname = queryAt === -1 ? url : url.slice(0, queryAt);
    const search = queryAt === -1 ? '' : url.slice(queryAt);
    const afterApi = pathname.slice('/api/'.length);
    const slash = afterApi.indexOf('/');
    const providerName = slash === -1 ? afterApi : afterApi.slice(0, slash);
    const path = slash === -1 ? '' : afterApi.slice(slash + 1);
    const canonicalPath = checkedRelayPath(path);

    if (!RELAY_METHODS.has(req.method ?? '')) throw new AppError('method_not_allowed');
    deps.policy.check(req);
    if (isKnownProvider(deps.adapters, providerName)) context.provider = providerName;
    const adapter = resolveProvider(deps.adapters, providerName);
    const { id } = adapter;
    const providerConfig = config.providers[id];
    if (!providerConfig) throw new AppError('provider_not_configured', { provider: id });
    checkQuery(search);
    if (adapter.isAuthEndpoint(canonicalPath))
      throw new AppError('forbidden_upstream_path', { provider: id });
    if (
      providerConfig.relayAllow.length > 0 &&
      !providerConfig.relayAllow.some((pattern) => pattern.test(path))
    ) {
      throw new AppError('forbidden_upstream_path', { provider: id });
    }
    const declaredLength = Number(req.headers['content-length'] ?? 0);
    const hasBody = declaredLength > 0 || req.headers['transfer-encoding'] !== undefined;
    // An upstream (or a front end) that ignores a GET body would read it as the next request.
    if (hasBody && (req.method === 'GET' || req.method === 'HEAD')) {
      throw new AppError('invalid_request', { message: 'GET and HEAD requests carry no body.' });
    }
    if (hasBody && isCoded(req)) {
      throw new AppError('unsupported_media_type', {
        message: 'A relayed request body takes no content coding, and no transfer coding but chunked.',
      });
    }
    refuseOversizedBody(req, config.bodyLimitBytes);
    adapter.checkRequest?.(req.method ?? '', req.headers['content-type'], hasBody);

    const sessionId = deps.readSessionId(req.headers.cookie);
    if (!sessionId) throw new AppError('unauthenticated');
    context.sessionId = sessionId;

    // Every upstream call of this request is cancelled the moment its client goes away, at any
    // stage: waiting for a connection, sending, or streaming the answer.
    const cancel = new ClientWatch();
    const onClose = () => {
      if (!res.writableFinished) cancel.abort(new ClientGoneError('the client went away'));
    };
    res.once('close', onClose);
    try {
      await relayFor(
        req,
        res,
        context,
        { id, adapter, providerConfig, path, search, sessionId, hasBody },
        cancel,
      );
    } catch (error) {
      // Nobody is left to answer; the error is the cancellation itself, not a failure to report.
      if (cancel.aborted) {
        res.destroy();
        return;
      }
      throw error;
    }
  };

  async function relayFor(
    req: IncomingMessage,
    res: ServerResponse,
    context: RequestContext,
    target: {
      id: ProviderId;
      adapter: ProviderAdapter;
      providerConfig: NonNullable<Config['providers'][ProviderId]>;
      path: string;
      search: string;
      sessionId: string;
      hasBody: boolean;
    },
    signal: ClientWatch,
  ): Promise<void> {
    const { id, adapter, providerConfig, path, search, sessionId, hasBody } = target;
    let session = await repository.load(sessionId);
    if (!session) throw new AppError('unauthenticated');
    deps.relayLimiter.take(sessionId);
    let credential = session.record.providers[id];
    if (!credential) throw new AppError('provider_not_connected', { provider: id });
    // A bounded share of the provider's pooled connections per session and per upstream identity;
    // the slots are given back when the answer is over, however it ends.
    const release = deps.concurrency.acquire(id, [`s:${sessionId}`, `i:${identityOf(adapter, credential)}`]);
    res.once('close', release);
    // A client that left during the session read has closed already: its close came too early.
    if (signal.reason) {
      release();
      throw signal.reason;
    }
    if (adapter.needsRenewal?.(credential, clock.now())) {
      ({ session, credential } = await deps.renewer.renew(session, id, credential));
    }

    const call: RelayCall = {
      method: req.method ?? 'GET',
      url: relayUrl(providerConfig.baseUrl, path, search),
      headers: forwardRequestHeaders(req.headers, context.id),
      body: undefined,
    };
    // Every refusal is behind us: a client that sent `Expect: 100-continue` may send its body now.
    if (hasBody) continueIfExpected(req, res);
    if (hasBody && adapter.buffersRequestBody(credential, call)) {
      call.body = await readBody(req, config.bodyLimitBytes);
    }
    const stream =
      hasBody && call.body === undefined ? req.pipe(limitBytes(config.bodyLimitBytes)) : undefined;

    let response = await send(id, adapter, call, credential, stream, signal).catch(rethrowBodyLimit);
    let judged = await judge(adapter, response);
    if (judged.verdict === 'renew' && adapter.renew && stream === undefined) {
      await response.body.dump();
      ({ session, credential } = await deps.renewer.renew(session, id, credential));
      response = await send(id, adapter, call, credential, undefined, signal);
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
        clientAddress: context.clientAddress,
      });
      throw new AppError('upstream_session_expired', { provider: id });
    }
    // A bodiless answer (HEAD, 204, 304) is over once it began: its end is read before answering, so
    // one that broke (undici judges a 304 or 204 that declared a length malformed) is still
    // billfold's to answer, as a 502, rather than a connection closed on the client.
    if (!judged.complete && (req.method === 'HEAD' || response.status === 204 || response.status === 304)) {
      await response.body.readUpTo(0).catch((error: unknown) => {
        throw toUpstreamError(id, error);
      });
    }
    // Nothing was set on the answer before: every header goes in this one list.
    res.writeHead(
      response.status,
      relayedResponseHeaders(
        response.headers,
        sessionSecrets(deps.adapters, session, adapter, credential),
        fixedHeaders,
        deps.securityHeaders.perRequest(req, context.id),
      ),
    );
    recordUse(session, id, adapter, credential);
    if (judged.complete) res.end(judged.read?.[0]);
    else forward(response.body, res, judged.read);
  }

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
 * Streams the upstream body to the client, after any bytes already read. A client that went away has
 * already cancelled the upstream call (and so ended `body`).
 */
function forward(body: UpstreamBody, res: ServerResponse, head: readonly Buffer[] | undefined): void {
  if (res.destroyed) {
    body.destroy();
    return;
  }
  for (const chunk of head ?? []) res.write(chunk);
  body.pipeTo(res);
}

/**
 * Whether a request's body carries a coding: neither coding header is forwarded (the header
 * allow-list), and Node takes chunked framing off but no other transfer coding, so such a body would
 * reach the upstream as bytes it reads as something else.
 */
function isCoded(req: IncomingMessage): boolean {
  const content = req.headers['content-encoding']?.trim().toLowerCase();
  const transfer = req.headers['transfer-encoding']?.trim().toLowerCase();
  return (
    (content !== undefined && content !== 'identity') || (transfer !== undefined && transfer !== 'chunked')
  );
}

/** An upstream answer read far enough to judge it. */
interface Judged {
  verdict: AuthVerdict;
  /** The bytes read, exactly as they came; undefined when nothing was read. */
  read: Buffer[] | undefined;
  /** Whether `read` is the whole body. */
  complete: boolean;
}

/**
 * Every secret the session holds, the relayed provider's (its fresh credential) first: an upstream
 * must echo no credential of the session, another provider's included.
 */
function sessionSecrets(
  adapters: AdapterRegistry,
  session: LoadedSession,
  adapter: ProviderAdapter,
  credential: Credential,
): string[] {
  const secrets = adapter.secretsOf(credential);
  const stored = Object.entries(session.record.providers);
  if (stored.length === 1) return secrets;
  const all = [...secrets];
  for (const [other, held] of stored) {
    if (other !== adapter.id) all.push(...(adapterFor(adapters, other)?.secretsOf(held) ?? []));
  }
  return all;
}

/**
 * Who a call spends its share as: the upstream user where the session view names one, else the
 * credential itself (API keys and API users are shared, so their holders share a share).
 */
function identityOf(adapter: ProviderAdapter, credential: Credential): string {
  // A stored credential is never changed in place (every change is a copy), and the opened record,
  // its credentials included, is reused while its sealed value stays the same: one identity each.
  let identity = identities.get(credential);
  if (identity === undefined) {
    const view = adapter.view(credential);
    const user = typeof view.user === 'string' ? view.user : undefined;
    const org = typeof view.orgId === 'string' ? view.orgId : '';
    const key = user === undefined ? `#${adapter.secretsOf(credential)[0] ?? ''}` : `${org}\n${user}`;
    identity = identityHash(key);
    identities.set(credential, identity);
  }
  return identity;
}
const identities = new WeakMap<Credential, string>();

// A hash per relayed call was a measurable share of the relay's time; the same identities recur.
const identityHash = memoize((key: string) =>
  createHash('sha256').update(key).digest('base64url').slice(0, 22),
);

// The same paths recur (a client polls its invoices), and a path's upstream URL is a pure function of
// the path and query: remembered for short ones, like the path's check (`checkedRelayPath`). A
// remembered URL is shared by the calls that use it; nothing sets anything on it.
const rememberedUrls = new WeakMap<URL, (pathAndQuery: string) => URL>();

/** `upstreamUrl` for a checked path and its query (`''` or starting with `?`). */
function relayUrl(baseUrl: URL, path: string, search: string): URL {
  let remembered = rememberedUrls.get(baseUrl);
  if (!remembered) {
    // A checked path holds no `?`, so the first one starts the query.
    remembered = memoize(
      (pathAndQuery) => {
        const queryAt = pathAndQuery.indexOf('?');
        return queryAt === -1
          ? upstreamUrl(baseUrl, pathAndQuery)
          : upstreamUrl(baseUrl, pathAndQuery.slice(0, queryAt), pathAndQuery.slice(queryAt));
      },
      REMEMBERED_ENTRIES,
      REMEMBERED_LENGTH,
    );
    rememberedUrls.set(baseUrl, remembered);
  }
  return remembered(path + search);
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
