import { IncomingMessage, type ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import helmet from 'helmet';

/** The headers every answer carries, written in one place for every listener and both roads. */
export interface SecurityHeaders {
  /** helmet's headers (HSTS included) and `cache-control: no-store`, computed once. */
  fixed: ReadonlyArray<readonly [string, string]>;
  /**
   * Writes them onto an answer before anything else does: X-Request-Id, the fixed headers and, on
   * the listener browsers call, `Vary: Origin` and CORS for a listed origin.
   */
  write(req: IncomingMessage, res: ServerResponse, requestId: string): void;
  /**
   * The same headers as a flat `[name, value, ...]` list, after `fixed` (which the caller holds,
   * overridden as it needs), for an answer that sets nothing before one `writeHead`: the relay's.
   */
  perRequest(req: IncomingMessage, requestId: string): string[];
}

/** Records what `cors` (through the `vary` package) sets, instead of setting it on an answer. */
class HeaderRecorder {
  readonly names: string[] = [];
  readonly values: string[] = [];
  getHeader(name: string): string | undefined {
    const at = this.names.indexOf(name.toLowerCase());
    return at === -1 ? undefined : this.values[at];
  }
  setHeader(name: string, value: string | number): void {
    const lower = name.toLowerCase();
    const at = this.names.indexOf(lower);
    if (at === -1) {
      this.names.push(lower);
      this.values.push(String(value));
    } else this.values[at] = String(value);
  }
}

/** `cors`: CORS headers for the public listener; operator listeners have none. */
export function createSecurityHeaders(
  options: { cors?: (req: IncomingMessage, res: ServerResponse) => void } = {},
): SecurityHeaders {
  // HSTS on every response, errors and plain-HTTP probes included (browsers ignore it over HTTP).
  const middleware = helmet({ strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true } });
  const fixed: Array<readonly [string, string]> = [];
  const recorder = {
    setHeader: (name: string, value: string | number) => void fixed.push([name.toLowerCase(), String(value)]),
    removeHeader: () => undefined,
  };
  // helmet's answer does not depend on the request, so it is computed once rather than per request.
  middleware(new IncomingMessage(new Socket()), recorder as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw new Error('helmet could not compute its headers', { cause: error });
  });
  fixed.push(['cache-control', 'no-store']);
  const { cors } = options;
  const perRequest = (req: IncomingMessage, requestId: string): string[] => {
    if (!cors) return ['x-request-id', requestId];
    // `cors` writes nothing for a request without an Origin (its origin callback says no first).
    if (req.headers.origin === undefined) return ['x-request-id', requestId, 'vary', 'Origin'];
    const corsHeaders = new HeaderRecorder();
    corsHeaders.setHeader('vary', 'Origin');
    cors(req, corsHeaders as unknown as ServerResponse);
    const list = ['x-request-id', requestId];
    for (let i = 0; i < corsHeaders.names.length; i++) {
      list.push(corsHeaders.names[i] ?? '', corsHeaders.values[i] ?? '');
    }
    return list;
  };
  return {
    fixed,
    write(req, res, requestId) {
      for (const [name, value] of fixed) res.setHeader(name, value);
      const list = perRequest(req, requestId);
      for (let i = 0; i < list.length; i += 2) res.setHeader(list[i] ?? '', list[i + 1] ?? '');
    },
    perRequest,
  };
}
