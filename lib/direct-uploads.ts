/**
 * Direct browser uploads: a presigned POST (`createUpload()`) that lands the file under
 * `.pending/`, and `confirmUpload()`, which checks what arrived and publishes it.
 *
 * What makes a confirmation trustworthy (see the README's "Straight from the browser to S3"):
 * - Every form carries a marker (`x-amz-meta-direct-upload`) that its policy pins: an upload
 *   id and an HMAC over bucket, key and id, keyed one-way from the secret access key. The S3
 *   server stores it with the object; only a form of ours can put it there, and a marker made
 *   for one name does not verify for another. Nothing else is ever published.
 * - The expectations are checked on every path, "already published" included.
 * - A published name is never written again. The guarantee does not rest on a conditional
 *   copy (Ceph ignores If-None-Match on CopyObject): confirmUpload() first claims the name
 *   with a PutObject under If-None-Match (honoured by Ceph, AWS and MinIO), and anything that
 *   finds the name taken, published or claimed only reads it.
 */
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { unquote } from './abortable.js';
import { baseType, extensionFor, matchesType } from './content-type.js';
import { SNIFF_BYTES, SNIFFABLE_TYPES, sniffContentType } from './content-sniffing.js';
import { normalizeName, toKey } from './key-normalizer.js';
import { isPreconditionFailure } from './media-writes.js';
import { InvalidKeyError, ObjectNotFoundError, StorageError, UploadRejectedError } from './storage.errors.js';
import type { ResolvedMediaOptions } from './storage-options.validation.js';
import { encodeKeyPath, type UrlSigner } from './url-signer.js';

/** Options of `createUpload()`. */
export interface CreateUploadOptions {
  /** The most bytes the server will accept; it rejects larger uploads itself. Required. */
  maxBytes: number;
  /** Folder for the generated name `<prefix>/<uuid>.<ext>`. @default 'uploads' */
  prefix?: string;
  /**
   * The exact name to upload to instead of a generated one. It must be new: once a name has
   * been published by `confirmUpload()`, confirming it again never replaces it.
   * Names under `.pending/` are reserved.
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
  /** Types the bytes may be, as sniffed (`type/*` wildcards, any case; see `matchesType()`). */
  allowedTypes?: readonly string[];
  /**
   * The type the client declared, when it is stored as something else (a type the bytes cannot
   * prove, e.g. `text/csv`, is stored as `application/octet-stream`): what `allowedTypes` is
   * checked against when the bytes have no known signature.
   */
  declaredType?: string;
}

/** What `confirmUpload()` published (the shape of `upload()`'s result). */
export interface ConfirmedUpload {
  name: string;
  key: string;
  size: number;
  etag: string;
  contentType: string;
}

/** Runs one S3 call under the storage's deadline and error mapping (MediaStorage's `call`). */
export type S3Call = <T>(operation: string, key: string | undefined, send: (signal: AbortSignal) => Promise<T>) => Promise<T>;

/** What direct uploads need from the storage that owns them. */
export interface DirectUploadContext {
  client: S3Client;
  options: ResolvedMediaOptions;
  signer: UrlSigner;
  endpointLabel: string;
  call: S3Call;
}

/** Where direct uploads wait for `confirmUpload()`, under the location. */
export const PENDING_PREFIX = '.pending';
/** Where names are claimed before they are published, so only one confirmation writes them. */
const CLAIMS_SEGMENT = '.claims';
/** Under the pending prefix: the records of open resumable (multipart) uploads. */
export const MULTIPART_SEGMENT = '.multipart';
const CLAIMS_PREFIX = `${PENDING_PREFIX}/${CLAIMS_SEGMENT}`;
/** Default lifetime of a presigned POST: enough to pick a file and start sending it. */
export const DIRECT_UPLOAD_EXPIRES_IN = 300;
/** CopyObject moves at most 5 GiB in one request. */
const MAX_COPY_BYTES = 5 * 1024 * 1024 * 1024;
/** The user-metadata name of the marker (`x-amz-meta-direct-upload` in the form). */
export const MARKER_METADATA = 'direct-upload';
export const MARKER_FIELD = `x-amz-meta-${MARKER_METADATA}`;
/** Domain separation: this key is used for upload markers and nothing else. */
const MARKER_KEY_LABEL = 'nestjs-s3-storage direct-upload marker v1';
/** How long a confirmation waits for a concurrent one (same name) to publish. */
const CLAIM_WAIT_MS = 10_000;
const CLAIM_POLL_MS = 250;

