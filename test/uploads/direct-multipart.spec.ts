/**
 * Resumable direct uploads (presigned multipart) on the test server: parts PUT with plain
 * `fetch` to the signed URLs, limits enforced at complete, nothing left behind on refusal,
 * ownership by prefix, and the multipart-copy publishing path (what objects above 5 GiB take).
 */
import { DeleteObjectCommand, ListMultipartUploadsCommand, ListObjectsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { recordName, type DirectMultipart, type MultipartUploadHandle } from '../../lib/direct-multipart.js';
import type { MediaStorage } from '../../lib/media.storage.js';
import { resolveStorageOptions } from '../../lib/storage-options.validation.js';
import { InvalidKeyError, StorageAbortedError, StorageConfigurationError, StorageOperationError, UploadRejectedError } from '../../lib/storage.errors.js';
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

/** The record's S3 key of an upload (`<location>/.pending/.multipart/<hash>`). */
function recordKeyOf(handle: MultipartUploadHandle): string {
  return `media/${recordName(handle.key, handle.uploadId)}`;
}

/** The storage's multipart half (its lock timings are lowered by the lock tests). */
function multipartOf(storage: MediaStorage): DirectMultipart {
  return (storage as unknown as { directMultipart: DirectMultipart }).directMultipart;
}

/** Fails `command` (once per call while installed) with a 500, as a server error would. */
function failing(storage: StorageFixture, command: string, name = 'failOne'): () => void {
  storage.client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === command) throw Object.assign(new Error('We encountered an internal error. Please try again.'), { name: 'InternalError', $metadata: { httpStatusCode: 500 } });
      return next(args);
    },
    { step: 'initialize', name },
  );
  return () => storage.client.middlewareStack.remove(name);
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
  it('a server failure of CompleteMultipartUpload is a StorageOperationError that keeps the parts and the record: a retry completes the upload', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'failing', maxBytes: 10 * MIB });
    const data = pngFile(1000);
    const parts = await putParts(fx.storage, handle, data, 8 * MIB, 'failing');
    const release = failing(fx, 'CompleteMultipartUploadCommand');
    try {
      const error = await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'failing' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      expect((error as StorageOperationError).status).toBe(500);
    } finally {
      release();
    }
    expect(await fx.storage.exists(handle.name)).toBe(false);
    const placeholders: string[] = [];
    for await (const entry of fx.storage.list('failing/')) placeholders.push(entry.name);
    expect(placeholders).toEqual([]);
    // Nothing of a possibly multi-GB upload was thrown away: parts and record, no lock.
    expect(await leftovers(bucket)).toEqual({ pending: [recordKeyOf(handle)], uploads: [handle.key] });
    expect(await fx.storage.listParts(handle.name, handle.uploadId, { prefix: 'failing' })).toHaveLength(1);
    const stored = await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'failing' });
    expect(stored).toMatchObject({ name: handle.name, size: 1000 });
    expect(sha256(await fx.storage.read(handle.name))).toBe(sha256(data));
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);

  it('a server failure after the upload was assembled (CopyObject) keeps the assembled object and the record: a retry resumes from there, with no second Complete', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'failing', contentType: 'image/png', maxBytes: 10 * MIB, allowedTypes: ['image/png'] });
    const data = pngFile(1000);
    const parts = await putParts(fx.storage, handle, data, 8 * MIB, 'failing');
    const release = failing(fx, 'CopyObjectCommand');
    try {
      const error = await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'failing' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      expect((error as StorageOperationError).status).toBe(500);
    } finally {
      release();
    }
    expect(await fx.storage.exists(handle.name)).toBe(false);
    expect((await leftovers(bucket)).pending.sort()).toEqual([handle.key, recordKeyOf(handle)].sort());
    fx.requests.length = 0;
    const stored = await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'failing' });
    expect(fx.requests).not.toContain('CompleteMultipartUploadCommand');
    expect(fx.requests).toContain('GetObjectCommand'); // the bytes are checked again before publishing
    expect(stored).toMatchObject({ name: handle.name, size: 1000, contentType: 'image/png' });
    expect(sha256(await fx.storage.read(handle.name))).toBe(sha256(data));
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);

  it('abort after a failed complete deletes the assembled object and a left lock too, nothing else', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'failing', maxBytes: 10 * MIB });
    const parts = await putParts(fx.storage, handle, pngFile(1000), 8 * MIB, 'failing');
    const other = await fx.storage.createMultipartUpload({ prefix: 'failing', maxBytes: 10 * MIB });
    const release = failing(fx, 'CopyObjectCommand');
    try {
      await expect(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'failing' })).rejects.toBeInstanceOf(StorageOperationError);
    } finally {
      release();
    }
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: `${recordKeyOf(handle)}.lock`, Body: '' }));
    await fx.storage.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'failing' });
    expect(await leftovers(bucket)).toEqual({ pending: [recordKeyOf(other)], uploads: [other.key] });
    await fx.storage.abortMultipartUpload(other.name, other.uploadId, { prefix: 'failing' });
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);

  it('a complete aborted by its caller mid-way is StorageAbortedError and keeps the upload for a retry', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'aborted', maxBytes: 10 * MIB });
    const parts = await putParts(fx.storage, handle, pngFile(1000), 8 * MIB, 'aborted');
    const controller = new AbortController();
    fx.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'CompleteMultipartUploadCommand') controller.abort(new Error('the user left'));
        return next(args);
      },
      { step: 'initialize', name: 'abortAtComplete' },
    );
    try {
      const error = await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'aborted', signal: controller.signal }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageAbortedError);
    } finally {
      fx.client.middlewareStack.remove('abortAtComplete');
    }
    expect(await fx.storage.exists(handle.name)).toBe(false);
    expect(await leftovers(bucket)).toEqual({ pending: [recordKeyOf(handle)], uploads: [handle.key] });
    expect(await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'aborted' })).toMatchObject({ name: handle.name, size: 1000 });
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);

  itRequires('conditional-writes', 'a lock held by a running complete is conflict "retry shortly" (409); one older than the stale bound is taken over', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'locked', maxBytes: 10 * MIB });
    const parts = await putParts(fx.storage, handle, pngFile(1000), 8 * MIB, 'locked');
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: `${recordKeyOf(handle)}.lock`, Body: '' }));
    const multipart = multipartOf(fx.storage);
    const { lockWaitMs, lockStaleMs } = multipart;
    try {
      multipart.lockWaitMs = 2000;
      const error = await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'locked' }));
      expect(error.reason).toBe('conflict');
      expect(error.message).toContain('is in progress');
      expect(error.message).toContain('retry shortly');
      expect(error.message).not.toContain('start a new upload');
      expect(await fx.storage.listParts(handle.name, handle.uploadId, { prefix: 'locked' })).toHaveLength(1); // nothing was aborted
      multipart.lockStaleMs = 1; // what 15 minutes do to a lock whose process died
      expect(await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'locked' })).toMatchObject({ name: handle.name, size: 1000 });
    } finally {
      multipart.lockWaitMs = lockWaitMs;
      multipart.lockStaleMs = lockStaleMs;
    }
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);

  it('the published object is the one whose bytes were checked: replaced in between (after the sniff GET), nothing is published', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'swap', maxBytes: 10 * MIB, allowedTypes: ['image/png'] });
    const parts = await putParts(fx.storage, handle, pngFile(1000), 8 * MIB, 'swap');
    fx.client.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName === 'GetObjectCommand' && (args.input as { Key?: string }).Key === handle.key) {
          await raw.send(new PutObjectCommand({ Bucket: bucket, Key: handle.key, Body: '<html><script>alert(1)</script>', ContentType: 'image/png' }));
        }
        return out;
      },
      { step: 'initialize', name: 'swapAfterSniff' },
    );
    try {
      const error = await fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'swap' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      expect((error as StorageOperationError).status).toBe(412);
      expect((error as Error).message).toContain('changed after it was checked');
    } finally {
      fx.client.middlewareStack.remove('swapAfterSniff');
    }
    expect(await fx.storage.exists(handle.name)).toBe(false);
    // A retry checks what is there now: not this upload's object (no mark), so no upload.
    expect((await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'swap' }))).reason).toBe('no-such-upload');
    expect(await fx.storage.exists(handle.name)).toBe(false);
    await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: handle.key }));
  }, 60_000);

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

