/**
 * Reading a stream under an AbortSignal. A stalled source must not hold an aborted upload
 * open, and a long-lived abort promise raced against every read would keep each chunk alive
 * (its reactions pile up), so each read gets its own short-lived listener.
 */

/** The iterator's next result, or a rejection with the signal's reason once it aborts. */
export function nextOrAbort<T>(iterator: AsyncIterator<T>, signal: AbortSignal | undefined): Promise<IteratorResult<T>> {
  if (!signal) return iterator.next();
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    iterator.next().then(
      (result) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** An S3 ETag without its quotes. */
export function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^"|"$/g, '');
}
