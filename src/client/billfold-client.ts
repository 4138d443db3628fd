import { ERROR_STATUS, type ErrorCode } from './error-codes.js';

export { ERROR_STATUS, type ErrorCode };

/** The sign-in body each provider takes (`POST /auth/<provider>/login` in /openapi.json). */
export interface LoginBodies {
  billingplatform: { username: string; password: string };
  bill:
    | { userName: string; password: string; orgId: string }
    | { tokenName: string; tokenValue: string; orgId: string };
  billogram: { apiUserId: string; apiPassword: string };
  billbora:
    | { email: string; password: string; organizationId?: string }
    | { supabaseToken: string; organizationId?: string }
    | { apiKey: string };
}

/** The providers billfold signs in to (`ProviderId` in /openapi.json). */
export type ProviderId = keyof LoginBodies;

/** What the session view shows of a connected provider: who is signed in, never a secret. */
export type ConnectedProvider = { connected: true } & Record<string, unknown>;

/** `SessionView` in /openapi.json: every configured provider, connected or not. */
export type SessionView =
  | { authenticated: false; providers: Partial<Record<ProviderId, { connected: false }>> }
  | {
      authenticated: true;
      expiresAt: string;
      idleExpiresAt: string;
      providers: Partial<Record<ProviderId, ConnectedProvider | { connected: false }>>;
    };

/** One session in the caller's own list (`GET /auth/sessions`). */
export interface SessionSummary {
  id: string;
  current: boolean;
  device: string;
  createdAt: string;
  lastSeenAt: string;
  providers: ProviderId[];
}

/**
 * An error billfold answered itself, told apart from a relayed upstream answer by the
 * X-Billfold-Error header (which billfold never passes on from an upstream). `code` narrows to the
 * closed list of codes.
 */
export class BillfoldError<C extends ErrorCode = ErrorCode> extends Error {
  override readonly name = 'BillfoldError';
  readonly code: C;
  readonly status: number;
  readonly provider: ProviderId | undefined;
  readonly requestId: string | undefined;
  /** Seconds the answer's Retry-After asked for, when it had one. */
  readonly retryAfter: number | undefined;

  constructor(
    code: C,
    status: number,
    details: { message?: string; provider?: ProviderId; requestId?: string; retryAfter?: number } = {},
  ) {
    super(details.message ?? code);
    this.code = code;
    this.status = status;
    this.provider = details.provider;
    this.requestId = details.requestId;
    this.retryAfter = details.retryAfter;
  }
}

/** Whether `error` is billfold's own error, with one of `codes` when any are named. */
export function isBillfoldError<C extends ErrorCode>(
  error: unknown,
  ...codes: C[]
): error is BillfoldError<C> {
  return error instanceof BillfoldError && (codes.length === 0 || codes.includes(error.code as C));
}

/** What the client tells its listeners. */
export interface BillfoldEvents {
  /** The session ended without the user signing out (idle or absolute timeout, revoked elsewhere). */
  'session-expired': { previous: SessionView };
  /** A provider ended its session; billfold has already dropped the credential. */
  'upstream-expired': { provider: ProviderId };
  /** A new session view was read (after sign-in, sign-out, a step-up, or `session()`). */
  session: { view: SessionView };
}

/** How to reach billfold. */
export interface BillfoldClientOptions {
  /** billfold's origin (or a dev server's that proxies to it), e.g. `https://billfold.example.com`. */
  baseUrl: string;
  /** The fetch to use; the global one by default. */
  fetch?: typeof fetch;
  /**
   * Where the session cookie lives. `browser` leaves it to the browser (httpOnly, never readable);
   * `memory` keeps it in this client, for Node, where fetch has no cookie jar. Default: `browser`
   * where there is a `document`, else `memory`.
   */
  cookies?: 'browser' | 'memory';
  /** How often a 429 or 503 billfold answered with Retry-After is retried after waiting (default 2). */
  maxRetries?: number;
  /** The longest Retry-After the client waits out; a longer one is thrown at once (default 30 s). */
  maxRetryDelayMs?: number;
  /** Waits before a retry; tests pass a clock of their own. */
  sleep?: (ms: number) => Promise<void>;
}

