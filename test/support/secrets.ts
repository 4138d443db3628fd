import { receivedBodies } from './billfold-harness.js';

/** Every place a secret could leak to: the responses clients received and the lines billfold logged. */
export function leaksOf(secrets: readonly string[], logs: readonly string[]): string[] {
  const found: string[] = [];
  for (const secret of secrets) {
    if (receivedBodies.some((text) => text.includes(secret)))
      found.push(`response contains ${secret.slice(0, 6)}…`);
    if (logs.some((line) => line.includes(secret))) found.push(`log contains ${secret.slice(0, 6)}…`);
  }
  return found;
}
