/**
 * `InMemoryStorage`: `MediaStorage`'s whole public surface over a `Map`, for unit tests.
 * No network, no files. It applies the same key rules (lib/key-normalizer.ts), throws the
 * same error classes with the same codes, keeps the overwrite rule, lists in S3's key order,
 * and checks direct uploads the way lib/direct-uploads.ts does (the same `inspectUpload()`).
 * The contract suite (test/contract/) runs one set of behaviour tests against both.
 *
 * What it adds for tests: URLs it can check itself (`resolveUrl()`), the browser's half of a
 * direct upload (`post()`), assertions, and a clock that tests move.
 */
import { AssertionError } from 'node:assert';
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { addAbortSignal, Readable } from 'node:stream';
import { nextOrAbort } from '../abortable.js';
import type { CloudFrontCookies } from '../cloudfront-signer.js';
import { SNIFF_BYTES } from '../content-sniffing.js';
import { extensionFor, guessContentType } from '../content-type.js';
import type { CompletedPart, CreateMultipartUploadOptions, MultipartCallOptions, MultipartUploadHandle, SignedPart, SignPartsOptions, UploadedPart } from '../direct-multipart.js';
import {
  checkMaxBytes,
  claimName,
  DIRECT_UPLOAD_EXPIRES_IN,
  inspectUpload,
  MARKER_FIELD,
  MARKER_METADATA,
  pendingName,
  uploadName,
  type CreateUploadOptions,
  type DirectUpload,
  type Rejection,
  type UploadExpectations,
} from '../direct-uploads.js';
import { alternativeName, fromKey, normalizeName, normalizePrefix, toKey } from '../key-normalizer.js';
import type { MediaStorageApi, ReadOptions } from '../media-storage.api.js';
import { decodeCursor, encodeCursor, namesByKey, type CopyOptions, type DeleteManyResult, type ListOptions, type ListPage, type ListPageOptions } from '../object-operations.js';
import type { CookieOptions, ListEntry, ObjectStat, SaveOptions, StorageBody, StoredObject, UrlOptions } from '../media-storage.types.js';
import { toStorageError } from '../s3-errors.js';
import { describeName, InvalidBodyError, InvalidKeyError, ObjectNotFoundError, StorageConfigurationError, StorageError, UploadRejectedError } from '../storage.errors.js';
import type { MediaStorageOptions } from '../storage-module-options.interface.js';
import { MAX_URL_EXPIRES_IN, resolveStorageOptions, type ResolvedMediaOptions } from '../storage-options.validation.js';
import { ChunkEncoder } from '../stream-chunks.js';
import { cacheWindowAt, checkCacheWindow, type MediaUrl } from '../url-cache.js';
import { contentDisposition } from '../url-signer.js';
import { MemoryUrlSigner, type MemoryUrlProblem } from './memory-urls.js';

/** The bucket of an `InMemoryStorage` given none. */
export const IN_MEMORY_BUCKET = 'in-memory';
/** What error messages name as the endpoint. */
const ENDPOINT = 'InMemoryStorage';
/** The page size of `list()`, as MediaStorage asks S3 for, and the largest `limit` of a page. */
const LIST_PAGE = 1000;

/** Options of `InMemoryStorage` beyond the media options. */
export interface InMemoryStorageOptions {
  /**
   * The time in ms that URL and form expiry, and `lastModified`, are measured by.
   * `advanceClock()` moves it forward.
   * @default Date.now
   */
  clock?: () => number;
}

/** Media options for the in-memory storage: all optional, `bucket` included. */
export type InMemoryMediaOptions = Partial<MediaStorageOptions>;

interface MemoryObject {
  data: Buffer;
  etag: string;
  lastModified: Date;
  contentType: string;
  cacheControl?: string;
  contentDisposition?: string;
  metadata: Record<string, string>;
}

/** What the in-memory form's policy pins, signed. */
interface FormPolicy {
  expiration: string;
  conditions: { bucket: string; key: string; contentType: string; marker: string; maxBytes: number };
}

/**
 * A `MediaStorage` in memory. `new InMemoryStorage()` works as it is; pass media options
 * (`location`, `overwrite`, `urlExpiresIn`, `objectParameters`, …) to test code that
 * depends on them. Connection options are validated and otherwise ignored.
 */
