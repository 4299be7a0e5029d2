/**
 * Streams of unknown length: bounded memory, same bytes back, and nothing left behind when
 * the source fails or the caller aborts.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { StorageAbortedError, StorageError } from '../../lib/storage.errors.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { deleteTestBucket, mediaOptions, rawClient, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const bucket = uniqueBucket('large');
let fx: StorageFixture;

beforeAll(async () => {
  fx = await storageFixture({ media: mediaOptions(bucket, { partSize: 8 * MIB, queueSize: 4 }) });
});
afterAll(async () => {
  await fx?.moduleRef.close();
  await deleteTestBucket(bucket);
});

/** A random stream of `total` bytes in 64 KiB chunks, of unknown length to the reader; hashes what it emits. */
function generated(total: number, options: { failAt?: number; onChunk?: (sent: number) => void } = {}): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  let sent = 0;
  const stream = new Readable({
    read() {
      if (options.failAt !== undefined && sent >= options.failAt) {
        this.destroy(new Error('source failed mid-stream'));
        return;
      }
      if (sent >= total) {
        this.push(null);
        return;
      }
      const size = Math.min(64 * 1024, total - sent);
      const chunk = randomBytes(size);
      hash.update(chunk);
      sent += size;
      options.onChunk?.(sent);
      this.push(chunk);
    },
  });
  return { stream, sha256: () => hash.digest('hex') };
}

async function leftovers(prefix: string): Promise<{ objects: number; uploads: number }> {
  const client = rawClient();
  try {
    const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return { objects: objects.KeyCount ?? 0, uploads: (uploads.Uploads ?? []).length };
  } finally {
    client.destroy();
  }
}

describe('save() of large streams', () => {
  it('a 300 MiB stream of unknown length is stored and reads back with the same SHA-256', async () => {
    const source = generated(300 * MIB);
    const progress: number[] = [];
    const stored = await fx.storage.upload('big/300mib.bin', source.stream, { onProgress: (n) => progress.push(n) });
    const expected = source.sha256();
    expect(stored).toMatchObject({ name: 'big/300mib.bin', size: 300 * MIB, contentType: 'application/octet-stream' });
    expect(stored.etag).toMatch(/^[0-9a-f]{32}-38$/);
    expect((await fx.storage.stat(stored.name)).etag).toBe(stored.etag);
    expect(progress.at(-1)).toBe(300 * MIB);
    const back = createHash('sha256');
    for await (const chunk of await fx.storage.open(stored.name)) back.update(chunk as Buffer);
    expect(back.digest('hex')).toBe(expected);
    await fx.storage.delete(stored.name);
  }, 300_000);

  it('a source that fails at 50% leaves no object and no multipart upload', async () => {
    const { stream } = generated(60 * MIB, { failAt: 30 * MIB });
    const error = await fx.storage.save('failing/half.bin', stream).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toMatch(/^save "failing\/half\.bin" in bucket "nss3-large-[0-9a-f]+" at http:\/\/[^ ]+ failed: /);
    expect(await leftovers('failing/')).toEqual({ objects: 0, uploads: 0 });
  }, 120_000);

  it('an aborted save rejects with StorageAbortedError and leaves nothing behind', async () => {
    const controller = new AbortController();
    const { stream } = generated(200 * MIB, { onChunk: (sent) => sent >= 40 * MIB && controller.abort() });
    const error = await fx.storage.save('aborted/x.bin', stream, { signal: controller.signal }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(StorageAbortedError);
    expect(await leftovers('aborted/')).toEqual({ objects: 0, uploads: 0 });
  }, 120_000);

  it.each([
    ['before the first part is complete', 1 * MIB],
    ['after the first part went up', 12 * MIB],
  ])('an abort while the source stalls %s rejects promptly, destroys the source and leaves nothing', async (_label, before) => {
    const source = new PassThrough();
    source.write(randomBytes(before)); // then nothing more: a stalled client
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 1500);
    const started = Date.now();
    const error = await fx.storage.save(`stalled/${before}.bin`, source, { signal: controller.signal }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(StorageAbortedError);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(source.destroyed).toBe(true);
    expect(await leftovers('stalled/')).toEqual({ objects: 0, uploads: 0 });
  });

  it('a failing source is destroyed and an invalid name releases the stream it was given', async () => {
    const { stream } = generated(20 * MIB, { failAt: 10 * MIB });
    await expect(fx.storage.save('failing/again.bin', stream)).rejects.toBeInstanceOf(StorageError);
    expect(stream.destroyed).toBe(true);
    const unused = new PassThrough();
    await expect(fx.storage.save('../escape.bin', unused)).rejects.toMatchObject({ code: 'STORAGE_INVALID_KEY' });
    expect(unused.destroyed).toBe(true);
  });

  it('a signal aborted before the call rejects without a request', async () => {
    fx.requests.length = 0;
    const error = await fx.storage.save('aborted/early.bin', Readable.from([Buffer.alloc(10)]), { signal: AbortSignal.abort() }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(StorageAbortedError);
    expect(fx.requests).toEqual([]);
  });
});