/** A relayed call: the method and what to send; billfold attaches the provider's auth. */
export interface RelayInit {
  method?: string;
  /** Sent as JSON. */
  json?: unknown;
  /** Sent as application/x-www-form-urlencoded (BILL v2). */
  form?: Record<string, string>;
  /** Query parameters; never credentials (billfold refuses those). */
  query?: Record<string, string>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** What a relayed call answered: the upstream's status, headers and body, untouched. */
export interface RelayAnswer<T = unknown> {
  status: number;
  headers: Headers;
  /** The parsed JSON body, the text when it is not JSON, or null when empty. */
  data: T;
}

type Listener<E extends keyof BillfoldEvents> = (event: BillfoldEvents[E]) => void;

interface CallInit {
  method: string;
  json?: unknown;
  form?: Record<string, string>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The session cookie as a client without a browser keeps it: what Set-Cookie said last, per name. */
function createCookieJar() {
  const cookies = new Map<string, string>();
  return {
    header: () => [...cookies].map(([name, value]) => `${name}=${value}`).join('; '),
    store(response: Response) {
      for (const line of response.headers.getSetCookie()) {
        const [pair = '', ...attributes] = line.split(';');
        const at = pair.indexOf('=');
        if (at <= 0) continue;
        const name = pair.slice(0, at).trim();
        const value = pair.slice(at + 1).trim();
        const ended = attributes.some((attribute) => {
          const [key = '', setting = ''] = attribute.split('=').map((part) => part.trim());
          if (key.toLowerCase() === 'max-age') return Number(setting) <= 0;
          if (key.toLowerCase() === 'expires') return Date.parse(setting) <= Date.now();
          return false;
        });
        if (ended || value === '') cookies.delete(name);
        else cookies.set(name, value);
      }
    },
  };
}

/** Reads an answer's body as JSON when it is JSON, else as text (null when empty). */
async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === '') return null;
  if (!/^application\/([\w.+-]+\+)?json/i.test(response.headers.get('content-type') ?? '')) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The client of billfold's HTTP API (/openapi.json), for SPAs in browsers and for Node. */
export type BillfoldClient = ReturnType<typeof createBillfoldClient>;

/**
 * A client for billfold. Every call sends `X-CSRF: 1` and the session cookie, never a token; errors
 * billfold answers itself throw `BillfoldError` (typed by code), relayed answers are returned as
 * the upstream gave them. A 429 or 503 with Retry-After is waited out and retried.
 */
export function createBillfoldClient(options: BillfoldClientOptions) {
  const base = new URL(options.baseUrl);
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const jar =
    (options.cookies ?? (typeof document === 'undefined' ? 'memory' : 'browser')) === 'memory'
      ? createCookieJar()
      : undefined;
  const maxRetries = options.maxRetries ?? 2;
  const maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
  const sleep = options.sleep ?? defaultSleep;
  const listeners = new Map<keyof BillfoldEvents, Set<Listener<never>>>();
  let lastView: SessionView | undefined;

  const emit = <E extends keyof BillfoldEvents>(event: E, detail: BillfoldEvents[E]) => {
    for (const listener of listeners.get(event) ?? []) (listener as Listener<E>)(detail);
  };

  /** Records a session view; one that is signed out right after a signed-in one means it expired. */
  const observe = (view: SessionView, signedOut = false): SessionView => {
    const previous = lastView;
    lastView = view;
    if (!signedOut && previous?.authenticated && !view.authenticated) emit('session-expired', { previous });
    emit('session', { view });
    return view;
  };

  /** Throws billfold's own error from an answer marked X-Billfold-Error, telling listeners of expiries. */
  const failWith = async (response: Response): Promise<never> => {
    const body = (await readBody(response)) as {
      error?: { code?: string; message?: string; provider?: ProviderId; requestId?: string };
    } | null;
    const marked = response.headers.get('x-billfold-error') ?? '';
    const code = (Object.hasOwn(ERROR_STATUS, marked) ? marked : 'internal_error') as ErrorCode;
    const retryAfter = Number(response.headers.get('retry-after'));
    const error = new BillfoldError(code, response.status, {
      ...(body?.error?.message !== undefined && { message: body.error.message }),
      ...(body?.error?.provider !== undefined && { provider: body.error.provider }),
      ...(body?.error?.requestId !== undefined && { requestId: body.error.requestId }),
      ...(Number.isFinite(retryAfter) && retryAfter >= 0 && { retryAfter }),
    });
    if (code === 'upstream_session_expired' && error.provider)
      emit('upstream-expired', { provider: error.provider });
    if (code === 'unauthenticated' && lastView?.authenticated) {
      const previous = lastView;
      lastView = { authenticated: false, providers: {} };
      emit('session-expired', { previous });
    }
    throw error;
  };

  /** Sends one call, waiting out Retry-After on billfold's own 429 and 503; relayed answers pass through. */
  const send = async (path: string, init: CallInit): Promise<Response> => {
    const url = new URL(path, base);
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers, 'x-csrf': '1' };
    let body: string | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    for (let attempt = 0; ; attempt++) {
      const cookie = jar?.header();
      const response = await fetchImpl(url, {
        method: init.method,
        headers: cookie ? { ...headers, cookie } : headers,
        ...(body !== undefined && { body }),
        credentials: 'include',
        ...(init.signal && { signal: init.signal }),
      });
      jar?.store(response);
      if (!response.headers.has('x-billfold-error')) return response;
      const retryAfter = Number(response.headers.get('retry-after'));
      const retryable =
        (response.status === 429 || response.status === 503) &&
        Number.isFinite(retryAfter) &&
        retryAfter * 1000 <= maxRetryDelayMs &&
        attempt < maxRetries;
      if (!retryable) return failWith(response);
      await response.body?.cancel();
      await sleep(Math.max(0, retryAfter) * 1000);
    }
  };

