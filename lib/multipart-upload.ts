/**
 * A multipart upload of a stream of unknown length, with bounded memory and nothing left
 * behind on failure.
 *
 * Memory: at most `queueSize` parts in flight plus the one being filled, each about
 * `partSize` bytes. The source is read only when a slot is free (backpressure).
 * Failure (source error, S3 error, abort): in-flight part requests are cancelled, every one is
 * awaited, then the upload is aborted on the server, so no parts and no object remain.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { nextOrAbort, unquote } from './abortable.js';

/** S3 allows at most 10,000 parts per upload. */
const MAX_PARTS = 10_000;

export interface MultipartOptions {
  partSize: number;
  queueSize: number;
  signal?: AbortSignal;
  onProgress?: (bytesSent: number) => void;
}

export interface MultipartResult {
  size: number;
  /** The object's ETag: the server's, or the standard multipart ETag computed from the parts. */
  etag: string;
}

/** Uploads `source` to `input.Key` as a multipart upload (`input.Body` is ignored). */
export async function multipartUpload(
  client: S3Client,
  input: PutObjectCommandInput,
  source: AsyncIterable<Buffer>,
  options: MultipartOptions,
): Promise<MultipartResult> {
  const { Body: _body, IfNoneMatch, ...createInput } = input;
  const bucketKey = { Bucket: input.Bucket, Key: input.Key };
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(options.signal?.reason);
  options.signal?.throwIfAborted();
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const created = await client.send(new CreateMultipartUploadCommand(createInput), { abortSignal: controller.signal }).catch((error: unknown) => {
    options.signal?.removeEventListener('abort', onAbort);
    throw error;
  });
  const uploadId = created.UploadId!;
  const etags: string[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let size = 0;
  let sent = 0;

  const uploadPart = async (partNumber: number, body: Buffer): Promise<void> => {
    const out = await client.send(new UploadPartCommand({ ...bucketKey, UploadId: uploadId, PartNumber: partNumber, Body: body }), {
      abortSignal: controller.signal,
    });
    etags[partNumber - 1] = out.ETag ?? '';
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

  const iterator = source[Symbol.asyncIterator]();
  try {
    let partNumber = 0;
    let part: Buffer = Buffer.allocUnsafe(options.partSize);
    let filled = 0;
    for (;;) {
      const next = await nextOrAbort(iterator, controller.signal);
      if (next.done) break;
      let chunk = next.value;
      size += chunk.length;
      while (chunk.length > 0) {
        const copied = chunk.copy(part, filled);
        filled += copied;
        chunk = chunk.subarray(copied);
        if (filled < options.partSize) continue;
        if (++partNumber > MAX_PARTS) throw new RangeError(`the body needs more than ${MAX_PARTS} parts of ${options.partSize} bytes: raise partSize`);
        start(partNumber, part, part);
        // Backpressure: wait for a free slot before reading more of the source.
        while (inFlight.size >= options.queueSize) await Promise.race(inFlight);
        part = pool.pop() ?? Buffer.allocUnsafe(options.partSize);
        filled = 0;
      }
    }
    if (filled > 0 || partNumber === 0) {
      if (++partNumber > MAX_PARTS) throw new RangeError(`the body needs more than ${MAX_PARTS} parts of ${options.partSize} bytes: raise partSize`);
      start(partNumber, part.subarray(0, filled), part);
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    options.signal?.throwIfAborted();

    const out = await client.send(
      new CompleteMultipartUploadCommand({
        ...bucketKey,
        UploadId: uploadId,
        IfNoneMatch,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
      { abortSignal: controller.signal },
    );
    return { size, etag: unquote(out.ETag) || multipartEtag(etags) };
  } catch (error) {
    // The first failure is the one to report, not the aborts it causes in other parts.
    const cause = failure ?? error;
    controller.abort(cause);
    void iterator.return?.()?.catch(() => undefined);
    await Promise.allSettled(inFlight);
    // A fresh signal: the caller's abort must not cancel the clean-up.
    await client.send(new AbortMultipartUploadCommand({ ...bucketKey, UploadId: uploadId })).catch(() => undefined);
    throw cause;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** The ETag S3 gives a multipart object: md5 of the parts' binary md5s, dash, part count. */
export function multipartEtag(partEtags: string[]): string {
  const md5 = createHash('md5');
  for (const etag of partEtags) md5.update(Buffer.from(unquote(etag), 'hex'));
  return `${md5.digest('hex')}-${partEtags.length}`;
}

