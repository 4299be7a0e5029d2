/**
 * Resumable direct uploads (presigned multipart) on the test server: parts PUT with plain
 * `fetch` to the signed URLs, limits enforced at complete, nothing left behind on refusal,
 * ownership by prefix, and the multipart-copy publishing path (what objects above 5 GiB take).
 */
import { ListMultipartUploadsCommand, ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import type { MultipartUploadHandle } from '../../lib/direct-multipart.js';
import type { MediaStorage } from '../../lib/media.storage.js';
import { InvalidKeyError, StorageOperationError, UploadRejectedError } from '../../lib/storage.errors.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { deleteTestBucket, itRequires, mediaOptions, rawClient, s3, skipWithReason, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const PNG_HEAD = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const internal = new URL(s3.endpoint);
const publicEndpoint = `${internal.protocol}//localhost:${internal.port}`;
const bucket = uniqueBucket('mpu');
const copyBucket = uniqueBucket('mpu-copy');
let fx: StorageFixture;
let copyFx: StorageFixture;
let raw: S3Client;

beforeAll(async () => {
  fx = await storageFixture({ media: mediaOptions(bucket, { publicEndpoint, location: 'media' }) });
  // The path objects above 5 GiB take, with the threshold lowered so 64 MiB takes it.
  copyFx = await storageFixture({ media: mediaOptions(copyBucket, { location: 'media', multipartCopyThreshold: 16 * MIB }) });
  raw = rawClient();
});
afterAll(async () => {
  await fx?.moduleRef.close();
  await copyFx?.moduleRef.close();
  raw?.destroy();
  await deleteTestBucket(bucket);
  await deleteTestBucket(copyBucket);
});

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A file of `size` bytes: a PNG signature, then random bytes. */
function pngFile(size: number): Buffer {
  const data = randomBytes(size);
  PNG_HEAD.copy(data);
  return data;
}

/** What a browser does: sign the parts, PUT each with `fetch` (4 at a time), keep the ETags. */
async function putParts(storage: MediaStorage, handle: MultipartUploadHandle, data: Buffer, partSize: number, prefix?: string): Promise<{ partNumber: number; etag: string }[]> {
  const count = Math.ceil(data.length / partSize);
  const signed = await storage.signParts(handle.name, handle.uploadId, Array.from({ length: count }, (_, i) => i + 1), { prefix });
  const parts: { partNumber: number; etag: string }[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      const { partNumber, url } = signed[i]!;
      const response = await fetch(url, { method: 'PUT', body: data.subarray(i * partSize, Math.min(data.length, (i + 1) * partSize)) });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      parts.push({ partNumber, etag: response.headers.get('etag')! });
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return parts.sort((a, b) => a.partNumber - b.partNumber);
}

/** Everything stored under the pending prefix, and every open multipart upload, of a bucket. */
async function leftovers(inBucket: string): Promise<{ pending: string[]; uploads: string[] }> {
  const objects = await raw.send(new ListObjectsCommand({ Bucket: inBucket, Prefix: 'media/.pending/' }));
  const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: inBucket }));
  return { pending: (objects.Contents ?? []).map((o) => o.Key!), uploads: (uploads.Uploads ?? []).map((u) => u.Key!) };
}

async function rejection(promise: Promise<unknown>): Promise<UploadRejectedError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UploadRejectedError);
  return error as UploadRejectedError;
}

