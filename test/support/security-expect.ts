import signature from 'cookie-signature';
import { expect } from 'vitest';
import type { Answer } from './billfold-harness.js';
import type { RawAnswer } from './raw-http.js';
import type { ProviderId } from '../../src/upstream/provider-id.js';
import { PROVIDER_IDS } from '../../src/upstream/provider-modules.js';

/** A header of an answer from either the cookie client or a raw socket. */
export function headerOf(answer: Answer | RawAnswer, name: string): string | undefined {
  return 'header' in answer ? answer.header(name) : (answer.headers.get(name) ?? undefined);
}

/** Asserts billfold's documented error shape (`ErrorBody` in /openapi.json), with nothing internal in it. */
export function expectDocumentedError(answer: Answer | RawAnswer, status: number, code: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
  expect(answer.body.error.requestId).toBe(headerOf(answer, 'x-request-id'));
  // The mark an upstream cannot forge: billfold's own errors carry it, relayed answers never do.
  expect(headerOf(answer, 'x-billfold-error')).toBe(code);
  expect(headerOf(answer, 'content-type')).toMatch(/^application\/json/);
  expect(headerOf(answer, 'cache-control')).toBe('no-store');
  expect(headerOf(answer, 'strict-transport-security')).toMatch(/max-age=\d+/);
  expect(answer.text).not.toMatch(
    /at .*\.(ts|js):\d+|node_modules|undici|express|body-parser|zod|URIError|127\.0\.0\.1:\d+/i,
  );
}

/** Asserts a 4xx answer that is not a 500: either billfold's documented shape or Node's own parser refusal. */
export function expectClientRefusal(answer: Answer | RawAnswer, allowed: readonly number[]): void {
  expect(allowed).toContain(answer.status);
  if (answer.body?.error) expectDocumentedError(answer, answer.status, answer.body.error.code);
}

/** The session id inside a `name=s%3A<id>.<signature>` cookie pair. */
export function sessionIdOf(cookie: string | undefined): string {
  const value = decodeURIComponent((cookie ?? '').split('=').slice(1).join('='));
  if (!value.startsWith('s:')) throw new Error(`not a signed session cookie: ${cookie}`);
  return value.slice(2, value.lastIndexOf('.'));
}

/** A cookie pair carrying `sessionId` signed with `secret`, as express-session writes it. */
export function signedCookie(name: string, sessionId: string, secret: string): string {
  return `${name}=${encodeURIComponent(`s:${signature.sign(sessionId, secret)}`)}`;
}

/** Resolves once `condition` holds, checking every 10 ms; fails after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The signed-out session view: the configured providers (all four unless named), none connected. */
export function signedOut(providers: readonly ProviderId[] = PROVIDER_IDS) {
  return {
    authenticated: false,
    providers: Object.fromEntries(providers.map((id) => [id, { connected: false }])),
  };
}
