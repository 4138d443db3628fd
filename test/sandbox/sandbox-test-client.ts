import { startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/sandbox.js';
import { createTestClock, type TestClock } from '../support/test-clock.js';

/** A sandbox on an ephemeral loopback port, on a clock the test moves. */
export interface TestSandbox {
  sandbox: Sandbox;
  clock: TestClock;
  /** Calls the sandbox at `path` (relative to its origin) over real HTTP, redirects not followed. */
  call(method: string, path: string, options?: CallOptions): Promise<Answer>;
}

/** What a call sends: a JSON body, a form body, or raw text, and headers. */
export interface CallOptions {
  headers?: Record<string, string>;
  json?: unknown;
  form?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

/** One answer, read whole. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON body, or undefined. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read answers as loosely as a client would
  body: any;
}

/** Starts a sandbox for one test file. */
export async function startTestSandbox(
  options: Omit<SandboxOptions, 'clock'> & { clock?: TestClock } = {},
): Promise<TestSandbox> {
  const clock = options.clock ?? createTestClock();
  const sandbox = await startSandbox({ ...options, clock });
  return {
    sandbox,
    clock,
    call: (method, path, callOptions) => call(`${sandbox.url}${path}`, method, callOptions),
  };
}

/** Sends one request and reads the answer whole. */
export async function call(url: string, method: string, options: CallOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  }
  if (options.form !== undefined) {
    body = new URLSearchParams(options.form).toString();
    headers['content-type'] ??= 'application/x-www-form-urlencoded';
  }
  const response = await fetch(url, {
    method,
    headers,
    body: body ?? null,
    redirect: 'manual',
    signal: options.signal ?? null,
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, text, body: parsed };
}

/** Waits (without a fixed sleep) until `condition` holds, for server-side effects of a closed socket. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 2000): Promise<void> {
  const started = performance.now();
  while (!(await condition())) {
    if (performance.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Minutes in milliseconds, for readable clock moves. */
export const minutes = (count: number): number => count * 60_000;