interface Head {
  size: number;
  etag: string;
  contentType?: string;
  metadata: Record<string, string>;
}

/** Presigned POST creation and confirmation for one media storage. */
export class DirectUploads {
  private readonly bucket: string;

  constructor(private readonly context: DirectUploadContext) {
    this.bucket = context.options.bucket;
  }

  async create(options: CreateUploadOptions): Promise<DirectUpload> {
    checkMaxBytes(options.maxBytes);
    const extension = options.contentType ? extensionFor(options.contentType) : undefined;
    const name = uploadName(options.name ?? `${options.prefix ?? 'uploads'}/${randomUUID()}${extension ? `.${extension}` : ''}`);
    const key = this.key(name);
    // Fail now, not at confirmation, when the claim key would be over S3's limit.
    this.key(claimName(name));
    const uploadId = randomBytes(12).toString('base64url');
    // The type is always pinned: a browser-chosen text/html or image/svg+xml would otherwise
    // be served from the storage origin. Without one, the object is a download.
    const fields: Record<string, string> = {
      'Content-Type': options.contentType ?? 'application/octet-stream',
      [MARKER_FIELD]: `${uploadId}.${await this.mac(key, uploadId)}`,
    };
    const post = await this.context.signer.presignPost(this.key(pendingName(name)), {
      expiresIn: options.expiresIn ?? Math.min(this.context.options.urlExpiresIn, DIRECT_UPLOAD_EXPIRES_IN),
      conditions: [['content-length-range', 1, options.maxBytes]],
      fields,
    });
    return { ...post, name, key, maxBytes: options.maxBytes };
  }

