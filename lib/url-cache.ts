/**
 * Stable URLs for browser caching: a signed URL changes with every signature, so a browser
 * downloads the same bytes again on every page view. Within one cache window, signing time
 * is floored to the window's start and the expiry extended by the window, so every call
 * returns the byte-identical URL, signed once, and each URL handed out stays valid at least
 * the requested lifetime after it was handed out.
 *
 * Safe only for names whose bytes never change: a browser keeps what it fetched for the URL's
 * max-age, so an object replaced under the same name (`overwrite: true`, `createUpload({ name })`,
 * delete and save again) keeps showing the old bytes until then.
 */
import { StorageError } from './storage.errors.js';
import { MAX_URL_EXPIRES_IN } from './storage-options.validation.js';

/** Most URLs kept per storage. At about 1–2 KB each, the cache stays under ~20 MB. */
export const URL_CACHE_MAX_ENTRIES = 10_000;

/** A URL with the lifetime it was signed for. */
export interface MediaUrl {
  /** The URL to hand to the browser. */
  readonly url: string;
  /** When the signature stops working (absent for unsigned URLs). */
  readonly expiresAt?: Date;
  /**
   * Seconds a browser may keep what it fetched from `url` (the `max-age` the URL asks S3 to
   * answer with), so that for a fetch made in the window the URL was issued in, the cached
   * bytes never outlive the signature. Absent when no cache window applies.
   */
  readonly maxAge?: number;
}

/** The window containing `nowMs`: its start in ms and its end in ms. */
export function cacheWindowAt(nowMs: number, windowSeconds: number): { start: number; end: number } {
  const size = windowSeconds * 1000;
  const start = Math.floor(nowMs / size) * size;
  return { start, end: start + size };
}

/**
 * A bounded LRU of signed URLs (or promises of them), for one signing identity at a time: a
 * change of identity (rotated credentials) empties it, so a URL signed as one identity is
 * never handed out for another. Concurrent misses for one key share one signature.
 */
export class UrlCache<T> {
  private readonly entries = new Map<string, T | Promise<T>>();
  private identity: readonly [string, string] = ['', ''];

  constructor(readonly maxEntries: number = URL_CACHE_MAX_ENTRIES) {}

  /** Entries held now. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The cached value for `key` under the identity `(id, secondary)`, else `make()`'s, cached.
   * A rejected promise is dropped, so the next call signs again.
   */
  lookup<V extends T | Promise<T>>(id: string, secondary: string, key: string, make: () => V): V {
    if (this.identity[0] !== id || this.identity[1] !== secondary) {
      this.entries.clear();
      this.identity = [id, secondary];
    }
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      // Re-insert: Map keeps insertion order, so the first entry is the least recently used.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit as V;
    }
    const value = make();
    this.entries.set(key, value);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    if (value instanceof Promise) {
      value.catch(() => {
        if (this.entries.get(key) === value) this.entries.delete(key);
      });
    }
    return value;
  }
}

/**
 * The cache window for one call (`perCall`, else the storage's `configured` one), checked:
 * the extended expiry must stay within SigV4's 7 days. Shared by `MediaStorage` and the test
 * kit's `InMemoryStorage`, so both refuse the same calls with the same message.
 * @throws StorageError
 */
export function checkCacheWindow(operation: string, expiresIn: number, perCall: number | undefined, configured: number): number {
  const window = perCall ?? configured;
  if (window === 0 && perCall === undefined) return 0;
  if (!Number.isInteger(window) || window < 0) {
    throw new StorageError(`${operation}(): cacheWindow must be a whole number of seconds, 0 to turn it off (got ${String(window)})`);
  }
  if (window > 0 && expiresIn + window > MAX_URL_EXPIRES_IN) {
    throw new StorageError(
      `${operation}(): expiresIn + cacheWindow must be at most ${MAX_URL_EXPIRES_IN} seconds (got ${expiresIn} + ${window}); shorten one of the two`,
    );
  }
  return window;
}
