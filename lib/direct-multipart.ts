/**
 * Resumable direct uploads: presigned multipart. The browser PUTs the parts straight to S3 with
 * URLs signed here (no request per URL); the server keeps create and complete, where the limits
 * are enforced before anything is published (see the README's "Resumable multipart uploads").
 *
 * - The upload's key is `.pending/<prefix>/<random>/<file>`: nothing under `.pending/` is
 *   listed or published, and the name says which prefix owns the upload, so a call from
 *   another prefix is refused before any request.
 * - The limits (maxBytes, allowedTypes, contentType, prefix) are a small record object written
 *   at create, `.pending/.multipart/<hash of key and upload id>`, that no client ever gets a URL
 *   for: complete recovers them from (key, uploadId) alone, and a client cannot change them.
 * - Complete checks the parts with ListParts, assembles the object under `.pending/`, reads its
 *   first bytes, and only then publishes it with `copy()` (one CopyObject, or UploadPartCopy in
 *   parallel ranges above `multipartCopyThreshold`, onto a name reserved under If-None-Match).
 *   A refusal (limits, parts, bytes) aborts the upload and deletes what it made; any other
 *   failure (a 5xx, a timeout, the caller's abort) keeps the parts, or the assembled object,
 *   and the record, so that a retried complete resumes where this one stopped.
 * - The record carries a MAC (a key derived one-way from the signer's secret) over key, upload
 *   id and its JSON: a record nobody but this library could have written is no record.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { unquote } from './abortable.js';
import { SNIFF_BYTES } from './content-sniffing.js';
import { inspectUpload, PENDING_PREFIX, pendingName, uploadName, type Rejection } from './direct-uploads.js';
import { normalizeName, toKey } from './key-normalizer.js';
import type { MediaContext, StoredObject } from './media-storage.types.js';
import { isPreconditionFailure } from './media-writes.js';
import type { InternalCopyOptions } from './object-operations.js';
import { codeOf, errorDetail, statusOf } from './s3-errors.js';
import { describeName, InvalidKeyError, ObjectNotFoundError, StorageError, StorageOperationError, UploadRejectedError } from './storage.errors.js';

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
  /** MIME types the first bytes must sniff as (an unknown signature counts as `declaredType`, else `contentType`); `type/*` wildcards, any case. @default undefined (any) */
  allowedTypes?: readonly string[];
  /**
   * The type the client declared, when `contentType` is something else (a type the bytes cannot
   * prove is stored as a download): checked against `allowedTypes` when the bytes have no known
   * signature. @default contentType
   */
  declaredType?: string;
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
  /**
   * Advisory part size in bytes: the `partSize` option, grown so that `maxBytes` fits in 10,000
   * parts. The client may pick its own (5 MiB to 5 GiB, the last part smaller).
   */
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
  /**
   * Seconds each URL stays valid (1 to 604800; never beyond temporary credentials). A part only
   * has to start within it. @default urlExpiresIn (3600)
   */
  expiresIn?: number;
}

/** The largest object S3 stores (5 TiB), so the largest `maxBytes`. */
export const MAX_MULTIPART_BYTES = 5 * 1024 ** 4;
/** S3's part numbers: 1 to 10,000. */
export const MAX_PART_NUMBER = 10_000;
/** S3's smallest part (all but the last): 5 MiB. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
/** Where the records of open uploads are kept, under the pending prefix. */
export const MULTIPART_RECORDS = `${PENDING_PREFIX}/.multipart`;
/** User metadata marking an object published by a multipart complete (a MAC over its key): how a replayed complete recognises it. */
export const MULTIPART_METADATA = 'nss3-multipart';
/** Domain separation: this derived key makes multipart marks and nothing else. */
const MARK_KEY_LABEL = 'nestjs-s3-storage multipart mark v1';
/** Domain separation: this derived key makes the MACs of upload records and nothing else. */
const RECORD_KEY_LABEL = 'nestjs-s3-storage multipart record v1';
/** The default prefix, as for `createUpload()`. */
const DEFAULT_PREFIX = 'uploads';
/** The generated, unguessable folder of each upload: 16 random bytes, base64url. */
const RANDOM_SEGMENT = /^[A-Za-z0-9_-]{22}$/;
/** How long a complete waits for a concurrent complete of the same upload to publish. */
const LOCK_WAIT_MS = 30_000;
/** A lock older than this (by its Last-Modified) was left by a process that died: taken over. */
const LOCK_STALE_MS = 15 * 60_000;
const LOCK_POLL_MS = 250;
/** Upload ids are opaque; AWS's are ~150 characters. Anything far longer is not one. */
const MAX_UPLOAD_ID = 1024;

