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
import { randomBytes } from 'node:crypto';
import { addAbortSignal, Readable } from 'node:stream';
import { asBuffer, nextOrAbort, unquote } from './abortable.js';
import { guessContentType } from './content-type.js';
import { multipartUpload } from './multipart-upload.js';
import { alternativeName, fromKey, normalizeName, normalizePrefix, toKey } from './key-normalizer.js';
import { DirectUploads, type CreateUploadOptions, type DirectUpload, type UploadExpectations } from './direct-uploads.js';
import { describeEndpoint } from './s3-client.factory.js';
import { codeOf, statusOf, toStorageError } from './s3-errors.js';
import { ObjectNotFoundError, StorageError, StorageTimeoutError } from './storage.errors.js';
import type { ResolvedMediaOptions } from './storage-options.validation.js';
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
}

export type { CreateUploadOptions, DirectUpload, UploadExpectations } from './direct-uploads.js';

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

  constructor(
    private readonly client: S3Client,
    private readonly options: ResolvedMediaOptions,
    private readonly signer: UrlSigner,
  ) {
    this.bucket = options.bucket;
    this.endpointLabel = describeEndpoint(options);
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
   * A URL the browser can fetch. Signed (SigV4, for `publicEndpoint` when set) and valid
   * `urlExpiresIn` seconds by default; plain when `signedUrls` is false or `customDomain`
   * is set. No network call.
   */
  async url(name: string, options: UrlOptions = {}): Promise<string> {
    const key = this.key(name);
    const { customDomain, signedUrls } = this.options;
    if (customDomain !== undefined) return `${customDomain}/${encodeKeyPath(key)}`;
    if (!signedUrls) return this.signer.unsignedUrl(key);
    return this.signer.sign(key, {
      expiresIn: options.expiresIn ?? this.options.urlExpiresIn,
      responseContentDisposition:
        options.responseContentDisposition ?? (options.downloadAs === undefined ? undefined : contentDisposition(options.downloadAs)),
      responseContentType: options.responseContentType,
    });
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

function isPreconditionFailure(wrapped: unknown): boolean {
  const error = wrapped instanceof StorageError ? wrapped.cause : wrapped;
  const code = codeOf(error);
  return statusOf(error) === 412 || (code !== undefined && PRECONDITION.has(code));
}


