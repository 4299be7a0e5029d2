/**
 * Operations on stored objects that are not a plain save: server-side copy and move, bulk
 * delete (by names or by prefix) and one page of a listing, for `MediaStorage`.
 *
 * The overwrite rule is the write path's: with `overwrite: false` the destination name is won
 * first with a conditional PutObject of an empty placeholder (media-writes.ts' reservation),
 * then copied onto, because Ceph ignores If-None-Match on CopyObject and on
 * CompleteMultipartUpload. A lost race takes `alternativeName()`, as `save()` does.
 *
 * Pages are listed with ListObjects (v1) and a `Marker` (the last key seen), not v2's
 * continuation tokens: a cursor is then just a name, which a client cannot turn into a listing
 * outside its prefix, and the embedded server (s3rver, whose v2 tokens fail under OpenSSL 3)
 * pages too.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { unquote } from './abortable.js';
import { alternativeName, fromKey, normalizeName, normalizePrefix, toKey } from './key-normalizer.js';
import type { ListEntry, MediaContext } from './media-storage.types.js';
import { isPreconditionFailure, type MediaWrites, type Reservation } from './media-writes.js';
import { partSizeFor } from './multipart-upload.js';
import { codeOf, errorDetail, statusOf } from './s3-errors.js';
import { describeName, InvalidKeyError, ObjectNotFoundError, StorageError, StorageOperationError } from './storage.errors.js';
import { encodeKeyPath } from './url-signer.js';

/** Per-call options of `copy()` and `move()`. */
export interface CopyOptions {
  /** Overrides the storage's `overwrite` option for this call. */
  overwrite?: boolean;
  /** Cancels the copy; a multipart copy is aborted on the server, nothing is stored. */
  signal?: AbortSignal;
}

/**
 * `copy()`'s internal options: `expectedSourceETag` (unquoted) binds the copy to bytes the caller
 * checked before; another source ETag fails the copy with a 412 before anything is written, and
 * the ETag pins the copy itself (`x-amz-copy-source-if-match`).
 */
export interface InternalCopyOptions extends CopyOptions {
  expectedSourceETag?: string;
}

/** One name `deleteMany()` could not delete. */
export interface DeleteManyError {
  /** The name as it was passed in. */
  name: string;
  /** The S3 error code (`AccessDenied`, …), `'InvalidKey'` for a name refused before any request, or the storage error's code when a whole batch failed. */
  code: string;
  /** What went wrong, in words. */
  message: string;
}

/** What `deleteMany()` did. */
export interface DeleteManyResult {
  /** The names (as passed in) that no longer exist, missing ones included. */
  deleted: string[];
  errors: DeleteManyError[];
}

/** Options of the async-iterable `list()`: `limit` or `cursor` would make it one page. */
export interface ListOptions {
  signal?: AbortSignal;
  limit?: undefined;
  cursor?: undefined;
}

/** Options of one page of `list()` / `listPage()`. */
export interface ListPageOptions {
  /** Entries in the page, 1 to 1,000. @default 1000 */
  limit?: number;
  /** The `cursor` of the previous page; omitted for the first. */
  cursor?: string;
  signal?: AbortSignal;
}

/** One page of a listing. */
export interface ListPage {
  items: ListEntry[];
  /** Pass it back for the next page; `undefined` on the last page. Opaque, URL-safe. */
  cursor?: string;
}

/** A key DeleteObjects did not delete, and why. */
interface KeyFailure {
  key: string;
  code: string;
  message: string;
}

/** DeleteObjects takes at most 1,000 keys per request; a listing returns at most 1,000. */
const BATCH = 1000;

/** Copy, move, bulk delete and list pages for one media storage. */
export class ObjectOperations {
  constructor(
    private readonly context: MediaContext,
    private readonly writes: MediaWrites,
  ) {}