  async confirm(name: string, expectations: UploadExpectations): Promise<ConfirmedUpload> {
    const final = uploadName(name);
    const key = this.key(final);
    const pendingKey = this.key(pendingName(final));
    const [pending, published] = await Promise.all([this.head(pendingKey), this.head(key)]);

    // Published already (a retried confirmation, or a used form posted again): the object
    // is only read and checked, never written. Whatever sits in .pending/ is not used.
    if (published) {
      if (pending && (await this.uploadIdOf(pending, key))) await this.remove(pendingKey);
      return this.checkPublished(final, key, published, expectations);
    }
    if (!pending) {
      throw new ObjectNotFoundError({ bucket: this.bucket, key: pendingKey, endpoint: this.context.endpointLabel });
    }
    const uploadId = await this.uploadIdOf(pending, key);
    if (!uploadId) {
      // Put there by some other means (e.g. save()): not ours to delete, and never published.
      throw this.rejected(key, {
        reason: 'not-direct-upload',
        message: `the object waiting at "${pendingName(final)}" was not uploaded with a createUpload() form for "${final}"; it was not published`,
      });
    }
    const checked = await this.inspect(pendingKey, pending, expectations);
    if ('reason' in checked) {
      await this.remove(pendingKey);
      throw this.rejected(key, { ...checked, message: `${checked.message}; the upload "${final}" was deleted` });
    }

    if (!(await this.claim(final, uploadId))) {
      // Another confirmation of this name got there first: use what it publishes.
      const other = await this.waitForPublished(key);
      if (!other) {
        throw this.rejected(key, {
          reason: 'conflict',
          message: `another confirmUpload() of "${final}" is in progress or was interrupted; nothing was published by this call (create a new upload to try again)`,
        });
      }
      return this.checkPublished(final, key, other, expectations);
    }
    try {
      await this.context.call('confirm', key, (abortSignal) =>
        this.context.client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: key,
            CopySource: `${this.bucket}/${encodeKeyPath(pendingKey)}`,
            // Only the version that was checked: a second POST in between fails the copy.
            // The destination needs no condition: the claim above made this call its only writer.
            CopySourceIfMatch: `"${pending.etag}"`,
            MetadataDirective: 'COPY',
            ACL: this.context.options.acl,
          }),
          { abortSignal },
        ),
      );
    } catch (error) {
      // Nothing was published: free the name so the form can be confirmed again.
      await this.remove(this.key(claimName(final))).catch(() => undefined);
      if (isPreconditionFailure(error)) {
        await this.remove(pendingKey);
        throw this.rejected(key, { reason: 'bad-request', message: `the upload was replaced while it was being checked; the upload "${final}" was deleted` });
      }
      throw error;
    }
    await this.remove(pendingKey);
    return { name: final, key, size: pending.size, etag: pending.etag, contentType: checked.contentType };
  }

  /** The published object passes the checks too; a failing one is reported and left alone. */
  private async checkPublished(final: string, key: string, published: Head, expectations: UploadExpectations): Promise<ConfirmedUpload> {
    if (!(await this.uploadIdOf(published, key))) {
      throw this.rejected(key, {
        reason: 'not-direct-upload',
        message: `"${final}" exists but was not published by confirmUpload() from a createUpload() form for that name; nothing was changed`,
      });
    }
    const checked = await this.inspect(key, published, expectations);
    if ('reason' in checked) throw this.rejected(key, { ...checked, message: `${checked.message}; "${final}" was already published and was left as it is` });
    return { name: final, key, size: published.size, etag: published.etag, contentType: checked.contentType };
  }

  /**
   * Size within `maxBytes`, not empty, bytes that are what was promised (only the first 32
   * are read, from the very version that was measured).
   */
  private inspect(key: string, head: Head, expectations: UploadExpectations): Promise<{ contentType: string } | Rejection> {
    return inspectUpload(head, expectations, () =>
      this.context.call('confirm', key, async (abortSignal) => {
        const out = await this.context.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=0-${SNIFF_BYTES - 1}`, IfMatch: `"${head.etag}"` }),
          { abortSignal },
        );
        return Buffer.from(await out.Body!.transformToByteArray());
      }),
    );
  }

  /**
   * Makes this call the only one that may write `final`: a zero-byte object created under
   * If-None-Match, which S3, MinIO and Ceph honour on PutObject. It stays after publishing,
   * so a used form confirmed again (even at the same moment) finds the name taken.
   * @returns false when another confirmation holds the name
   */
  private async claim(final: string, uploadId: string): Promise<boolean> {
    const claimKey = this.key(claimName(final));
    try {
      await this.context.call('confirm', claimKey, (abortSignal) =>
        this.context.client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: claimKey, Body: '', IfNoneMatch: '*', Metadata: { 'upload-id': uploadId } }),
          { abortSignal },
        ),
      );
      return true;
    } catch (error) {
      if (isPreconditionFailure(error)) return false;
      throw error;
    }
  }

  private async waitForPublished(key: string): Promise<Head | undefined> {
    const deadline = Date.now() + CLAIM_WAIT_MS;
    for (;;) {
      const head = await this.head(key);
      if (head || Date.now() >= deadline) return head;
      await new Promise((resolve) => setTimeout(resolve, CLAIM_POLL_MS));
    }
  }

  /** The upload id when the object carries a valid marker for `key`, else undefined. */
  private async uploadIdOf(head: Head, key: string): Promise<string | undefined> {
    const marker = head.metadata[MARKER_METADATA];
    const dot = marker?.indexOf('.') ?? -1;
    if (!marker || dot < 1) return undefined;
    const uploadId = marker.slice(0, dot);
    const given = Buffer.from(marker.slice(dot + 1));
    const expected = Buffer.from(await this.mac(key, uploadId));
    return given.length === expected.length && timingSafeEqual(given, expected) ? uploadId : undefined;
  }

  /**
   * The marker's MAC. Keyed one-way from the secret access key, so every instance of an app
   * with the same credentials verifies the markers of the others, and neither the secret nor
   * the derived key leaves the process.
   */
  private async mac(key: string, uploadId: string): Promise<string> {
    const secret = await this.context.signer.deriveKey(MARKER_KEY_LABEL);
    return createHmac('sha256', secret).update(`${this.bucket}\n${key}\n${uploadId}`).digest('base64url');
  }

  private async head(key: string): Promise<Head | undefined> {
    try {
      const out = await this.context.call('confirm', key, (abortSignal) =>
        this.context.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }),
      );
      return { size: out.ContentLength ?? 0, etag: unquote(out.ETag), contentType: out.ContentType, metadata: out.Metadata ?? {} };
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return undefined;
      throw error;
    }
  }

  private async remove(key: string): Promise<void> {
    try {
      await this.context.call('confirm', key, (abortSignal) => this.context.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }));
    } catch (error) {
      if (!(error instanceof ObjectNotFoundError)) throw error;
    }
  }

  private rejected(key: string, rejection: Rejection): UploadRejectedError {
    return new UploadRejectedError(rejection.reason, rejection.message, { bucket: this.bucket, key, endpoint: this.context.endpointLabel });
  }

  private key(name: string): string {
    return toKey(this.context.options.location, name);
  }
}

/** `createUpload()`'s `maxBytes`, checked. @throws StorageError */
export function checkMaxBytes(maxBytes: number): void {
  if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > MAX_COPY_BYTES) {
    throw new StorageError(
      `createUpload(): maxBytes must be a whole number of bytes from 1 to ${MAX_COPY_BYTES} (5 GiB, the largest object confirmUpload can move) (got ${String(maxBytes)})`,
    );
  }
}

/** Why `confirmUpload()` refuses an upload: the reason of its `UploadRejectedError`, and the message. */
export type Rejection = { reason: UploadRejectedError['reason']; message: string };

/**
 * The checks of `confirmUpload()` (shared with the test kit's in-memory storage, so both
 * refuse the same uploads for the same reasons): size within `maxBytes`, not empty, bytes
 * that are what was promised. `first` reads the first {@link SNIFF_BYTES} bytes, only when
 * the size checks pass.
 */
export async function inspectUpload(
  head: { size: number; contentType?: string },
  expectations: UploadExpectations,
  first: () => Promise<Buffer>,
): Promise<{ contentType: string } | Rejection> {
  if (head.size === 0) return { reason: 'empty', message: 'the file is empty' };
  if (expectations.maxBytes !== undefined && head.size > expectations.maxBytes) {
    return { reason: 'too-large', message: `the file has ${head.size} bytes, more than the ${expectations.maxBytes} allowed` };
  }
  const sniffed = sniffContentType(await first());
  const declared = baseType(expectations.contentType ?? head.contentType ?? '');
  if (declared && (sniffed ? sniffed !== declared : SNIFFABLE_TYPES.has(declared))) {
    return { reason: 'type-not-allowed', message: `the file was declared ${declared} but its bytes are ${sniffed ?? 'not that type'}` };
  }
  const claimed = sniffed ?? (baseType(expectations.declaredType ?? '') || declared);
  if (expectations.allowedTypes && !matchesType(claimed, expectations.allowedTypes)) {
    return { reason: 'type-not-allowed', message: `the file is ${claimed || 'of an unknown type'}; allowed: ${expectations.allowedTypes.join(', ')}` };
  }
  return { contentType: sniffed ?? (declared || 'application/octet-stream') };
}

/**
 * A normalized upload name. `.pending/…` holds uploads in waiting, `.pending/.claims/…` the
 * claims and `.pending/.multipart/…` the records of resumable uploads, so names starting with
 * any of those segments could alias one of those keys: reserved.
 */
export function uploadName(name: string): string {
  const normalized = normalizeName(name);
  const first = normalized.split('/', 1)[0];
  if (first === PENDING_PREFIX || first === CLAIMS_SEGMENT || first === MULTIPART_SEGMENT) {
    throw new InvalidKeyError(name, `names starting with "${PENDING_PREFIX}/", "${CLAIMS_SEGMENT}/" or "${MULTIPART_SEGMENT}/" are reserved for direct uploads in waiting`);
  }
  return normalized;
}

export function pendingName(name: string): string {
  return `${PENDING_PREFIX}/${name}`;
}

export function claimName(name: string): string {
  return `${CLAIMS_PREFIX}/${name}`;
}