  const call = async <T>(path: string, init: CallInit): Promise<T> =>
    (await readBody(await send(path, init))) as T;
  const viewOf = async (path: string, init: CallInit, signedOut = false) =>
    observe(await call<SessionView>(path, init), signedOut);

  return {
    /** Listens to an event; returns the function that stops listening. */
    on<E extends keyof BillfoldEvents>(event: E, listener: Listener<E>): () => void {
      const set = listeners.get(event) ?? new Set();
      listeners.set(event, set);
      set.add(listener);
      return () => set.delete(listener);
    },

    /** The last session view this client read, if any. */
    get lastView(): SessionView | undefined {
      return lastView;
    },

    /** `GET /auth/session`; `touch` also extends the idle timer. */
    session(options: { touch?: boolean } = {}): Promise<SessionView> {
      return viewOf(options.touch ? '/auth/session?touch=true' : '/auth/session', { method: 'GET' });
    },

    /** Signs in to one provider, joining the current session when there is one. */
    signIn<P extends ProviderId>(provider: P, body: LoginBodies[P]): Promise<SessionView> {
      return viewOf(`/auth/${provider}/login`, { method: 'POST', json: body });
    },

    /** Signs out of one provider, or of every provider (ending the session) when none is named. */
    async signOut(provider?: ProviderId): Promise<SessionView> {
      if (provider) return viewOf(`/auth/${provider}/logout`, { method: 'POST' }, true);
      await send('/auth/logout', { method: 'POST' });
      // The signed-out view names the configured providers, so a page can offer their sign-ins.
      return viewOf('/auth/session', { method: 'GET' }, true);
    },

    /** BILL API v3's MFA step-up: asks BILL to send the signed-in user a code. */
    async requestBillMfaCode(): Promise<{ challengeId: string }> {
      return call<{ challengeId: string }>('/auth/bill/mfa/challenge', { method: 'POST' });
    },

    /** Completes the step-up with the code; the session becomes MFA-trusted. */
    verifyBillMfaCode(body: {
      challengeId: string;
      token: string;
      rememberMe?: boolean;
    }): Promise<SessionView> {
      return viewOf('/auth/bill/mfa/validate', { method: 'POST', json: body });
    },

    /** Switches the Billbora organization of the session. */
    switchBillboraOrganization(organizationId: string, supabaseToken?: string): Promise<SessionView> {
      return viewOf('/auth/billbora/organization', {
        method: 'POST',
        json: supabaseToken === undefined ? { organizationId } : { organizationId, supabaseToken },
      });
    },

    /** The caller's own sessions, the current one first. */
    async sessions(): Promise<SessionSummary[]> {
      return (await call<{ sessions: SessionSummary[] }>('/auth/sessions', { method: 'GET' })).sessions;
    },

    /** Ends one of the caller's sessions by its id from `sessions()`. */
    async revokeSession(id: string): Promise<void> {
      await send(`/auth/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
    },

    /** Ends every other session of the caller; resolves with how many ended. */
    async revokeOtherSessions(): Promise<number> {
      return (await call<{ revoked: number }>('/auth/sessions?others=true', { method: 'DELETE' })).revoked;
    },

    /**
     * Calls `path` below the provider's API through billfold's relay. Resolves with whatever the
     * provider answered (a provider's 404 is an answer); throws `BillfoldError` when billfold refused.
     */
    async relay<T = unknown>(
      provider: ProviderId,
      path: string,
      init: RelayInit = {},
    ): Promise<RelayAnswer<T>> {
      const search = init.query ? new URLSearchParams(init.query).toString() : '';
      const query = search === '' ? '' : `?${search}`;
      const response = await send(`/api/${provider}/${path.replace(/^\/+/, '')}${query}`, {
        method: init.method ?? 'GET',
        ...(init.json !== undefined && { json: init.json }),
        ...(init.form !== undefined && { form: init.form }),
        ...(init.headers && { headers: init.headers }),
        ...(init.signal && { signal: init.signal }),
      });
      return { status: response.status, headers: response.headers, data: (await readBody(response)) as T };
    },
  };
}
