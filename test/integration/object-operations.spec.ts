/**
 * copy, move, deleteMany, deletePrefix and list pages against the real server: the key rules,
 * the overwrite rule (with races), multipart copy above the threshold, and bulk deletes of
 * more keys than one request takes.
 */
import { DeleteBucketPolicyCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutBucketPolicyCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import type { ListEntry, ListPage } from '../../lib/media.storage.js';
import { InvalidKeyError, ObjectNotFoundError, StorageAbortedError, StorageError, StorageOperationError } from '../../lib/storage.errors.js';
import { validateStorageOptions } from '../../lib/storage-options.validation.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { deleteTestBucket, itRequires, mediaOptions, rawClient, s3, skipWithReason, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const bucket = uniqueBucket('ops');
const LOCATION = 'media';
let fx: StorageFixture;
const raw = rawClient();

beforeAll(async () => {
  fx = await storageFixture({ media: mediaOptions(bucket, { location: LOCATION, multipartCopyThreshold: 5 * MIB, partSize: 5 * MIB, queueSize: 2 }) });
});
afterAll(async () => {
  await fx?.moduleRef.close();
  await deleteTestBucket(bucket);
  raw.destroy();
});

/**
 * `it`, or a skip with the reason printed on the embedded server (s3rver 3.7), which enforces
 * no bucket policy and answers UploadPartCopy with 501 NotImplemented.
 */
function itBeyondS3rver(missing: string, name: string, fn: () => Promise<void>, timeout?: number): void {
  if (s3.kind === 's3rver') skipWithReason(name, `the s3rver server at ${s3.endpoint} ${missing}`, fn);
  else it(name, fn, timeout);
}
const POLICIES = 'enforces no bucket policy (the test denies DeleteObject with one)';
const PART_COPY = 'does not implement UploadPartCopy (501 NotImplemented)';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Counts the media client's requests by command while `fn` runs. */
async function counting<T>(fn: () => Promise<T>): Promise<{ result: T; counts: Record<string, number> }> {
  fx.requests.length = 0;
  fx.inputs.length = 0;
  const result = await fn();
  const counts: Record<string, number> = {};
  for (const command of fx.requests) counts[command] = (counts[command] ?? 0) + 1;
  return { result, counts };
}

/** Puts `count` small objects `<prefix><i>.txt` (under the location) with at most `concurrency` requests at once. */
async function putMany(prefix: string, count: number, concurrency = 24): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      await raw.send(new PutObjectCommand({ Bucket: bucket, Key: `${LOCATION}/${prefix}${String(i).padStart(5, '0')}.txt`, Body: `object ${i}` }));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${LOCATION}/${prefix}`, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** A bucket policy denying DeleteObject under `prefix` (the location's), to every principal. */
async function denyDeletesUnder(prefix: string): Promise<void> {
  const policy = {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Deny', Principal: '*', Action: 's3:DeleteObject', Resource: `arn:aws:s3:::${bucket}/${LOCATION}/${prefix}*` }],
  };
  await raw.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
}

describe('copy()', () => {
  it('copies on the server, keeping the bytes, type and metadata, and returns the name stored', async () => {
    const bytes = randomBytes(4096);
    await fx.storage.save('copy/src.bin', bytes, { contentType: 'application/x-test', metadata: { owner: '7' }, cacheControl: 'max-age=60' });
    const { result, counts } = await counting(() => fx.storage.copy('/copy//src.bin', 'copy/dst.bin'));
    expect(result).toBe('copy/dst.bin');
    expect(await fx.storage.read('copy/dst.bin')).toEqual(bytes);
    expect(await fx.storage.read('copy/src.bin')).toEqual(bytes);
    expect(await fx.storage.stat('copy/dst.bin')).toMatchObject({ size: 4096, contentType: 'application/x-test', cacheControl: 'max-age=60', metadata: { owner: '7' } });
    // The source's HEAD, the look at the destination, the placeholder that wins the name, the copy.
    expect(counts).toEqual({ HeadObjectCommand: 2, PutObjectCommand: 1, CopyObjectCommand: 1 });
  });

  it('with overwrite false stores a copy onto a taken name under an alternative name, leaving both objects', async () => {
    await fx.storage.save('copy/taken-src.txt', 'new bytes');
    await fx.storage.save('copy/taken.txt', 'old bytes');
    const stored = await fx.storage.copy('copy/taken-src.txt', 'copy/taken.txt');
    expect(stored).toMatch(/^copy\/taken_[A-Za-z0-9]{8}\.txt$/);
    expect((await fx.storage.read('copy/taken.txt')).toString()).toBe('old bytes');
    expect((await fx.storage.read(stored)).toString()).toBe('new bytes');
  });

  it('with overwrite true replaces the destination; a copy onto itself is a no-op', async () => {
    await fx.storage.save('copy/ow-src.txt', 'replacement');
    await fx.storage.save('copy/ow.txt', 'original');
    expect(await fx.storage.copy('copy/ow-src.txt', 'copy/ow.txt', { overwrite: true })).toBe('copy/ow.txt');
    expect((await fx.storage.read('copy/ow.txt')).toString()).toBe('replacement');
    const { result, counts } = await counting(() => fx.storage.copy('copy/ow.txt', 'copy/ow.txt', { overwrite: true }));
    expect(result).toBe('copy/ow.txt');
    expect(counts).toEqual({ HeadObjectCommand: 1 });
  });

  itRequires('conditional-writes', 'racing copies and saves for one free name all survive under distinct names', async () => {
    await fx.storage.save('race/src.txt', 'copied');
    const writes = [
      ...Array.from({ length: 8 }, () => fx.storage.copy('race/src.txt', 'race/target.txt')),
      ...Array.from({ length: 4 }, (_, i) => fx.storage.save('race/target.txt', `saved ${i}`)),
    ];
    const names = await Promise.all(writes);
    expect(new Set(names).size).toBe(12);
    const contents = await Promise.all(names.map(async (name) => (await fx.storage.read(name)).toString()));
    expect(contents.filter((c) => c === 'copied')).toHaveLength(8);
    expect(contents.filter((c) => c.startsWith('saved ')).sort()).toEqual(['saved 0', 'saved 1', 'saved 2', 'saved 3']);
    // Every placeholder became a whole object: no empty one is left.
    expect((await keysUnder('race/')).length).toBe(13);
    for (const name of names) expect((await fx.storage.stat(name)).size).toBeGreaterThan(0);
  });

  it('a missing source throws ObjectNotFoundError and leaves nothing at the destination', async () => {
    const error = await fx.storage.copy('copy/missing.txt', 'copy/from-missing.txt').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ObjectNotFoundError);
    expect((error as ObjectNotFoundError).key).toBe(`${LOCATION}/copy/missing.txt`);
    expect(await fx.storage.exists('copy/from-missing.txt')).toBe(false);
  });

  it('refuses names breaking the key rules with InvalidKeyError before any request', async () => {
    const { result, counts } = await counting(async () =>
      Promise.all([
        fx.storage.copy('../escape.txt', 'copy/x.txt').catch((e: unknown) => e),
        fx.storage.copy('copy/src.bin', '').catch((e: unknown) => e),
        fx.storage.move('copy/src.bin', 'a\u0000b').catch((e: unknown) => e),
        fx.storage.copy('copy/src.bin', 'x'.repeat(1100)).catch((e: unknown) => e),
      ]),
    );
    for (const error of result) expect(error).toBeInstanceOf(InvalidKeyError);
    expect(counts).toEqual({});
  });

  itBeyondS3rver(PART_COPY, 'copies an object above multipartCopyThreshold with UploadPartCopy, byte for byte, with its headers', async () => {
    const bytes = randomBytes(12 * MIB);
    await fx.storage.save('big/src.bin', bytes, { contentType: 'application/x-big', metadata: { kind: 'large' } });
    const { result, counts } = await counting(() => fx.storage.copy('big/src.bin', 'big/dst.bin'));
    expect(result).toBe('big/dst.bin');
    // 12 MiB in parts of the 5 MiB threshold: 5 + 5 + 2.
    expect(counts).toMatchObject({ CreateMultipartUploadCommand: 1, UploadPartCopyCommand: 3, CompleteMultipartUploadCommand: 1 });
    expect(counts.CopyObjectCommand).toBeUndefined();
    const copied = await fx.storage.read('big/dst.bin');
    expect(copied.length).toBe(bytes.length);
    expect(sha256(copied)).toBe(sha256(bytes));
    expect(await fx.storage.stat('big/dst.bin')).toMatchObject({ size: 12 * MIB, contentType: 'application/x-big', metadata: { kind: 'large' } });
    // Onto a taken name, a multipart copy also goes to an alternative name.
    const again = await fx.storage.copy('big/src.bin', 'big/dst.bin');
    expect(again).toMatch(/^big\/dst_[A-Za-z0-9]{8}\.bin$/);
    expect(sha256(await fx.storage.read(again))).toBe(sha256(bytes));
    const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect(uploads.Uploads ?? []).toEqual([]);
  }, 60_000);

  itBeyondS3rver(PART_COPY, 'a source replaced during a multipart copy fails it (412) and leaves nothing: never a mix of two versions', async () => {
    await fx.storage.save('big/changing.bin', randomBytes(12 * MIB));
    let partCopies = 0;
    // Before the second part is copied, the source is replaced on the server.
    fx.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UploadPartCopyCommand' && ++partCopies === 2) {
          await raw.send(new PutObjectCommand({ Bucket: bucket, Key: `${LOCATION}/big/changing.bin`, Body: randomBytes(12 * MIB) }));
        }
        return next(args);
      },
      { step: 'initialize', name: 'replaceSourceMidCopy' },
    );
    try {
      const error = await fx.storage.copy('big/changing.bin', 'big/changed.bin').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      expect((error as StorageOperationError).status).toBe(412);
      // AWS refuses the part copy (x-amz-copy-source-if-match); Ceph ignores that, and the check after Complete catches it.
      expect((error as Error).message).toMatch(new RegExp(`the source "${LOCATION}/big/changing.bin" (changed|was replaced) while it was copied`));
    } finally {
      fx.client.middlewareStack.remove('replaceSourceMidCopy');
    }
    expect(partCopies).toBeGreaterThanOrEqual(2);
    expect(await fx.storage.exists('big/changed.bin')).toBe(false);
    expect((await keysUnder('big/changed')).length).toBe(0);
    const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect(uploads.Uploads ?? []).toEqual([]);
  }, 60_000);

  itBeyondS3rver(PART_COPY, 'an aborted multipart copy stores nothing: no object, no placeholder, no upload left', async () => {
    await fx.storage.save('big/abort-src.bin', randomBytes(11 * MIB));
    const controller = new AbortController();
    fx.requests.length = 0;
    const copying = fx.storage.copy('big/abort-src.bin', 'big/aborted.bin', { signal: controller.signal });
    // Abort once the first part copy has been sent.
    while (!fx.requests.includes('UploadPartCopyCommand')) await new Promise((resolve) => setTimeout(resolve, 5));
    controller.abort();
    await expect(copying).rejects.toBeInstanceOf(StorageAbortedError);
    expect(await fx.storage.exists('big/aborted.bin')).toBe(false);
    const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect(uploads.Uploads ?? []).toEqual([]);
  }, 60_000);
});

describe('move()', () => {
  it('copies then deletes the source, and returns the name stored', async () => {
    await fx.storage.save('move/a.txt', 'moving');
    const { result, counts } = await counting(() => fx.storage.move('move/a.txt', 'move/b.txt'));
    expect(result).toBe('move/b.txt');
    expect(await fx.storage.exists('move/a.txt')).toBe(false);
    expect((await fx.storage.read('move/b.txt')).toString()).toBe('moving');
    expect(counts).toEqual({ HeadObjectCommand: 2, PutObjectCommand: 1, CopyObjectCommand: 1, DeleteObjectCommand: 1 });
  });

  it('with overwrite false moves onto a taken name under an alternative name; with true it replaces; onto itself it does nothing', async () => {
    await fx.storage.save('move/src1.txt', 'one');
    await fx.storage.save('move/dest.txt', 'kept');
    const stored = await fx.storage.move('move/src1.txt', 'move/dest.txt');
    expect(stored).toMatch(/^move\/dest_[A-Za-z0-9]{8}\.txt$/);
    expect((await fx.storage.read('move/dest.txt')).toString()).toBe('kept');
    expect((await fx.storage.read(stored)).toString()).toBe('one');
    expect(await fx.storage.exists('move/src1.txt')).toBe(false);

    await fx.storage.save('move/src2.txt', 'two');
    expect(await fx.storage.move('move/src2.txt', 'move/dest.txt', { overwrite: true })).toBe('move/dest.txt');
    expect((await fx.storage.read('move/dest.txt')).toString()).toBe('two');
    expect(await fx.storage.exists('move/src2.txt')).toBe(false);

    expect(await fx.storage.move('move/dest.txt', './move/dest.txt')).toBe('move/dest.txt');
    expect((await fx.storage.read('move/dest.txt')).toString()).toBe('two');
    await expect(fx.storage.move('move/gone.txt', 'move/gone.txt')).rejects.toBeInstanceOf(ObjectNotFoundError);
  });

  itBeyondS3rver(POLICIES, 'when the source cannot be deleted, both objects exist and the error names the copy', async () => {
    await fx.storage.save('locked/src.txt', 'stuck');
    await denyDeletesUnder('locked/');
    try {
      const error = await fx.storage.move('locked/src.txt', 'free/dst.txt').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      expect((error as StorageOperationError).operation).toBe('move');
      expect((error as StorageOperationError).s3Code).toBe('AccessDenied');
      expect((error as Error).message).toContain('the object was copied to "free/dst.txt" but deleting the source failed');
      expect((error as Error).message).toContain('both objects exist now; delete the source with delete() to finish the move');
      expect((await fx.storage.read('free/dst.txt')).toString()).toBe('stuck');
      expect((await fx.storage.read('locked/src.txt')).toString()).toBe('stuck');
    } finally {
      await raw.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    }
  });
});

describe('deleteMany()', () => {
  it('deletes 1,100 names in two DeleteObjects, counts missing names as deleted and reports invalid ones without a request', async () => {
    await putMany('many/', 1100);
    const names = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(5, '0')}.txt`);
    const input = [...names, 'many/missing.txt', '../outside.txt', '', 'many/./00000.txt'];
    const started = Date.now();
    const { result, counts } = await counting(() => fx.storage.deleteMany(input));
    console.log(`deleteMany: 1,100 objects (+ 1 missing, 2 invalid, 1 duplicate) in ${Date.now() - started} ms, requests ${JSON.stringify(counts)}`);
    expect(counts).toEqual({ DeleteObjectsCommand: 2 });
    expect(result.errors.map(({ name, code }) => ({ name, code }))).toEqual([
      { name: '../outside.txt', code: 'InvalidKey' },
      { name: '', code: 'InvalidKey' },
    ]);
    expect(result.errors[0]!.message).toContain('Invalid object name');
    expect(new Set(result.deleted)).toEqual(new Set([...names, 'many/missing.txt', 'many/./00000.txt']));
    expect(result.deleted).toHaveLength(1102);
    expect(await keysUnder('many/')).toEqual([]);
  }, 120_000);

  itBeyondS3rver(POLICIES, 'reports a per-key refusal from the server with its code, and deletes the rest', async () => {
    await fx.storage.save('mixed/free.txt', 'x');
    await fx.storage.save('mixed-locked/held.txt', 'y');
    await denyDeletesUnder('mixed-locked/');
    try {
      const result = await fx.storage.deleteMany(['mixed/free.txt', 'mixed-locked/held.txt']);
      expect(result.deleted).toEqual(['mixed/free.txt']);
      expect(result.errors.map(({ name, code }) => ({ name, code }))).toEqual([{ name: 'mixed-locked/held.txt', code: 'AccessDenied' }]);
      expect(await fx.storage.exists('mixed-locked/held.txt')).toBe(true);
      expect(await fx.storage.exists('mixed/free.txt')).toBe(false);
    } finally {
      await raw.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    }
  });

  it('reports every name of a batch whose request fails as a whole, without throwing', async () => {
    const missing = await storageFixture({ media: mediaOptions(uniqueBucket('ops-none')), ensureBucket: 'off' });
    try {
      const result = await missing.storage.deleteMany(['a.txt', 'b/c.txt', '../bad']);
      expect(result.deleted).toEqual([]);
      expect(result.errors.map(({ name, code }) => ({ name, code }))).toEqual([
        { name: '../bad', code: 'InvalidKey' },
        { name: 'a.txt', code: 'NoSuchBucket' },
        { name: 'b/c.txt', code: 'NoSuchBucket' },
      ]);
      expect(result.errors[1]!.message).toContain('deleteMany');
    } finally {
      await missing.moduleRef.close();
    }
  });

  it('with nothing to delete sends nothing', async () => {
    const { result, counts } = await counting(() => fx.storage.deleteMany([]));
    expect(result).toEqual({ deleted: [], errors: [] });
    expect(counts).toEqual({});
  });
});

