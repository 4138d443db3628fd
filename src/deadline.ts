/**
 * Settles with `operation`, or rejects with "session store timed out" once `ms` have passed, whichever
 * comes first; the timer is cleared either way. What bounds every store call.
 */
export function withDeadline<T>(operation: Promise<T>, ms: number): Promise<T> {
  // One promise and one timer per call, rather than a race between two promises inside a third.
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('session store timed out')), ms);
    const stop = () => clearTimeout(timer);
    operation.then(stop, stop);
    operation.then(resolve, reject);
  });
}
