/**
 * `MediaStorage`: user uploads (avatars and anything else) in one bucket, private by
 * default, with signed URLs for the browser.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { addAbortSignal, Readable } from 'node:stream';
import { nextOrAbort, unquote } from './abortable.js';
import { guessContentType } from './content-type.js';
import { multipartUpload } from './multipart-upload.js';
import { ChunkEncoder, readStreamSize } from './stream-chunks.js';
import { alternativeName, fromKey, normalizeName, normalizePrefix, toKey } from './key-normalizer.js';
import { DirectUploads, type CreateUploadOptions, type DirectUpload, type UploadExpectations } from './direct-uploads.js';
import type { MediaStorageApi } from './media-storage.api.js';
import { describeEndpoint } from './s3-client.factory.js';
import { codeOf, errorDetail, statusOf, toStorageError } from './s3-errors.js';
import {
  describeName,
  InvalidBodyError,
  ObjectNotFoundError,
  StorageError,
  StorageAbortedError,
  StorageOperationError,
  StorageTimeoutError,
  UploadRejectedError,
} from './storage.errors.js';
import { MAX_URL_EXPIRES_IN, type ResolvedMediaOptions } from './storage-options.validation.js';
import { CloudFrontSigner, type CloudFrontCookies, type CloudFrontPolicyOptions } from './cloudfront-signer.js';
import { cacheWindowAt, UrlCache, type MediaUrl } from './url-cache.js';
import { contentDisposition, encodeKeyPath, type UrlSigner } from './url-signer.js';

/**
 * What `save()` accepts. Strings are stored as UTF-8. A `Readable` may yield `Buffer`,
 * `Uint8Array` or string chunks (strings as UTF-8, also when a character is split between
 * chunks); any other chunk fails the save with `InvalidBodyError`, storing nothing.
 */
export type StorageBody = Buffer | Uint8Array | string | Readable;

/** Per-call options of `save()`. */
export interface SaveOptions {
  /** Content-Type; guessed from the name's extension when omitted. */
  contentType?: string;
  /** Cache-Control; defaults to `objectParameters.cacheControl`. */
  cacheControl?: string;
  /** Content-Disposition; defaults to `objectParameters.contentDisposition`. */
  contentDisposition?: string;
  /** User metadata (`x-amz-meta-*`), merged over `objectParameters.metadata`. */
  metadata?: Record<string, string>;
  /** Overrides the storage's `overwrite` option for this call. */
  overwrite?: boolean;
  /** Cancels the upload; a multipart upload is aborted on the server, nothing is stored. */
  signal?: AbortSignal;
  /** Called as bytes are sent (multipart uploads report per part). */
  onProgress?: (bytesSent: number) => void;
  /**
   * The body's exact size in bytes, when known (a Content-Length, a file size). A stream
   * longer than `partSize × 10,000` then gets parts large enough to fit S3's 10,000-part
   * limit; without it such a stream fails when it reaches the limit. A body of any other
   * size fails with `UploadRejectedError` (reason `'size-mismatch'`) and nothing is stored.
   * An `fs.ReadStream` needs none: its file's size is read (as a hint only, not checked).
   * @default undefined (unknown)
   */
  size?: number;
}

/** What `upload()` stored. */
export interface StoredObject {
  /** Name relative to the storage location (may differ from the one asked for). */
  name: string;
  /** Full S3 key. */
  key: string;
  size: number;
  /** ETag without quotes. */
  etag: string;
  contentType: string;
}

/** What `stat()` returns. */
export interface ObjectStat {
  size: number;
  lastModified: Date;
  /** The ETag without quotes. */
  etag: string;
  contentType?: string;
  cacheControl?: string;
  metadata: Record<string, string>;
}

/** One entry of `list()`. */
export interface ListEntry {
  /** Name relative to the storage location (what `save()` returned). */
  name: string;
  size: number;
  lastModified: Date;
  etag: string;
}