describe('the record: written only by this library, and an upload without one is aborted', () => {
  it('a createUpload() form cannot target the records: names under ".multipart/" are reserved', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'forms', maxBytes: 10 });
    const target = recordName(handle.key, handle.uploadId).slice('.pending/'.length);
    expect(target.startsWith('.multipart/')).toBe(true);
    await expect(fx.storage.createUpload({ name: target, maxBytes: 1000 })).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(fx.storage.createUpload({ name: '.multipart/x', maxBytes: 1000 })).rejects.toThrow('reserved');
    await fx.storage.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'forms' });
  });

  it('a record without a valid MAC (written by someone else, with a larger maxBytes) is no record: no-such-upload, the upload aborted', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'forged', maxBytes: 10 });
    const parts = await putParts(fx.storage, handle, pngFile(1000), 8 * MIB, 'forged');
    // What the record was before MACs: plain JSON, here with the limit raised.
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: recordKeyOf(handle), Body: JSON.stringify({ v: 1, name: handle.name, prefix: 'forged', maxBytes: 10 * MIB }), ContentType: 'application/json' }));
    expect((await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'forged' }))).reason).toBe('no-such-upload');
    expect(await fx.storage.exists(handle.name)).toBe(false);
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);

  it('an upload whose record is gone (expired before the upload) is aborted at complete, its parts not left billed', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'expired', maxBytes: 10 * MIB });
    const parts = await putParts(fx.storage, handle, pngFile(1000), 8 * MIB, 'expired');
    await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: recordKeyOf(handle) }));
    expect((await rejection(fx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'expired' }))).reason).toBe('no-such-upload');
    expect(await leftovers(bucket)).toEqual({ pending: [], uploads: [] });
  }, 60_000);

  it('lifecycle: expirePendingDays below abortIncompleteMultipartUploadDays is a StorageConfigurationError; left out, the abort days fit', () => {
    const error = (() => {
      try {
        resolveStorageOptions({ media: { bucket: 'media', lifecycle: { expirePendingDays: 2, abortIncompleteMultipartUploadDays: 5 } } });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect((error as Error).message).toContain('expirePendingDays (2) must be at least abortIncompleteMultipartUploadDays (5)');
    expect(resolveStorageOptions({ media: { bucket: 'media', lifecycle: { expirePendingDays: 5, abortIncompleteMultipartUploadDays: 5 } } }).media.lifecycle).toEqual({ expirePendingDays: 5, abortIncompleteMultipartUploadDays: 5 });
    expect(resolveStorageOptions({ media: { bucket: 'media', lifecycle: { expirePendingDays: 3 } } }).media.lifecycle).toEqual({ expirePendingDays: 3, abortIncompleteMultipartUploadDays: 3 });
  });
});

describe('listing the parts of a large upload (ListParts pages)', () => {
  it('1,001 parts are all listed (Ceph and AWS page at 1,000)', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'many', maxBytes: 10 * MIB });
    const count = 1001;
    const signed = await fx.storage.signParts(handle.name, handle.uploadId, Array.from({ length: count }, (_, i) => i + 1), { prefix: 'many' });
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < count; i = next++) {
        const response = await fetch(signed[i]!.url, { method: 'PUT', body: Buffer.from([i % 256]) });
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    fx.requests.length = 0;
    const listed = await fx.storage.listParts(handle.name, handle.uploadId, { prefix: 'many' });
    expect(listed).toHaveLength(count);
    expect(listed.map((p) => p.partNumber)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    expect(listed.every((p) => p.size === 1)).toBe(true);
    if (s3.kind !== 's3rver') expect(fx.requests.filter((r) => r === 'ListPartsCommand')).toHaveLength(2);
    await fx.storage.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'many' });
  }, 180_000);

  it('a truncated page without NextPartNumberMarker is a StorageOperationError, not a short list', async () => {
    const handle = await fx.storage.createMultipartUpload({ prefix: 'paging', maxBytes: 10 * MIB });
    fx.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'ListPartsCommand') return next(args);
        return { output: { $metadata: { httpStatusCode: 200 }, IsTruncated: true, Parts: [{ PartNumber: 1, ETag: '"0123456789abcdef0123456789abcdef"', Size: 1 }] }, response: {} } as never;
      },
      { step: 'initialize', name: 'brokenPaging' },
    );
    try {
      const error = await fx.storage.listParts(handle.name, handle.uploadId, { prefix: 'paging' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      expect((error as Error).message).toContain('without a usable NextPartNumberMarker');
    } finally {
      fx.client.middlewareStack.remove('brokenPaging');
    }
    await fx.storage.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'paging' });
  });
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
    for (const expiresIn of [0, 604_801, 1.5]) {
      const error = await rejection(fx.storage.signParts(handle.name, handle.uploadId, [1], { expiresIn }));
      expect(error.reason).toBe('bad-request');
      expect(error.message).toContain('expiresIn must be a whole number of seconds from 1 to 604800');
    }
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
  if (s3.kind === 's3rver') {
    it('on the embedded server (UploadPartCopy 501) such an upload fails with StorageOperationError, keeps the upload for a retry, and an abort leaves nothing', async () => {
      const handle = await copyFx.storage.createMultipartUpload({ prefix: 'videos', maxBytes: 100 * MIB });
      const parts = await putParts(copyFx.storage, handle, pngFile(17 * MIB), 8 * MIB, 'videos');
      const error = await copyFx.storage.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'videos' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      expect((error as StorageOperationError).status).toBe(501);
      expect(await copyFx.storage.exists(handle.name)).toBe(false);
      const names: string[] = [];
      for await (const entry of copyFx.storage.list('videos/')) names.push(entry.name);
      expect(names).toEqual([]);
      // Not a refusal: the assembled object and the record stay (a server that gains UploadPartCopy, or a retry, can publish it).
      expect((await leftovers(copyBucket)).pending.sort()).toEqual([handle.key, `media/${recordName(handle.key, handle.uploadId)}`].sort());
      await copyFx.storage.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'videos' });
      expect(await leftovers(copyBucket)).toEqual({ pending: [], uploads: [] });
    }, 60_000);
  }
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