  /**
   * Copies `from` to `to` on the server and returns the name stored: `to`, or under
   * `overwrite: false` an alternative name when `to` is taken.
   */
  async copy(from: string, to: string, options: InternalCopyOptions = {}, operation = 'copy'): Promise<string> {
    const { options: media } = this.context;
    const sourceKey = this.key(from);
    const wanted = normalizeName(to);
    const targetKey = toKey(media.location, wanted);
    const overwrite = options.overwrite ?? media.overwrite;
    const source = await this.head(operation, sourceKey, options.signal);
    // Ceph ignores x-amz-copy-source-if-match on UploadPartCopy: the HEAD is compared too.
    if (options.expectedSourceETag !== undefined && unquote(source.ETag) !== options.expectedSourceETag) {
      throw new StorageOperationError(operation, `the source ${describeName(sourceKey)} changed after it was checked; nothing was copied`, {
        bucket: this.context.bucket,
        key: sourceKey,
        endpoint: this.context.endpointLabel,
        status: 412,
        s3Code: 'PreconditionFailed',
      });
    }
    if (overwrite && targetKey === sourceKey) return wanted;

    if (overwrite) {
      await this.copyObject(operation, source, sourceKey, targetKey, options.signal);
      return wanted;
    }
    // As in save(): the look spares a placeholder PUT that would fail; the reservation decides.
    const first = (await this.context.exists(wanted)) ? alternativeName(wanted, randomBytes) : wanted;
    const reservation = await this.writes.reserve(wanted, first, { contentType: source.ContentType, signal: options.signal }, operation);
    try {
      await this.copyObject(operation, source, sourceKey, reservation.key, options.signal, reservation);
      return reservation.name;
    } catch (error) {
      await this.writes.release(reservation);
      throw error;
    }
  }

  /**
   * `copy()`, then deletes `from`. When the copy succeeded but the delete failed, both objects
   * exist: the error says so and names the copy; nothing is rolled back, since a delete that
   * timed out may still have happened and removing the copy then would lose the object.
   */
  async move(from: string, to: string, options: CopyOptions = {}): Promise<string> {
    const sourceKey = this.key(from);
    const wanted = normalizeName(to);
    if (toKey(this.context.options.location, wanted) === sourceKey) {
      await this.head('move', sourceKey, options.signal);
      return wanted;
    }
    const stored = await this.copy(from, to, options, 'move');
    try {
      await this.context.call('move', sourceKey, undefined, (abortSignal) =>
        this.context.client.send(new DeleteObjectCommand({ Bucket: this.context.bucket, Key: sourceKey }), { abortSignal }),
      );
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return stored;
      const cause = error instanceof StorageError ? error.cause : error;
      throw new StorageOperationError(
        'move',
        `the object was copied to ${describeName(stored)} but deleting the source failed (${errorDetail(cause)}): both objects exist now; delete the source with delete() to finish the move`,
        { bucket: this.context.bucket, key: sourceKey, endpoint: this.context.endpointLabel, cause, status: statusOf(cause), s3Code: codeOf(cause) },
      );
    }
    return stored;
  }

  /** DeleteObjects in batches of 1,000; per-name failures are reported, never thrown. */
  async deleteMany(names: Iterable<string>, options: { signal?: AbortSignal } = {}): Promise<DeleteManyResult> {
    const deleted: string[] = [];
    const { byKey, errors } = namesByKey(names, (name) => this.key(name));
    const keys = [...byKey.keys()];
    for (let i = 0; i < keys.length; i += BATCH) {
      const batch = keys.slice(i, i + BATCH);
      const outcome = await this.deleteBatch('deleteMany', batch, options.signal);
      for (const key of outcome.deleted) deleted.push(...byKey.get(key)!);
      for (const failure of outcome.errors) {
        for (const name of byKey.get(failure.key) ?? [failure.key]) errors.push({ name, code: failure.code, message: failure.message });
      }
    }
    return { deleted, errors };
  }

  /**
   * Deletes every object under `prefix`, a page of 1,000 at a time (the next page is listed
   * while the current one is deleted, so at most two pages are held), and returns the count.
   * @throws InvalidKeyError for an empty prefix (it would be the whole location)
   * @throws StorageOperationError after the whole prefix was gone through, when some objects could not be deleted
   */
  async deletePrefix(prefix: string, options: { signal?: AbortSignal } = {}): Promise<number> {
    const normalized = normalizePrefix(prefix);
    if (normalized === '') {
      throw new InvalidKeyError(prefix, 'deletePrefix() needs a non-empty prefix; an empty one would delete everything in the storage location (delete the objects by name, or use a prefix such as "users/42/")');
    }
    const fullPrefix = toKey(this.context.options.location, normalized);
    let count = 0;
    let failed = 0;
    let firstFailure: KeyFailure | undefined;
    let page = await this.listKeys('deletePrefix', fullPrefix, undefined, options.signal);
    while (page.keys.length > 0) {
      // The next page is listed after this page's last key, so deleting this one does not move it.
      const next = page.truncated ? this.listKeys('deletePrefix', fullPrefix, page.keys.at(-1), options.signal) : undefined;
      next?.catch(() => undefined); // observed below; a failed delete must not leave it unhandled
      const outcome = await this.deleteBatch('deletePrefix', page.keys, options.signal);
      count += outcome.deleted.length;
      failed += outcome.errors.length;
      firstFailure ??= outcome.errors[0];
      // A page of which nothing could be deleted (no permission, server gone): the next ones would not fare better.
      const stopped = outcome.deleted.length === 0 && outcome.errors.length > 0;
      if (stopped || !next) break;
      page = await next;
    }
    if (firstFailure) {
      throw new StorageOperationError(
        'deletePrefix',
        `${count} objects were deleted, but ${failed} could not be (first: ${describeName(firstFailure.key)}, ${firstFailure.code}: ${firstFailure.message}); run it again to retry`,
        { bucket: this.context.bucket, key: fullPrefix, endpoint: this.context.endpointLabel, s3Code: firstFailure.code },
      );
    }
    return count;
  }