export class InMemoryStorage implements MediaStorageApi {
  readonly bucket: string;
  /** The options, validated and with defaults applied, as `MediaStorage` holds them. */
  private readonly options: ResolvedMediaOptions;
  private readonly objects = new Map<string, MemoryObject>();
  private readonly urls = new MemoryUrlSigner(randomBytes(32));
  private readonly clock: () => number;
  private clockOffset = 0;

  constructor(mediaOptions: InMemoryMediaOptions = {}, options: InMemoryStorageOptions = {}) {
    this.options = resolveStorageOptions({ media: { ...mediaOptions, bucket: mediaOptions.bucket ?? IN_MEMORY_BUCKET } }).media;
    this.bucket = this.options.bucket;
    this.clock = options.clock ?? Date.now;
  }

  // ---- the MediaStorage surface ----

  async save(name: string, body: StorageBody, options: SaveOptions = {}): Promise<string> {
    return (await this.upload(name, body, options)).name;
  }

  async upload(name: string, body: StorageBody, options: SaveOptions = {}): Promise<StoredObject> {
    try {
      const wanted = normalizeName(name);
      const data = await this.bytesOf(wanted, body, options).catch((error: unknown) => {
        throw toStorageError('save', error, this.context(toKey(this.options.location, wanted)), options.signal);
      });
      const overwrite = options.overwrite ?? this.options.overwrite;
      let stored = wanted;
      while (!overwrite && this.objects.has(toKey(this.options.location, stored))) stored = alternativeName(wanted, randomBytes);
      const key = toKey(this.options.location, stored);
      const defaults = this.options.objectParameters;
      const contentType = options.contentType ?? guessContentType(stored);
      this.put(key, data, {
        contentType,
        cacheControl: options.cacheControl ?? defaults.cacheControl,
        contentDisposition: options.contentDisposition ?? defaults.contentDisposition,
        metadata: { ...defaults.metadata, ...options.metadata },
      });
      options.onProgress?.(data.length);
      return { name: stored, key, size: data.length, etag: this.objects.get(key)!.etag, contentType };
    } catch (error) {
      if (body instanceof Readable && !body.destroyed) body.destroy();
      throw error;
    }
  }

  async open(name: string, options: ReadOptions = {}): Promise<Readable> {
    const body = Readable.from([await this.read(name, options)]);
    return options.signal ? addAbortSignal(options.signal, body) : body;
  }

  async read(name: string, options: ReadOptions = {}): Promise<Buffer> {
    const key = this.key(name);
    if (options.signal?.aborted) throw toStorageError('open', options.signal.reason, this.context(key), options.signal);
    const object = this.get(key);
    if (options.ifMatch !== undefined && options.ifMatch !== object.etag) throw s3Error('open', this.context(key), 412, 'PreconditionFailed');
    const data = object.data;
    const range = options.range;
    if (!range) return Buffer.from(data);
    // S3's rules for `bytes=start-end`: a start past the end is 416; an end past it is clamped.
    if (range.end !== undefined && range.end < range.start) return Buffer.from(data);
    if (range.start >= data.length) throw s3Error('open', this.context(key), 416, 'InvalidRange');
    return Buffer.from(data.subarray(range.start, range.end === undefined ? undefined : range.end + 1));
  }

  async exists(name: string): Promise<boolean> {
    return this.objects.has(this.key(name));
  }

  async stat(name: string): Promise<ObjectStat> {
    const object = this.get(this.key(name));
    return {
      size: object.data.length,
      lastModified: object.lastModified,
      etag: object.etag,
      contentType: object.contentType,
      cacheControl: object.cacheControl,
      metadata: { ...object.metadata },
    };
  }

  async delete(name: string): Promise<void> {
    this.objects.delete(this.key(name));
  }

  /**
   * Every object under `prefix`, in S3's order (by the keys' UTF-8 bytes), a page at a time
   * like MediaStorage: each page starts after the last key returned, so objects saved or
   * deleted during the loop show or vanish as they would on S3.
   *
   * With `limit` or `cursor`, one page instead (see {@link listPage}).
   */
  list(prefix?: string, options?: ListOptions): AsyncIterable<ListEntry>;
  list(prefix: string | undefined, options: ListPageOptions & ({ limit: number } | { cursor: string })): Promise<ListPage>;
  list(prefix?: string, options: ListOptions | ListPageOptions = {}): AsyncIterable<ListEntry> | Promise<ListPage> {
    if (options.limit !== undefined || options.cursor !== undefined) return this.listPage(prefix, options);
    return this.entries(prefix, options);
  }

