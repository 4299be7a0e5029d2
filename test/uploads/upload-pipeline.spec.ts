/**
 * How save() feeds a multipart upload: byte streams are read 1 MiB at a time (not 64 KiB,
 * an fs.ReadStream's default), with every byte kept in order, and the first parts are read
 * while CreateMultipartUpload runs, within the memory bound, leaving nothing open on failure.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { multipartUpload } from '../../lib/multipart-upload.js';
import { READ_CHUNK, readInLargeChunks } from '../../lib/stream-chunks.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { deleteTestBucket, mediaOptions, rawClient, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const PART = 5 * MIB;
const QUEUE = 2;
const bucket = uniqueBucket('pipe');
let fx: StorageFixture;
let dir: string;

beforeAll(async () => {
  fx = await storageFixture({ media: mediaOptions(bucket, { partSize: PART, queueSize: QUEUE }) });
  dir = mkdtempSync(join(tmpdir(), 'nss3-pipe-'));
});
afterAll(async () => {
  await fx?.moduleRef.close();
  await deleteTestBucket(bucket);
  rmSync(dir, { recursive: true, force: true });
});

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A byte stream over `data` with a 64 KiB highWaterMark that records the size each `_read(n)` asks for. */
function recording(data: Buffer, options: { sync?: boolean; chunk?: number; prefill?: number } = {}): { stream: Readable; asked: number[]; served: () => number } {
  const asked: number[] = [];
  let offset = 0;
  const stream = new Readable({
    highWaterMark: 64 * 1024,
    read(n) {
      asked.push(n);
      const push = (): void => {
        // Odd chunk sizes: part boundaries never line up with chunk boundaries.
        const end = Math.min(data.length, offset + Math.min(n, options.chunk ?? n));
        const chunk = data.subarray(offset, end);
        offset = end;
        this.push(chunk.length > 0 ? chunk : null);
      };
      if (options.sync) push();
      else setImmediate(push);
    },
  });
  if (options.prefill) {
    // Already buffered before anyone reads (a stream that pushes at once).
    stream.push(data.subarray(0, options.prefill));
    offset = options.prefill;
  }
  return { stream, asked, served: () => offset };
}

/** Delays every CreateMultipartUpload answer by `ms` (the server has created the upload by then). */
function slowCreate(client: S3Client, ms: number, onAnswer: () => void): () => void {
  const name = `nss3SlowCreate${randomBytes(4).toString('hex')}`;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const out = await next(args);
      if (context.commandName === 'CreateMultipartUploadCommand') {
        await sleep(ms);
        onAnswer();
      }
      return out;
    },
    { step: 'initialize', name },
  );
  return () => client.middlewareStack.remove(name);
}

async function leftovers(prefix: string): Promise<{ objects: string[]; uploads: string[] }> {
  const client = rawClient();
  try {
    const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return { objects: (objects.Contents ?? []).map((o) => o.Key!), uploads: (uploads.Uploads ?? []).map((u) => u.Key!) };
  } finally {
    client.destroy();
  }
}