  /** One page of the listing under `prefix` (relative to the location), in key order. */
  async listPage(prefix: string | undefined, options: ListPageOptions = {}): Promise<ListPage> {
    const limit = options.limit ?? BATCH;
    if (!Number.isInteger(limit) || limit < 1 || limit > BATCH) {
      throw new StorageError(`list(): limit must be a whole number from 1 to ${BATCH} (got ${String(limit)})`);
    }
    const after = options.cursor === undefined ? undefined : toKey(this.context.options.location, decodeCursor(options.cursor));
    const page = await this.page(prefix, after, limit, options.signal);
    const last = page.items.at(-1);
    return { items: page.items, cursor: page.truncated && last ? encodeCursor(last.name) : undefined };
  }

  /**
   * Every object under `prefix`, in key order, a page of 1,000 at a time as the loop asks for
   * more. The next page starts after the last raw key, so keys written by other tools (not in
   * normal form) are neither skipped nor repeated.
   */
  async *entries(prefix: string | undefined, options: { signal?: AbortSignal } = {}): AsyncIterable<ListEntry> {
    let after: string | undefined;
    do {
      const page = await this.page(prefix, after, BATCH, options.signal);
      yield* page.items;
      after = page.truncated ? page.lastKey : undefined;
    } while (after !== undefined);
  }

  /**
   * One ListObjects page after the key `after`. ListObjects (v1) with a marker rather than
   * v2's continuation tokens: those fail on the embedded server (s3rver makes them with DES).
   */
  private async page(prefix: string | undefined, after: string | undefined, limit: number, signal: AbortSignal | undefined) {
    const location = this.context.options.location;
    const normalized = normalizePrefix(prefix);
    const fullPrefix = location ? `${location}/${normalized}` : normalized;
    const out = await this.context.call('list', undefined, signal, (abortSignal) =>
      this.context.client.send(
        new ListObjectsCommand({ Bucket: this.context.bucket, Prefix: fullPrefix || undefined, Marker: after, MaxKeys: limit }),
        { abortSignal },
      ),
    );
    const items: ListEntry[] = [];
    let lastKey: string | undefined;
    for (const item of out.Contents ?? []) {
      if (item.Key === undefined) continue;
      lastKey = item.Key;
      items.push({ name: fromKey(location, item.Key), size: item.Size ?? 0, lastModified: item.LastModified ?? new Date(0), etag: unquote(item.ETag) });
    }
    return { items, lastKey, truncated: out.IsTruncated === true && lastKey !== undefined };
  }

  private key(name: string): string {
    return toKey(this.context.options.location, normalizeName(name));
  }

  private head(operation: string, key: string, signal: AbortSignal | undefined): Promise<HeadObjectCommandOutput> {
    return this.context.call(operation, key, signal, (abortSignal) =>
      this.context.client.send(new HeadObjectCommand({ Bucket: this.context.bucket, Key: key }), { abortSignal }),
    );
  }

