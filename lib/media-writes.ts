/**
 * The write path of one media storage: `save()`/`upload()` with the overwrite rule. A buffer
 * goes up in one conditional PutObject; a stream longer than one part goes up as a multipart
 * upload, onto a placeholder that won the name first when `overwrite` is false.
 */
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand, type PutObjectCommandInput } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { nextOrAbort, unquote } from './abortable.js';
import { guessContentType } from './content-type.js';
import { alternativeName, normalizeName, toKey } from './key-normalizer.js';
import type { MediaContext, SaveOptions, StorageBody, StoredObject } from './media-storage.types.js';
import { multipartUpload } from './multipart-upload.js';
import { codeOf, errorDetail, statusOf } from './s3-errors.js';
import {
  describeName,
  InvalidBodyError,
  ObjectNotFoundError,
  StorageAbortedError,
  StorageError,
  StorageOperationError,
  StorageTimeoutError,
  UploadRejectedError,
} from './storage.errors.js';
import { ChunkEncoder, readInLargeChunks, readStreamSize } from './stream-chunks.js';

/** A conditional write lost to an object that already exists under the name. */
const PRECONDITION = new Set(['PreconditionFailed', 'ConditionalRequestConflict']);
export const MAX_NAME_ATTEMPTS = 8;
/**
 * User metadata (`x-amz-meta-nss3-reservation`) of the empty placeholder that holds a name
 * while a multipart save uploads onto it; its value is that save's own random token.
 */
export const RESERVATION_METADATA = 'nss3-reservation';
/** The ETag of an empty object (md5 of nothing), for servers that answer a PUT without one. */
export const EMPTY_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"';

/** A name held by this save's placeholder. */
export interface Reservation {
  name: string;
  key: string;
  token: string;
  etag: string;
  /** The storage method that reserved it, for errors and log lines. */
  operation: string;
}

type PreparedBody = { kind: 'buffer'; data: Buffer } | { kind: 'stream'; stream: AsyncIterable<Buffer>; sizeHint?: number };

/** Saves for one media storage (`MediaStorage.save()` and `upload()`). */
export class MediaWrites {
  constructor(private readonly context: MediaContext) {}

