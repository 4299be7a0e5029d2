/**
 * The in-memory storage's multipart direct uploads: the rules of lib/direct-multipart.ts (the
 * same name shape, ownership check, part checks, sniffing and errors, from the same helpers)
 * over a Map of open uploads, and the browser's half (`putPart()`), which checks the signed
 * part URL as S3 would.
 */
import { createHash, randomBytes } from 'node:crypto';
import { SNIFF_BYTES } from '../content-sniffing.js';
import {
  advisedPartSize,
  checkCompletedParts,
  checkMultipartMaxBytes,
  checkPartNumbers,
  checkParts,
  checkUploadId,
  MULTIPART_METADATA,
  multipartName,
  checkPartUrlExpiry,
  multipartNameForKey,
  multipartPrefix,
  ownedUpload,
  type CompletedPart,
  type CreateMultipartUploadOptions,
  type MultipartCallOptions,
  type MultipartUploadHandle,
  type SignedPart,
  type SignPartsOptions,
  type UploadedPart,
} from '../direct-multipart.js';
import { inspectUpload, pendingName } from '../direct-uploads.js';
import { alternativeName, toKey } from '../key-normalizer.js';
import type { StoredObject } from '../media-storage.types.js';
import { StorageError, UploadRejectedError } from '../storage.errors.js';
import type { ResolvedMediaOptions } from '../storage-options.validation.js';
import type { MemoryUrlSigner } from './memory-urls.js';

/** What an object of the in-memory storage holds, as far as multipart uploads need it. */
export interface MemoryMultipartObject {
  data: Buffer;
  etag: string;
  contentType: string;
  metadata: Record<string, string>;
}

/** What the multipart part needs from its InMemoryStorage. */
export interface MemoryMultipartHost {
  options: ResolvedMediaOptions;
  urls: MemoryUrlSigner;
  now: () => number;
  objects: Map<string, MemoryMultipartObject>;
  /** Stores an object as `save()` does (S3's ETag, lower-case metadata, Last-Modified now). */
  put: (key: string, data: Buffer, meta: { contentType: string; cacheControl?: string; contentDisposition?: string; metadata: Record<string, string> }) => void;
  /** The error MediaStorage throws for an S3 answer of `status` with `code`. */
  s3Error: (operation: string, key: string, status: number, code: string, why?: string) => StorageError;
  checkExpiresIn: (expiresIn: number) => void;
  /** Throws the StorageAbortedError MediaStorage throws when `signal` is aborted already. */
  throwIfAborted: (operation: string, signal: AbortSignal | undefined, key: string) => void;
}

interface OpenUpload {
  name: string;
  key: string;
  maxBytes: number;
  allowedTypes?: readonly string[];
  declaredType?: string;
  contentType?: string;
  parts: Map<number, { data: Buffer; etag: string }>;
}

/** Multipart direct uploads of one InMemoryStorage. */
export class MemoryMultipart {
  private readonly uploads = new Map<string, OpenUpload>();

  constructor(private readonly host: MemoryMultipartHost) {}

  async create(options: CreateMultipartUploadOptions): Promise<MultipartUploadHandle> {
    checkMultipartMaxBytes(options.maxBytes);
    const name = multipartName(multipartPrefix(options.prefix), options.name);
    const key = this.key(pendingName(name));
    this.throwIfAborted('createMultipartUpload', key, options.signal);
    const uploadId = randomBytes(24).toString('base64url');
    this.uploads.set(uploadId, { name, key, maxBytes: options.maxBytes, allowedTypes: options.allowedTypes, contentType: options.contentType, declaredType: options.declaredType, parts: new Map() });
    return { uploadId, name, key, partSize: advisedPartSize(options.maxBytes, this.host.options.partSize) };
  }

  /** `memory://<bucket>/<key>?expires=…&partNumber=…&uploadId=…&sig=…`, which {@link putPart} checks. */
  async signParts(name: string, uploadId: string, partNumbers: readonly number[], options: SignPartsOptions = {}): Promise<SignedPart[]> {
    const key = this.key(pendingName(this.owned('signParts', name, options.prefix)));
    checkUploadId(uploadId, key);
    checkPartNumbers(partNumbers, key);
    const expiresIn = options.expiresIn ?? this.host.options.urlExpiresIn;
    checkPartUrlExpiry(expiresIn, key);
    this.host.checkExpiresIn(expiresIn);
    const expires = Math.floor(this.host.now() / 1000) + expiresIn;
    return partNumbers.map((partNumber) => ({
      partNumber,
      url: this.host.urls.sign(this.host.options.bucket, key, expires, { partNumber: String(partNumber), uploadId }),
    }));
  }

