import type { IncomingMessage, ServerResponse } from 'node:http';

const AWAITING_CONTINUE = Symbol('awaiting 100-continue');
const UNMET_EXPECTATION = Symbol('unmet expectation');

type Marked = IncomingMessage & { [AWAITING_CONTINUE]?: boolean; [UNMET_EXPECTATION]?: boolean };

/** Marks a request whose `Expect: 100-continue` billfold answers itself, once its checks pass. */
export function markAwaitingContinue(req: IncomingMessage): void {
  (req as Marked)[AWAITING_CONTINUE] = true;
}

/** Marks a request with an `Expect` billfold cannot meet (anything but 100-continue): it is answered 417. */
export function markUnmetExpectation(req: IncomingMessage): void {
  (req as Marked)[UNMET_EXPECTATION] = true;
}

export function hasUnmetExpectation(req: IncomingMessage): boolean {
  return (req as Marked)[UNMET_EXPECTATION] === true;
}

/**
 * Tells a client waiting on `Expect: 100-continue` to send its body. Called once every check that
 * could refuse the request has passed, so a refused client never sends the body at all.
 */
export function continueIfExpected(req: IncomingMessage, res: ServerResponse): void {
  const marked = req as Marked;
  if (!marked[AWAITING_CONTINUE]) return;
  marked[AWAITING_CONTINUE] = false;
  if (!res.headersSent && !res.destroyed) res.writeContinue();
}
