import { BasicPooledClientSideCache } from 'redis';

type HandleCache = BasicPooledClientSideCache['handleCache'];

/**
 * node-redis's client-side cache, held to billfold's rules for session records:
 *
 * - Only session records are cached: a GET of one key under `prefix`. Every other read (locks,
 *   counters, indexes) goes to Redis as before.
 * - Tracking is `BCAST PREFIX <prefix> NOLOOP`: Redis pushes an invalidation for every session key any
 *   other connection changes (logout, revocation, renewal, a provider disconnect, expiry, eviction),
 *   on every node of a cluster, and keeps no per-key table. Changes made on this connection are not
 *   pushed back; the store calls `forget` once each of its own writes has an answer.
 * - The whole cache goes when any tracking connection drops (an error, `CLIENT KILL`, a Redis
 *   restart; node-redis's `onError`), and nothing is served from it while the connection is not ready:
 *   invalidations sent while it was down are lost, so what was cached before cannot be trusted.
 *   node-redis sends `CLIENT TRACKING` again in its handshake, before the client is ready.
 *
 * A record read from the cache is still opened and checked against its own deadlines on every use,
 * so an idle or absolute timeout ends a session on time whether or not Redis has expired its key yet.
 */
export class SessionRecordCache extends BasicPooledClientSideCache {
  readonly #prefix: string;
  readonly #maxEntries: number;
  /** node-redis's entry name for each key's GET, as it stored it (a pure function of the key). */
  readonly #entryNames = new Map<string, string>();
  #ready: () => boolean = () => false;

  constructor(prefix: string, maxEntries: number) {
    super({ maxEntries, evictPolicy: 'LRU' });
    this.#prefix = prefix;
    this.#maxEntries = maxEntries;
  }

  /** How to tell that every tracking connection is up (on a cluster, every master's). */
  watch(ready: () => boolean): void {
    this.#ready = ready;
  }

  /**
   * The cached value of `key`, read synchronously from node-redis's own entry, or undefined (not
   * cached, still loading, invalidated, or a tracking connection down): then the read goes through
   * node-redis as usual. A hit costs no command, no promise and no copy.
   */
  peek(key: string): string | undefined {
    const name = this.#entryNames.get(key);
    if (name === undefined || !this.#ready()) return undefined;
    const entry = this.get(name);
    if (entry === undefined || !('value' in entry)) return undefined;
    const { value } = entry as { value: unknown };
    if (typeof value !== 'string') return undefined;
    this.recordHits(1);
    return value;
  }

  override set(...args: Parameters<BasicPooledClientSideCache['set']>): void {
    super.set(...args);
    const [name, , keys] = args;
    const key = keys[0];
    if (keys.length !== 1 || typeof key !== 'string' || this.#entryNames.get(key) === name) return;
    if (this.#entryNames.size >= 2 * this.#maxEntries) this.#entryNames.clear();
    this.#entryNames.set(key, name);
  }

  override trackingOn(): string[] {
    return ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', this.#prefix, 'NOLOOP'];
  }

  override handleCache(...args: Parameters<HandleCache>): ReturnType<HandleCache> {
    const [client, parser, send, transformReply, typeMapping] = args;
    const { keys } = parser;
    const key = keys[0];
    if (keys.length === 1 && typeof key === 'string' && key.startsWith(this.#prefix) && client.isReady)
      return super.handleCache(client, parser, send, transformReply, typeMapping);
    return send().then((reply): unknown =>
      transformReply ? transformReply(reply, parser.preserve, typeMapping) : reply,
    );
  }

  /**
   * Drops `key` after a write on this connection has answered (or failed: it may still have landed).
   * A read still in flight for it is not kept either, so no read that began before the write can
   * put the old value back.
   */
  forget(key: string): void {
    this.invalidate(key);
  }
}
