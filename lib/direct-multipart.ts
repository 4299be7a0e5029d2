/**
 * Resumable direct uploads: presigned multipart. The browser PUTs the parts straight to S3 with
 * URLs signed here (no request per URL); the server keeps create and complete, where the limits
 * are enforced before anything is published.
 */
import type { StoredObject } from './media-storage.types.js';
import { StorageError } from './storage.errors.js';

/** Options of `createMultipartUpload()`. */
export interface CreateMultipartUploadOptions {
  /**
   * Folder (storage name prefix) the upload belongs to, e.g. `users/42/files`. Every later call
   * must pass the same prefix; a call with another one is refused (`UploadRejectedError`, reason
   * `'not-owner'`) before any request.
   * @default 'uploads'
   */
  prefix?: string;
  /** The client's file name; sanitised and made unique (an unguessable folder is generated). @default 'file' */
  name?: string;
  /**
   * The Content-Type the object is stored and served with. A type whose signature is known
   * (see `SNIFFABLE_TYPES`) must match the bytes at complete.
   * @default 'application/octet-stream' (browsers download such objects rather than render them)
   */
  contentType?: string;
  /** Required: the largest total size accepted at complete (1 byte to 5 TiB). */
  maxBytes: number;
  /** MIME types the first bytes must sniff as (an unknown signature counts as `contentType`). @default undefined (any) */
  allowedTypes?: readonly string[];
  /** Cancels the request. */
  signal?: AbortSignal;
}

/** An open multipart upload, as `createMultipartUpload()` returns it. */
export interface MultipartUploadHandle {
  /** The S3 upload id. */
  uploadId: string;
  /** The storage name the object gets once completed (relative to the location). */
  name: string;
  /** The S3 key the parts go to (under `.pending/`); Uppy echoes it back, see `nameForKey()`. */
  key: string;
  /** Advisory part size in bytes (the client may pick its own, 5 MiB to 5 GiB, the last part smaller). */
  partSize: number;
}

/** A presigned UploadPart URL: PUT the part's bytes to `url`, keep the `ETag` response header. */
export interface SignedPart {
  partNumber: number;
  url: string;
}

/** A part the server holds, from `listParts()`. */
export interface UploadedPart {
  partNumber: number;
  /** ETag without quotes. */
  etag: string;
  size: number;
}

/** A part as the client reports it to `completeMultipartUpload()` (ETag with or without quotes). */
export interface CompletedPart {
  partNumber: number;
  etag: string;
}

/** Per-call options of the calls after `createMultipartUpload()`. */
export interface MultipartCallOptions {
  /** The prefix given at create. @default 'uploads' */
  prefix?: string;
  /** Cancels the request(s). */
  signal?: AbortSignal;
}

/** Options of `signParts()`. */
export interface SignPartsOptions extends MultipartCallOptions {
  /** Seconds each URL stays valid. @default 3600 (or urlExpiresIn when shorter) */
  expiresIn?: number;
}

/** Presigned multipart uploads for one media storage. */
export class DirectMultipart {
  create(_options: CreateMultipartUploadOptions): Promise<MultipartUploadHandle> {
    return notYet();
  }
  signParts(_name: string, _uploadId: string, _partNumbers: readonly number[], _options: SignPartsOptions = {}): Promise<SignedPart[]> {
    return notYet();
  }
  listParts(_name: string, _uploadId: string, _options: MultipartCallOptions = {}): Promise<UploadedPart[]> {
    return notYet();
  }
  complete(_name: string, _uploadId: string, _parts: readonly CompletedPart[], _options: MultipartCallOptions = {}): Promise<StoredObject> {
    return notYet();
  }
  abort(_name: string, _uploadId: string, _options: MultipartCallOptions = {}): Promise<void> {
    return notYet();
  }
  nameForKey(_key: string): string {
    throw new StorageError('nameForKey(): not implemented yet');
  }
}

function notYet<T>(): Promise<T> {
  return Promise.reject(new StorageError('multipart direct uploads: not implemented yet'));
}