  /**
   * One CopyObject, or a multipart copy above `multipartCopyThreshold`. Both are pinned to the
   * source ETag read before (`x-amz-copy-source-if-match`: AWS fails a copy of a source
   * replaced meanwhile with 412) and, onto a reservation, carry `If-Match` with its ETag
   * (checked by AWS). One CopyObject copies one version on any server; a multipart copy is
   * also checked afterwards (see {@link checkSourceUnchanged}).
   */
  private async copyObject(operation: string, source: HeadObjectCommandOutput, sourceKey: string, key: string, signal: AbortSignal | undefined, reservation?: Reservation): Promise<void> {
    const { bucket, client, options } = this.context;
    const copySource = `${bucket}/${encodeKeyPath(sourceKey)}`;
    const size = source.ContentLength ?? 0;
    try {
      if (size <= options.multipartCopyThreshold) {
        await this.context.call(operation, key, signal, (abortSignal) =>
          client.send(
            new CopyObjectCommand({
              Bucket: bucket,
              Key: key,
              CopySource: copySource,
              CopySourceIfMatch: source.ETag,
              MetadataDirective: 'COPY',
              ACL: options.acl,
              IfMatch: reservation?.etag,
            }),
            { abortSignal },
          ),
        );
        return;
      }
      await this.multipartCopy(operation, source, copySource, key, signal, reservation);
      await this.checkSourceUnchanged(operation, source, sourceKey, key);
    } catch (error) {
      if (isPreconditionFailure(error)) {
        throw new StorageOperationError(
          operation,
          `the source ${describeName(sourceKey)} changed while it was copied${reservation ? ', or the reserved destination was replaced' : ''}; nothing was copied (try again)`,
          { bucket, key, endpoint: this.context.endpointLabel, cause: error instanceof StorageError ? error.cause : error, status: 412, s3Code: 'PreconditionFailed' },
        );
      }
      throw error;
    }
  }

  /**
   * UploadPartCopy in parts of `multipartCopyThreshold` bytes (grown to fit 10,000 parts),
   * `queueSize` at a time. The headers and metadata are the source's (a multipart upload does
   * not copy them itself). On any failure the upload is aborted, so no parts stay behind.
   */
  private async multipartCopy(operation: string, source: HeadObjectCommandOutput, copySource: string, key: string, signal: AbortSignal | undefined, reservation?: Reservation): Promise<void> {
    const { bucket, client, options } = this.context;
    const size = source.ContentLength ?? 0;
    const partSize = partSizeFor(size, options.multipartCopyThreshold);
    const created = await this.context.call(operation, key, signal, (abortSignal) =>
      client.send(
        new CreateMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          ContentType: source.ContentType,
          CacheControl: source.CacheControl,
          ContentDisposition: source.ContentDisposition,
          ContentEncoding: source.ContentEncoding,
          ContentLanguage: source.ContentLanguage,
          Metadata: source.Metadata,
          ACL: options.acl,
        }),
        { abortSignal },
      ),
    );
    const uploadId = created.UploadId!;
    // The first failure stops the other parts: none is started after it, those in flight are cancelled.
    const stop = new AbortController();
    const forward = (): void => stop.abort(signal?.reason);
    signal?.addEventListener('abort', forward, { once: true });
    if (signal?.aborted) forward();
    try {
      const count = Math.ceil(size / partSize);
      const parts: CompletedPart[] = new Array<CompletedPart>(count);
      let failure: unknown;
      let nextPart = 0;
      const worker = async (): Promise<void> => {
        for (let index = nextPart++; index < count && failure === undefined; index = nextPart++) {
          const start = index * partSize;
          const end = Math.min(size, start + partSize) - 1;
          try {
            const out = await this.context.call(operation, key, stop.signal, (abortSignal) =>
              client.send(
                new UploadPartCopyCommand({
                  Bucket: bucket,
                  Key: key,
                  UploadId: uploadId,
                  PartNumber: index + 1,
                  CopySource: copySource,
                  CopySourceRange: `bytes=${start}-${end}`,
                  CopySourceIfMatch: source.ETag,
                }),
                { abortSignal },
              ),
            );
            parts[index] = { PartNumber: index + 1, ETag: out.CopyPartResult?.ETag };
          } catch (error) {
            failure ??= error;
            stop.abort(error);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(options.queueSize, count) }, worker));
      if (failure !== undefined) throw failure;
      await this.context.call(operation, key, signal, (abortSignal) =>
        client.send(
          new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts }, IfMatch: reservation?.etag }),
          { abortSignal },
        ),
      );
    } catch (error) {
      // A fresh deadline and no caller signal: an abort must not cancel the clean-up.
      await this.context.call(operation, key, undefined, (abortSignal) =>
        client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), { abortSignal }),
      ).catch((abortError: unknown) => {
        this.context.logger.warn(
          `AbortMultipartUpload failed for upload id ${uploadId} of key ${describeName(key)} in bucket "${bucket}" (${errorDetail(abortError)}): its parts stay stored until the upload is aborted or a lifecycle rule (AbortIncompleteMultipartUpload) expires it`,
        );
      });
      throw error;
    } finally {
      signal?.removeEventListener('abort', forward);
    }
  }

  /**
   * Ceph ignores `x-amz-copy-source-if-match` on UploadPartCopy (checked 2026-12-01), so parts
   * of a source replaced mid-copy could come from two versions. The source's ETag and
   * Last-Modified are read again after Complete: if either changed (or the source is gone),
   * the copy is deleted and the copy fails, rather than leave an object nobody wrote.
   */
  private async checkSourceUnchanged(operation: string, before: HeadObjectCommandOutput, sourceKey: string, key: string): Promise<void> {
    const after = await this.head(operation, sourceKey, undefined).catch((error: unknown) => {
      if (error instanceof ObjectNotFoundError) return undefined;
      throw error;
    });
    if (after && after.ETag === before.ETag && after.LastModified?.getTime() === before.LastModified?.getTime()) return;
    await this.context.call(operation, key, undefined, (abortSignal) =>
      this.context.client.send(new DeleteObjectCommand({ Bucket: this.context.bucket, Key: key }), { abortSignal }),
    );
    throw new StorageOperationError(
      operation,
      `the source ${describeName(sourceKey)} was ${after ? 'replaced' : 'deleted'} while it was copied, so the copy (which could mix two versions) was deleted; nothing was copied (try again)`,
      { bucket: this.context.bucket, key, endpoint: this.context.endpointLabel, status: 412, s3Code: 'PreconditionFailed' },
    );
  }

  /** One DeleteObjects of up to 1,000 keys. A failed request becomes an error for each key, unless the caller aborted. */
  private async deleteBatch(operation: string, keys: string[], signal: AbortSignal | undefined): Promise<{ deleted: string[]; errors: KeyFailure[] }> {
    try {
      const out = await this.context.call(operation, undefined, signal, (abortSignal) =>
        this.context.client.send(
          new DeleteObjectsCommand({ Bucket: this.context.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: false } }),
          { abortSignal },
        ),
      );
      const failed = new Set<string>();
      const errors = (out.Errors ?? []).map((e) => {
        failed.add(e.Key ?? '');
        return { key: e.Key ?? '', code: e.Code ?? 'UnknownError', message: e.Message || `S3 answered ${e.Code ?? 'an error'} for this key` };
      });
      // Servers list the deleted keys; one that lists neither (a quiet answer) deleted all but the errors.
      const deleted = out.Deleted?.length ? out.Deleted.map((d) => d.Key ?? '').filter((k) => k !== '') : keys.filter((k) => !failed.has(k));
      return { deleted, errors };
    } catch (error) {
      if (signal?.aborted || !(error instanceof StorageError)) throw error;
      const code = error instanceof StorageOperationError ? (error.s3Code ?? error.code) : error.code;
      return { deleted: [], errors: keys.map((key) => ({ key, code, message: error.message })) };
    }
  }

  private async listKeys(operation: string, fullPrefix: string, after: string | undefined, signal: AbortSignal | undefined): Promise<{ keys: string[]; truncated: boolean }> {
    const out = await this.context.call(operation, undefined, signal, (abortSignal) =>
      this.context.client.send(new ListObjectsCommand({ Bucket: this.context.bucket, Prefix: fullPrefix, Marker: after, MaxKeys: BATCH }), { abortSignal }),
    );
    const keys = (out.Contents ?? []).flatMap((item) => (item.Key === undefined ? [] : [item.Key]));
    return { keys, truncated: Boolean(out.IsTruncated) && keys.length > 0 };
  }

}

