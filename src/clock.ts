/** The source of time for every expiry, idle timer and renewal decision; tests pass a clock they advance. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