/** What the record of an open upload keeps (JSON). */
interface MultipartRecord {
  v: 1;
  name: string;
  prefix: string;
  maxBytes: number;
  allowedTypes?: readonly string[];
  /** The type given at create, which the bytes must not contradict; none when the default (a download) applies. */
  contentType?: string;
  /** The type the client declared, kept apart from the stored Content-Type. */
  declaredType?: string;
}

/** What presigned multipart uploads need from the storage that owns them. */
export interface DirectMultipartContext extends MediaContext {
  /**
   * `MediaStorage.copy()` (ObjectOperations): publishes the checked object. Under
   * `overwrite: false` it reserves the name with a conditional PUT first, and above
   * `multipartCopyThreshold` it copies with UploadPartCopy.
   */
  copy: (from: string, to: string, options: InternalCopyOptions & { overwrite: boolean }) => Promise<string>;
}

/** Presigned multipart uploads for one media storage. */
export class DirectMultipart {
  private readonly bucket: string;
  /** @internal How long a complete waits for a concurrent one (tests lower it). */
  lockWaitMs = LOCK_WAIT_MS;
  /** @internal The age after which a lock counts as abandoned (tests lower it). */
  lockStaleMs = LOCK_STALE_MS;

  constructor(private readonly context: DirectMultipartContext) {
    this.bucket = context.options.bucket;
  }

