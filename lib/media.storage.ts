/**
 * `MediaStorage`: user uploads (avatars and anything else) in one bucket, private by
 * default, with signed URLs for the browser.
 */
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { randomBytes, randomUUID } from 'node:crypto';
import { addAbortSignal, Readable } from 'node:stream';
import { asBuffer, nextOrAbort, unquote } from './abortable.js';
import { extensionFor, guessContentType } from './content-type.js';
import { SNIFF_BYTES, SNIFFABLE_TYPES, sniffContentType } from './content-sniffing.js';
import { multipartUpload } from './multipart-upload.js';
import { alternativeName, fromKey, normalizeName, normalizePrefix, toKey } from './key-normalizer.js';
import { describeEndpoint } from './s3-client.factory.js';
import { codeOf, statusOf, toStorageError } from './s3-errors.js';
import { ObjectNotFoundError, StorageError, StorageOperationError, StorageTimeoutError, UploadRejectedError } from './storage.errors.js';
import { MAX_URL_EXPIRES_IN, type ResolvedMediaOptions } from './storage-options.validation.js';
import { CloudFrontSigner, type CloudFrontCookies, type CloudFrontPolicyOptions } from './cloudfront-signer.js';
import { cacheWindowAt, UrlCache, type MediaUrl } from './url-cache.js';
import { contentDisposition, encodeKeyPath, type UrlSigner } from './url-signer.js';

/** What `save()` accepts. Strings are stored as UTF-8. */
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

/** Options of `createUpload()`. */
export interface CreateUploadOptions {
  /** The most bytes the server will accept; it rejects larger uploads itself. Required. */
  maxBytes: number;
  /** Folder for the generated name `<prefix>/<uuid>.<ext>`. @default 'uploads' */
  prefix?: string;
  /**
   * The exact name to upload to instead of a generated one. It must be unique: a presigned
   * POST cannot refuse to replace an existing object, so `overwrite: false` does not apply.
   */
  name?: string;
  /**
   * The exact Content-Type the browser must send (the policy pins it).
   * @default 'application/octet-stream' (browsers download such objects rather than render them)
   */
  contentType?: string;
  /** Seconds the form stays valid. @default 300 (or urlExpiresIn when shorter) */
  expiresIn?: number;
}

/** A presigned POST: send `fields` then the file (as the last field, `file`) to `url`. */
export interface DirectUpload {
  url: string;
  fields: Record<string, string>;
  /** The name the object will have (relative to the location); pass it to `confirmUpload()`. */
  name: string;
  key: string;
  maxBytes: number;
  expiresAt: Date;
}

/** What `confirmUpload()` checks. */
export interface UploadExpectations {
  /** The most bytes allowed. */
  maxBytes?: number;
  /** The type the bytes must be (checked against their signature when it is one we know). */
  contentType?: string;
  /** Types the bytes may be, as sniffed. */
  allowedTypes?: readonly string[];
}

/** Where direct uploads wait for `confirmUpload()`, under the location. */
const PENDING_PREFIX = '.pending';
/** Default lifetime of a presigned POST: enough to pick a file and start sending it. */
const DIRECT_UPLOAD_EXPIRES_IN = 300;
/** CopyObject moves at most 5 GiB in one request. */
const MAX_COPY_BYTES = 5 * 1024 * 1024 * 1024;

function pendingName(name: string): string {
  return `${PENDING_PREFIX}/${name}`;
}

/** A conditional write lost to an object that already exists under the name. */
const PRECONDITION = new Set(['PreconditionFailed', 'ConditionalRequestConflict']);
const MAX_NAME_ATTEMPTS = 8;

/**
 * Stores and serves user media. Inject it; the module builds it from `media` options.
 *
 * Names are relative to `location` and normalized in one place (see the README): callers
 * get back the name actually stored, which may differ from the one asked for when
 * `overwrite` is false and the name was taken.
 */
