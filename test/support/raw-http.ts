import net from 'node:net';
import { receivedBodies } from './billfold-harness.js';

/** One HTTP/1.1 answer as it came off the socket, before any client could normalise it. */
export interface RawAnswer {
  status: number;
  /** Header names lower-cased; a repeated header keeps every value. */
  headers: Record<string, string[]>;
  text: string;
  /** The parsed body (undefined when it is not JSON). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read answers as loosely as a client would
  body: any;
  /** The first value of a header, or undefined. */
  header(name: string): string | undefined;
}

/** Everything one connection produced: every answer in order, and the raw bytes. */
export interface RawExchange {
  answers: RawAnswer[];
  raw: string;
}

/** The answers in `raw`, parsed in order; `heads` lists which requests were HEAD (no body follows). */
function parseAnswers(raw: Buffer, heads: readonly boolean[]): RawAnswer[] {
  const answers: RawAnswer[] = [];
  let offset = 0;
  while (offset < raw.length) {
    const end = raw.indexOf('\r\n\r\n', offset);
    if (end === -1) break;
    const [statusLine = '', ...lines] = raw.subarray(offset, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
    const headers: Record<string, string[]> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      (headers[name] ??= []).push(line.slice(colon + 1).trim());
    }
    let bodyStart = end + 4;
    let body: Buffer = Buffer.alloc(0);
    const informational = status >= 100 && status < 200;
    const bodiless = informational || status === 204 || status === 304 || heads[answers.length] === true;
    if (!bodiless && headers['transfer-encoding']?.[0]?.toLowerCase() === 'chunked') {
      const chunks: Buffer[] = [];
      for (;;) {
        const lineEnd = raw.indexOf('\r\n', bodyStart);
        if (lineEnd === -1) break;
        const size = parseInt(raw.subarray(bodyStart, lineEnd).toString('latin1'), 16);
        bodyStart = lineEnd + 2;
        if (!(size > 0)) {
          bodyStart += 2;
          break;
        }
        chunks.push(raw.subarray(bodyStart, bodyStart + size));
        bodyStart += size + 2;
      }
      body = Buffer.concat(chunks);
    } else if (!bodiless) {
      const length = headers['content-length'] ? Number(headers['content-length'][0]) : undefined;
      const bodyEnd = length === undefined ? raw.length : bodyStart + length;
      body = raw.subarray(bodyStart, bodyEnd);
      bodyStart = bodyEnd;
    }
    const text = body.toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!informational)
      answers.push({ status, headers, text, body: parsed, header: (name) => headers[name]?.[0] });
    offset = bodyStart;
  }
  return answers;
}

/**
 * Writes `request` byte for byte to billfold's socket and collects what comes back until the server
 * closes the connection or `timeoutMs` passes. Every answer is recorded for the leakage checks.
 */
export async function exchangeRaw(
  origin: string,
  request: string | Buffer | readonly (string | Buffer)[],
  options: { timeoutMs?: number; heads?: readonly boolean[]; pauseMs?: number } = {},
): Promise<RawExchange> {
  const { hostname, port } = new URL(origin);
  const socket = net.connect({ host: hostname, port: Number(port) });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.timeoutMs ?? 3000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on('error', () => undefined);
  });
  const parts = typeof request === 'string' || Buffer.isBuffer(request) ? [request] : request;
  for (const [index, part] of parts.entries()) {
    if (index > 0 && options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    if (!socket.destroyed) socket.write(part);
  }
  await done;
  socket.destroy();
  const raw = Buffer.concat(chunks);
  receivedBodies.push(raw.toString('utf8'));
  return { answers: parseAnswers(raw, options.heads ?? []), raw: raw.toString('latin1') };
}

/** A request head and body, for `sendRaw`. Host and `Connection: close` are added unless given. */
export interface RawRequest {
  method?: string;
  target: string;
  /** Header lines in order, exactly as written (duplicates and odd spellings kept). */
  headers?: readonly (readonly [string, string])[];
  body?: string;
  /** Adds `Content-Length` for `body` (default true). */
  contentLength?: boolean;
  /** Adds `Connection: close` (default true). */
  close?: boolean;
}

/** The bytes of `request`, exactly as `sendRaw` writes them. */
export function formatRaw(origin: string, request: RawRequest): string {
  const lines = [`${request.method ?? 'GET'} ${request.target} HTTP/1.1`];
  const given = new Set((request.headers ?? []).map(([name]) => name.toLowerCase()));
  if (!given.has('host')) lines.push(`Host: ${new URL(origin).host}`);
  for (const [name, value] of request.headers ?? []) lines.push(`${name}: ${value}`);
  if (request.body !== undefined && request.contentLength !== false && !given.has('content-length'))
    lines.push(`Content-Length: ${Buffer.byteLength(request.body)}`);
  if (request.close !== false && !given.has('connection')) lines.push('Connection: close');
  return `${lines.join('\r\n')}\r\n\r\n${request.body ?? ''}`;
}

/**
 * Sends one request over a raw socket and returns its answer, or a status-0 answer when the server
 * closed the connection without answering (what Node does with CONNECT when nobody handles it).
 */
export async function sendRaw(
  origin: string,
  request: RawRequest,
  options: { timeoutMs?: number } = {},
): Promise<RawAnswer> {
  const { answers } = await exchangeRaw(origin, formatRaw(origin, request), {
    ...options,
    heads: [request.method === 'HEAD'],
  });
  return answers[0] ?? { status: 0, headers: {}, text: '', body: undefined, header: () => undefined };
}