  /**
   * One page under `prefix`, as MediaStorage answers it (ListObjects with a marker): at most
   * `limit` entries after the cursor's name, and a cursor (base64url of the page's last name)
   * only when more entries follow. A cursor resumes within the prefix it is passed with.
   * @throws StorageError for a limit outside 1 to 1,000; InvalidKeyError for a cursor no page returned
   */
  async listPage(prefix?: string, options: ListPageOptions = {}): Promise<ListPage> {
    const limit = options.limit ?? LIST_PAGE;
    if (!Number.isInteger(limit) || limit < 1 || limit > LIST_PAGE) {
      throw new StorageError(`list(): limit must be a whole number from 1 to ${LIST_PAGE} (got ${String(limit)})`);
    }
    const location = this.options.location;
    const fullPrefix = this.fullPrefix(prefix);
    const after = options.cursor === undefined ? undefined : toKey(location, decodeCursor(options.cursor));
    this.throwIfAborted('list', options.signal, undefined);
    const keys = this.keysAfter(fullPrefix, after);
    const items = keys.slice(0, limit).map((key) => this.entryOf(key));
    const last = items.at(-1);
    return { items, cursor: keys.length > limit && last ? encodeCursor(last.name) : undefined };
  }

  /**
   * Copies `from` to `to` with its bytes, headers and metadata, and returns the name stored:
   * `to`, or with `overwrite: false` an alternative name when `to` is taken (a copy onto
   * itself then makes a second object; with `overwrite: true` it does nothing).
   * @throws InvalidKeyError before anything happens; ObjectNotFoundError when `from` is missing
   */
  async copy(from: string, to: string, options: CopyOptions = {}): Promise<string> {
    return this.copyAs('copy', from, to, options);
  }

  /**
   * {@link copy}, then deletes `from`; returns the name stored. Moving a name onto itself
   * does nothing (it must exist).
   * @throws InvalidKeyError before anything happens; ObjectNotFoundError when `from` is missing
   */
  async move(from: string, to: string, options: CopyOptions = {}): Promise<string> {
    const sourceKey = this.key(from);
    const wanted = normalizeName(to);
    if (toKey(this.options.location, wanted) === sourceKey) {
      this.throwIfAborted('move', options.signal, sourceKey);
      this.get(sourceKey);
      return wanted;
    }
    const stored = this.copyAs('move', from, to, options);
    this.objects.delete(sourceKey);
    return stored;
  }

  private copyAs(operation: string, from: string, to: string, options: CopyOptions): string {
    const sourceKey = this.key(from);
    const wanted = normalizeName(to);
    const targetKey = toKey(this.options.location, wanted);
    const overwrite = options.overwrite ?? this.options.overwrite;
    this.throwIfAborted(operation, options.signal, sourceKey);
    const source = this.get(sourceKey);
    if (overwrite && targetKey === sourceKey) return wanted;
    let stored = wanted;
    while (!overwrite && this.objects.has(toKey(this.options.location, stored))) stored = alternativeName(wanted, randomBytes);
    // A server-side copy keeps the ETag (same bytes, one part) and gets a new Last-Modified.
    this.objects.set(toKey(this.options.location, stored), { ...source, metadata: { ...source.metadata }, lastModified: this.lastModifiedNow() });
    return stored;
  }

  /**
   * Deletes the objects. Never throws for one name: a name breaking the key rules is in
   * `errors` with code `'InvalidKey'`; missing objects count as deleted; names that normalize
   * to one key are each reported as passed in.
   */
  async deleteMany(names: Iterable<string>, options: { signal?: AbortSignal } = {}): Promise<DeleteManyResult> {
    const deleted: string[] = [];
    const { byKey, errors } = namesByKey(names, (name) => this.key(name));
    if (byKey.size > 0) this.throwIfAborted('deleteMany', options.signal, undefined);
    for (const [key, same] of byKey) {
      this.objects.delete(key);
      deleted.push(...same);
    }
    return { deleted, errors };
  }

