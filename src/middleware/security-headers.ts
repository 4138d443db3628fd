import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

/** helmet's headers, as Express middleware and as a fixed list for the relay's lean road. */
export interface SecurityHeaders {
  middleware: ReturnType<typeof helmet>;
  /** The same headers helmet sets, computed once, written by the relay without running middleware. */
  fixed: ReadonlyArray<readonly [string, string]>;
}

export function createSecurityHeaders(): SecurityHeaders {
  // HSTS on every response, errors and plain-HTTP probes included (browsers ignore it over HTTP).
  const middleware = helmet({ strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true } });
  const fixed: Array<readonly [string, string]> = [];
  const recorder = {
    setHeader: (name: string, value: string | number) => void fixed.push([name.toLowerCase(), String(value)]),
    removeHeader: () => undefined,
  };
  middleware({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw new Error('helmet could not compute its headers', { cause: error });
  });
  return { middleware, fixed };
}