describe('deletePrefix()', () => {
  it('deletes 2,500 keys under a prefix, page by page, and leaves the neighbours alone', async () => {
    await putMany('bulk/', 2500, 32);
    await fx.storage.save('bulk-neighbour/keep.txt', 'keep');
    await fx.storage.save('bulk', 'a file named like the folder');
    const started = Date.now();
    const { result, counts } = await counting(() => fx.storage.deletePrefix('bulk/'));
    const ms = Date.now() - started;
    console.log(`deletePrefix: 2,500 objects in ${ms} ms, requests ${JSON.stringify(counts)}`);
    expect(result).toBe(2500);
    // Pages of 1,000: three listings with keys (the last one says it is the end) and three deletes.
    expect(counts).toEqual({ ListObjectsCommand: 3, DeleteObjectsCommand: 3 });
    expect(fx.inputs.filter((i) => i.command === 'DeleteObjectsCommand').map((i) => (i.input.Delete as { Objects: unknown[] }).Objects.length)).toEqual([1000, 1000, 500]);
    expect(await keysUnder('bulk/')).toEqual([]);
    expect(await fx.storage.exists('bulk-neighbour/keep.txt')).toBe(true);
    expect(await fx.storage.exists('bulk')).toBe(true);
    expect(await fx.storage.deletePrefix('bulk/')).toBe(0);
  }, 180_000);

  it('refuses an empty prefix (the whole location) with InvalidKeyError before any request', async () => {
    const { result, counts } = await counting(async () => Promise.all(['', '/', './', '.', '\\'].map((p) => fx.storage.deletePrefix(p).catch((e: unknown) => e))));
    for (const error of result) {
      expect(error).toBeInstanceOf(InvalidKeyError);
      expect((error as Error).message).toContain('deletePrefix() needs a non-empty prefix');
    }
    await expect(fx.storage.deletePrefix('../up/')).rejects.toBeInstanceOf(InvalidKeyError);
    expect(counts).toEqual({});
  });

  itBeyondS3rver(POLICIES, 'deletes what it may and then reports what it could not', async () => {
    await fx.storage.save('partial/a.txt', 'a');
    await fx.storage.save('partial/locked/b.txt', 'b');
    await denyDeletesUnder('partial/locked/');
    try {
      const error = await fx.storage.deletePrefix('partial/').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      expect((error as Error).message).toContain(`1 objects were deleted, but 1 could not be (first: "${LOCATION}/partial/locked/b.txt", AccessDenied`);
      expect(await fx.storage.exists('partial/a.txt')).toBe(false);
      expect(await fx.storage.exists('partial/locked/b.txt')).toBe(true);
    } finally {
      await raw.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    }
  });
});