  /**
   * Deletes every object under `prefix` (relative to the location) and returns how many.
   * @throws InvalidKeyError for an empty prefix (it would be the whole location)
   */
  async deletePrefix(prefix: string, options: { signal?: AbortSignal } = {}): Promise<number> {
    const normalized = normalizePrefix(prefix);
    if (normalized === '') {
      throw new InvalidKeyError(prefix, 'deletePrefix() needs a non-empty prefix; an empty one would delete everything in the storage location (delete the objects by name, or use a prefix such as "users/42/")');
    }
    const fullPrefix = toKey(this.options.location, normalized);
    this.throwIfAborted('deletePrefix', options.signal, fullPrefix);
    const keys = this.keysAfter(fullPrefix, undefined);
    for (const key of keys) this.objects.delete(key);
    return keys.length;
  }

  async url(name: string, options: UrlOptions = {}): Promise<string> {
    return (await this.urlInfo(name, options)).url;
  }

  /**
   * `memory://<bucket>/<key>?expires=…&sig=…`, which {@link resolveUrl} checks. A cache
   * window gives the same URL for every call within one window, as MediaStorage does. With
   * `signedUrls: false` or a `customDomain`, an unsigned `memory://` URL.
   */
  async urlInfo(name: string, options: UrlOptions = {}): Promise<MediaUrl> {
    const key = this.key(name);
    const expiresIn = options.expiresIn ?? this.options.urlExpiresIn;
    const window = checkCacheWindow('url', expiresIn, options.cacheWindow, this.options.urlCacheWindow);
    if (!this.options.signedUrls || this.options.customDomain !== undefined) return { url: this.urls.unsigned(this.bucket, key) };
    checkExpiresIn(expiresIn);
    const response = {
      'response-content-disposition': options.responseContentDisposition ?? (options.downloadAs === undefined ? undefined : contentDisposition(options.downloadAs)),
      'response-content-type': options.responseContentType,
    };
    const now = this.now();
    if (window === 0) {
      const expires = Math.floor(now / 1000) + expiresIn;
      return { url: this.urls.sign(this.bucket, key, expires, response), expiresAt: new Date(expires * 1000) };
    }
    const { start } = cacheWindowAt(now, window);
    const expires = Math.floor(start / 1000) + window + expiresIn;
    const maxAge = expiresIn;
    return Object.freeze({
      url: this.urls.sign(this.bucket, key, expires, { 'response-cache-control': `private, max-age=${maxAge}`, ...response }),
      expiresAt: new Date(expires * 1000),
      maxAge,
    });
  }

  /**
   * Throws what an unconfigured `MediaStorage` throws: the in-memory storage signs no
   * CloudFront cookies.
   * @throws StorageError always
   */
  cookies(_pathPattern: string, _options: CookieOptions = {}): CloudFrontCookies {
    const note = this.options.cloudfront ? ' (InMemoryStorage does not sign CloudFront cookies, even with media.cloudfront set)' : '';
    throw new StorageError(`cookies(): media.cloudfront is not configured; signed cookies are a CloudFront feature (set media.cloudfront or MEDIA_S3_CLOUDFRONT_*)${note}`);
  }

  /**
   * A form like MediaStorage's presigned POST: `fields` carry the key under `.pending/`, the
   * pinned Content-Type, the marker and a signed policy; send it with {@link post}.
   */
  async createUpload(options: CreateUploadOptions): Promise<DirectUpload> {
    checkMaxBytes(options.maxBytes);
    const extension = options.contentType ? extensionFor(options.contentType) : undefined;
    const name = uploadName(options.name ?? `${options.prefix ?? 'uploads'}/${randomUUID()}${extension ? `.${extension}` : ''}`);
    const key = toKey(this.options.location, name);
    toKey(this.options.location, claimName(name));
    const pendingKey = toKey(this.options.location, pendingName(name));
    const uploadId = randomBytes(12).toString('base64url');
    const contentType = options.contentType ?? 'application/octet-stream';
    const marker = `${uploadId}.${this.urls.mac(`marker\n${this.bucket}\n${key}\n${uploadId}`)}`;
    const expiresIn = options.expiresIn ?? Math.min(this.options.urlExpiresIn, DIRECT_UPLOAD_EXPIRES_IN);
    checkExpiresIn(expiresIn);
    const expiresAt = new Date(this.now() + expiresIn * 1000);
    const policy: FormPolicy = {
      expiration: expiresAt.toISOString(),
      conditions: { bucket: this.bucket, key: pendingKey, contentType, marker, maxBytes: options.maxBytes },
    };
    const encoded = Buffer.from(JSON.stringify(policy)).toString('base64');
    const fields = { key: pendingKey, 'Content-Type': contentType, [MARKER_FIELD]: marker, Policy: encoded, 'X-Memory-Signature': this.urls.mac(`policy\n${encoded}`) };
    return { url: `memory://${this.bucket}`, fields, name, key, maxBytes: options.maxBytes, expiresAt };
  }