/** A page cursor: the last name of the page, base64url (URL-safe, and opaque to API clients). */
export function encodeCursor(name: string): string {
  return Buffer.from(name, 'utf8').toString('base64url');
}

/** @throws InvalidKeyError for a cursor no page returned (it must decode to a valid name). */
export function decodeCursor(cursor: string): string {
  const name = /^[A-Za-z0-9_-]+$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  if (name === '' || encodeCursor(name) !== cursor) throw new InvalidKeyError(cursor, 'is not a cursor list() returned');
  return normalizeName(name);
}

/**
 * The names of a `deleteMany()` call by their key: names that normalize to one key share one
 * entry (each is reported as passed in), and a name breaking the key rules is an `InvalidKey`
 * error up front, sent nowhere. Shared with the test kit's `InMemoryStorage`.
 */
export function namesByKey(names: Iterable<string>, keyOf: (name: string) => string): { byKey: Map<string, string[]>; errors: DeleteManyError[] } {
  const byKey = new Map<string, string[]>();
  const errors: DeleteManyError[] = [];
  for (const name of names) {
    let key: string;
    try {
      key = keyOf(name);
    } catch (error) {
      if (!(error instanceof InvalidKeyError)) throw error;
      errors.push({ name: String(name), code: 'InvalidKey', message: error.message });
      continue;
    }
    const same = byKey.get(key);
    if (same) same.push(name);
    else byKey.set(key, [name]);
  }
  return { byKey, errors };
}
