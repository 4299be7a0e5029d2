/**
 * The smaller promises of multipart uploads: the part size grows with a known size, errors
 * of our own keep their message, a failed AbortMultipartUpload is logged, and checksums go
 * out the way @aws-sdk/lib-storage sends them.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { MAX_PARTS, multipartUpload, partSizeFor } from '../../lib/multipart-upload.js';
import { toStorageError } from '../../lib/s3-errors.js';
import { StorageError, StorageOperationError, UploadRejectedError } from '../../lib/storage.errors.js';
import { readStreamSize } from '../../lib/stream-chunks.js';
import { FaultProxy } from '../reliability/fault-proxy.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { deleteTestBucket, mediaOptions, rawClient, s3, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const bucket = uniqueBucket('mpu');
let fx: StorageFixture;
let dir: string;

beforeAll(async () => {
  fx = await storageFixture({ media: mediaOptions(bucket, { partSize: 5 * MIB, queueSize: 2 }) });
  dir = mkdtempSync(join(tmpdir(), 'nss3-mpu-'));
});
afterAll(async () => {
  await fx?.moduleRef.close();
  await deleteTestBucket(bucket);
  rmSync(dir, { recursive: true, force: true });
});

function chunked(data: Buffer, size = 64 * 1024): Readable {
  return Readable.from((function* () {
    for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
  })());
}

async function leftovers(prefix: string): Promise<{ objects: string[]; uploads: { key: string; id: string }[] }> {
  const client = rawClient();
  try {
    const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return { objects: (objects.Contents ?? []).map((o) => o.Key!), uploads: (uploads.Uploads ?? []).map((u) => ({ key: u.Key!, id: u.UploadId! })) };
  } finally {
    client.destroy();
  }
}

/** Every UploadPart body length, from the client's middleware stack. */
function partSizes(client: S3Client): { sizes: number[]; remove: () => void } {
  const sizes: number[] = [];
  const name = `nss3PartSizes${randomBytes(4).toString('hex')}`;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'UploadPartCommand') sizes.push(((args.input as { Body: Uint8Array }).Body).length);
      return next(args);
    },
    { step: 'initialize', name },
  );
  return { sizes, remove: () => client.middlewareStack.remove(name) };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('part size for a known total size', () => {
  it('stays at partSize while 10,000 parts hold the body, then grows to the smallest whole MiB that fits', () => {
    expect(MAX_PARTS).toBe(10_000);
    expect(partSizeFor(undefined, 8 * MIB)).toBe(8 * MIB);
    expect(partSizeFor(0, 8 * MIB)).toBe(8 * MIB);
    expect(partSizeFor(8 * MIB * 10_000, 8 * MIB)).toBe(8 * MIB); // exactly 10,000 full parts
    expect(partSizeFor(8 * MIB * 10_000 + 1, 8 * MIB)).toBe(9 * MIB); // one byte more
    expect(partSizeFor(100 * GIB, 8 * MIB)).toBe(11 * MIB); // 10.24 MiB per part, rounded up
    expect(partSizeFor(1024 * GIB, 5 * MIB)).toBe(105 * MIB); // 1 TiB: 104.9 MiB per part
    expect(partSizeFor(5 * 1024 * GIB, 8 * MIB)).toBe(525 * MIB); // S3's 5 TiB maximum
    expect(partSizeFor(12 * MIB, 5 * MIB, 2)).toBe(6 * MIB);
    expect(partSizeFor(12 * MIB + 1, 5 * MIB, 2)).toBe(7 * MIB);
    expect(() => partSizeFor(10_000 * 5 * GIB + 1, 8 * MIB)).toThrow(RangeError);
  });

  it('reads the size an fs.ReadStream will deliver, start and end included, and nothing for other streams', async () => {
    const file = join(dir, 'sized.bin');
    writeFileSync(file, randomBytes(1000));
    const streams = [createReadStream(file), createReadStream(file, { start: 100 }), createReadStream(file, { start: 100, end: 199 }), createReadStream(file, { end: 5000 })];
    expect(await Promise.all(streams.map((s) => readStreamSize(s)))).toEqual([1000, 900, 100, 1000]);
    for (const s of streams) s.destroy();
    expect(await readStreamSize(Readable.from([Buffer.alloc(3)]))).toBeUndefined();
  });

  it('on the server: a known 12 MiB body with room for only 2 parts goes up as 2 parts of 6 MiB', async () => {
    const data = randomBytes(12 * MIB);
    const parts = partSizes(fx.client);
    try {
      const out = await multipartUpload(fx.client, { Bucket: bucket, Key: 'grow/12mib.bin' }, chunked(data), { partSize: 5 * MIB, queueSize: 2, totalSize: data.length, maxParts: 2 });
      expect(out.size).toBe(data.length);
    } finally {
      parts.remove();
    }
    expect(parts.sizes).toEqual([6 * MIB, 6 * MIB]);
    expect(sha256(await fx.storage.read('grow/12mib.bin'))).toBe(sha256(data));
  }, 60_000);

  it('on the server: save() with size keeps to it, and a stream of another size stores nothing', async () => {
    const data = randomBytes(12 * MIB);
    expect(await fx.storage.save('sized/ok.bin', chunked(data), { size: data.length })).toBe('sized/ok.bin');
    expect(sha256(await fx.storage.read('sized/ok.bin'))).toBe(sha256(data));
    for (const [label, body, size] of [
      ['longer stream', chunked(data), 11 * MIB],
      ['shorter stream', chunked(data.subarray(0, 7 * MIB)), 8 * MIB],
      ['short stream', chunked(data.subarray(0, 100)), 99],
      ['buffer', data.subarray(0, 10), 11],
    ] as const) {
      const error = await fx.storage.save(`sized/bad-${label.replace(' ', '-')}.bin`, body, { size }).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(UploadRejectedError);
      expect(error).toMatchObject({ reason: 'size-mismatch' });
      expect((error as Error).message).toMatch(/given as its size; nothing was stored$/);
    }
    await expect(fx.storage.save('sized/neg.bin', 'x', { size: -1 })).rejects.toMatchObject({ code: 'STORAGE_INVALID_BODY' });
    expect(await leftovers('sized/bad')).toEqual({ objects: [], uploads: [] });
  }, 60_000);

  it('on the server: an fs.ReadStream of a 12 MiB file is stored byte for byte', async () => {
    const data = randomBytes(12 * MIB);
    const file = join(dir, 'upload.bin');
    writeFileSync(file, data);
    const stored = await fx.storage.upload('file/upload.bin', createReadStream(file));
    expect(stored.size).toBe(data.length);
    expect(stored.etag).toMatch(/-3$/);
    expect(sha256(await fx.storage.read('file/upload.bin'))).toBe(sha256(data));
  }, 60_000);
});