describe('a resumable upload, end to end', () => {
  it('64 MiB in 8 MiB parts PUT with fetch to the signed URLs, listed, completed, read back with the same SHA-256; a replayed complete publishes nothing twice', async () => {
    const data = pngFile(64 * MIB);
    const handle = await fx.storage.createMultipartUpload({ prefix: 'users/42/files', name: '../My Holiday <2026>.png', contentType: 'image/png', maxBytes: 100 * MIB, allowedTypes: ['image/png'] });
    expect(handle.name).toMatch(/^users\/42\/files\/[A-Za-z0-9_-]{22}\/My Holiday _2026_\.png$/);
    expect(handle.key).toBe(`media/.pending/${handle.name}`);
    expect(handle.partSize).toBe(8 * MIB);
    expect(fx.storage.nameForKey(handle.key)).toBe(handle.name);

    fx.requests.length = 0;
    const [first] = await fx.storage.signParts(handle.name, handle.uploadId, [1], { prefix: 'users/42/files' });
    expect(fx.requests).toEqual([]); // signing makes no request
    expect(first!.url.startsWith(`${publicEndpoint}/${bucket}/media/.pending/users/42/files/`)).toBe(true);
    expect(first!.url).toMatch(/[?&]partNumber=1&uploadId=[^&]+&x-id=UploadPart$/);
    expect(first!.url).not.toMatch(/x-amz-checksum|x-amz-sdk-checksum/i);

    // The public host is only an alias here: the parts go to the same server.
    const parts = await putParts(fx.storage, handle, data, 8 * MIB, 'users/42/files');
    const listed = await fx.storage.listParts(handle.name, handle.uploadId, { prefix: 'users/42/files' });
    expect(listed.map((p) => [p.partNumber, p.size])).toEqual(Array.from({ length: 8 }, (_, i) => [i + 1, 8 * MIB]));
    expect(listed.map((p) => p.etag)).toEqual(parts.map((p) => p.etag.replace(/"/g, '')));
    expect(await fx.storage.exists(handle.name)).toBe(false); // nothing published before complete

    const stored = await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'users/42/files' });
    expect(stored).toMatchObject({ name: handle.name, key: `media/${handle.name}`, size: 64 * MIB, contentType: 'image/png' });
    expect(stored.etag).not.toBe('');
    expect(sha256(await fx.storage.read(handle.name))).toBe(sha256(data));
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });

    fx.requests.length = 0;
    const again = await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'users/42/files' });
    expect(again).toEqual(stored);
    expect(fx.requests).not.toContain('CopyObjectCommand');
    expect(fx.requests).not.toContain('CompleteMultipartUploadCommand');
    const names: string[] = [];
    for await (const entry of fx.storage.list('users/42/files/')) names.push(entry.name);
    expect(names).toEqual([handle.name]);
  }, 120_000);

  it('listParts reflects the parts uploaded so far (what a client resumes from); abort then leaves nothing, and the upload is gone', async () => {
    const data = pngFile(12 * MIB);
    const handle = await fx.storage.createMultipartUpload({ prefix: 'resume', name: 'clip.png', maxBytes: 100 * MIB });
    const [one, three] = await fx.storage.signParts(handle.name, handle.uploadId, [1, 3], { prefix: 'resume' });
    expect(await fx.storage.listParts(handle.name, handle.uploadId, { prefix: 'resume' })).toEqual([]);
    expect((await fetch(one!.url, { method: 'PUT', body: data.subarray(0, 5 * MIB) })).status).toBe(200);
    expect((await fetch(three!.url, { method: 'PUT', body: data.subarray(10 * MIB) })).status).toBe(200);
    const listed = await fx.storage.listParts(handle.name, handle.uploadId, { prefix: 'resume' });
    expect(listed.map(({ partNumber, size }) => ({ partNumber, size }))).toEqual([
      { partNumber: 1, size: 5 * MIB },
      { partNumber: 3, size: 2 * MIB },
    ]);
    expect(listed.every((p) => /^[0-9a-f]{32}$/.test(p.etag))).toBe(true);

    await fx.storage.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'resume' });
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
    await fx.storage.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'resume' }); // a second abort is a no-op
    expect((await rejection(fx.storage.listParts(handle.name, handle.uploadId, { prefix: 'resume' }))).reason).toBe('no-such-upload');
    const late = await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, [{ partNumber: 1, etag: listed[0]!.etag }], { prefix: 'resume' }));
    expect(late.reason).toBe('no-such-upload');
    expect(late.message).toContain('start a new upload');
    expect(await fx.storage.exists(handle.name)).toBe(false);
  }, 60_000);
});