  async create(options: CreateMultipartUploadOptions): Promise<MultipartUploadHandle> {
    checkMultipartMaxBytes(options.maxBytes);
    const prefix = multipartPrefix(options.prefix);
    const name = multipartName(prefix, options.name);
    const key = this.key(pendingName(name));
    const contentType = options.contentType ?? 'application/octet-stream';
    const defaults = this.context.options.objectParameters;
    const mark = await this.mark(this.key(name));
    const created = await this.context.call('createMultipartUpload', key, options.signal, (abortSignal) =>
      this.context.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          // What the published object is served with: copy() keeps the pending object's headers.
          ContentType: contentType,
          CacheControl: defaults.cacheControl,
          ContentDisposition: defaults.contentDisposition,
          // The mark of a published multipart upload (copy() keeps it): how a replayed complete
          // recognises the object it published. One upload per generated name, so the name is
          // what it is bound to.
          Metadata: { ...defaults.metadata, [MULTIPART_METADATA]: mark },
          ACL: this.context.options.acl,
        }),
        { abortSignal },
      ),
    );
    const uploadId = created.UploadId!;
    const record: MultipartRecord = { v: 1, name, prefix, maxBytes: options.maxBytes, allowedTypes: options.allowedTypes, contentType: options.contentType, declaredType: options.declaredType };
    try {
      const sealed = await this.sealRecord(key, uploadId, record);
      await this.context.call('createMultipartUpload', this.recordKey(key, uploadId), options.signal, (abortSignal) =>
        this.context.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.recordKey(key, uploadId),
            Body: sealed,
            ContentType: 'application/json',
            CacheControl: 'no-store',
          }),
          { abortSignal },
        ),
      );
    } catch (error) {
      await this.abortQuietly(key, uploadId);
      throw error;
    }
    return { uploadId, name, key, partSize: advisedPartSize(options.maxBytes, this.context.options.partSize) };
  }

  async signParts(name: string, uploadId: string, partNumbers: readonly number[], options: SignPartsOptions = {}): Promise<SignedPart[]> {
    const final = this.owned('signParts', name, options.prefix);
    checkUploadId(uploadId, this.key(final));
    checkPartNumbers(partNumbers, this.key(final));
    const key = this.key(pendingName(final));
    const expiresIn = options.expiresIn ?? this.context.options.urlExpiresIn;
    checkPartUrlExpiry(expiresIn, key);
    return Promise.all(
      partNumbers.map(async (partNumber) => ({ partNumber, url: await this.context.signer.signUploadPart(key, { uploadId, partNumber, expiresIn }) })),
    );
  }

  async listParts(name: string, uploadId: string, options: MultipartCallOptions = {}): Promise<UploadedPart[]> {
    const final = this.owned('listParts', name, options.prefix);
    const key = this.key(pendingName(final));
    checkUploadId(uploadId, key);
    try {
      return await this.allParts('listParts', key, uploadId, options.signal);
    } catch (error) {
      if (isNoSuchUpload(error)) throw this.noSuchUpload(key, final);
      throw error;
    }
  }

  async complete(name: string, uploadId: string, parts: readonly CompletedPart[], options: MultipartCallOptions = {}): Promise<StoredObject> {
    const final = this.owned('completeMultipartUpload', name, options.prefix);
    const key = this.key(pendingName(final));
    checkUploadId(uploadId, key);
    const given = checkCompletedParts(parts, (message) => this.rejected(key, 'bad-request', message));
    const recordKey = this.recordKey(key, uploadId);
    const record = await this.readRecord(key, uploadId, options.signal);
    if (!record || record.name !== final) {
      // Completed before (a retry after a lost answer): the published object, never a second one.
      const published = await this.publishedFrom(final, options.signal);
      if (published) return published;
      // No (valid) record, so the limits are unknown: the upload can never be completed, and
      // its parts would stay billed until the lifecycle rule aborts it.
      await this.abortQuietly(key, uploadId);
      if (record === null) await this.removeQuietly(recordKey);
      throw this.noSuchUpload(key, final);
    }
    if (!(await this.lock(recordKey, options.signal))) {
      const published = await this.waitForOther(final, recordKey);
      if (published === 'ended') throw this.noSuchUpload(key, final);
      if (published) return published;
      throw this.rejected(key, 'conflict', `another completeMultipartUpload() of "${final}" is in progress; nothing was published by this call (retry shortly)`);
    }

    // `assembled`: the object under .pending/ is this upload's (Complete succeeded, or a retry
    // found it marked). `ended`: the upload is over (published or refused): nothing of it stays.
    let assembled = false;
    let ended = false;
    try {
      let listed: UploadedPart[] | undefined;
      try {
        listed = await this.allParts('completeMultipartUpload', key, uploadId, options.signal);
      } catch (error) {
        if (!isNoSuchUpload(error)) throw error;
      }
      let head: HeadObjectCommandOutput | undefined;
      if (listed === undefined) {
        // Assembled already: by a concurrent complete that published it, or by an earlier call
        // that failed after Complete (resumed here).
        const published = await this.publishedFrom(final, options.signal);
        if (published) {
          assembled = (await this.ownPending(key, options.signal)) !== undefined;
          ended = true;
          return published;
        }
        head = await this.ownPending(key, options.signal);
        if (!head) {
          ended = true;
          throw this.noSuchUpload(key, final);
        }
        assembled = true;
      } else {
        const problem = checkParts(given, listed, record.maxBytes);
        if (problem) {
          ended = true;
          throw this.rejected(key, problem.reason, `${problem.message}; the upload "${final}" was aborted`);
        }
        await this.context.call('completeMultipartUpload', key, options.signal, (abortSignal) =>
          this.context.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key: key,
              UploadId: uploadId,
              MultipartUpload: { Parts: listed!.map((p) => ({ PartNumber: p.partNumber, ETag: `"${p.etag}"` })) },
            }),
            { abortSignal },
          ),
        );
        assembled = true;
        // Ceph answers Complete with an empty ETag; HEAD has the real one.
        head = await this.head(key, options.signal);
        if (!head) {
          ended = true;
          throw this.noSuchUpload(key, final);
        }
      }
      const etag = unquote(head.ETag);
      const checked = await inspectUpload(
        { size: head.ContentLength ?? 0 },
        { maxBytes: record.maxBytes, allowedTypes: record.allowedTypes, contentType: record.contentType, declaredType: record.declaredType },
        () => this.firstBytes(key, etag, options.signal),
      );
      if ('reason' in checked) {
        ended = true;
        throw this.rejected(key, checked.reason, `${checked.message}; the upload "${final}" was deleted`);
      }

      // Bound to the bytes just checked: a pending object replaced since fails the copy.
      const publishedName = await this.context.copy(pendingName(final), final, { overwrite: false, signal: options.signal, expectedSourceETag: etag });
      ended = true;
      const published = await this.head(this.key(publishedName), undefined);
      if (!published) throw new StorageError(`completeMultipartUpload(): "${publishedName}" was published but is gone already (deleted by another call?)`, { bucket: this.bucket, key: this.key(publishedName), endpoint: this.context.endpointLabel });
      return { name: publishedName, key: this.key(publishedName), size: published.ContentLength ?? 0, etag: unquote(published.ETag), contentType: published.ContentType ?? checked.contentType };
    } finally {
      if (ended) {
        // Published or refused: nothing of the upload stays but a published object.
        if (!assembled) await this.abortQuietly(key, uploadId);
        else await this.removeQuietly(key);
        await this.removeQuietly(recordKey);
      }
      // Otherwise (a 5xx, a timeout, the caller's abort) the parts or the assembled object and
      // the record stay, for a retry to resume from; only the lock goes.
      await this.removeQuietly(lockKey(recordKey));
    }
  }

  async abort(name: string, uploadId: string, options: MultipartCallOptions = {}): Promise<void> {
    const final = this.owned('abortMultipartUpload', name, options.prefix);
    const key = this.key(pendingName(final));
    checkUploadId(uploadId, key);
    try {
      await this.context.call('abortMultipartUpload', key, options.signal, (abortSignal) =>
        this.context.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), { abortSignal }),
      );
    } catch (error) {
      // Aborted, completed or expired already: there is nothing left to abort.
      if (!isNoSuchUpload(error)) throw error;
    }
    // A complete that failed after Complete leaves the assembled object: ours only when marked.
    const pending = await this.ownPending(key, options.signal);
    if (pending) await this.remove(key, undefined);
    await this.remove(this.recordKey(key, uploadId), undefined);
    await this.remove(lockKey(this.recordKey(key, uploadId)), undefined);
  }

  nameForKey(key: string): string {
    return multipartNameForKey(this.context.options.location, key);
  }

  /** The name, normalized, when it is an upload of `prefix`; else `not-owner` before any request. */
  private owned(operation: string, name: string, prefix: string | undefined): string {
    return ownedUpload(operation, name, prefix, (final, message) => this.rejected(this.key(pendingName(final)), 'not-owner', message));
  }

  private async allParts(operation: string, key: string, uploadId: string, signal: AbortSignal | undefined): Promise<UploadedPart[]> {
    const parts: UploadedPart[] = [];
    let marker: string | undefined;
    for (;;) {
      const out = await this.context.call(operation, key, signal, (abortSignal) =>
        this.context.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }), { abortSignal }),
      );
      for (const part of out.Parts ?? []) parts.push({ partNumber: part.PartNumber!, etag: unquote(part.ETag), size: part.Size ?? 0 });
      if (!out.IsTruncated) break;
      const next = out.NextPartNumberMarker;
      if (next === undefined || next === '' || next === marker) {
        // Ending here would judge the upload by some of its parts.
        throw new StorageOperationError(operation, `ListParts answered a truncated page without a usable NextPartNumberMarker (after ${parts.length} parts); the server's paging is broken, nothing was changed`, {
          bucket: this.bucket,
          key,
          endpoint: this.context.endpointLabel,
        });
      }
      marker = next;
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  /**
   * The record of the upload: undefined when there is none, null when there is one this library
   * did not write (no valid MAC: written by someone else), which counts as none.
   */
  private async readRecord(key: string, uploadId: string, signal: AbortSignal | undefined): Promise<MultipartRecord | null | undefined> {
    const recordKey = this.recordKey(key, uploadId);
    let text: string;
    try {
      const out = await this.context.call('completeMultipartUpload', recordKey, signal, (abortSignal) =>
        this.context.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: recordKey }), { abortSignal }),
      );
      text = await out.Body!.transformToString();
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return undefined;
      throw error;
    }
    const sealed = (() => {
      try {
        return JSON.parse(text) as { record?: unknown; mac?: unknown };
      } catch {
        return undefined;
      }
    })();
    if (!sealed || typeof sealed.record !== 'string' || typeof sealed.mac !== 'string') return this.forged(recordKey);
    const expected = Buffer.from(await this.recordMac(key, uploadId, sealed.record));
    const given = Buffer.from(sealed.mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return this.forged(recordKey);
    const record = JSON.parse(sealed.record) as MultipartRecord;
    if (record?.v !== 1 || typeof record.name !== 'string' || typeof record.maxBytes !== 'number') return this.forged(recordKey);
    return record;
  }

  private forged(recordKey: string): null {
    this.context.logger.warn(`the multipart upload record ${describeName(recordKey)} in bucket "${this.bucket}" has no valid MAC (not written by this library, or by another secret); the upload is treated as unknown and aborted`);
    return null;
  }

  /** The record as stored: its JSON and a MAC over key, upload id and that JSON. */
  private async sealRecord(key: string, uploadId: string, record: MultipartRecord): Promise<string> {
    const json = JSON.stringify(record);
    return JSON.stringify({ record: json, mac: await this.recordMac(key, uploadId, json) });
  }

  private async recordMac(key: string, uploadId: string, json: string): Promise<string> {
    const secret = await this.context.signer.deriveKey(RECORD_KEY_LABEL);
    return createHmac('sha256', secret).update(`${this.bucket}\n${key}\n${uploadId}\n${json}`).digest('base64url');
  }

  /** The object under `.pending/` when it is this upload's assembled object (it carries the mark). */
  private async ownPending(key: string, signal: AbortSignal | undefined): Promise<HeadObjectCommandOutput | undefined> {
    const head = await this.head(key, signal);
    if (!head) return undefined;
    return head.Metadata?.[MULTIPART_METADATA] === (await this.mark(this.finalKeyOf(key))) ? head : undefined;
  }

  /** `<location>/.pending/<name>` → `<location>/<name>`. */
  private finalKeyOf(pendingKey: string): string {
    return this.key(multipartNameForKey(this.context.options.location, pendingKey));
  }

  /**
   * Makes this call the only complete of the upload: an empty object created under
   * If-None-Match (honoured on PutObject by AWS, MinIO and Ceph). Deleted when the call ends.
   * @returns false when another complete holds it
   */
  private async lock(recordKey: string, signal: AbortSignal | undefined): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.context.call('completeMultipartUpload', lockKey(recordKey), signal, (abortSignal) =>
          this.context.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: lockKey(recordKey), Body: Buffer.alloc(0), IfNoneMatch: '*', CacheControl: 'no-store' }), { abortSignal }),
        );
        return true;
      } catch (error) {
        if (!isPreconditionFailure(error)) throw error;
      }
      // A lock of a process that died mid-complete would block the upload for good: one older
      // than lockStaleMs is deleted (If-Match: only that lock, not a newer one) and taken.
      // Ceph ignores If-Match on DeleteObject: two takeovers in one instant are not excluded there.
      if (attempt > 0) return false;
      const held = await this.head(lockKey(recordKey), signal);
      if (held && (!held.LastModified || Date.now() - held.LastModified.getTime() < this.lockStaleMs)) return false;
      if (!held) continue; // released meanwhile: try once more
      this.context.logger.warn(`taking over the lock of a completeMultipartUpload() of ${describeName(recordKey)} that started at ${held.LastModified!.toISOString()} and never ended`);
      try {
        await this.context.call('completeMultipartUpload', lockKey(recordKey), signal, (abortSignal) =>
          this.context.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: lockKey(recordKey), IfMatch: held.ETag }), { abortSignal }),
        );
      } catch (error) {
        if (!isPreconditionFailure(error) && !(error instanceof ObjectNotFoundError)) throw error;
      }
    }
  }

  /** The object a complete published as `final`, recognised by its mark. */
  private async publishedFrom(final: string, signal: AbortSignal | undefined): Promise<StoredObject | undefined> {
    const key = this.key(final);
    const head = await this.head(key, signal);
    if (!head || head.Metadata?.[MULTIPART_METADATA] !== (await this.mark(key))) return undefined;
    return { name: final, key, size: head.ContentLength ?? 0, etag: unquote(head.ETag), contentType: head.ContentType ?? 'application/octet-stream' };
  }

  /**
   * Waits for the complete holding the lock: what it published, `'ended'` when it ended without
   * publishing (it refused the upload: the record is gone), undefined when it is still running.
   */
  private async waitForOther(final: string, recordKey: string): Promise<StoredObject | 'ended' | undefined> {
    const deadline = Date.now() + this.lockWaitMs;
    for (;;) {
      const published = await this.publishedFrom(final, undefined);
      if (published) return published;
      if (!(await this.head(recordKey, undefined))) return (await this.publishedFrom(final, undefined)) ?? 'ended';
      if (Date.now() >= deadline) return undefined;
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
  }

  private async firstBytes(key: string, etag: string, signal: AbortSignal | undefined): Promise<Buffer> {
    const out = await this.context.call('completeMultipartUpload', key, signal, (abortSignal) =>
      this.context.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=0-${SNIFF_BYTES - 1}`, IfMatch: `"${etag}"` }), { abortSignal }),
    );
    return Buffer.from(await out.Body!.transformToByteArray());
  }

  private async head(key: string, signal: AbortSignal | undefined): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.context.call('completeMultipartUpload', key, signal, (abortSignal) =>
        this.context.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }),
      );
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return undefined;
      throw error;
    }
  }

  private async remove(key: string, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.context.call('abortMultipartUpload', key, signal, (abortSignal) =>
        this.context.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }),
      );
    } catch (error) {
      if (!(error instanceof ObjectNotFoundError)) throw error;
    }
  }

  /** Clean-up after a failure: logged, never thrown over the failure itself. A fresh deadline, no caller signal. */
  private async removeQuietly(key: string): Promise<void> {
    await this.remove(key, undefined).catch((error: unknown) => {
      this.context.logger.warn(`could not delete ${describeName(key)} in bucket "${this.bucket}" after a multipart upload ended (${errorDetail(error)}); the lifecycle rule for "${PENDING_PREFIX}/" removes it`);
    });
  }

  private async abortQuietly(key: string, uploadId: string): Promise<void> {
    await this.context
      .call('abortMultipartUpload', key, undefined, (abortSignal) =>
        this.context.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), { abortSignal }),
      )
      .catch((error: unknown) => {
        if (isNoSuchUpload(error)) return;
        this.context.logger.warn(
          `AbortMultipartUpload failed for upload id ${uploadId} of key ${describeName(key)} in bucket "${this.bucket}" (${errorDetail(error)}): its parts stay stored until the upload is aborted or a lifecycle rule (AbortIncompleteMultipartUpload) expires it`,
        );
      });
  }

  /** A MAC over bucket and final key, keyed one-way from the secret (as direct-upload markers are). */
  private async mark(finalKey: string): Promise<string> {
    const secret = await this.context.signer.deriveKey(MARK_KEY_LABEL);
    return createHmac('sha256', secret).update(`${this.bucket}\n${finalKey}`).digest('base64url');
  }

  private noSuchUpload(key: string, final: string): UploadRejectedError {
    return this.rejected(key, 'no-such-upload', `there is no open multipart upload with that id for "${final}" (it was completed and its object is gone, aborted, refused, or expired); start a new upload`);
  }

  private rejected(key: string, reason: UploadRejectedError['reason'], message: string): UploadRejectedError {
    return new UploadRejectedError(reason, message, { bucket: this.bucket, key, endpoint: this.context.endpointLabel });
  }

  private recordKey(key: string, uploadId: string): string {
    return this.key(recordName(key, uploadId));
  }

  private key(name: string): string {
    return toKey(this.context.options.location, name);
  }
}

/** `createMultipartUpload()`'s `maxBytes`, checked. @throws StorageError */
export function checkMultipartMaxBytes(maxBytes: number): void {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1 || maxBytes > MAX_MULTIPART_BYTES) {
    throw new StorageError(`createMultipartUpload(): maxBytes must be a whole number of bytes from 1 to ${MAX_MULTIPART_BYTES} (5 TiB, the largest S3 object) (got ${String(maxBytes)})`);
  }
}

/** The owning prefix, normalized (`'uploads'` when none). @throws InvalidKeyError */
export function multipartPrefix(prefix: string | undefined): string {
  return uploadName(prefix ?? DEFAULT_PREFIX);
}

/**
 * The name, normalized, when it is an upload made for `prefix` (`<prefix>/<random>/<file>`);
 * else `refuse` makes the error. `users/4` does not own `users/42/…`, nor `users` own
 * `users/42/<random>/<file>`. No request is needed: the name says who owns it.
 */
export function ownedUpload(operation: string, name: string, prefix: string | undefined, refuse: (final: string, message: string) => Error): string {
  const final = uploadName(name);
  const owner = multipartPrefix(prefix);
  if (!final.startsWith(`${owner}/`)) throw refuse(final, `${operation}(): the upload "${final}" does not belong to the prefix "${owner}"; nothing was changed`);
  const segments = final.split('/');
  if (!isMultipartName(final) || segments.slice(0, -2).join('/') !== owner) {
    throw refuse(final, `${operation}(): "${final}" is not an upload that createMultipartUpload() made for the prefix "${owner}"; nothing was changed`);
  }
  return final;
}

/** The storage name of a multipart upload's S3 key (`<location>/.pending/<name>`). @throws InvalidKeyError */
export function multipartNameForKey(location: string, key: string): string {
  if (typeof key !== 'string') throw new InvalidKeyError(String(key), 'a multipart upload key must be a string');
  const start = `${location ? `${location}/` : ''}${PENDING_PREFIX}/`;
  if (!key.startsWith(start)) throw new InvalidKeyError(key, `it is not the key of a multipart upload of this storage (those start with "${start}")`);
  const name = normalizeName(key.slice(start.length));
  if (toKey(location, pendingName(name)) !== key || !isMultipartName(name)) throw new InvalidKeyError(key, 'it is not a key that createMultipartUpload() returned');
  return name;
}

/**
 * The part size to advise: `partSize`, grown to a whole MiB that fits `maxBytes` in S3's 10,000
 * parts (10 GiB → 8 MiB; 100 GiB → 11 MiB), at most S3's 5 GiB per part.
 */
export function advisedPartSize(maxBytes: number, partSize: number): number {
  const mib = 1024 * 1024;
  return Math.min(5 * 1024 * mib, Math.max(partSize, Math.ceil(maxBytes / MAX_PART_NUMBER / mib) * mib));
}

/** A new upload's name: `<prefix>/<22 random characters>/<safe file name>`, unguessable. */
export function multipartName(prefix: string, fileName: string | undefined): string {
  return `${prefix}/${randomBytes(16).toString('base64url')}/${safeFileName(fileName)}`;
}

/** `<prefix>/<22 random characters>/<file>`: the shape of every name createMultipartUpload() gives. */
export function isMultipartName(name: string): boolean {
  const segments = name.split('/');
  return segments.length >= 3 && RANDOM_SEGMENT.test(segments.at(-2)!);
}

/**
 * The client's file name made safe as the last segment of a key: its base name only, no control
 * or path characters, no leading dots (no `.htaccess`, no `..`), at most 200 bytes (the
 * extension kept); `file` when nothing is left.
 */
export function safeFileName(name: string | undefined): string {
  const base = (typeof name === 'string' ? name : '').normalize('NFC').split(/[/\\]/).pop() ?? '';
  let safe = base
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '')
    .replace(/[:*?"<>|#%{}^~[\]`]/g, '_')
    .replace(/^[.\s]+/, '')
    .trim();
  if (!safe.isWellFormed()) safe = safe.toWellFormed();
  const dot = safe.lastIndexOf('.');
  const extension = dot > 0 && safe.length - dot <= 16 ? safe.slice(dot) : '';
  while (Buffer.byteLength(safe, 'utf8') > 200) safe = [...safe.slice(0, safe.length - extension.length)].slice(0, -1).join('') + extension;
  return safe || 'file';
}

