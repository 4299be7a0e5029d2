/**
 * The shapes `MediaStorage` takes and returns, and the context its parts (writes, URLs,
 * object operations) share, so those parts need not import the facade.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '@nestjs/common';
import type { Readable } from 'node:stream';
import type { CloudFrontPolicyOptions } from './cloudfront-signer.js';
import type { StorageError } from './storage.errors.js';
import type { ResolvedMediaOptions } from './storage-options.validation.js';
import type { UrlSigner } from './url-signer.js';

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

/**
 * Runs one request/response S3 call under the caller's signal and the storage's `timeout`
 * deadline, mapping failures to typed errors (`MediaStorage`'s own `call`).
 */
export type StorageCall = <T>(operation: string, key: string | undefined, caller: AbortSignal | undefined, send: (signal: AbortSignal) => Promise<T>) => Promise<T>;

/** What the parts of one `MediaStorage` share: its client, options and error mapping. */
export interface MediaContext {
  client: S3Client;
  options: ResolvedMediaOptions;
  signer: UrlSigner;
  bucket: string;
  endpointLabel: string;
  logger: Logger;
  call: StorageCall;
  wrap: (operation: string, error: unknown, key: string | undefined, signal?: AbortSignal) => StorageError;
  /** `MediaStorage.exists()`: a 404 is `false`. */
  exists: (name: string) => Promise<boolean>;
}