export class MediaStorage {
  /** The bucket this storage writes to. */
  readonly bucket: string;
  private readonly endpointLabel: string;
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
   * stored under `name_<random>.ext` instead, also when two saves race for one name.
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
    let stored = wanted;
    const overwrite = options.overwrite ?? this.options.overwrite;
    const source = await this.prepareBody(body, options.signal).catch((error: unknown) => {
      throw this.wrap('save', error, toKey(this.options.location, wanted), options.signal);
    });
    if (!overwrite && (await this.exists(stored))) stored = alternativeName(wanted, randomBytes);

    for (let attempt = 1; ; attempt++) {
      const key = toKey(this.options.location, stored);
      const input = this.putInput(key, stored, options, overwrite);
      try {
        if (source.kind === 'buffer') {
          const out = await this.call('save', key, options.signal, (abortSignal) =>
            this.client.send(new PutObjectCommand({ ...input, Body: source.data }), { abortSignal }),
          );
          options.onProgress?.(source.data.length);
          return { name: stored, key, size: source.data.length, etag: unquote(out.ETag), contentType: input.ContentType! };
        }
        const out = await multipartUpload(this.client, input, source.stream, {
          partSize: this.options.partSize,
          queueSize: this.options.queueSize,
          signal: options.signal,
          onProgress: options.onProgress,
        });
        return { name: stored, key, size: out.size, etag: out.etag, contentType: input.ContentType! };
      } catch (error) {
        // Only a fully buffered body can be sent again under another name.
        if (!overwrite && isPreconditionFailure(error) && source.kind === 'buffer' && attempt < MAX_NAME_ATTEMPTS) {
          stored = alternativeName(wanted, randomBytes);
          continue;
        }
        throw this.wrap('save', error, key, options.signal);
      }
    }
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
   * with `content-length-range` and pins the Content-Type: the S3 server rejects anything
   * else itself. The file lands under `.pending/` (invisible to `list()` of its folder) and
   * becomes `name` only when `confirmUpload()` has checked it.
   */
  async createUpload(options: CreateUploadOptions): Promise<DirectUpload> {
    if (!Number.isInteger(options.maxBytes) || options.maxBytes < 1 || options.maxBytes > MAX_COPY_BYTES) {
      throw new StorageError(
        `createUpload(): maxBytes must be a whole number of bytes from 1 to ${MAX_COPY_BYTES} (5 GiB, the largest object confirmUpload can move) (got ${String(options.maxBytes)})`,
      );
    }
    const extension = options.contentType ? extensionFor(options.contentType) : undefined;
    const name = normalizeName(options.name ?? `${options.prefix ?? 'uploads'}/${randomUUID()}${extension ? `.${extension}` : ''}`);
    const key = toKey(this.options.location, name);
    // The type is always pinned: a browser-chosen text/html or image/svg+xml would otherwise
    // be served from the storage origin. Without one, the object is a download.
    const fields: Record<string, string> = { 'Content-Type': options.contentType ?? 'application/octet-stream' };
    const conditions: unknown[] = [['content-length-range', 1, options.maxBytes]];
    const post = await this.signer.presignPost(this.key(pendingName(name)), {
      expiresIn: options.expiresIn ?? Math.min(this.options.urlExpiresIn, DIRECT_UPLOAD_EXPIRES_IN),
      conditions,
      fields,
    });
    return { ...post, name, key, maxBytes: options.maxBytes };
  }