describe('limits enforced at complete: refused, aborted, nothing left behind', () => {
  it('parts adding up to more than maxBytes: too-large; no object, no multipart upload (ListMultipartUploads), no record', async () => {
    const data = pngFile(12 * MIB);
    const handle = await fx.storage.createMultipartUpload({ prefix: 'big', name: 'a.png', maxBytes: 10 * MIB });
    expect((await leftovers(bucket)).pending).toHaveLength(1); // the record of the open upload
    const parts = await putParts(fx.storage, handle, data, 6 * MIB, 'big');
    const error = await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'big' }));
    expect(error.reason).toBe('too-large');
    expect(error.message).toBe(`the parts add up to ${12 * MIB} bytes, more than the ${10 * MIB} allowed; the upload "${handle.name}" was aborted`);
    expect(await fx.storage.exists(handle.name)).toBe(false);
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);

  it('first bytes that are not an allowed type: type-not-allowed; the assembled object is deleted, nothing left', async () => {
    const data = randomBytes(3 * MIB);
    data.write('<html><script>', 0, 'latin1');
    const handle = await fx.storage.createMultipartUpload({ prefix: 'typed', name: 'x.png', maxBytes: 10 * MIB, allowedTypes: ['image/png', 'image/jpeg'] });
    const parts = await putParts(fx.storage, handle, data, 8 * MIB, 'typed');
    fx.requests.length = 0;
    const error = await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'typed' }));
    expect(error.reason).toBe('type-not-allowed');
    expect(error.message).toContain('allowed: image/png, image/jpeg');
    // Checked after Complete with a ranged GET of the first bytes, never published.
    expect(fx.requests).toContain('CompleteMultipartUploadCommand');
    expect(fx.requests).not.toContain('CopyObjectCommand');
    expect(await fx.storage.exists(handle.name)).toBe(false);
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);

  it('a declared type the bytes contradict is refused too', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'typed', name: 'x.png', contentType: 'image/png', maxBytes: 10 * MIB });
    const parts = await putParts(fx.storage, handle, Buffer.from('%PDF-1.7 not a png at all'), 8 * MIB, 'typed');
    expect((await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'typed' }))).reason).toBe('type-not-allowed');
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);

  it('parts that are not those uploaded (a wrong ETag, a missing part) are parts-mismatch, aborted', async () => {
    const data = pngFile(6 * MIB);
    for (const tamper of [(p: { partNumber: number; etag: string }[]) => [{ ...p[0]!, etag: '"0123456789abcdef0123456789abcdef"' }, p[1]!], (p: { partNumber: number; etag: string }[]) => [p[0]!]]) {
      const handle = await fx.storage.createMultipartUpload({ prefix: 'mismatch', maxBytes: 10 * MIB });
      const parts = await putParts(fx.storage, handle, data, 5 * MIB, 'mismatch');
      expect((await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, tamper(parts), { prefix: 'mismatch' }))).reason).toBe('parts-mismatch');
      expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
    }
  }, 60_000);
});

describe('failures and races: nothing left behind, nothing published twice', () => {
  for (const failing of ['CompleteMultipartUploadCommand', 'CopyObjectCommand'] as const) {
    it(`a server failure of ${failing} is a StorageOperationError and leaves no object, no upload, no record, no placeholder`, async () => {
      const handle = await fx.storage.createMultipartUpload({ prefix: 'failing', maxBytes: 10 * MIB });
      const parts = await putParts(fx.storage, handle, pngFile(1000), 8 * MIB, 'failing');
      fx.client.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === failing) throw Object.assign(new Error('We encountered an internal error. Please try again.'), { name: 'InternalError', $metadata: { httpStatusCode: 500 } });
          return next(args);
        },
        { step: 'initialize', name: 'failOne' },
      );
      try {
        const error = await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'failing' }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StorageOperationError);
        expect((error as StorageOperationError).status).toBe(500);
      } finally {
        fx.client.middlewareStack.remove('failOne');
      }
      expect(await fx.storage.exists(handle.name)).toBe(false);
      const placeholders: string[] = [];
      for await (const entry of fx.storage.list('failing/')) placeholders.push(entry.name);
      expect(placeholders).toEqual([]);
      expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
    }, 60_000);
  }

  itRequires('conditional-writes', 'two completes of one upload at the same moment publish one object and both return it', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'race', maxBytes: 20 * MIB });
    const parts = await putParts(fx.storage, handle, pngFile(11 * MIB), 6 * MIB, 'race');
    fx.requests.length = 0;
    const [a, b] = await Promise.all([
      fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'race' }),
      fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'race' }),
    ]);
    expect(a).toEqual(b);
    expect(fx.requests.filter((r) => r === 'CompleteMultipartUploadCommand')).toHaveLength(1);
    expect(fx.requests.filter((r) => r === 'CopyObjectCommand')).toHaveLength(1);
    const names: string[] = [];
    for await (const entry of fx.storage.list('race/')) names.push(entry.name);
    expect(names).toEqual([handle.name]);
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);
});