describe('byte streams are read 1 MiB at a time', () => {
  it('readInLargeChunks() raises a byte stream\'s read size and puts back what it read: every byte, in order', async () => {
    const data = randomBytes(3 * MIB + 12_345);
    for (const sync of [false, true]) {
      const { stream, asked } = recording(data, { sync, chunk: 100_003, prefill: 70_001 });
      readInLargeChunks(stream);
      expect(stream.readableHighWaterMark).toBe(READ_CHUNK);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      expect(sha256(Buffer.concat(chunks))).toBe(sha256(data));
      expect(Math.max(...asked)).toBe(READ_CHUNK);
    }
  });

  it('leaves object-mode, string and already flowing streams as they are', () => {
    const objects = new Readable({ objectMode: true, read() {} });
    readInLargeChunks(objects);
    expect(objects.readableHighWaterMark).toBe(16);
    const text = new Readable({ read() {} }).setEncoding('utf8');
    const before = text.readableHighWaterMark;
    readInLargeChunks(text);
    expect(text.readableHighWaterMark).toBe(before);
    const flowing = new Readable({ read() {} });
    const flowingBefore = flowing.readableHighWaterMark;
    flowing.on('data', () => undefined);
    readInLargeChunks(flowing);
    expect(flowing.readableHighWaterMark).toBe(flowingBefore);
    flowing.destroy();
  });

  it('on the server: save() of an fs.ReadStream reads the file 1 MiB at a time and stores it byte for byte', async () => {
    const data = randomBytes(12 * MIB + 777);
    const file = join(dir, 'read-size.bin');
    writeFileSync(file, data);
    const stream = createReadStream(file);
    expect(stream.readableHighWaterMark).toBe(64 * 1024);
    let largest = 0;
    const read = stream._read.bind(stream);
    stream._read = (n: number): void => {
      largest = Math.max(largest, n);
      read(n);
    };
    const name = await fx.storage.save('read-size/file.bin', stream, { overwrite: true });
    expect(largest).toBe(READ_CHUNK);
    expect(sha256(await fx.storage.read(name))).toBe(sha256(data));
  }, 60_000);

  it('on the server: multipartUpload() given an fs.ReadStream itself (collectstatic\'s large files) reads it 1 MiB at a time too', async () => {
    const data = randomBytes(11 * MIB + 3);
    const file = join(dir, 'direct-stream.bin');
    writeFileSync(file, data);
    const stream = createReadStream(file);
    const out = await multipartUpload(fx.client, { Bucket: bucket, Key: 'read-size/direct.bin' }, stream, { partSize: PART, queueSize: QUEUE });
    expect(out.size).toBe(data.length);
    expect(stream.readableHighWaterMark).toBe(READ_CHUNK);
    expect(sha256(await fx.storage.read('read-size/direct.bin'))).toBe(sha256(data));
  }, 60_000);

  it('on the server: save() of a stream that pushes synchronously in odd chunks stores every byte in order', async () => {
    const data = randomBytes(11 * MIB + 5);
    const { stream, asked } = recording(data, { sync: true, chunk: 333_333 });
    const name = await fx.storage.save('read-size/sync.bin', stream, { overwrite: true });
    expect(Math.max(...asked)).toBe(READ_CHUNK);
    expect(sha256(await fx.storage.read(name))).toBe(sha256(data));
  }, 60_000);
});

describe('the first parts are read while the upload is created', () => {
  it('on the server: while CreateMultipartUpload is slow to answer, queueSize parts are read (no more), then sent at once', async () => {
    const data = randomBytes(6 * PART);
    const { stream, served } = recording(data);
    let readWhenCreated = -1;
    const restore = slowCreate(fx.client, 2_500, () => (readWhenCreated = served()));
    try {
      const name = await fx.storage.save('early/x.bin', stream, { overwrite: true });
      expect(sha256(await fx.storage.read(name))).toBe(sha256(data));
    } finally {
      restore();
    }
    // The parts in flight (waiting for the upload id) and the one filling, plus the read-ahead.
    expect(readWhenCreated).toBeGreaterThanOrEqual(QUEUE * PART);
    expect(readWhenCreated).toBeLessThanOrEqual((QUEUE + 1) * PART + READ_CHUNK);
  }, 60_000);

  it('on the server: a source that fails before the create answers leaves no upload open and no object; the source\'s error is thrown', async () => {
    const stream = new Readable({ read() {} });
    stream.push(randomBytes(PART + MIB));
    let created = false;
    const restore = slowCreate(fx.client, 2_500, () => (created = true));
    try {
      const saving = fx.storage.save('early-fail/x.bin', stream, { overwrite: true }).then(() => undefined, (e: unknown) => e);
      setTimeout(() => stream.destroy(new Error('the disk went away')), 300);
      const error = await saving;
      expect((error as Error).message).toMatch(/failed: the disk went away$/);
      // The create was let finish (not cancelled halfway), then the upload was aborted.
      expect(created).toBe(true);
    } finally {
      restore();
    }
    expect(await leftovers('early-fail/')).toEqual({ objects: [], uploads: [] });
  }, 60_000);
});
