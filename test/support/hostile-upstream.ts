import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request as the hostile upstream received it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Whether the whole body arrived. */
  complete: boolean;
  /** Whether the request is over: answered, or abandoned by billfold (then `complete` stays false). */
  closed: boolean;
}

/** What the hostile upstream answers to a request. */
export interface HostileAnswer {
  status?: number;
  headers?: OutgoingHttpHeaders;
  /** Sent as is: a Buffer keeps bytes a string could not hold. */
  body?: string | Buffer;
  /** Waits this long before the answer's headers (a slow upstream). */
  delayMs?: number;
  /** Sends the body one byte at a time, this many ms apart (an upstream that trickles). */
  trickleMs?: number;
}

/**
 * A BillingPlatform look-alike on loopback for answers the emulators do not give: `POST <base>/login`
 * is answered by `login` (by default it signs in as `sessionId`), every other request by `answer`
 * (a hostile upstream's headers, a slow or broken answer). Used as `BILLINGPLATFORM_BASE_URL=<url>/bp`.
 */
export interface HostileUpstream {
  url: string;
  baseUrl: string;
  sessionId: string;
  requests: SeenRequest[];
  /** How `POST <base>/login` is answered (default: signed in as `sessionId`). */
  login: (request: SeenRequest) => HostileAnswer;
  answer: (request: SeenRequest) => HostileAnswer | undefined;
  /** Connections billfold holds open to this upstream right now (idle pooled ones included). */
  openSockets(): number;
  /** Requests whose answer is neither finished nor cut off: what a stuck relay leaves behind. */
  inFlight(): number;
  /** Answers that were cut off: their connection closed before the whole body was written. */
  abandonedAnswers(): number;
  close(): Promise<void>;
}

export async function startHostileUpstream(
  sessionId = 'hostile-upstream-session-0123456789',
): Promise<HostileUpstream> {
  const upstream: HostileUpstream = {
    url: '',
    baseUrl: '',
    sessionId,
    requests: [],
    login: () => ({
      body: JSON.stringify({ loginResponse: [{ SessionID: sessionId, ErrorCode: '0', ErrorText: [] }] }),
    }),
    answer: () => ({ body: '{}' }),
    openSockets: () => sockets.size,
    inFlight: () => inFlight,
    abandonedAnswers: () => abandoned,
    close: () => Promise.resolve(),
  };
  const sockets = new Set<Socket>();
  let abandoned = 0;
  let inFlight = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    const seen: SeenRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: '',
      complete: false,
      closed: false,
    };
    upstream.requests.push(seen);
    inFlight++;
    res.once('close', () => inFlight--);
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => undefined);
    req.on('close', () => (seen.closed = true));
    req.on('end', () => {
      seen.complete = true;
      seen.body = Buffer.concat(chunks).toString();
      const login = seen.method === 'POST' && seen.url === '/bp/login';
      const answer = login ? upstream.login(seen) : upstream.answer(seen);
      if (!answer) return; // never answered
      const send = () => {
        if (res.destroyed) return;
        res.on('close', () => {
          if (!res.writableFinished) abandoned++;
        });
        res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers });
        const body = Buffer.from(answer.body ?? '');
        if (!answer.trickleMs) {
          res.end(body);
          return;
        }
        let sent = 0;
        const timer = setInterval(() => {
          if (res.destroyed || sent >= body.length) {
            clearInterval(timer);
            if (!res.destroyed) res.end();
            return;
          }
          res.write(body.subarray(sent, ++sent));
        }, answer.trickleMs);
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  upstream.baseUrl = `${upstream.url}/bp`;
  upstream.close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return upstream;
}
