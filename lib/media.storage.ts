/**
 * `MediaStorage`: user uploads (avatars and anything else) in one bucket, private by
 * default, with signed URLs for the browser.
 *
 * A facade: saves live in media-writes.ts, URLs and cookies in media-urls.ts, direct browser
 * uploads in direct-uploads.ts, copy/move/bulk deletes/list pages in object-operations.ts;
 * reads, stat, delete and the list iterator are single requests kept here.
 */
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Logger } from '@nestjs/common';
import { addAbortSignal, Readable } from 'node:stream';
import { unquote } from './abortable.js';
import type { CloudFrontCookies } from './cloudfront-signer.js';
import {
  DirectMultipart,
  type CompletedPart,
  type CreateMultipartUploadOptions,
  type MultipartCallOptions,
  type MultipartUploadHandle,
  type SignedPart,
  type SignPartsOptions,
  type UploadedPart,
} from './direct-multipart.js';
import { DirectUploads, type CreateUploadOptions, type DirectUpload, type UploadExpectations } from './direct-uploads.js';
import { normalizeName, toKey } from './key-normalizer.js';
import type { CookieOptions, ListEntry, MediaContext, ObjectStat, SaveOptions, StorageBody, StoredObject, UrlOptions } from './media-storage.types.js';
import { MediaUrls } from './media-urls.js';
import { MediaWrites } from './media-writes.js';
import { ObjectOperations, type CopyOptions, type DeleteManyResult, type ListOptions, type ListPage, type ListPageOptions } from './object-operations.js';
import type { MediaStorageApi, ReadOptions } from './media-storage.api.js';
import { describeEndpoint } from './s3-client.factory.js';
import { toStorageError } from './s3-errors.js';
import { ObjectNotFoundError, StorageError, StorageTimeoutError } from './storage.errors.js';
import type { ResolvedMediaOptions } from './storage-options.validation.js';
import type { MediaUrl } from './url-cache.js';
import type { UrlSigner } from './url-signer.js';

export type { StorageBody, SaveOptions, StoredObject, ObjectStat, ListEntry, UrlOptions, CookieOptions } from './media-storage.types.js';
export type { CreateUploadOptions, DirectUpload, UploadExpectations } from './direct-uploads.js';
export type {
  CompletedPart,
  CreateMultipartUploadOptions,
  MultipartCallOptions,
  MultipartUploadHandle,
  SignedPart,
  SignPartsOptions,
  UploadedPart,
} from './direct-multipart.js';
export { RESERVATION_METADATA } from './media-writes.js';
export type { CopyOptions, DeleteManyError, DeleteManyResult, ListOptions, ListPage, ListPageOptions } from './object-operations.js';

/**
 * Stores and serves user media. Inject it; the module builds it from `media` options.
 *
 * Names are relative to `location` and normalized in one place (see the README): callers
 * get back the name actually stored, which may differ from the one asked for when
 * `overwrite` is false and the name was taken.
 */
export class MediaStorage implements MediaStorageApi {
  /** The bucket this storage writes to. */
  readonly bucket: string;
  private readonly endpointLabel: string;
  private readonly logger = new Logger('nestjs-s3-storage');
  private readonly context: MediaContext;
  private readonly writes: MediaWrites;
  private readonly urls: MediaUrls;
  private readonly operations: ObjectOperations;

  constructor(
    private readonly client: S3Client,
    private readonly options: ResolvedMediaOptions,
    private readonly signer: UrlSigner,
  ) {
    this.bucket = options.bucket;
    this.endpointLabel = describeEndpoint(options);
    this.context = {
      client,
      options,
      signer,
      bucket: this.bucket,
      endpointLabel: this.endpointLabel,
      logger: this.logger,
      call: (operation, key, caller, send) => this.call(operation, key, caller, send),
      wrap: (operation, error, key, signal) => this.wrap(operation, error, key, signal),
      exists: (name) => this.exists(name),
    };
    this.writes = new MediaWrites(this.context);
    this.urls = new MediaUrls(options, signer);
    this.operations = new ObjectOperations(this.context, this.writes);
  }

  /**
   * Stores `body` under `name` and returns the name stored. Buffers, strings and streams
   * up to one part are sent in one PutObject; longer streams go up as a multipart upload
   * with bounded memory (`partSize * (queueSize + 1)`), aborted on any failure.
   *
   * With `overwrite: false` (the default) a taken name is never replaced: the object is
   * stored under `name_<random>.ext` instead, also when saves race for one name, whatever
   * the body (see the README's "Overwrite protection" for what each server guarantees).
   */
  async save(name: string, body: StorageBody, options: SaveOptions = {}): Promise<string> {
    return (await this.upload(name, body, options)).name;
  }