  /**
   * Checks a direct upload and publishes it, as MediaStorage does: only what one of this
   * storage's forms posted for `name`, checked on every path (an already published name
   * is only read), a name published once never written again.
   * @throws UploadRejectedError, ObjectNotFoundError
   */
  async confirmUpload(name: string, expectations: UploadExpectations = {}): Promise<StoredObject> {
    const final = uploadName(name);
    const key = toKey(this.options.location, final);
    const pendingKey = toKey(this.options.location, pendingName(final));
    const claimKey = toKey(this.options.location, claimName(final));
    const pending = this.objects.get(pendingKey);
    const published = this.objects.get(key);
    if (published) {
      if (pending && this.uploadIdOf(pending, key)) this.objects.delete(pendingKey);
      return this.checkPublished(final, key, published, expectations);
    }
    if (!pending) throw new ObjectNotFoundError(this.context(pendingKey) as { bucket: string; key: string });
    const uploadId = this.uploadIdOf(pending, key);
    if (!uploadId) {
      throw this.rejected(key, {
        reason: 'not-direct-upload',
        message: `the object waiting at "${pendingName(final)}" was not uploaded with a createUpload() form for "${final}"; it was not published`,
      });
    }
    const checked = await this.inspect(pending, expectations);
    if ('reason' in checked) {
      this.objects.delete(pendingKey);
      throw this.rejected(key, { ...checked, message: `${checked.message}; the upload "${final}" was deleted` });
    }
    // The claim of lib/direct-uploads.ts: a zero-byte object that stays, so the name is never
    // written twice. Nothing awaits between the look and the write here, so it is atomic.
    if (this.objects.has(claimKey)) {
      const other = this.objects.get(key);
      if (!other) {
        throw this.rejected(key, {
          reason: 'conflict',
          message: `another confirmUpload() of "${final}" is in progress or was interrupted; nothing was published by this call (create a new upload to try again)`,
        });
      }
      return this.checkPublished(final, key, other, expectations);
    }
    this.put(claimKey, Buffer.alloc(0), { contentType: 'binary/octet-stream', metadata: { 'upload-id': uploadId } });
    this.objects.set(key, { ...pending, metadata: { ...pending.metadata }, lastModified: this.lastModifiedNow() });
    this.objects.delete(pendingKey);
    return { name: final, key, size: pending.data.length, etag: pending.etag, contentType: checked.contentType };
  }

  async createMultipartUpload(_options: CreateMultipartUploadOptions): Promise<MultipartUploadHandle> {
    throw new StorageError('multipart direct uploads: not implemented yet');
  }

  async signParts(_name: string, _uploadId: string, _partNumbers: readonly number[], _options: SignPartsOptions = {}): Promise<SignedPart[]> {
    throw new StorageError('multipart direct uploads: not implemented yet');
  }

  async listParts(_name: string, _uploadId: string, _options: MultipartCallOptions = {}): Promise<UploadedPart[]> {
    throw new StorageError('multipart direct uploads: not implemented yet');
  }

  async completeMultipartUpload(_name: string, _uploadId: string, _parts: readonly CompletedPart[], _options: MultipartCallOptions = {}): Promise<StoredObject> {
    throw new StorageError('multipart direct uploads: not implemented yet');
  }

  async abortMultipartUpload(_name: string, _uploadId: string, _options: MultipartCallOptions = {}): Promise<void> {
    throw new StorageError('multipart direct uploads: not implemented yet');
  }

  nameForKey(_key: string): string {
    throw new StorageError('multipart direct uploads: not implemented yet');
  }

  key(name: string): string {
    return toKey(this.options.location, normalizeName(name));
  }

  // ---- the test kit ----