/** Per-call options of `url()`. */
export interface UrlOptions {
  /** Seconds the signed URL stays valid; defaults to `urlExpiresIn`. */
  expiresIn?: number;
  /** Makes the browser download the file under this name (RFC 6266, non-ASCII safe). */
  downloadAs?: string;
  /** The raw `Content-Disposition` S3 answers with; wins over `downloadAs`. */
  responseContentDisposition?: string;
  /** The `Content-Type` S3 answers with. */
  responseContentType?: string;
  /**
   * Seconds of the cache window for this call (0 turns it off); defaults to `urlCacheWindow`.
   * Only for names whose bytes never change (see the README).
   */
  cacheWindow?: number;
  /** CloudFront only: sign a custom policy (a wildcard resource, an IP range) instead of a canned one. */
  policy?: CloudFrontPolicyOptions;
}

/** Options of `cookies()`. */
export interface CookieOptions {
  /** Seconds the cookies' signature stays valid; defaults to `urlExpiresIn`. */
  expiresIn?: number;
  /** The IPv4 address or CIDR range the cookies work from. */
  ipAddress?: string;
  /** Seconds of the cache window (the same cookies within one); defaults to `urlCacheWindow`. */
  cacheWindow?: number;
}

export type { CreateUploadOptions, DirectUpload, UploadExpectations } from './direct-uploads.js';

/** A conditional write lost to an object that already exists under the name. */
const PRECONDITION = new Set(['PreconditionFailed', 'ConditionalRequestConflict']);
const MAX_NAME_ATTEMPTS = 8;
/**
 * User metadata (`x-amz-meta-nss3-reservation`) of the empty placeholder that holds a name
 * while a multipart save uploads onto it; its value is that save's own random token.
 */
export const RESERVATION_METADATA = 'nss3-reservation';
/** The ETag of an empty object (md5 of nothing), for servers that answer a PUT without one. */
const EMPTY_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"';

/** A name held by this save's placeholder. */
interface Reservation {
  name: string;
  key: string;
  token: string;
  etag: string;
}