/** The record's name: a hash of key and upload id (upload ids are long and opaque). */
export function recordName(key: string, uploadId: string): string {
  return `${MULTIPART_RECORDS}/${createHash('sha256').update(`${key}\n${uploadId}`).digest('base64url')}`;
}

function lockKey(recordKey: string): string {
  return `${recordKey}.lock`;
}

export function checkUploadId(uploadId: string, key: string): void {
  if (typeof uploadId !== 'string' || uploadId.length === 0 || uploadId.length > MAX_UPLOAD_ID || /[\u0000-\u001f\u007f]/.test(uploadId)) {
    throw new UploadRejectedError('bad-request', `the upload id must be the non-empty string createMultipartUpload() returned (got ${describeName(uploadId)})`, { key });
  }
}

/** `signParts()`'s `expiresIn`: a caller's input, so a 400 (`bad-request`), not a configuration error. */
export function checkPartUrlExpiry(expiresIn: number, key: string): void {
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > 604_800) {
    throw new UploadRejectedError('bad-request', `signParts(): expiresIn must be a whole number of seconds from 1 to 604800 (7 days) (got ${String(expiresIn)})`, { key });
  }
}

/** `signParts()`'s part numbers: 1 to 10,000 of them, each a whole number from 1 to 10,000. */
export function checkPartNumbers(partNumbers: readonly number[], key: string): void {
  if (!Array.isArray(partNumbers) || partNumbers.length === 0 || partNumbers.length > MAX_PART_NUMBER) {
    throw new UploadRejectedError('bad-request', `signParts(): give 1 to ${MAX_PART_NUMBER} part numbers (got ${Array.isArray(partNumbers) ? partNumbers.length : typeof partNumbers})`, { key });
  }
  for (const partNumber of partNumbers) checkPartNumber(partNumber, key);
}