  async store(name: string, body: StorageBody, options: SaveOptions): Promise<StoredObject> {
    const wanted = normalizeName(name);
    const overwrite = options.overwrite ?? this.context.options.overwrite;
    const source = await this.prepareBody(wanted, body, options).catch((error: unknown) => {
      throw this.context.wrap('save', error, toKey(this.context.options.location, wanted), options.signal);
    });
    // On a server that honours no conditional write (s3rver) this look is the only protection;
    // elsewhere it spares a request that would fail.
    let stored = wanted;
    if (!overwrite && (await this.context.exists(stored))) stored = alternativeName(wanted, randomBytes);
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
      const key = toKey(this.context.options.location, stored);
      const input = this.putInput(key, stored, options, overwrite);
      try {
        const out = await this.context.call('save', key, options.signal, (abortSignal) =>
          this.context.client.send(new PutObjectCommand({ ...input, Body: data }), { abortSignal }),
        );
        options.onProgress?.(data.length);
        return { name: stored, key, size: data.length, etag: unquote(out.ETag), contentType: input.ContentType! };
      } catch (error) {
        if (overwrite || !isPreconditionFailure(error)) throw this.context.wrap('save', error, key, options.signal);
        if (attempt >= MAX_NAME_ATTEMPTS) throw this.namesTaken(key, error);
        stored = alternativeName(wanted, randomBytes);
      }
    }
  }

  /** A multipart upload to `name`: onto this save's own placeholder when there is one. */
  private async putStream(name: string, source: Extract<PreparedBody, { kind: 'stream' }>, options: SaveOptions, reservation?: Reservation): Promise<StoredObject> {
    const key = toKey(this.context.options.location, name);
    // No If-None-Match: the placeholder is there. If-Match on Complete (honoured by AWS, ignored
    // by Ceph) refuses to complete over anything that replaced the placeholder meanwhile.
    const input = { ...this.putInput(key, name, options, true), IfMatch: reservation?.etag };
    try {
      const out = await multipartUpload(this.context.client, input, source.stream, {
        partSize: this.context.options.partSize,
        queueSize: this.context.options.queueSize,
        signal: options.signal,
        onProgress: options.onProgress,
        totalSize: options.size ?? source.sizeHint,
        exactSize: options.size !== undefined,
      });
      return { name, key, size: out.size, etag: out.etag, contentType: input.ContentType! };
    } catch (error) {
      if (reservation && isPreconditionFailure(error)) {
        throw new StorageOperationError('save', 'the name was taken over while the upload ran (its placeholder was replaced, e.g. by a save with overwrite: true); nothing of this upload was stored', {
          bucket: this.context.bucket,
          key,
          endpoint: this.context.endpointLabel,
          cause: error,
          status: statusOf(error instanceof StorageError ? error.cause : error),
          s3Code: 'PreconditionFailed',
        });
      }
      throw this.context.wrap('save', error, key, options.signal);
    }
  }

  /**
   * Wins a name for a multipart save: an empty placeholder PUT with `If-None-Match: *`, the one
   * conditional request Ceph, AWS and MinIO all arbitrate. A lost race tries a new name (the
   * stream has not been sent yet). The placeholder carries this save's own token, so a failed
   * save deletes only its own, and `Cache-Control: no-store`, so no cache keeps the empty body.
   * `copy()` and `move()` reserve their destination the same way (`operation` names them).
   */
  async reserve(wanted: string, first: string, options: Pick<SaveOptions, 'contentType' | 'signal'>, operation = 'save'): Promise<Reservation> {
    const token = randomBytes(12).toString('base64url');
    let name = first;
    for (let attempt = 1; ; attempt++) {
      const key = toKey(this.context.options.location, name);
      try {
        const out = await this.context.call(operation, key, options.signal, (abortSignal) =>
          this.context.client.send(
            new PutObjectCommand({
              Bucket: this.context.bucket,
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
        return { name, key, token, etag: out.ETag ?? EMPTY_ETAG, operation };
      } catch (error) {
        // Cut short after sending, the PUT may still have stored the placeholder: remove it
        // if it is there (the token tells ours apart).
        if (error instanceof StorageAbortedError || error instanceof StorageTimeoutError) await this.release({ name, key, token, etag: EMPTY_ETAG, operation }, false);
        if (!isPreconditionFailure(error)) throw error;
        if (attempt >= MAX_NAME_ATTEMPTS) throw this.namesTaken(key, error, operation);
        name = alternativeName(wanted, randomBytes);
      }
    }
  }

  /**
   * Deletes a failed save's placeholder, and only its own: the token is checked first (and
   * the delete is conditional on its ETag where the server honours that). A failure is logged,
   * never thrown over the save's own error.
   */
  async release(reservation: Reservation, logFailure = true): Promise<void> {
    const { key, token, etag, operation } = reservation;
    try {
      const head = await this.context.call(operation, key, undefined, (abortSignal) =>
        this.context.client.send(new HeadObjectCommand({ Bucket: this.context.bucket, Key: key }), { abortSignal }),
      );
      if (head.Metadata?.[RESERVATION_METADATA] !== token) return;
      await this.context.call(operation, key, undefined, (abortSignal) =>
        this.context.client.send(new DeleteObjectCommand({ Bucket: this.context.bucket, Key: key, IfMatch: etag }), { abortSignal }),
      );
    } catch (error) {
      if (error instanceof ObjectNotFoundError || !logFailure) return;
      const reason = errorDetail(error);
      this.context.logger.warn(
        `could not delete the placeholder of a failed ${operation} at key ${describeName(key)} in bucket "${this.context.bucket}" (${reason}): an empty object with metadata ${RESERVATION_METADATA}=${token} holds that name until it is deleted`,
      );
    }
  }

  private namesTaken(key: string, cause: unknown, operation = 'save'): StorageOperationError {
    return new StorageOperationError(
      operation,
      `${MAX_NAME_ATTEMPTS} names in a row were taken by other writes at the same moment; nothing was stored (try again)`,
      { bucket: this.context.bucket, key, endpoint: this.context.endpointLabel, cause, status: 412, s3Code: 'PreconditionFailed' },
    );
  }

  private putInput(key: string, name: string, options: SaveOptions, overwrite: boolean): PutObjectCommandInput {
    const defaults = this.context.options.objectParameters;
    const metadata = { ...defaults.metadata, ...options.metadata };
    return {
      Bucket: this.context.bucket,
      Key: key,
      ContentType: options.contentType ?? guessContentType(name),
      CacheControl: options.cacheControl ?? defaults.cacheControl,
      ContentDisposition: options.contentDisposition ?? defaults.contentDisposition,
      Metadata: Object.keys(metadata).length > 0 ? metadata : undefined,
      ACL: this.context.options.acl,
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
          bucket: this.context.bucket,
          key: toKey(this.context.options.location, name),
          endpoint: this.context.endpointLabel,
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
    const limit = this.context.options.partSize;
    const encoder = new ChunkEncoder(`save(${describeName(name)})`);
    const head: Buffer[] = [];
    let size = 0;
    readInLargeChunks(body);
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
}

/** Whether a (wrapped) S3 error is a conditional write that lost to an existing object. */
export function isPreconditionFailure(wrapped: unknown): boolean {
  const error = wrapped instanceof StorageError ? wrapped.cause : wrapped;
  const code = codeOf(error);
  return statusOf(error) === 412 || (code !== undefined && PRECONDITION.has(code));
}