  /**
   * The bytes behind a URL from {@link url}, as a GET by a browser would get them.
   * @throws StorageOperationError with `status` 403 and `s3Code` `SignatureDoesNotMatch` (the
   *   URL was changed, or is another storage's) or `AccessDenied` (expired), as a 403 from S3
   *   surfaces in MediaStorage; ObjectNotFoundError when the object is gone.
   */
  async resolveUrl(url: string): Promise<Buffer> {
    const grant = this.urls.verify(url, this.now(), !this.options.signedUrls || this.options.customDomain !== undefined);
    if (typeof grant === 'string') throw s3Error('resolveUrl', this.context(undefined), urlStatus(grant), grant);
    if (grant.bucket !== this.bucket) throw s3Error('resolveUrl', this.context(grant.key), 403, 'SignatureDoesNotMatch');
    return Buffer.from(this.get(grant.key).data);
  }

  /**
   * What the browser's POST of a {@link createUpload} form does, with the same refusals S3
   * gives (each a StorageOperationError with the status and S3 code a real server answers):
   * a changed field or policy (403 `AccessDenied`), an expired form (403 `AccessDenied`), a
   * body over `maxBytes` (400 `EntityTooLarge`) or empty (400 `EntityTooSmall`).
   * @param contentType the Content-Type field sent; defaults to the one the form pins
   */
  async post(upload: Pick<DirectUpload, 'fields'>, body: Buffer | Uint8Array | string, contentType?: string): Promise<void> {
    const fields = upload.fields;
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
    const denied = (why: string): StorageError => s3Error('post', this.context(fields.key), 403, 'AccessDenied', why);
    const encoded = fields.Policy ?? '';
    const given = Buffer.from(fields['X-Memory-Signature'] ?? '');
    const expected = Buffer.from(this.urls.mac(`policy\n${encoded}`));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw denied('the policy was not signed by this storage, or was changed');
    const policy = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as FormPolicy;
    if (this.now() > Date.parse(policy.expiration)) throw denied('the form has expired');
    const c = policy.conditions;
    const sentType = contentType ?? fields['Content-Type'];
    if (fields.key !== c.key || sentType !== c.contentType || fields[MARKER_FIELD] !== c.marker) {
      throw denied('a field differs from what the policy pins (key, Content-Type or marker)');
    }
    if (bytes.length > c.maxBytes) throw s3Error('post', this.context(c.key), 400, 'EntityTooLarge');
    if (bytes.length < 1) throw s3Error('post', this.context(c.key), 400, 'EntityTooSmall');
    this.put(c.key, bytes, { contentType: c.contentType, metadata: { [MARKER_METADATA]: c.marker } });
  }

  /** Throws an AssertionError naming `name` unless an object is stored under it. */
  async assertExists(name: string): Promise<void> {
    if (!this.objects.has(this.key(name))) {
      throw new AssertionError({ message: `expected ${describeName(name)} to exist in in-memory bucket "${this.bucket}", but it does not${this.nearby(name)}` });
    }
  }

  /** Throws an AssertionError naming `name` if an object is stored under it. */
  async assertMissing(name: string): Promise<void> {
    if (this.objects.has(this.key(name))) {
      throw new AssertionError({ message: `expected ${describeName(name)} to be missing from in-memory bucket "${this.bucket}", but it exists` });
    }
  }

  /** Throws an AssertionError unless exactly `count` objects are stored under `prefix` (as `list()` sees them). */
  async assertCount(prefix: string, count: number): Promise<void> {
    const names: string[] = [];
    for await (const entry of this.list(prefix)) names.push(entry.name);
    if (names.length !== count) {
      const shown = names.slice(0, 20).map((n) => describeName(n)).join(', ');
      throw new AssertionError({
        message: `expected ${count} object(s) under prefix ${describeName(prefix)} in in-memory bucket "${this.bucket}", found ${names.length}${names.length ? `: ${shown}${names.length > 20 ? ', …' : ''}` : ''}`,
        actual: names.length,
        expected: count,
        operator: 'strictEqual',
      });
    }
  }

  /** The bytes stored under `name`. Throws an AssertionError naming it when it is missing. */
  async contents(name: string): Promise<Buffer> {
    const object = this.objects.get(this.key(name));
    if (!object) throw new AssertionError({ message: `expected ${describeName(name)} in in-memory bucket "${this.bucket}" to have contents, but it does not exist${this.nearby(name)}` });
    return Buffer.from(object.data);
  }