function checkPartNumber(partNumber: number, key: string): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
    throw new UploadRejectedError('bad-request', `part numbers are whole numbers from 1 to ${MAX_PART_NUMBER} (got ${String(partNumber)})`, { key });
  }
}

/** The parts a client gives, checked (numbers, ETags, no duplicates) and sorted. */
export function checkCompletedParts(parts: readonly CompletedPart[], bad: (message: string) => UploadRejectedError): { partNumber: number; etag: string }[] {
  if (!Array.isArray(parts) || parts.length === 0) throw bad('completeMultipartUpload(): give the parts uploaded, each { partNumber, etag } (got none)');
  if (parts.length > MAX_PART_NUMBER) throw bad(`completeMultipartUpload(): at most ${MAX_PART_NUMBER} parts (got ${parts.length})`);
  const seen = new Set<number>();
  const sorted = parts.map((part) => {
    const partNumber = (part as Partial<CompletedPart> | null)?.partNumber as number;
    const etag = (part as Partial<CompletedPart> | null)?.etag;
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) throw bad(`completeMultipartUpload(): part numbers are whole numbers from 1 to ${MAX_PART_NUMBER} (got ${String(partNumber)})`);
    if (typeof etag !== 'string' || etag === '' || etag.length > 256) throw bad(`completeMultipartUpload(): part ${partNumber} needs the ETag its PUT answered with`);
    if (seen.has(partNumber)) throw bad(`completeMultipartUpload(): part ${partNumber} is given twice`);
    seen.add(partNumber);
    return { partNumber, etag: unquote(etag) };
  });
  return sorted.sort((a, b) => a.partNumber - b.partNumber);
}

