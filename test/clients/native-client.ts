import http from 'node:http';

/** One stored cookie, as a native cookie store (HTTPCookieStorage, an OkHttp CookieJar) keeps it. */
export interface StoredCookie {
  name: string;
  value: string;
  path: string;
  secure: boolean;
  httpOnly: boolean;
  sameSite: string | undefined;
  /** Epoch milliseconds; undefined for a session cookie (kept until the app's store is cleared). */
  expires: number | undefined;
}

/** An answer read whole. */
export interface NativeAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read as loosely as an app would
  body: any;
}

/**
 * A native-app HTTP client: a host-only cookie jar that honours Set-Cookie attributes the way
 * RFC 6265 clients do, and exactly the headers the app chooses. Unlike a browser it sends no
 * `Origin`, `Referer` or `Sec-Fetch-*`, which is what billfold sees from iOS and Android apps.
 */
export class NativeClient {
  readonly jar = new Map<string, StoredCookie>();

  constructor(
    private readonly origin: string,
    private readonly userAgent = 'BillfoldSample/1.0 (iPhone; iOS 18.0) CFNetwork/1.0 Darwin/24.0',
  ) {}

  async request(
    method: string,
    path: string,
    options: { json?: unknown; headers?: Record<string, string> } = {},
  ): Promise<NativeAnswer> {
    const url = new URL(path, this.origin);
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': this.userAgent,
      'x-csrf': '1',
      ...options.headers,
    };
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    const body = options.json === undefined ? undefined : JSON.stringify(options.json);
    if (body !== undefined) headers['content-type'] = 'application/json';
    const answer = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }>(
      (resolve, reject) => {
        const req = http.request(url, { method, headers, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      },
    );
    for (const line of answer.headers['set-cookie'] ?? []) this.store(line, url);
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.text);
    } catch {
      parsed = undefined;
    }
    return { ...answer, body: parsed };
  }

  get(path: string, headers?: Record<string, string>): Promise<NativeAnswer> {
    return this.request('GET', path, headers ? { headers } : {});
  }

  post(path: string, json?: unknown): Promise<NativeAnswer> {
    return this.request('POST', path, json === undefined ? {} : { json });
  }

  private cookieHeader(url: URL): string {
    const now = Date.now();
    const pairs: string[] = [];
    for (const [name, cookie] of this.jar) {
      if (cookie.expires !== undefined && cookie.expires <= now) {
        this.jar.delete(name);
        continue;
      }
      const pathMatches =
        url.pathname === cookie.path ||
        url.pathname.startsWith(cookie.path.endsWith('/') ? cookie.path : `${cookie.path}/`);
      if (pathMatches && (!cookie.secure || url.protocol === 'https:')) pairs.push(`${name}=${cookie.value}`);
    }
    return pairs.join('; ');
  }

  private store(line: string, url: URL): void {
    const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
    const separator = pair.indexOf('=');
    if (separator < 1) return;
    const cookie: StoredCookie = {
      name: pair.slice(0, separator),
      value: pair.slice(separator + 1),
      path: '/',
      secure: false,
      httpOnly: false,
      sameSite: undefined,
      expires: undefined,
    };
    let maxAge: number | undefined;
    for (const attribute of attributes) {
      const [key = '', value = ''] = attribute.split('=', 2);
      switch (key.toLowerCase()) {
        case 'path':
          cookie.path = value.startsWith('/') ? value : '/';
          break;
        case 'secure':
          cookie.secure = true;
          break;
        case 'httponly':
          cookie.httpOnly = true;
          break;
        case 'samesite':
          cookie.sameSite = value;
          break;
        case 'expires':
          cookie.expires = Date.parse(value);
          break;
        case 'max-age':
          maxAge = Number(value);
          break;
      }
    }
    // Max-Age wins over Expires, as RFC 6265 says.
    if (maxAge !== undefined && Number.isFinite(maxAge)) cookie.expires = Date.now() + maxAge * 1000;
    if (cookie.secure && url.protocol !== 'https:') return;
    if (cookie.expires !== undefined && cookie.expires <= Date.now()) this.jar.delete(cookie.name);
    else this.jar.set(cookie.name, cookie);
  }
}