describe('ownership and bad input: refused before any request, nothing changed', () => {
  it('another prefix cannot sign, list, complete or abort an upload; the owner still can', async () => {
    const data = pngFile(1000);
    const handle = await fx.storage.createMultipartUpload({ prefix: 'users/42', maxBytes: 10 * MIB });
    const parts = await putParts(fx.storage, handle, data, 8 * MIB, 'users/42');
    fx.requests.length = 0;
    for (const prefix of ['users/43', 'users/4', 'users', undefined]) {
      const o = { prefix };
      for (const call of [
        fx.storage.signParts(handle.name, handle.uploadId, [1], o),
        fx.storage.listParts(handle.name, handle.uploadId, o),
        fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, o),
        fx.storage.abortMultipartUpload(handle.name, handle.uploadId, o),
      ]) {
        const error = await rejection(call);
        expect(error.reason).toBe('not-owner');
        expect(error.message).toContain('nothing was changed');
      }
    }
    expect(fx.requests).toEqual([]);
    expect(await fx.storage.listParts(handle.name, handle.uploadId, { prefix: 'users/42' })).toHaveLength(1);
    expect(await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'users/42' })).toMatchObject({ name: handle.name, size: 1000 });
  }, 60_000);

  it('part numbers outside 1 to 10,000, bad upload ids and bad keys are typed errors', async () => {
    const handle = await fx.storage.createMultipartUpload({ maxBytes: 10 });
    fx.requests.length = 0;
    for (const partNumber of [0, 10_001, 1.5, Number.NaN]) {
      const error = await rejection(fx.storage.signParts(handle.name, handle.uploadId, [partNumber]));
      expect(error.reason).toBe('bad-request');
      expect(error.message).toContain('from 1 to 10000');
    }
    expect((await rejection(fx.storage.signParts(handle.name, handle.uploadId, []))).reason).toBe('bad-request');
    expect((await rejection(fx.storage.signParts(handle.name, '', [1]))).reason).toBe('bad-request');
    expect((await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, []))).reason).toBe('bad-request');
    expect((await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, [{ partNumber: 1, etag: 'a' }, { partNumber: 1, etag: 'a' }]))).reason).toBe('bad-request');
    expect(fx.requests).toEqual([]);
    expect(() => fx.storage.nameForKey('media/uploads/x')).toThrow(InvalidKeyError);
    expect(() => fx.storage.nameForKey(`media/.pending/${handle.name}/../../etc`)).toThrow(InvalidKeyError);
    expect(() => fx.storage.nameForKey('other/.pending/uploads/AAAAAAAAAAAAAAAAAAAAAA/file')).toThrow(InvalidKeyError);
    await expect(fx.storage.createMultipartUpload({ maxBytes: 0 })).rejects.toThrow('maxBytes must be a whole number of bytes from 1 to');
    await expect(fx.storage.createMultipartUpload({ prefix: '.pending/x', maxBytes: 1 })).rejects.toBeInstanceOf(InvalidKeyError);
    await fx.storage.abortMultipartUpload(handle.name, handle.uploadId);
  });
});

describe('part URLs expire', () => {
  itRequires('signatures', 'a part URL past its expiry gets 403, and the part is not stored', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'expiry', maxBytes: 10 * MIB });
    const [part] = await fx.storage.signParts(handle.name, handle.uploadId, [1], { prefix: 'expiry', expiresIn: 1 });
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const response = await fetch(part!.url, { method: 'PUT', body: pngFile(1000) });
    expect(response.status).toBe(403);
    expect(await response.text()).toMatch(/AccessDenied|expired/i);
    expect(await fx.storage.listParts(handle.name, handle.uploadId, { prefix: 'expiry' })).toEqual([]);
    await fx.storage.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'expiry' });
  }, 30_000);
});

describe('publishing above the single-copy limit (UploadPartCopy in parallel ranges)', () => {
  const run = s3.kind === 's3rver' ? (name: string, fn: () => Promise<void>) => skipWithReason(name, `the s3rver server at ${s3.endpoint} does not implement UploadPartCopy (501 NotImplemented)`, fn) : (name: string, fn: () => Promise<void>) => it(name, fn, 120_000);
  run('with multipartCopyThreshold lowered to 16 MiB, a 64 MiB upload is published by a multipart copy, byte for byte, marked, nothing left', async () => {
    const data = pngFile(64 * MIB);
    const handle = await copyFx.storage.createMultipartUpload({ prefix: 'videos', name: 'big.png', contentType: 'image/png', maxBytes: 100 * MIB, allowedTypes: ['image/png'] });
    const parts = await putParts(copyFx.storage, handle, data, 8 * MIB, 'videos');
    copyFx.requests.length = 0;
    const stored = await copyFx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'videos' });
    expect(copyFx.requests.filter((r) => r === 'UploadPartCopyCommand')).toHaveLength(4);
    expect(copyFx.requests).not.toContain('CopyObjectCommand');
    expect(stored).toMatchObject({ name: handle.name, size: 64 * MIB, contentType: 'image/png' });
    expect(sha256(await copyFx.storage.read(handle.name))).toBe(sha256(data));
    expect((await copyFx.storage.stat(handle.name)).metadata['nss3-multipart']).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await leftovers(copyBucket)).toEqual({ pending: [], uploads: [] });
    expect(await copyFx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'videos' })).toEqual(stored);
  });
});
