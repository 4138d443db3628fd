import type { Clock } from '../../src/clock.js';

/** A clock that moves only when a test advances it. */
export interface TestClock extends Clock {
  advance(ms: number): void;
  set(ms: number): void;
}

export function createTestClock(start = Date.parse('2026-11-23T08:00:00.000Z')): TestClock {
  let current = start;
  return {
    now: () => current,
    advance: (ms) => {
      current += ms;
    },
    set: (ms) => {
      current = ms;
    },
  };
}