  /**
   * Checks a direct upload and publishes it: size within `maxBytes`, bytes that are what was
   * promised (only the first 32 are read, from the very version that was measured), then a
   * server-side copy from `.pending/` to its name, conditional on that version. An upload that
   * fails the checks is deleted. Confirming twice is harmless.
   * @throws UploadRejectedError (the upload is gone), ObjectNotFoundError (nothing was uploaded)
   */
  async confirmUpload(name: string, expectations: UploadExpectations = {}): Promise<StoredObject> {
    const final = normalizeName(name);
    const pending = pendingName(final);
    const key = this.key(final);
    let stat: ObjectStat;
    try {
      stat = await this.stat(pending);
    } catch (error) {
      // Already confirmed (a retried request): the object is at its name now.
      if (!(error instanceof ObjectNotFoundError) || !(await this.exists(final))) throw error;
      const done = await this.stat(final);
      return { name: final, key, size: done.size, etag: done.etag, contentType: done.contentType ?? 'application/octet-stream' };
    }
    const reject = async (reason: UploadRejectedError['reason'], message: string): Promise<never> => {
      await this.delete(pending);
      throw new UploadRejectedError(reason, `${message}; the upload "${final}" was deleted`, { bucket: this.bucket, key, endpoint: this.endpointLabel });
    };
    if (stat.size === 0) return reject('empty', 'the file is empty');
    if (expectations.maxBytes !== undefined && stat.size > expectations.maxBytes) {
      return reject('too-large', `the file has ${stat.size} bytes, more than the ${expectations.maxBytes} allowed`);
    }
    const pendingKey = this.key(pending);
    const version = `"${stat.etag}"`;
    const head = await this.call('confirm', pendingKey, undefined, async (abortSignal) => {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: pendingKey, Range: `bytes=0-${SNIFF_BYTES - 1}`, IfMatch: version }),
        { abortSignal },
      );
      return Buffer.from(await out.Body!.transformToByteArray());
    });
    const sniffed = sniffContentType(head);
    const declared = (expectations.contentType ?? stat.contentType ?? '').split(';')[0]!.trim().toLowerCase();
    if (declared && (sniffed ? sniffed !== declared : SNIFFABLE_TYPES.has(declared))) {
      return reject('type-not-allowed', `the file was declared ${declared} but its bytes are ${sniffed ?? 'not that type'}`);
    }
    if (expectations.allowedTypes && !expectations.allowedTypes.includes(sniffed ?? declared)) {
      return reject('type-not-allowed', `the file is ${sniffed ?? declared ?? 'of an unknown type'}; allowed: ${expectations.allowedTypes.join(', ')}`);
    }
    try {
      await this.call('confirm', key, undefined, (abortSignal) =>
        this.client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: key,
            CopySource: `${this.bucket}/${encodeKeyPath(pendingKey)}`,
            // Only the version that was checked: a second POST in between fails the copy.
            CopySourceIfMatch: version,
            MetadataDirective: 'COPY',
            ACL: this.options.acl,
          }),
          { abortSignal },
        ),
      );
    } catch (error) {
      if (error instanceof StorageOperationError && error.status === 412) {
        return reject('bad-request', 'the upload was replaced while it was being checked');
      }
      throw error;
    }
    await this.delete(pending);
    return { name: final, key, size: stat.size, etag: stat.etag, contentType: sniffed ?? (declared || 'application/octet-stream') };
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
   * retried under another name); a longer one continues as a multipart stream.
   */
  private async prepareBody(
    body: StorageBody,
    signal: AbortSignal | undefined,
  ): Promise<{ kind: 'buffer'; data: Buffer } | { kind: 'stream'; stream: AsyncIterable<Buffer> }> {
    if (typeof body === 'string') return { kind: 'buffer', data: Buffer.from(body, 'utf8') };
    if (Buffer.isBuffer(body)) return { kind: 'buffer', data: body };
    if (body instanceof Uint8Array) return { kind: 'buffer', data: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
    if (!(body instanceof Readable)) {
      throw new StorageError(`save(): body must be a Buffer, Uint8Array, string or Readable, got ${typeof body}`);
    }
    signal?.throwIfAborted();
    const limit = this.options.partSize;
    const head: Buffer[] = [];
    let size = 0;
    const iterator = body[Symbol.asyncIterator]();
    while (size <= limit) {
      const next = await nextOrAbort(iterator, signal);
      if (next.done) return { kind: 'buffer', data: Buffer.concat(head, size) };
      const chunk = asBuffer(next.value);
      head.push(chunk);
      size += chunk.length;
    }
    async function* rest(): AsyncGenerator<Buffer> {
      try {
        // Hand the first part over chunk by chunk, so it is not kept for the whole upload.
        for (let chunk = head.shift(); chunk !== undefined; chunk = head.shift()) yield chunk;
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield asBuffer(next.value);
      } finally {
        await iterator.return?.();
      }
    }
    return { kind: 'stream', stream: rest() };
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