describe('errors that do not come from the SDK keep their message', () => {
  const ctx = { bucket: 'b', key: 'k', endpoint: 'http://127.0.0.1:1' };

  it('toStorageError keeps a RangeError\'s and a source stream\'s message, masking URL user-info, and still describes SDK errors by code', () => {
    const limit = toStorageError('save', new RangeError('the body needs more than 10000 parts of 5242880 bytes: raise partSize'), ctx);
    expect(limit).toBeInstanceOf(StorageOperationError);
    expect(limit.message).toBe('save "k" in bucket "b" at http://127.0.0.1:1 failed: the body needs more than 10000 parts of 5242880 bytes: raise partSize');
    expect((limit as StorageOperationError).s3Code).toBeUndefined();
    expect(toStorageError('save', new Error('upstream http://user:hunter2@proxy.local/x\nreset'), ctx).message).toBe(
      'save "k" in bucket "b" at http://127.0.0.1:1 failed: upstream http://***@proxy.local/x reset',
    );
    const sdk = Object.assign(new Error('UnknownError'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 }, $fault: 'server' });
    expect(toStorageError('save', sdk, ctx).message).toBe('save "k" in bucket "b" at http://127.0.0.1:1 failed: SlowDown, HTTP 503');
  });

  it('on the server: the part-count limit says "raise partSize", and nothing is left behind', async () => {
    const data = randomBytes(11 * MIB);
    const error = await multipartUpload(fx.client, { Bucket: bucket, Key: 'limit/x.bin' }, chunked(data), { partSize: 5 * MIB, queueSize: 2, maxParts: 2 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const wrapped = toStorageError('save', error, { bucket, key: 'limit/x.bin' });
    expect(wrapped.message).toMatch(/failed: the body needs more than 2 parts of 5242880 bytes: raise partSize, or pass the size/);
    expect(await leftovers('limit/')).toEqual({ objects: [], uploads: [] });
  }, 60_000);

  it('on the server: save() of a stream that fails says why, in the stream\'s own words', async () => {
    const source = new PassThrough();
    source.write(randomBytes(6 * MIB));
    const saving = fx.storage.save('own/x.bin', source, { overwrite: true }).then(() => undefined, (e: unknown) => e);
    setTimeout(() => source.destroy(new Error('the camera stopped sending')), 200);
    const error = await saving;
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toMatch(/^save "own\/x\.bin" in bucket "[^"]+" at \S+ failed: the camera stopped sending$/);
  }, 60_000);
});

describe('a failed AbortMultipartUpload', () => {
  let proxy: FaultProxy;
  afterEach(async () => {
    await proxy?.close();
  });

  it('is logged with bucket, key and upload id (and so is a placeholder that could not be removed), not swallowed', async () => {
    proxy = await FaultProxy.start(s3.endpoint);
    const faulty = await storageFixture({ media: mediaOptions(bucket, { endpoint: proxy.endpoint, partSize: 5 * MIB, queueSize: 2, maxAttempts: 1 }) });
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      const source = new PassThrough();
      source.write(randomBytes(6 * MIB));
      let sent = 0;
      let firstPartSent!: () => void;
      const firstPart = new Promise<void>((resolve) => (firstPartSent = resolve));
      const saving = faulty.storage.save('abortfail/x.bin', source, { onProgress: (n) => ((sent = n), firstPartSent()) }).then(() => undefined, (e: unknown) => e);
      await firstPart;
      expect(sent).toBe(5 * MIB);
      // The server becomes unreachable, then the source fails: the abort cannot be sent.
      await proxy.refuse();
      source.destroy(new Error('source failed'));
      expect(((await saving) as Error).message).toMatch(/failed: source failed$/);

      const messages = warn.mock.calls.map((call) => String(call[0]));
      await proxy.pass();
      const left = await leftovers('abortfail/');
      expect(left.uploads).toHaveLength(1);
      const { id } = left.uploads[0]!;
      const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const logged = messages.find((m) => m.startsWith('AbortMultipartUpload failed'));
      expect(logged).toMatch(new RegExp(`^AbortMultipartUpload failed for upload id ${escaped} of key "abortfail/x\\.bin" in bucket "${bucket}" \\(.+\\): its parts stay stored until`));
      // The reason is the client's own ("socket hang up", ECONNREFUSED), not a shrug.
      expect(logged).not.toMatch(/unknown error/);
      expect(messages).toContainEqual(expect.stringMatching(new RegExp(`^could not delete the placeholder of a failed save at key "abortfail/x\\.bin" in bucket "${bucket}"`)));
      expect(left.objects).toEqual(['abortfail/x.bin']); // the placeholder the log line names
    } finally {
      warn.mockRestore();
      await faulty.moduleRef.close();
    }
  }, 60_000);
});

