import { IncomingMessage, type ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import helmet from 'helmet';

/** The headers every answer carries, written in one place for every listener and both roads. */
export interface SecurityHeaders {
  /** helmet's headers (HSTS included) and `cache-control: no-store`, computed once. */
  fixed: ReadonlyArray<readonly [string, string]>;
  /**
   * Writes them onto an answer before anything else does: the fixed headers and, on the listener
   * browsers call, `Vary: Origin` and CORS for a listed origin. (X-Request-Id comes with the request
   * context, which every listener begins first.)
   */
  write(req: IncomingMessage, res: ServerResponse): void;
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
  return {
    fixed,
    write(req, res) {
      for (const [name, value] of fixed) res.setHeader(name, value);
      if (!cors) return;
      res.setHeader('vary', 'Origin');
      cors(req, res);
    },
  };
}
