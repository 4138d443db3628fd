/**
 * Settles with `operation`, or rejects with "session store timed out" once `ms` have passed, whichever
 * comes first; the timer is cleared either way. What bounds every store call.
 */
export async function withDeadline<T>(operation: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      operation,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('session store timed out')), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
