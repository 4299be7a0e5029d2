/**
 * A multipart upload of a stream of unknown length, with bounded memory and nothing left
 * behind on failure.
 *
 * Memory: at most `queueSize` parts in flight plus the one being filled, each about
 * `partSize` bytes. The source is read only when a slot is free (backpressure), and from the
 * start: the first parts are read while the server creates the upload.
 * Failure (source error, S3 error, abort): in-flight part requests are cancelled, every one is
 * awaited, then the upload is aborted on the server, so no parts and no object remain. An
 * abort the server refuses is logged with the bucket, key and upload id: its parts stay
 * stored (and billed) until someone aborts the upload or a lifecycle rule expires it.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  type CompletedPart,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { nextOrAbort, unquote } from './abortable.js';
import { errorDetail } from './s3-errors.js';
import { readInLargeChunks } from './stream-chunks.js';
import { describeName, UploadRejectedError } from './storage.errors.js';

/** S3 allows at most 10,000 parts per upload. */
export const MAX_PARTS = 10_000;
/** S3's largest part. */
export const MAX_PART_SIZE = 5 * 1024 ** 3;
const MIB = 1024 * 1024;

export interface MultipartOptions {
  partSize: number;
  queueSize: number;
  signal?: AbortSignal;
  onProgress?: (bytesSent: number) => void;
  /**
   * The total size when the caller knows it: the part size then grows (see
   * {@link partSizeFor}) so the upload stays within {@link MAX_PARTS} parts.
   */
  totalSize?: number;
  /** With `totalSize`: a source that yields any other number of bytes fails the upload. */
  exactSize?: boolean;
  /** @internal tests only: a lower part limit, to reach it without 50 GB. @default MAX_PARTS */
  maxParts?: number;
}

export interface MultipartResult {
  size: number;
  /** The object's ETag: the server's, or the standard multipart ETag computed from the parts. */
  etag: string;
}

/**
 * The part size for an upload of `totalSize` bytes: `partSize`, or when that would need more
 * than `maxParts` parts the smallest whole number of MiB that fits (S3 has no other limit on
 * the part size below 5 GiB). Memory grows with it: `partSize × (queueSize + 1)`.
 * @throws RangeError when even 5 GiB parts would not do (over S3's 5 TiB object limit)
 */
export function partSizeFor(totalSize: number | undefined, partSize: number, maxParts = MAX_PARTS): number {
  if (totalSize === undefined || totalSize <= partSize * maxParts) return partSize;
  const grown = Math.ceil(totalSize / maxParts / MIB) * MIB;
  if (grown > MAX_PART_SIZE) {
    throw new RangeError(`the body has ${totalSize} bytes: more than ${maxParts} parts of at most 5 GiB can hold (S3's object size limit)`);
  }
  return grown;
}

const logger = new Logger('nestjs-s3-storage');

/**
 * Uploads `source` to `input.Key` as a multipart upload (`input.Body` is ignored). The
 * conditions `IfMatch`/`IfNoneMatch` of `input` are sent with CompleteMultipartUpload, the
 * only multipart request that takes them (servers that ignore them there, like Ceph, still
 * complete: the caller must not rely on them alone).
 */