type PreparedBody = { kind: 'buffer'; data: Buffer } | { kind: 'stream'; stream: AsyncIterable<Buffer>; sizeHint?: number };

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
  private readonly cloudfront?: CloudFrontSigner;
  private readonly urlCache = new UrlCache<MediaUrl>();
  private readonly cookieCache = new UrlCache<CloudFrontCookies>();

  constructor(
    private readonly client: S3Client,
    private readonly options: ResolvedMediaOptions,
    private readonly signer: UrlSigner,
  ) {
    this.bucket = options.bucket;
    this.endpointLabel = describeEndpoint(options);
    const cf = options.cloudfront;
    if (cf) this.cloudfront = new CloudFrontSigner({ origin: cf.domain, keyPairId: cf.keyPairId, privateKey: cf.privateKey });
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
      return await this.store(name, body, options);
    } catch (error) {
      // Whatever failed (the name check, the source, S3, an abort), the caller's stream is
      // released: a socket or file behind it must not stay open. No error is passed, so an
      // unobserved stream emits no 'error' event.
      if (body instanceof Readable && !body.destroyed) body.destroy();
      throw error;
    }
  }

  private async store(name: string, body: StorageBody, options: SaveOptions): Promise<StoredObject> {
    const wanted = normalizeName(name);
    const overwrite = options.overwrite ?? this.options.overwrite;
    const source = await this.prepareBody(wanted, body, options).catch((error: unknown) => {
      throw this.wrap('save', error, toKey(this.options.location, wanted), options.signal);
    });
    // On a server that honours no conditional write (s3rver) this look is the only protection;
    // elsewhere it spares a request that would fail.
    let stored = wanted;
    if (!overwrite && (await this.exists(stored))) stored = alternativeName(wanted, randomBytes);
    if (source.kind === 'buffer') return this.putBuffer(wanted, stored, source.data, options, overwrite);
    if (overwrite) return this.putStream(stored, source, options);

    // A stream cannot be sent twice, and no multipart request is conditional on every server
    // (Ceph ignores If-None-Match on CompleteMultipartUpload and on CopyObject): the name is
    // won first, with a conditional PUT of an empty placeholder, then uploaded onto.
    const reservation = await this.reserve(wanted, stored, options);
    try {
      return await this.putStream(reservation.name, source, options, reservation);
    } catch (error) {
      await this.release(reservation);
      throw error;
    }
  }

  /** One PutObject; under `overwrite: false`, retried under a new name when the name is taken. */
  private async putBuffer(wanted: string, first: string, data: Buffer, options: SaveOptions, overwrite: boolean): Promise<StoredObject> {
    let stored = first;
    for (let attempt = 1; ; attempt++) {
      const key = toKey(this.options.location, stored);
      const input = this.putInput(key, stored, options, overwrite);
      try {
        const out = await this.call('save', key, options.signal, (abortSignal) =>
          this.client.send(new PutObjectCommand({ ...input, Body: data }), { abortSignal }),
        );
        options.onProgress?.(data.length);
        return { name: stored, key, size: data.length, etag: unquote(out.ETag), contentType: input.ContentType! };
      } catch (error) {
        if (overwrite || !isPreconditionFailure(error)) throw this.wrap('save', error, key, options.signal);
        if (attempt >= MAX_NAME_ATTEMPTS) throw this.namesTaken(key, error);
        stored = alternativeName(wanted, randomBytes);
      }
    }
  }

  /** A multipart upload to `name`: onto this save's own placeholder when there is one. */
  private async putStream(name: string, source: Extract<PreparedBody, { kind: 'stream' }>, options: SaveOptions, reservation?: Reservation): Promise<StoredObject> {
    const key = toKey(this.options.location, name);
    // No If-None-Match: the placeholder is there. If-Match on Complete (honoured by AWS, ignored
    // by Ceph) refuses to complete over anything that replaced the placeholder meanwhile.
    const input = { ...this.putInput(key, name, options, true), IfMatch: reservation?.etag };
    try {
      const out = await multipartUpload(this.client, input, source.stream, {
        partSize: this.options.partSize,
        queueSize: this.options.queueSize,
        signal: options.signal,
        onProgress: options.onProgress,
        totalSize: options.size ?? source.sizeHint,
        exactSize: options.size !== undefined,
      });
      return { name, key, size: out.size, etag: out.etag, contentType: input.ContentType! };
    } catch (error) {
      if (reservation && isPreconditionFailure(error)) {
        throw new StorageOperationError('save', 'the name was taken over while the upload ran (its placeholder was replaced, e.g. by a save with overwrite: true); nothing of this upload was stored', {
          bucket: this.bucket,
          key,
          endpoint: this.endpointLabel,
          cause: error,
          status: statusOf(error instanceof StorageError ? error.cause : error),
          s3Code: 'PreconditionFailed',
        });
      }
      throw this.wrap('save', error, key, options.signal);
    }
  }

  /**
   * Wins a name for a multipart save: an empty placeholder PUT with `If-None-Match: *`, the one
   * conditional request Ceph, AWS and MinIO all arbitrate. A lost race tries a new name (the
   * stream has not been sent yet). The placeholder carries this save's own token, so a failed
   * save deletes only its own, and `Cache-Control: no-store`, so no cache keeps the empty body.
   */
  private async reserve(wanted: string, first: string, options: SaveOptions): Promise<Reservation> {
    const token = randomBytes(12).toString('base64url');
    let name = first;
    for (let attempt = 1; ; attempt++) {
      const key = toKey(this.options.location, name);
      try {
        const out = await this.call('save', key, options.signal, (abortSignal) =>
          this.client.send(
            new PutObjectCommand({
              Bucket: this.bucket,
              Key: key,
              Body: Buffer.alloc(0),
              IfNoneMatch: '*',
              ContentType: options.contentType ?? guessContentType(name),
              CacheControl: 'no-store',
              Metadata: { [RESERVATION_METADATA]: token },
            }),
            { abortSignal },
          ),
        );
        return { name, key, token, etag: out.ETag ?? EMPTY_ETAG };
      } catch (error) {
        // Cut short after sending, the PUT may still have stored the placeholder: remove it
        // if it is there (the token tells ours apart).
        if (error instanceof StorageAbortedError || error instanceof StorageTimeoutError) await this.release({ name, key, token, etag: EMPTY_ETAG }, false);
        if (!isPreconditionFailure(error)) throw error;
        if (attempt >= MAX_NAME_ATTEMPTS) throw this.namesTaken(key, error);
        name = alternativeName(wanted, randomBytes);
      }
    }
  }

  /**
   * Deletes a failed save's placeholder, and only its own: the token is checked first (and
   * the delete is conditional on its ETag where the server honours that). A failure is logged,
   * never thrown over the save's own error.
   */
  private async release(reservation: Reservation, logFailure = true): Promise<void> {
    const { key, token, etag } = reservation;
    try {
      const head = await this.call('save', key, undefined, (abortSignal) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }),
      );
      if (head.Metadata?.[RESERVATION_METADATA] !== token) return;
      await this.call('save', key, undefined, (abortSignal) =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key, IfMatch: etag }), { abortSignal }),
      );
    } catch (error) {
      if (error instanceof ObjectNotFoundError || !logFailure) return;
      const reason = errorDetail(error);
      this.logger.warn(
        `could not delete the placeholder of a failed save at key ${describeName(key)} in bucket "${this.bucket}" (${reason}): an empty object with metadata ${RESERVATION_METADATA}=${token} holds that name until it is deleted`,
      );
    }
  }

  private namesTaken(key: string, cause: unknown): StorageOperationError {
    return new StorageOperationError(
      'save',
      `${MAX_NAME_ATTEMPTS} names in a row were taken by other saves at the same moment; nothing was stored (try again)`,
      { bucket: this.bucket, key, endpoint: this.endpointLabel, cause, status: 412, s3Code: 'PreconditionFailed' },
    );
  }

  /** A readable stream of the object's bytes. @throws ObjectNotFoundError */
  async open(name: string, options: { signal?: AbortSignal; range?: { start: number; end?: number } } = {}): Promise<Readable> {
    const key = this.key(name);
    const range = options.range && `bytes=${options.range.start}-${options.range.end ?? ''}`;
    const out = await this.call('open', key, options.signal, (abortSignal) =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range }), { abortSignal }),
    );
    const body = out.Body as Readable;
    // The deadline ends with the headers; the caller's signal still cuts the body short.
    return options.signal ? addAbortSignal(options.signal, body) : body;
  }

  /** The object's bytes in one Buffer. Use `open()` for large objects. @throws ObjectNotFoundError */
  async read(name: string, options: { signal?: AbortSignal; range?: { start: number; end?: number } } = {}): Promise<Buffer> {
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
   */
  async *list(prefix?: string, options: { signal?: AbortSignal } = {}): AsyncIterable<ListEntry> {
    const normalized = normalizePrefix(prefix);
    const location = this.options.location;
    const fullPrefix = location ? `${location}/${normalized}` : normalized;
    let token: string | undefined;
    do {
      const input = { Bucket: this.bucket, Prefix: fullPrefix || undefined, ContinuationToken: token, MaxKeys: 1000 };
      const page = await this.call('list', undefined, options.signal, (abortSignal) =>
        this.client.send(new ListObjectsV2Command(input), { abortSignal }),
      );
      for (const item of page.Contents ?? []) {
        if (item.Key === undefined) continue;
        yield {
          name: fromKey(location, item.Key),
          size: item.Size ?? 0,
          lastModified: item.LastModified ?? new Date(0),
          etag: unquote(item.ETag),
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
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
    const key = this.key(name);
    const { customDomain, signedUrls } = this.options;
    const expiresIn = options.expiresIn ?? this.options.urlExpiresIn;
    const window = this.cacheWindow('url', expiresIn, options.cacheWindow);
    if (this.cloudfront) return this.cloudFrontUrl(this.cloudfront, key, expiresIn, window, options.policy);
    if (customDomain !== undefined) return { url: `${customDomain}/${encodeKeyPath(key)}` };
    if (!signedUrls) return { url: await this.signer.unsignedUrl(key) };
    const responseContentDisposition =
      options.responseContentDisposition ?? (options.downloadAs === undefined ? undefined : contentDisposition(options.downloadAs));
    const responseContentType = options.responseContentType;
    if (window === 0) {
      const url = await this.signer.sign(key, { expiresIn, responseContentDisposition, responseContentType });
      return { url, expiresAt: sigV4Expiry(url) };
    }
    const { start } = cacheWindowAt(this.signer.clock(), window);
    const credentials = await this.signer.credentials();
    const cacheKey = `${window}:${start}:${expiresIn}:${key}\n${responseContentDisposition ?? '\0'}\n${responseContentType ?? '\0'}`;
    return this.urlCache.lookup(credentials.accessKeyId, credentials.sessionToken ?? '', cacheKey, async () => {
      let signedFor = 0;
      const url = await this.signer.sign(key, {
        // Valid `expiresIn` after the window's last moment; clamping by expiring credentials still wins.
        expiresIn: expiresIn + window,
        signingDate: start,
        responseCacheControl: (seconds) => `private, max-age=${Math.max(0, (signedFor = seconds) - window)}`,
        responseContentDisposition,
        responseContentType,
      });
      return Object.freeze({ url, expiresAt: new Date(start + signedFor * 1000), maxAge: Math.max(0, signedFor - window) });
    });
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
    const cf = this.cloudfront;
    if (!cf) throw new StorageError('cookies(): media.cloudfront is not configured; signed cookies are a CloudFront feature (set media.cloudfront or MEDIA_S3_CLOUDFRONT_*)');
    const expiresIn = options.expiresIn ?? this.options.urlExpiresIn;
    const window = this.cacheWindow('cookies', expiresIn, options.cacheWindow);
    const resource = cf.resourceOf(pathPattern, this.options.location);
    const now = this.signer.clock();
    if (window === 0) return cf.cookies(resource, Math.floor(now / 1000) + expiresIn, options.ipAddress);
    const { start } = cacheWindowAt(now, window);
    const expiresAt = start / 1000 + window + expiresIn;
    const cacheKey = `${window}:${start}:${expiresIn}:${resource}\n${options.ipAddress ?? '\0'}`;
    return this.cookieCache.lookup('', '', cacheKey, () => Object.freeze(cf.cookies(resource, expiresAt, options.ipAddress)));
  }

  private cloudFrontUrl(cf: CloudFrontSigner, key: string, expiresIn: number, window: number, policy: CloudFrontPolicyOptions | undefined): MediaUrl {
    const url = cf.urlOf(key);
    const custom = policy && { resource: policy.resource === undefined ? undefined : cf.resourceOf(policy.resource, this.options.location), ipAddress: policy.ipAddress };
    const now = this.signer.clock();
    if (window === 0) {
      const expiresAt = Math.floor(now / 1000) + expiresIn;
      return { url: cf.sign(url, expiresAt, custom), expiresAt: new Date(expiresAt * 1000) };
    }
    const { start } = cacheWindowAt(now, window);
    const expiresAt = start / 1000 + window + expiresIn;
    const cacheKey = `${window}:${start}:${expiresIn}:${key}\n${custom?.resource ?? '\0'}\n${custom?.ipAddress ?? '\0'}`;
    return this.urlCache.lookup('cloudfront', '', cacheKey, () =>
      Object.freeze({ url: cf.sign(url, expiresAt, custom), expiresAt: new Date(expiresAt * 1000), maxAge: expiresIn }),
    );
  }

  /** The window for one call, checked: the extended expiry must stay within SigV4's 7 days. */
  private cacheWindow(operation: string, expiresIn: number, perCall: number | undefined): number {
    const window = perCall ?? this.options.urlCacheWindow;
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

  private directUploadsInstance?: DirectUploads;

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

  private putInput(key: string, name: string, options: SaveOptions, overwrite: boolean): PutObjectCommandInput {
    const defaults = this.options.objectParameters;
    const metadata = { ...defaults.metadata, ...options.metadata };
    return {
      Bucket: this.bucket,
      Key: key,
      ContentType: options.contentType ?? guessContentType(name),
      CacheControl: options.cacheControl ?? defaults.cacheControl,
      ContentDisposition: options.contentDisposition ?? defaults.contentDisposition,
      Metadata: Object.keys(metadata).length > 0 ? metadata : undefined,
      ACL: this.options.acl,
      IfNoneMatch: overwrite ? undefined : '*',
    };
  }

  /**
   * Reads up to one part of a stream: a body that fits is sent in one PutObject (and can be
   * retried under another name); a longer one continues as a multipart stream. Chunks become
   * bytes here, once, whatever their type.
   */
  private async prepareBody(name: string, body: StorageBody, options: SaveOptions): Promise<PreparedBody> {
    const declared = options.size;
    if (declared !== undefined && !(Number.isSafeInteger(declared) && declared >= 0)) {
      throw new InvalidBodyError(`save(): size must be a whole number of bytes, 0 or more (got ${String(declared)})`);
    }
    const whole = (data: Buffer): PreparedBody => {
      if (declared !== undefined && data.length !== declared) {
        throw new UploadRejectedError('size-mismatch', `the body has ${data.length} bytes, not the ${declared} given as its size; nothing was stored`, {
          bucket: this.bucket,
          key: toKey(this.options.location, name),
          endpoint: this.endpointLabel,
        });
      }
      return { kind: 'buffer', data };
    };
    if (typeof body === 'string') return whole(Buffer.from(body, 'utf8'));
    if (Buffer.isBuffer(body)) return whole(body);
    if (body instanceof Uint8Array) return whole(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    if (!(body instanceof Readable)) {
      throw new InvalidBodyError(`save(): body must be a Buffer, Uint8Array, string or Readable, got ${typeof body}`);
    }
    options.signal?.throwIfAborted();
    const sizeHint = declared ?? (await readStreamSize(body));
    const limit = this.options.partSize;
    const encoder = new ChunkEncoder(`save(${describeName(name)})`);
    const head: Buffer[] = [];
    let size = 0;
    const iterator = body[Symbol.asyncIterator]();
    while (size <= limit) {
      const next = await nextOrAbort(iterator, options.signal);
      const chunk = next.done ? encoder.end() : encoder.encode(next.value);
      head.push(chunk);
      size += chunk.length;
      if (next.done) return whole(Buffer.concat(head, size));
    }
    async function* rest(): AsyncGenerator<Buffer> {
      try {
        // Hand the first part over chunk by chunk, so it is not kept for the whole upload.
        for (let chunk = head.shift(); chunk !== undefined; chunk = head.shift()) yield chunk;
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
          const chunk = encoder.encode(next.value);
          if (chunk.length > 0) yield chunk;
        }
        const tail = encoder.end();
        if (tail.length > 0) yield tail;
      } finally {
        await iterator.return?.();
      }
    }
    return { kind: 'stream', stream: rest(), sizeHint };
  }

  /**
   * Runs one request/response S3 call under the caller's signal and the `timeout`
   * deadline (cleared once the response headers are in, so streaming a body is not cut).
   */
  private async call<T>(operation: string, key: string | undefined, caller: AbortSignal | undefined, send: (signal: AbortSignal) => Promise<T>): Promise<T> {
    caller?.throwIfAborted();
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

/** When a SigV4 query-signed URL stops working, from its own X-Amz-Date and X-Amz-Expires. */
function sigV4Expiry(url: string): Date {
  const date = /[?&]X-Amz-Date=(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(url)!;
  const expires = Number(/[?&]X-Amz-Expires=(\d+)/.exec(url)![1]);
  return new Date(Date.UTC(+date[1]!, +date[2]! - 1, +date[3]!, +date[4]!, +date[5]!, +date[6]!) + expires * 1000);
}

function isPreconditionFailure(wrapped: unknown): boolean {
  const error = wrapped instanceof StorageError ? wrapped.cause : wrapped;
  const code = codeOf(error);
  return statusOf(error) === 412 || (code !== undefined && PRECONDITION.has(code));
}