  /**
   * The browser's PUT of one part to a signed part URL, with S3's refusals (each a
   * StorageOperationError): a changed URL (403 `SignatureDoesNotMatch`), an expired one (403
   * `AccessDenied`), an upload that is not open (404 `NoSuchUpload`).
   * @returns the part's ETag, quoted, as S3's `ETag` response header
   */
  async putPart(url: string, body: Buffer | Uint8Array | string): Promise<string> {
    const grant = this.host.urls.verify(url, this.host.now(), false);
    if (typeof grant === 'string') throw this.host.s3Error('putPart', '', grant === 'InvalidRequest' ? 400 : 403, grant);
    const partNumber = Number(grant.response.partNumber);
    const uploadId = grant.response.uploadId ?? '';
    if (grant.bucket !== this.host.options.bucket || !Number.isInteger(partNumber)) throw this.host.s3Error('putPart', grant.key, 403, 'SignatureDoesNotMatch');
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== grant.key) throw this.host.s3Error('putPart', grant.key, 404, 'NoSuchUpload');
    const data = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
    const etag = createHash('md5').update(data).digest('hex');
    upload.parts.set(partNumber, { data, etag });
    return `"${etag}"`;
  }

  async listParts(name: string, uploadId: string, options: MultipartCallOptions = {}): Promise<UploadedPart[]> {
    const final = this.owned('listParts', name, options.prefix);
    const key = this.key(pendingName(final));
    checkUploadId(uploadId, key);
    this.throwIfAborted('listParts', key, options.signal);
    const upload = this.open(uploadId, key, final);
    return listed(upload);
  }

  async complete(name: string, uploadId: string, parts: readonly CompletedPart[], options: MultipartCallOptions = {}): Promise<StoredObject> {
    const final = this.owned('completeMultipartUpload', name, options.prefix);
    const key = this.key(pendingName(final));
    checkUploadId(uploadId, key);
    const given = checkCompletedParts(parts, (message) => this.rejected(key, 'bad-request', message));
    this.throwIfAborted('completeMultipartUpload', key, options.signal);
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) {
      const published = this.publishedFrom(final);
      if (published) return published;
      throw this.noSuchUpload(key, final);
    }
    // Whatever the outcome, the upload ends here: nothing of it stays but a published object.
    this.uploads.delete(uploadId);
    const problem = checkParts(given, listed(upload), upload.maxBytes);
    if (problem) throw this.rejected(key, problem.reason, `${problem.message}; the upload "${final}" was aborted`);
    const data = Buffer.concat([...upload.parts.entries()].sort(([a], [b]) => a - b).map(([, part]) => part.data));
    const checked = await inspectUpload({ size: data.length }, { maxBytes: upload.maxBytes, allowedTypes: upload.allowedTypes, contentType: upload.contentType, declaredType: upload.declaredType }, async () =>
      data.subarray(0, SNIFF_BYTES),
    );
    if ('reason' in checked) throw this.rejected(key, checked.reason, `${checked.message}; the upload "${final}" was deleted`);
    // copy() with overwrite: false, as MediaStorage publishes: a taken name gets an alternative.
    let stored = final;
    while (this.host.objects.has(this.key(stored))) stored = alternativeName(final, randomBytes);
    const defaults = this.host.options.objectParameters;
    this.host.put(this.key(stored), data, {
      contentType: upload.contentType ?? 'application/octet-stream',
      cacheControl: defaults.cacheControl,
      contentDisposition: defaults.contentDisposition,
      metadata: { ...defaults.metadata, [MULTIPART_METADATA]: this.mark(this.key(final)) },
    });
    const object = this.host.objects.get(this.key(stored))!;
    return { name: stored, key: this.key(stored), size: data.length, etag: object.etag, contentType: object.contentType };
  }

  async abort(name: string, uploadId: string, options: MultipartCallOptions = {}): Promise<void> {
    const key = this.key(pendingName(this.owned('abortMultipartUpload', name, options.prefix)));
    checkUploadId(uploadId, key);
    this.throwIfAborted('abortMultipartUpload', key, options.signal);
    if (this.uploads.get(uploadId)?.key === key) this.uploads.delete(uploadId);
  }

  nameForKey(key: string): string {
    return multipartNameForKey(this.host.options.location, key);
  }

  /** The keys of the uploads still open (for assertions: nothing left behind). */
  openUploads(): string[] {
    return [...this.uploads.values()].map((upload) => upload.key);
  }

  private open(uploadId: string, key: string, final: string): OpenUpload {
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) throw this.noSuchUpload(key, final);
    return upload;
  }

  private publishedFrom(final: string): StoredObject | undefined {
    const key = this.key(final);
    const object = this.host.objects.get(key);
    if (!object || object.metadata[MULTIPART_METADATA] !== this.mark(key)) return undefined;
    return { name: final, key, size: object.data.length, etag: object.etag, contentType: object.contentType };
  }

  private mark(finalKey: string): string {
    return this.host.urls.mac(`multipart\n${this.host.options.bucket}\n${finalKey}`);
  }

  private owned(operation: string, name: string, prefix: string | undefined): string {
    return ownedUpload(operation, name, prefix, (final, message) => this.rejected(this.key(pendingName(final)), 'not-owner', message));
  }

  private throwIfAborted(operation: string, key: string, signal: AbortSignal | undefined): void {
    this.host.throwIfAborted(operation, signal, key);
  }

  private noSuchUpload(key: string, final: string): UploadRejectedError {
    return this.rejected(key, 'no-such-upload', `there is no open multipart upload with that id for "${final}" (it was completed and its object is gone, aborted, refused, or expired); start a new upload`);
  }

  private rejected(key: string, reason: UploadRejectedError['reason'], message: string): UploadRejectedError {
    return new UploadRejectedError(reason, message, { bucket: this.host.options.bucket, key, endpoint: 'InMemoryStorage' });
  }

  private key(name: string): string {
    return toKey(this.host.options.location, name);
  }
}

function listed(upload: OpenUpload): UploadedPart[] {
  return [...upload.parts.entries()].sort(([a], [b]) => a - b).map(([partNumber, part]) => ({ partNumber, etag: part.etag, size: part.data.length }));
}