export async function multipartUpload(
  client: S3Client,
  input: PutObjectCommandInput,
  source: AsyncIterable<Uint8Array>,
  options: MultipartOptions,
): Promise<MultipartResult> {
  const { Body: _body, IfNoneMatch, IfMatch, ...createInput } = input;
  const bucketKey = { Bucket: input.Bucket, Key: input.Key };
  const maxParts = options.maxParts ?? MAX_PARTS;
  const partSize = partSizeFor(options.totalSize, options.partSize, maxParts);
  // The way @aws-sdk/lib-storage does it when the client sends checksums: CRC32 announced on
  // Create, sent with each part, and each part's checksum listed again in Complete, so AWS
  // checks every part and the whole (composite) object.
  const checksums = (await checksumSetting(client)) === 'WHEN_SUPPORTED';
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(options.signal?.reason);
  options.signal?.throwIfAborted();
  options.signal?.addEventListener('abort', onAbort, { once: true });

  // Created while the first parts are read, not before (Ceph takes tens of milliseconds to
  // create an upload): the parts start as soon as it answers. Under the caller's signal only:
  // a failing source must not cancel a create the server may have done already, which would
  // leave an upload open that nobody knows; it is awaited and aborted instead.
  const creating = client
    .send(new CreateMultipartUploadCommand({ ...createInput, ...(checksums && { ChecksumAlgorithm: 'CRC32' }) }), { abortSignal: options.signal })
    .then((created) => created.UploadId!);
  // Awaited by the parts and on failure; this keeps an early rejection from being unhandled.
  creating.catch(() => undefined);
  const parts: CompletedPart[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let size = 0;
  let sent = 0;

  const uploadPart = async (partNumber: number, body: Buffer): Promise<void> => {
    const checksum = checksums ? crc32Base64(body) : undefined;
    const uploadId = await creating;
    const out = await client.send(
      new UploadPartCommand({
        ...bucketKey,
        UploadId: uploadId,
        PartNumber: partNumber,
        Body: body,
        ...(checksum && { ChecksumAlgorithm: 'CRC32', ChecksumCRC32: checksum }),
      }),
      { abortSignal: controller.signal },
    );
    // The server's echo when it gives one (AWS), else what was sent (Ceph echoes nothing).
    const partChecksum = out.ChecksumCRC32 ?? checksum;
    parts[partNumber - 1] = { ETag: out.ETag ?? '', PartNumber: partNumber, ...(partChecksum && { ChecksumCRC32: partChecksum }) };
    sent += body.length;
    options.onProgress?.(sent);
  };
  // Part buffers are allocated once and reused: memory stays at (queueSize + 1) parts, and
  // no stream of discarded 8 MiB buffers waits for the garbage collector.
  const pool: Buffer[] = [];
  const start = (partNumber: number, body: Buffer, buffer: Buffer): void => {
    const task: Promise<void> = uploadPart(partNumber, body)
      .catch((error: unknown) => {
        failure ??= error;
        controller.abort(error);
      })
      .finally(() => {
        inFlight.delete(task);
        pool.push(buffer);
      });
    inFlight.add(task);
  };
  const tooMany = (): RangeError =>
    new RangeError(
      `the body needs more than ${maxParts} parts of ${partSize} bytes: raise partSize, or pass the size (save()'s size option) so the part size can grow`,
    );
  const total = options.exactSize ? options.totalSize : undefined;
  const sizeMismatch = (): UploadRejectedError =>
    new UploadRejectedError(
      'size-mismatch',
      size > total! ? `the stream yielded more than the ${total} bytes given as its size; nothing was stored` : `the stream yielded ${size} bytes, not the ${total} given as its size; nothing was stored`,
      { bucket: input.Bucket, key: input.Key },
    );

  if (source instanceof Readable) readInLargeChunks(source);
  const iterator = source[Symbol.asyncIterator]();
  try {
    let partNumber = 0;
    let part: Buffer = Buffer.allocUnsafe(partSize);
    let filled = 0;
    for (;;) {
      const next = await nextOrAbort(iterator, controller.signal);
      if (next.done) break;
      let chunk = next.value;
      size += chunk.length;
      if (total !== undefined && size > total) throw sizeMismatch();
      while (chunk.length > 0) {
        // `set`, not Buffer#copy: a chunk may be a plain Uint8Array.
        const copied = Math.min(chunk.length, partSize - filled);
        part.set(copied === chunk.length ? chunk : chunk.subarray(0, copied), filled);
        filled += copied;
        chunk = chunk.subarray(copied);
        if (filled < partSize) continue;
        if (++partNumber > maxParts) throw tooMany();
        start(partNumber, part, part);
        // Backpressure: wait for a free slot before reading more of the source.
        while (inFlight.size >= options.queueSize) await Promise.race(inFlight);
        part = pool.pop() ?? Buffer.allocUnsafe(partSize);
        filled = 0;
      }
    }
    if (total !== undefined && size !== total) throw sizeMismatch();
    if (filled > 0 || partNumber === 0) {
      if (++partNumber > maxParts) throw tooMany();
      start(partNumber, part.subarray(0, filled), part);
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    options.signal?.throwIfAborted();

    const uploadId = await creating;
    const out = await client.send(
      new CompleteMultipartUploadCommand({ ...bucketKey, UploadId: uploadId, IfMatch, IfNoneMatch, MultipartUpload: { Parts: parts } }),
      { abortSignal: controller.signal },
    );
    return { size, etag: unquote(out.ETag) || multipartEtag(parts.map((p) => p.ETag ?? '')) };
  } catch (error) {
    // The first failure is the one to report, not the aborts it causes in other parts.
    const cause = failure ?? error;
    controller.abort(cause);
    void iterator.return?.()?.catch(() => undefined);
    await Promise.allSettled(inFlight);
    // Nothing to abort when the create failed (or was cancelled by the caller).
    const uploadId = await creating.catch(() => undefined);
    if (uploadId === undefined) throw cause;
    // A fresh signal: the caller's abort must not cancel the clean-up.
    await client.send(new AbortMultipartUploadCommand({ ...bucketKey, UploadId: uploadId })).catch((abortError: unknown) => {
      const reason = errorDetail(abortError);
      logger.warn(
        `AbortMultipartUpload failed for upload id ${uploadId} of key ${describeName(input.Key)} in bucket "${input.Bucket}" (${reason}): its parts stay stored until the upload is aborted or a lifecycle rule (AbortIncompleteMultipartUpload) expires it`,
      );
    });
    throw cause;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** The client's `requestChecksumCalculation`, whichever form (value or provider) it has. */
async function checksumSetting(client: S3Client): Promise<string | undefined> {
  const setting: unknown = (client.config as { requestChecksumCalculation?: unknown }).requestChecksumCalculation;
  return typeof setting === 'function' ? String(await (setting as () => Promise<unknown>)()) : (setting as string | undefined);
}

/** S3's `x-amz-checksum-crc32`: the big-endian CRC32 of the bytes, base64. */
export function crc32Base64(bytes: Uint8Array): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(bytes));
  return out.toString('base64');
}

/** The ETag S3 gives a multipart object: md5 of the parts' binary md5s, dash, part count. */
export function multipartEtag(partEtags: string[]): string {
  const md5 = createHash('md5');
  for (const etag of partEtags) md5.update(Buffer.from(unquote(etag), 'hex'));
  return `${md5.digest('hex')}-${partEtags.length}`;
}