/**
 * The parts S3 holds against those the client gave and the limits: the same numbers with the
 * same ETags, at least one byte, at most `maxBytes` in all, every part but the last at least
 * 5 MiB (S3 refuses smaller ones at Complete). The checks of both storages.
 */
export function checkParts(given: readonly { partNumber: number; etag: string }[], listed: readonly UploadedPart[], maxBytes: number): Rejection | undefined {
  const total = listed.reduce((sum, part) => sum + part.size, 0);
  if (total > maxBytes) return { reason: 'too-large', message: `the parts add up to ${total} bytes, more than the ${maxBytes} allowed` };
  const held = new Map(listed.map((part) => [part.partNumber, part]));
  const givenNumbers = new Set(given.map((part) => part.partNumber));
  for (const part of given) {
    const found = held.get(part.partNumber);
    if (!found) return { reason: 'parts-mismatch', message: `part ${part.partNumber} was not uploaded (the server holds ${listed.length === 0 ? 'no parts' : `parts ${listed.map((p) => p.partNumber).join(', ')}`})` };
    if (found.etag !== part.etag) return { reason: 'parts-mismatch', message: `part ${part.partNumber} has another ETag on the server than the one given (it was uploaded again, or the ETag is wrong)` };
  }
  if (given.length !== listed.length) {
    const missing = listed.filter((part) => !givenNumbers.has(part.partNumber)).map((p) => p.partNumber);
    return { reason: 'parts-mismatch', message: `the server holds parts the complete does not list (${missing.join(', ')}); give every part uploaded` };
  }
  if (total === 0) return { reason: 'empty', message: 'the file is empty' };
  const small = listed.slice(0, -1).find((part) => part.size < MIN_PART_BYTES);
  if (small) return { reason: 'bad-request', message: `part ${small.partNumber} has ${small.size} bytes; every part but the last needs at least ${MIN_PART_BYTES} (5 MiB)` };
  return undefined;
}

function isNoSuchUpload(error: unknown): boolean {
  const cause = error instanceof StorageError ? error.cause : error;
  const code = codeOf(cause);
  // A 404 without NoSuchUpload (NoSuchBucket, a proxy's page) is no answer about the upload.
  return code === 'NoSuchUpload' || (error instanceof ObjectNotFoundError && statusOf(cause) === 404 && (code === undefined || code === 'NotFound' || code === 'NoSuchKey'));
}