  /** Like {@link save}, and returns what was stored: name, key, size, ETag and content type. */
  async upload(name: string, body: StorageBody, options: SaveOptions = {}): Promise<StoredObject> {
    try {
      return await this.writes.store(name, body, options);
    } catch (error) {
      // Whatever failed (the name check, the source, S3, an abort), the caller's stream is
      // released: a socket or file behind it must not stay open. No error is passed, so an
      // unobserved stream emits no 'error' event.
      if (body instanceof Readable && !body.destroyed) body.destroy();
      throw error;
    }
  }

  /** A readable stream of the object's bytes. @throws ObjectNotFoundError */
  async open(name: string, options: ReadOptions = {}): Promise<Readable> {
    const key = this.key(name);
    const range = options.range && `bytes=${options.range.start}-${options.range.end ?? ''}`;
    const out = await this.call('open', key, options.signal, (abortSignal) =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range, IfMatch: options.ifMatch === undefined ? undefined : `"${options.ifMatch}"` }), { abortSignal }),
    );
    const body = out.Body as Readable;
    // The deadline ends with the headers; the caller's signal still cuts the body short.
    return options.signal ? addAbortSignal(options.signal, body) : body;
  }

  /** The object's bytes in one Buffer. Use `open()` for large objects. @throws ObjectNotFoundError */
  async read(name: string, options: ReadOptions = {}): Promise<Buffer> {
    const stream = await this.open(name, options);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of stream) chunks.push(chunk as Buffer);
    } catch (error) {
      throw this.wrap('read', error, this.key(name), options.signal);
    }
    return Buffer.concat(chunks);
  }

  /** Whether the object exists. A 404 is `false`; access errors throw. */
  async exists(name: string): Promise<boolean> {
    const key = this.key(name);
    try {
      await this.call('exists', key, undefined, (abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }));
      return true;
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return false;
      throw error;
    }
  }

  /** Size, dates, ETag, type and metadata of the object. @throws ObjectNotFoundError */
  async stat(name: string): Promise<ObjectStat> {
    const key = this.key(name);
    const out = await this.call('stat', key, undefined, (abortSignal) =>
      this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }),
    );
    return {
      size: out.ContentLength ?? 0,
      lastModified: out.LastModified ?? new Date(0),
      etag: unquote(out.ETag),
      contentType: out.ContentType,
      cacheControl: out.CacheControl,
      metadata: out.Metadata ?? {},
    };
  }

  /** Deletes the object. Deleting a missing object is a no-op. */
  async delete(name: string): Promise<void> {
    const key = this.key(name);
    try {
      await this.call('delete', key, undefined, (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }));
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return;
      throw error;
    }
  }

  /**
   * Every object under `prefix` (relative to `location`), in key order, fetched a page of
   * 1,000 at a time as the loop asks for more.
   *
   * With `limit` or `cursor`, one page instead (see {@link listPage}), for HTTP APIs that page
   * through files: `list('docs/', { limit: 50, cursor })` resolves to `{ items, cursor }`.
   */
  list(prefix?: string, options?: ListOptions): AsyncIterable<ListEntry>;
  list(prefix: string | undefined, options: ListPageOptions & ({ limit: number } | { cursor: string })): Promise<ListPage>;
  list(prefix?: string, options: ListOptions | ListPageOptions = {}): AsyncIterable<ListEntry> | Promise<ListPage> {
    if (options.limit !== undefined || options.cursor !== undefined) return this.operations.listPage(prefix, options);
    return this.operations.entries(prefix, options);
  }

  /**
   * One page of the objects under `prefix`, in key order: at most `limit` (1 to 1,000, default
   * 1,000) entries and the `cursor` of the next page (`undefined` on the last one). The cursor
   * is URL-safe and only ever resumes within the prefix it is passed with; a cursor no page
   * returned is refused with `InvalidKeyError`.
   */
  listPage(prefix?: string, options: ListPageOptions = {}): Promise<ListPage> {
    return this.operations.listPage(prefix, options);
  }

  /**
   * Copies `from` to `to` on the server (CopyObject; a multipart copy above
   * `multipartCopyThreshold`), keeping its headers and metadata, and returns the name stored.
   * With `overwrite: false` (the default) a taken `to` is never replaced: the copy is stored
   * under `to_<random>.ext`, also when writes race for the name (the save path's reservation).
   * @throws ObjectNotFoundError when `from` does not exist; InvalidKeyError for a bad name
   */
  copy(from: string, to: string, options: CopyOptions = {}): Promise<string> {
    return this.operations.copy(from, to, options);
  }

  /**
   * {@link copy}, then deletes `from`; returns the name stored. Moving a name onto itself does
   * nothing. If the copy succeeds but deleting `from` fails, both objects exist and the
   * `StorageOperationError` names the copy: nothing is rolled back (a delete that timed out
   * may still have happened).
   */
  move(from: string, to: string, options: CopyOptions = {}): Promise<string> {
    return this.operations.move(from, to, options);
  }

  /**
   * Deletes the objects in batches of 1,000 (one DeleteObjects each). Never throws for one
   * name: `errors` lists each that was not deleted, with its S3 code, `'InvalidKey'` for a
   * name refused before any request. Missing objects count as deleted, as with `delete()`.
   */
  deleteMany(names: Iterable<string>, options: { signal?: AbortSignal } = {}): Promise<DeleteManyResult> {
    return this.operations.deleteMany(names, options);
  }

  /**
   * Deletes every object under `prefix` (relative to `location`; `'users/42/'` for a folder,
   * as with `list()`), any number of them in bounded memory, and returns how many.
   * @throws InvalidKeyError for an empty prefix (it would be the whole location)
   * @throws StorageOperationError when some objects could not be deleted (the rest were)
   */
  deletePrefix(prefix: string, options: { signal?: AbortSignal } = {}): Promise<number> {
    return this.operations.deletePrefix(prefix, options);
  }

  /**
   * A URL the browser can fetch. CloudFront-signed when `cloudfront` is set; else signed
   * (SigV4, for `publicEndpoint` when set) and valid `urlExpiresIn` seconds by default; plain
   * when `signedUrls` is false or `customDomain` is set. No network call.
   *
   * With a cache window (`urlCacheWindow`, or `cacheWindow` per call) every call within one
   * window returns the same URL, signed once, valid at least `expiresIn` after each call.
   */
  async url(name: string, options: UrlOptions = {}): Promise<string> {
    return (await this.urlInfo(name, options)).url;
  }

  /**
   * Like {@link url}, with when the URL stops working (`expiresAt`) and, with a cache window,
   * how long a browser may keep its bytes (`maxAge`): what a redirect's `Cache-Control` needs.
   */
  async urlInfo(name: string, options: UrlOptions = {}): Promise<MediaUrl> {
    return this.urls.urlInfo(this.key(name), options);
  }

  /**
   * CloudFront-signed cookies for every object matching `pathPattern` (relative to
   * `location`, `*` wildcards allowed, e.g. `'avatars/*'`): a custom policy in the three
   * `CloudFront-*` cookies, for pages with many assets. Synchronous, no network.
   * Set them with `Secure`, `HttpOnly`, a `Path` covering the objects and a `Domain` the
   * distribution's domain shares with the site.
   * @throws StorageError when `cloudfront` is not configured
   */
  cookies(pathPattern: string, options: CookieOptions = {}): CloudFrontCookies {
    return this.urls.cookies(pathPattern, options);
  }

  /**
   * A presigned POST for a direct browser upload. The policy fixes the key, caps the size
   * with `content-length-range`, pins the Content-Type and a marker only our forms carry: the
   * S3 server rejects anything else itself. The file lands under `.pending/` (invisible to
   * `list()` of its folder) and becomes `name` only when `confirmUpload()` has checked it.
   */
  createUpload(options: CreateUploadOptions): Promise<DirectUpload> {
    return this.directUploads.create(options);
  }

  /**
   * Checks a direct upload and publishes it: it must carry the marker of a `createUpload()`
   * form for `name`, have at most `maxBytes`, and bytes that are what was promised. A name
   * once published is never written again: confirming it again (a retry, or the same form
   * posted again) checks the published object and returns it. An upload that fails the
   * checks is deleted; an object that does not come from a form is left alone.
   * @throws UploadRejectedError, ObjectNotFoundError (nothing was uploaded)
   */
  confirmUpload(name: string, expectations: UploadExpectations = {}): Promise<StoredObject> {
    return this.directUploads.confirm(name, expectations);
  }

  /**
   * Opens a resumable direct upload (S3 multipart) under `.pending/`, for the name
   * `<prefix>/<random>/<file name>`. The limits are kept on the server, out of the client's reach,
   * and enforced by {@link completeMultipartUpload}.
   * @throws StorageError for a bad `maxBytes`; InvalidKeyError for a bad prefix
   */
  createMultipartUpload(options: CreateMultipartUploadOptions): Promise<MultipartUploadHandle> {
    return this.directMultipart.create(options);
  }

  /**
   * Presigned UploadPart URLs (PUT, for `publicEndpoint` when set) for parts 1 to 10,000 of an
   * open upload. No network request.
   * @throws UploadRejectedError: `not-owner` for another prefix, `bad-request` for a bad part number or an `expiresIn` outside 1 to 604800
   */
  signParts(name: string, uploadId: string, partNumbers: readonly number[], options: SignPartsOptions = {}): Promise<SignedPart[]> {
    return this.directMultipart.signParts(name, uploadId, partNumbers, options);
  }

  /** The parts S3 holds for an open upload, in order (what a client resumes from). @throws UploadRejectedError */
  listParts(name: string, uploadId: string, options: MultipartCallOptions = {}): Promise<UploadedPart[]> {
    return this.directMultipart.listParts(name, uploadId, options);
  }

  /**
   * Checks an upload and publishes it as `name`: the parts must be those S3 holds, their total
   * at most `maxBytes`, the first bytes an allowed type. Otherwise the upload is aborted (or the
   * assembled object deleted) and nothing stays. Any other failure (a 5xx, a timeout, an abort)
   * keeps the upload: call again to resume. A complete replayed after success returns the
   * published object; it never publishes twice.
   * @throws UploadRejectedError (too-large, type-not-allowed, empty, parts-mismatch, not-owner, no-such-upload, bad-request; conflict while another complete of it runs: retry shortly); StorageOperationError / StorageAbortedError (the upload stays, retry)
   */
  completeMultipartUpload(name: string, uploadId: string, parts: readonly CompletedPart[], options: MultipartCallOptions = {}): Promise<StoredObject> {
    return this.directMultipart.complete(name, uploadId, parts, options);
  }

  /** Aborts an open upload: its parts, an object a failed complete assembled, its record and lock are deleted. Aborting a finished or unknown one is a no-op. @throws UploadRejectedError (not-owner) */
  abortMultipartUpload(name: string, uploadId: string, options: MultipartCallOptions = {}): Promise<void> {
    return this.directMultipart.abort(name, uploadId, options);
  }

  /** The storage name for the S3 `key` of a multipart upload (what Uppy sends back). @throws InvalidKeyError */
  nameForKey(key: string): string {
    return this.directMultipart.nameForKey(key);
  }

  private directUploadsInstance?: DirectUploads;
  private directMultipartInstance?: DirectMultipart;

  private get directMultipart(): DirectMultipart {
    return (this.directMultipartInstance ??= new DirectMultipart({
      ...this.context,
      copy: (from, to, options) => this.operations.copy(from, to, options, 'completeMultipartUpload'),
    }));
  }

  private get directUploads(): DirectUploads {
    return (this.directUploadsInstance ??= new DirectUploads({
      client: this.client,
      options: this.options,
      signer: this.signer,
      endpointLabel: this.endpointLabel,
      call: (operation, key, send) => this.call(operation, key, undefined, send),
    }));
  }

  /** The full S3 key for a name (location prefix included). @throws InvalidKeyError */
  key(name: string): string {
    return toKey(this.options.location, normalizeName(name));
  }

  /**
   * Runs one request/response S3 call under the caller's signal and the `timeout`
   * deadline (cleared once the response headers are in, so streaming a body is not cut).
   */
  private async call<T>(operation: string, key: string | undefined, caller: AbortSignal | undefined, send: (signal: AbortSignal) => Promise<T>): Promise<T> {
    // Already aborted: the same typed StorageAbortedError as an abort mid-request.
    if (caller?.aborted) throw this.wrap(operation, caller.reason, key, caller);
    const controller = new AbortController();
    const ms = this.options.timeout;
    let timedOut = false;
    const timer = ms > 0 ? setTimeout(() => ((timedOut = true), controller.abort()), ms) : undefined;
    const forward = (): void => controller.abort(caller?.reason);
    caller?.addEventListener('abort', forward, { once: true });
    try {
      return await send(controller.signal);
    } catch (error) {
      if (timedOut) {
        throw new StorageTimeoutError(operation, `no answer within ${ms} ms (the timeout option)`, {
          bucket: this.bucket,
          key,
          endpoint: this.endpointLabel,
          cause: error,
        });
      }
      throw this.wrap(operation, error, key, caller);
    } finally {
      clearTimeout(timer);
      caller?.removeEventListener('abort', forward);
    }
  }

  private wrap(operation: string, error: unknown, key: string | undefined, signal?: AbortSignal): StorageError {
    return toStorageError(operation, error, { bucket: this.bucket, key, endpoint: this.endpointLabel }, signal);
  }
}
