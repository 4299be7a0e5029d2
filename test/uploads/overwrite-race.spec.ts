/**
 * `overwrite: false` for streams longer than one part. Ceph ignores If-None-Match on
 * CompleteMultipartUpload and on CopyObject, so the name is won first with a conditional PUT
 * of an empty placeholder, then uploaded onto; these tests hold that to a real server.
 */
import { HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { RESERVATION_METADATA } from '../../lib/media.storage.js';
import { StorageError } from '../../lib/storage.errors.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { deleteTestBucket, itRequires, mediaOptions, rawClient, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const bucket = uniqueBucket('race');
let fx: StorageFixture;

beforeAll(async () => {
  // The 5 MiB minimum part size and 2 parts in flight keep 20 concurrent uploads light.
  fx = await storageFixture({ media: mediaOptions(bucket, { partSize: 5 * MIB, queueSize: 2 }) });
});
afterAll(async () => {
  await fx?.moduleRef.close();
  await deleteTestBucket(bucket);
});

/** A random stream of `total` bytes in 64 KiB chunks, unknown length to the reader; hashes what it emits. */
function generated(total: number): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  let sent = 0;
  const stream = new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const chunk = randomBytes(Math.min(64 * 1024, total - sent));
      hash.update(chunk);
      sent += chunk.length;
      this.push(chunk);
    },
  });
  return { stream, sha256: () => hash.digest('hex') };
}

async function sha256Of(name: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of await fx.storage.open(name)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function leftovers(prefix: string): Promise<{ keys: string[]; uploads: number }> {
  const client = rawClient();
  try {
    const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return { keys: (objects.Contents ?? []).map((o) => o.Key!).sort(), uploads: (uploads.Uploads ?? []).length };
  } finally {
    client.destroy();
  }
}

/** Resolves once an object exists at `key` (the placeholder of a save under way). */
async function appeared(key: string): Promise<void> {
  const client = rawClient();
  const deadline = Date.now() + 60_000;
  try {
    for (;;) {
      const found = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(() => true, () => false);
      if (found) return;
      if (Date.now() > deadline) throw new Error(`no object appeared at ${key} within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    client.destroy();
  }
}

describe('overwrite: false with streams longer than partSize', () => {
  itRequires(
    'conditional-writes',
    '20 saves of distinct 6–7 MiB streams racing for one name each end up as their own object with their own bytes',
    async () => {
      const sources = Array.from({ length: 20 }, (_, i) => generated(6 * MIB + i * 51_203));
      const results = await Promise.allSettled(sources.map((s) => fx.storage.upload('race/same.bin', s.stream)));
      const stored = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ ...r.value, expected: sources[i]!.sha256(), size: 6 * MIB + i * 51_203 }] : []));
      // Every loser of the name gets another one (8 random characters, retried): none fails.
      expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
      const names = stored.map((s) => s.name);
      expect(stored).toHaveLength(20);
      expect(new Set(names).size).toBe(20);
      expect(names).toContain('race/same.bin');
      for (const s of stored) {
        expect(s.name).toMatch(/^race\/same(_[A-Za-z0-9]{8})?\.bin$/);
        expect((await fx.storage.stat(s.name)).size).toBe(s.size);
        expect(await sha256Of(s.name)).toBe(s.expected);
      }
      // No placeholder and no multipart upload is left over: one object per successful save.
      expect(await leftovers('race/')).toEqual({ keys: names.map((n) => n).sort(), uploads: 0 });
    },
    240_000,
  );

  it('while a multipart save runs, its name holds an empty no-store placeholder: another save goes elsewhere, and the upload lands on the name', async () => {
    const source = new PassThrough();
    const first = randomBytes(6 * MIB);
    source.write(first);
    const saving = fx.storage.upload('held/video.bin', source);
    await appeared('held/video.bin');
    const client = rawClient();
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'held/video.bin' }));
    client.destroy();
    expect({ size: head.ContentLength, cacheControl: head.CacheControl, marked: typeof head.Metadata?.[RESERVATION_METADATA] }).toEqual({
      size: 0,
      cacheControl: 'no-store',
      marked: 'string',
    });
    const other = await fx.storage.save('held/video.bin', 'a small body saved meanwhile');
    expect(other).toMatch(/^held\/video_[A-Za-z0-9]{8}\.bin$/);
    const last = randomBytes(MIB);
    source.end(last);
    const stored = await saving;
    expect(stored).toMatchObject({ name: 'held/video.bin', size: 7 * MIB });
    expect(await sha256Of('held/video.bin')).toBe(createHash('sha256').update(first).update(last).digest('hex'));
    expect((await fx.storage.stat('held/video.bin')).metadata).toEqual({});
    expect((await fx.storage.read(other)).toString()).toBe('a small body saved meanwhile');
  }, 120_000);

  it('a multipart save whose source fails removes its own placeholder: nothing is left and the name is free again', async () => {
    const source = new PassThrough();
    source.write(randomBytes(6 * MIB));
    const saving = fx.storage.save('failed/x.bin', source).then(() => undefined, (e: unknown) => e);
    await appeared('failed/x.bin');
    source.destroy(new Error('the client went away'));
    const error = await saving;
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toMatch(/failed: the client went away$/);
    expect(await leftovers('failed/')).toEqual({ keys: [], uploads: 0 });
    expect(await fx.storage.save('failed/x.bin', 'again')).toBe('failed/x.bin');
  }, 120_000);

  it('a failed save never deletes what replaced its placeholder', async () => {
    const source = new PassThrough();
    source.write(randomBytes(6 * MIB));
    const saving = fx.storage.save('theirs/x.bin', source).then(() => undefined, (e: unknown) => e);
    await appeared('theirs/x.bin');
    // Someone with overwrite semantics writes the name while our upload runs.
    const client = rawClient();
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'theirs/x.bin', Body: 'their object' }));
    client.destroy();
    source.destroy(new Error('source failed'));
    expect(await saving).toBeInstanceOf(StorageError);
    expect((await fx.storage.read('theirs/x.bin')).toString()).toBe('their object');
    expect((await leftovers('theirs/')).uploads).toBe(0);
  }, 120_000);
});
