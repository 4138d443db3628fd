/**
 * A memo of a pure function for hot paths, bounded in size: when full it starts over, which keeps
 * memory flat without the bookkeeping of an LRU. Only for functions whose result depends on the key
 * alone (and never on time). Keys longer than `maxKeyLength` are computed every time, never kept, so
 * a caller sending long keys cannot fill the memo with them.
 */
export function memoize<V>(
  compute: (key: string) => V,
  maxEntries = 10_000,
  maxKeyLength = Infinity,
): (key: string) => V {
  const cache = new Map<string, V>();
  return (key) => {
    if (key.length > maxKeyLength) return compute(key);
    let value = cache.get(key);
    if (value === undefined && !cache.has(key)) {
      if (cache.size >= maxEntries) cache.clear();
      value = compute(key);
      cache.set(key, value);
    }
    return value as V;
  };
}
