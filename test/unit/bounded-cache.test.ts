import { describe, expect, it } from 'vitest';
import { memoize } from '../../src/bounded-cache.js';

/** A memo of `key.length` that counts how often it computes. */
function counted(maxEntries?: number, maxKeyLength?: number) {
  const computed: string[] = [];
  const length = memoize(
    (key) => {
      computed.push(key);
      return key.length;
    },
    maxEntries,
    maxKeyLength,
  );
  return { length, computed };
}

describe('memoize', () => {
  it('computes a key once, undefined results included', () => {
    const computed: string[] = [];
    const nothing = memoize<string | undefined>((key) => {
      computed.push(key);
      return undefined;
    });
    for (let i = 0; i < 3; i++) expect(nothing('a')).toBeUndefined();
    expect(computed).toEqual(['a']);
  });

  it('starts over once it holds maxEntries keys', () => {
    const { length, computed } = counted(2);
    for (const key of ['a', 'bb', 'a', 'ccc', 'a']) length(key);
    // `ccc` found the memo full: it started over with `ccc`, so `a` is computed again.
    expect(computed).toEqual(['a', 'bb', 'ccc', 'a']);
  });

  it('computes keys longer than maxKeyLength every time and keeps none of them', () => {
    const { length, computed } = counted(2, 3);
    const long = 'x'.repeat(4);
    expect([length('abc'), length(long), length(long), length('def'), length(long)]).toEqual([3, 4, 4, 3, 4]);
    // The long key took no room: `abc` and `def` are both still remembered.
    length('abc');
    length('def');
    expect(computed).toEqual(['abc', long, long, 'def', long]);
  });
});