describe('list() pages', () => {
  beforeAll(async () => {
    await putMany('pages/', 25, 8);
    await fx.storage.save('pages-other/x.txt', 'not in the prefix');
  });

  it('pages through a prefix with limit and cursor, in the order the iterator gives', async () => {
    const all: ListEntry[] = [];
    for await (const entry of fx.storage.list('pages/')) all.push(entry);
    expect(all).toHaveLength(25);

    const sizes: number[] = [];
    const paged: ListEntry[] = [];
    let cursor: string | undefined;
    do {
      const page: ListPage = await fx.storage.list('pages/', { limit: 10, cursor });
      sizes.push(page.items.length);
      paged.push(...page.items);
      cursor = page.cursor;
      if (cursor !== undefined) expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    } while (cursor);
    expect(sizes).toEqual([10, 10, 5]);
    expect(paged.map((e) => e.name)).toEqual(all.map((e) => e.name));
    expect(paged[0]).toMatchObject({ name: 'pages/00000.txt', size: 8 });

    // listPage() is the same page, also when neither option is known up front.
    const first = await fx.storage.listPage('pages/', { limit: 10 });
    const second = await fx.storage.listPage('pages/', { cursor: first.cursor, limit: undefined });
    expect(second.items.map((e) => e.name)).toEqual(all.slice(10, 25).map((e) => e.name));
    expect(second.cursor).toBeUndefined();
  });

  it('a last page has no cursor, and a limit covering everything is one page', async () => {
    const page = await fx.storage.list('pages/', { limit: 1000 });
    expect(page.items).toHaveLength(25);
    expect(page.cursor).toBeUndefined();
    expect(await fx.storage.listPage('pages/none/')).toEqual({ items: [], cursor: undefined });
  });

  it('a cursor never leaves the prefix it is used with', async () => {
    // A cursor from another prefix (sorting before this one, '-' < '/') starts at this prefix's start…
    const foreign = (await fx.storage.list('pages-other/', { limit: 1 })).items[0]!.name;
    const page = await fx.storage.list('pages/', { cursor: Buffer.from(foreign).toString('base64url') });
    expect(page.items.map((e) => e.name)).toEqual(Array.from({ length: 25 }, (_, i) => `pages/${String(i).padStart(5, '0')}.txt`));
    // …and one sorting after it gives an empty last page: never an entry from outside.
    expect(await fx.storage.list('pages/', { cursor: Buffer.from('zzz').toString('base64url') })).toEqual({ items: [], cursor: undefined });
    const before = Buffer.from('a').toString('base64url');
    expect((await fx.storage.list('pages/', { cursor: before, limit: 5 })).items.map((e) => e.name)).toEqual(
      ['00000', '00001', '00002', '00003', '00004'].map((n) => `pages/${n}.txt`),
    );
  });

  it('refuses a bad limit or cursor before any request', async () => {
    const { result, counts } = await counting(async () =>
      Promise.all([
        fx.storage.list('pages/', { limit: 0 }).catch((e: unknown) => e),
        fx.storage.list('pages/', { limit: 1001 }).catch((e: unknown) => e),
        fx.storage.list('pages/', { limit: 2.5 }).catch((e: unknown) => e),
        fx.storage.list('pages/', { cursor: 'not a cursor!' }).catch((e: unknown) => e),
        fx.storage.list('pages/', { cursor: Buffer.from('../../etc').toString('base64url') }).catch((e: unknown) => e),
      ]),
    );
    expect((result[0] as Error).message).toBe('list(): limit must be a whole number from 1 to 1000 (got 0)');
    expect((result[1] as Error).message).toBe('list(): limit must be a whole number from 1 to 1000 (got 1001)');
    expect(result[2]).toBeInstanceOf(StorageError);
    expect(result[3]).toBeInstanceOf(InvalidKeyError);
    expect((result[3] as Error).message).toBe('Invalid object name "not a cursor!": is not a cursor list() returned');
    expect(result[4]).toBeInstanceOf(InvalidKeyError);
    expect(counts).toEqual({});
  });

  it('keeps the async-iterable form, which type-checks apart from the page form', async () => {
    const iterable: AsyncIterable<ListEntry> = fx.storage.list('pages/', { signal: new AbortController().signal });
    const names: string[] = [];
    for await (const entry of iterable) names.push(entry.name);
    expect(names).toHaveLength(25);
    const maybeCursor = undefined as string | undefined;
    // @ts-expect-error a cursor that may be undefined alone could mean either form: use listPage() or pass limit
    void fx.storage.list('pages/', { cursor: maybeCursor });
  });
});

describe('multipartCopyThreshold option', () => {
  it('is checked at start-up: 5 MiB to 5 GiB, whole bytes', () => {
    expect(validateStorageOptions({ media: { bucket: 'media', multipartCopyThreshold: 1024 } })).toEqual([
      'media.multipartCopyThreshold: must be at least 5242880 bytes (5 MiB, the S3 minimum part size)',
    ]);
    expect(validateStorageOptions({ media: { bucket: 'media', multipartCopyThreshold: 6 * 1024 * MIB } })).toEqual([
      'media.multipartCopyThreshold: must be at most 5368709120 bytes (5 GiB, the largest object one CopyObject copies)',
    ]);
    expect(validateStorageOptions({ media: { bucket: 'media', multipartCopyThreshold: 5 * MIB + 0.5 } })).toEqual(['media.multipartCopyThreshold: must be a whole number of bytes']);
    expect(validateStorageOptions({ media: { bucket: 'media', multipartCopyThreshold: 5 * MIB } })).toEqual([]);
  });
});
