/**
 * The public surface of `MediaStorage` as an interface: what an app's services depend on, and
 * what `InMemoryStorage` (from `nestjs-s3-storage/testing`) implements as well. Type `storage:
 * MediaStorageApi` where a test may hand in the in-memory one; injecting `MediaStorage` keeps
 * working, since the test kit provides its fake under the same token.
 *
 * Only types are imported, so this file adds no module to either build at run time.
 */
import type { Readable } from 'node:stream';
import type { CloudFrontCookies } from './cloudfront-signer.js';
import type { CompletedPart, CreateMultipartUploadOptions, MultipartCallOptions, MultipartUploadHandle, SignedPart, SignPartsOptions, UploadedPart } from './direct-multipart.js';
import type { CreateUploadOptions, DirectUpload, UploadExpectations } from './direct-uploads.js';
import type { CookieOptions, ListEntry, ObjectStat, SaveOptions, StorageBody, StoredObject, UrlOptions } from './media-storage.types.js';
import type { CopyOptions, DeleteManyResult, ListOptions, ListPage, ListPageOptions } from './object-operations.js';
import type { MediaUrl } from './url-cache.js';

/** Per-call options of `open()` and `read()`. */
export interface ReadOptions {
  /** Cancels the request (and, for `open()`, the body's stream). */
  signal?: AbortSignal;
  /** Bytes `start` to `end`, both inclusive (`end` omitted: to the last byte). */
  range?: { start: number; end?: number };
  /**
   * Reads only if the object's ETag (without quotes) is still this one; otherwise fails with a
   * `StorageOperationError` of `status` 412 (`PreconditionFailed`), so bytes of a replaced
   * object are never mixed with sizes taken from `stat()`.
   * @default undefined (any version)
   */
  ifMatch?: string;
}

/**
 * Everything `MediaStorage` offers an app. Both `MediaStorage` and `InMemoryStorage`
 * implement it, with the same key rules, errors (classes and codes) and overwrite rule.
 */
export interface MediaStorageApi {
  /** The bucket this storage writes to. */
  readonly bucket: string;
  /** Stores `body` under `name` and returns the name stored (another one when taken and `overwrite` is false). */
  save(name: string, body: StorageBody, options?: SaveOptions): Promise<string>;
  /** Like `save()`, and returns what was stored. */
  upload(name: string, body: StorageBody, options?: SaveOptions): Promise<StoredObject>;
  /** A readable stream of the object's bytes. @throws ObjectNotFoundError */
  open(name: string, options?: ReadOptions): Promise<Readable>;
  /** The object's bytes in one Buffer. @throws ObjectNotFoundError */
  read(name: string, options?: ReadOptions): Promise<Buffer>;
  /** Whether the object exists. */
  exists(name: string): Promise<boolean>;
  /** Size, dates, ETag, type and metadata. @throws ObjectNotFoundError */
  stat(name: string): Promise<ObjectStat>;
  /** Deletes the object; a missing one is a no-op. */
  delete(name: string): Promise<void>;
  /** Every object under `prefix`, in key order. */
  list(prefix?: string, options?: ListOptions): AsyncIterable<ListEntry>;
  /** With `limit` or `cursor`: one page, `{ items, cursor }` (see `listPage()`). */
  list(prefix: string | undefined, options: ListPageOptions & ({ limit: number } | { cursor: string })): Promise<ListPage>;
  /** One page under `prefix`: at most `limit` (1 to 1,000) entries and the next page's `cursor`. @throws InvalidKeyError for a cursor no page returned */
  listPage(prefix?: string, options?: ListPageOptions): Promise<ListPage>;
  /** Copies `from` to `to` (headers and metadata kept) and returns the name stored (another one when `to` is taken and `overwrite` is false). @throws ObjectNotFoundError, InvalidKeyError */
  copy(from: string, to: string, options?: CopyOptions): Promise<string>;
  /** `copy()`, then deletes `from`; returns the name stored. Moving a name onto itself does nothing. */
  move(from: string, to: string, options?: CopyOptions): Promise<string>;
  /** Deletes the objects; never throws for one name (`errors` lists each not deleted). Missing objects count as deleted. */
  deleteMany(names: Iterable<string>, options?: { signal?: AbortSignal }): Promise<DeleteManyResult>;
  /** Deletes every object under `prefix` and returns how many. @throws InvalidKeyError for an empty prefix */
  deletePrefix(prefix: string, options?: { signal?: AbortSignal }): Promise<number>;
  /** A URL the browser can fetch. */
  url(name: string, options?: UrlOptions): Promise<string>;
  /** Like `url()`, with the expiry and the cache window's max-age. */
  urlInfo(name: string, options?: UrlOptions): Promise<MediaUrl>;
  /** CloudFront-signed cookies. @throws StorageError when CloudFront is not configured */
  cookies(pathPattern: string, options?: CookieOptions): CloudFrontCookies;
  /** A form for a direct browser upload to `.pending/`. */
  createUpload(options: CreateUploadOptions): Promise<DirectUpload>;
  /** Checks a direct upload and publishes it. @throws UploadRejectedError, ObjectNotFoundError */
  confirmUpload(name: string, expectations?: UploadExpectations): Promise<StoredObject>;
  /** Opens a resumable direct upload (S3 multipart) under `.pending/`; the limits are kept on the server. */
  createMultipartUpload(options: CreateMultipartUploadOptions): Promise<MultipartUploadHandle>;
  /** Presigned part URLs (parts 1 to 10,000). No network request. @throws UploadRejectedError (not-owner, bad-request) */
  signParts(name: string, uploadId: string, partNumbers: readonly number[], options?: SignPartsOptions): Promise<SignedPart[]>;
  /** The parts uploaded so far. @throws UploadRejectedError (not-owner, no-such-upload) */
  listParts(name: string, uploadId: string, options?: MultipartCallOptions): Promise<UploadedPart[]>;
  /** Checks the upload against its limits and publishes it. @throws UploadRejectedError */
  completeMultipartUpload(name: string, uploadId: string, parts: readonly CompletedPart[], options?: MultipartCallOptions): Promise<StoredObject>;
  /** Aborts an open upload; nothing of it stays. @throws UploadRejectedError (not-owner) */
  abortMultipartUpload(name: string, uploadId: string, options?: MultipartCallOptions): Promise<void>;
  /** The storage name for a multipart upload's S3 key. @throws InvalidKeyError */
  nameForKey(key: string): string;
  /** The full key for a name (location prefix included). @throws InvalidKeyError */
  key(name: string): string;
}
