import type { Answer } from '../support/billfold-harness.js';

/** Runs `run` and measures how long it took to answer. */
export async function timed<T>(run: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await run();
  return { result, ms: performance.now() - started };
}

/** Asks again every `intervalMs` until `check` gives a value, or throws `what` after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  { timeoutMs = 10_000, intervalMs = 100 } = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** `200`, or the status and billfold's error code: how answers are counted. */
export function outcomeOf(answer: Answer): string {
  const code = (answer.body as { error?: { code?: string } } | undefined)?.error?.code;
  return code ? `${answer.status} ${code}` : String(answer.status);
}

/** The session id inside a `name=s%3A<id>.<signature>` cookie pair, as the store keys it. */
export function sessionIdOf(cookie: string): string {
  return decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1))
    .slice(2)
    .split('.')[0]!;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