  /** Every stored name, in key order (location prefix stripped). */
  names(): string[] {
    return this.keysAfter('', undefined).map((key) => fromKey(this.options.location, key));
  }

  /** Removes every object. */
  clear(): void {
    this.objects.clear();
  }

  /** Moves this storage's clock forward by `ms` (URL and form expiry, `lastModified`). */
  advanceClock(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advanceClock(): ms must be a finite number, 0 or more (got ${String(ms)})`);
    this.clockOffset += ms;
  }

  /** The storage's current time in ms. */
  now(): number {
    return this.clock() + this.clockOffset;
  }

  // ---- internals ----

  private async *entries(prefix: string | undefined, options: { signal?: AbortSignal }): AsyncIterable<ListEntry> {
    const fullPrefix = this.fullPrefix(prefix);
    let after: string | undefined;
    for (;;) {
      this.throwIfAborted('list', options.signal, undefined);
      // A page is what S3 answered at one moment: its entries, as they were then.
      const page = this.keysAfter(fullPrefix, after)
        .slice(0, LIST_PAGE)
        .map((key) => ({ key, entry: this.entryOf(key) }));
      for (const { entry } of page) yield entry;
      if (page.length < LIST_PAGE) return;
      after = page[page.length - 1]!.key;
    }
  }

  /** The full key prefix of a listing, as MediaStorage builds it. */
  private fullPrefix(prefix: string | undefined): string {
    const normalized = normalizePrefix(prefix);
    const location = this.options.location;
    return location ? `${location}/${normalized}` : normalized;
  }

  private entryOf(key: string): ListEntry {
    const object = this.objects.get(key)!;
    return { name: fromKey(this.options.location, key), size: object.data.length, lastModified: object.lastModified, etag: object.etag };
  }

  /** What an aborted signal gives in MediaStorage's calls: StorageAbortedError. */
  private throwIfAborted(operation: string, signal: AbortSignal | undefined, key: string | undefined): void {
    if (signal?.aborted) throw toStorageError(operation, signal.reason, this.context(key), signal);
  }

  private put(key: string, data: Buffer, meta: { contentType: string; cacheControl?: string; contentDisposition?: string; metadata: Record<string, string> }): void {
    // S3 keeps user-metadata names in lower case.
    const metadata = Object.fromEntries(Object.entries(meta.metadata).map(([k, v]) => [k.toLowerCase(), v]));
    this.objects.set(key, {
      data,
      etag: createHash('md5').update(data).digest('hex'),
      lastModified: this.lastModifiedNow(),
      contentType: meta.contentType,
      cacheControl: meta.cacheControl,
      contentDisposition: meta.contentDisposition,
      metadata,
    });
  }

  /** S3 dates have whole seconds. */
  private lastModifiedNow(): Date {
    return new Date(Math.floor(this.now() / 1000) * 1000);
  }

  private get(key: string): MemoryObject {
    const object = this.objects.get(key);
    if (!object) throw new ObjectNotFoundError({ bucket: this.bucket, key, endpoint: ENDPOINT });
    return object;
  }

  private keysAfter(prefix: string, after: string | undefined): string[] {
    const afterBytes = after === undefined ? undefined : Buffer.from(after, 'utf8');
    return [...this.objects.keys()]
      .filter((key) => key.startsWith(prefix) && (afterBytes === undefined || Buffer.compare(Buffer.from(key, 'utf8'), afterBytes) > 0))
      .sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  }

  /** The body's bytes, with MediaStorage's checks (chunk types, declared size, abort). */
  private async bytesOf(name: string, body: StorageBody, options: SaveOptions): Promise<Buffer> {
    const declared = options.size;
    if (declared !== undefined && !(Number.isSafeInteger(declared) && declared >= 0)) {
      throw new InvalidBodyError(`save(): size must be a whole number of bytes, 0 or more (got ${String(declared)})`);
    }
    let data: Buffer;
    if (typeof body === 'string') data = Buffer.from(body, 'utf8');
    else if (Buffer.isBuffer(body)) data = Buffer.from(body);
    else if (body instanceof Uint8Array) data = Buffer.from(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
    else if (body instanceof Readable) {
      options.signal?.throwIfAborted();
      const encoder = new ChunkEncoder(`save(${describeName(name)})`);
      const chunks: Buffer[] = [];
      const iterator = body[Symbol.asyncIterator]();
      for (;;) {
        const next = await nextOrAbort(iterator, options.signal);
        if (next.done) break;
        chunks.push(Buffer.from(encoder.encode(next.value)));
      }
      chunks.push(encoder.end());
      data = Buffer.concat(chunks);
    } else {
      throw new InvalidBodyError(`save(): body must be a Buffer, Uint8Array, string or Readable, got ${typeof body}`);
    }
    options.signal?.throwIfAborted();
    if (declared !== undefined && data.length !== declared) {
      throw new UploadRejectedError('size-mismatch', `the body has ${data.length} bytes, not the ${declared} given as its size; nothing was stored`, this.context(toKey(this.options.location, name)));
    }
    return data;
  }

  private checkPublished(final: string, key: string, published: MemoryObject, expectations: UploadExpectations): Promise<StoredObject> {
    if (!this.uploadIdOf(published, key)) {
      throw this.rejected(key, {
        reason: 'not-direct-upload',
        message: `"${final}" exists but was not published by confirmUpload() from a createUpload() form for that name; nothing was changed`,
      });
    }
    return this.inspect(published, expectations).then((checked) => {
      if ('reason' in checked) throw this.rejected(key, { ...checked, message: `${checked.message}; "${final}" was already published and was left as it is` });
      return { name: final, key, size: published.data.length, etag: published.etag, contentType: checked.contentType };
    });
  }

  private inspect(object: MemoryObject, expectations: UploadExpectations): Promise<{ contentType: string } | Rejection> {
    return inspectUpload({ size: object.data.length, contentType: object.contentType }, expectations, async () => object.data.subarray(0, SNIFF_BYTES));
  }

  /** The upload id when the object carries a valid marker of this storage for `key`. */
  private uploadIdOf(object: MemoryObject, key: string): string | undefined {
    const marker = object.metadata[MARKER_METADATA];
    const dot = marker?.indexOf('.') ?? -1;
    if (!marker || dot < 1) return undefined;
    const uploadId = marker.slice(0, dot);
    const given = Buffer.from(marker.slice(dot + 1));
    const expected = Buffer.from(this.urls.mac(`marker\n${this.bucket}\n${key}\n${uploadId}`));
    return given.length === expected.length && timingSafeEqual(given, expected) ? uploadId : undefined;
  }

  private rejected(key: string, rejection: Rejection): UploadRejectedError {
    return new UploadRejectedError(rejection.reason, rejection.message, this.context(key));
  }

  private context(key: string | undefined): { bucket: string; key?: string; endpoint: string } {
    return { bucket: this.bucket, key, endpoint: ENDPOINT };
  }

  /** For an assertion message: the stored names closest to a missing one (same folder). */
  private nearby(name: string): string {
    let folder = '';
    try {
      const normalized = normalizeName(name);
      folder = normalized.includes('/') ? normalized.slice(0, normalized.lastIndexOf('/') + 1) : '';
    } catch {
      return '';
    }
    const near = this.names().filter((n) => n.startsWith(folder)).slice(0, 10);
    return near.length ? ` (stored under ${describeName(folder || '/')}: ${near.map((n) => describeName(n)).join(', ')})` : ` (nothing is stored under ${describeName(folder || '/')})`;
  }
}

/** The URL signer's check of a lifetime, with its error. @throws StorageConfigurationError */
function checkExpiresIn(expiresIn: number): void {
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_URL_EXPIRES_IN) {
    throw new StorageConfigurationError([`expiresIn: must be a whole number of seconds from 1 to ${MAX_URL_EXPIRES_IN} (got ${String(expiresIn)})`]);
  }
}

/** The HTTP status S3 answers a refused URL with. */
function urlStatus(problem: MemoryUrlProblem): number {
  return problem === 'InvalidRequest' ? 400 : 403;
}

/**
 * The error MediaStorage throws for an S3 answer of `status` with `code`: made by the same
 * mapping (toStorageError), from an error shaped like the AWS SDK's.
 */
function s3Error(operation: string, context: { bucket: string; key?: string; endpoint: string }, status: number, code: string, why?: string): StorageError {
  const sdkLike = Object.assign(new Error(why ?? code), { name: code, $fault: 'client', $metadata: { httpStatusCode: status } });
  return toStorageError(operation, sdkLike, context);
}