describe("checksums: 'when-supported' sends them the way lib-storage does", () => {
  const crc = (b: Buffer): string => {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(crc32(b));
    return out.toString('base64');
  };

  it('CRC32 announced on Create, on every part (input and header), and each part\'s checksum in Complete; the upload succeeds on the server', async () => {
    const checked = await storageFixture({ media: mediaOptions(bucket, { partSize: 5 * MIB, queueSize: 2, checksums: 'when-supported' }) });
    const headers: { command: string; headers: Record<string, string> }[] = [];
    checked.client.middlewareStack.add(
      (next, context) => async (args) => {
        headers.push({ command: String(context.commandName), headers: { ...(args.request as { headers: Record<string, string> }).headers } });
        return next(args);
      },
      { step: 'finalizeRequest', name: 'nss3Headers', priority: 'low' },
    );
    try {
      const data = randomBytes(12 * MIB);
      const expected = [data.subarray(0, 5 * MIB), data.subarray(5 * MIB, 10 * MIB), data.subarray(10 * MIB)].map(crc);
      await checked.storage.save('checksums/x.bin', chunked(data), { overwrite: true });
      const input = (command: string) => checked.inputs.filter((i) => i.command === command).map((i) => i.input);
      expect(input('CreateMultipartUploadCommand')).toEqual([expect.objectContaining({ ChecksumAlgorithm: 'CRC32' })]);
      const parts = input('UploadPartCommand').sort((a, b) => Number(a.PartNumber) - Number(b.PartNumber));
      expect(parts.map((p) => ({ n: p.PartNumber, algorithm: p.ChecksumAlgorithm, crc: p.ChecksumCRC32 }))).toEqual(
        expected.map((crc, i) => ({ n: i + 1, algorithm: 'CRC32', crc })),
      );
      const complete = input('CompleteMultipartUploadCommand')[0] as { MultipartUpload: { Parts: { PartNumber: number; ChecksumCRC32?: string; ETag?: string }[] } };
      expect(complete.MultipartUpload.Parts.map((p) => ({ n: p.PartNumber, crc: p.ChecksumCRC32, etag: /^"?[0-9a-f]{32}"?$/.test(p.ETag ?? '') }))).toEqual(
        expected.map((crc, i) => ({ n: i + 1, crc, etag: true })),
      );
      // On the wire: the headers AWS checks.
      const wire = (command: string) => headers.filter((h) => h.command === command).map((h) => h.headers);
      expect(wire('CreateMultipartUploadCommand')[0]).toMatchObject({ 'x-amz-checksum-algorithm': 'CRC32' });
      expect(wire('UploadPartCommand').map((h) => h['x-amz-checksum-crc32']).sort()).toEqual([...expected].sort());
      expect(sha256(await checked.storage.read('checksums/x.bin'))).toBe(sha256(data));
    } finally {
      await checked.moduleRef.close();
    }
  }, 60_000);

  it("'when-required' (the default with an endpoint) sends no checksum at all", async () => {
    fx.inputs.length = 0;
    await fx.storage.save('checksums/none.bin', chunked(randomBytes(6 * MIB)), { overwrite: true });
    const sent = fx.inputs.filter((i) => /MultipartUpload|UploadPart/.test(i.command));
    expect(sent.map((i) => i.command)).toEqual(['CreateMultipartUploadCommand', 'UploadPartCommand', 'UploadPartCommand', 'CompleteMultipartUploadCommand']);
    expect(JSON.stringify(sent.map((i) => ({ ...i.input, Body: undefined })))).not.toMatch(/Checksum/);
  }, 60_000);
});
