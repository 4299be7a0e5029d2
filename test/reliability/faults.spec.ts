/**
 * Faults between the module and a real S3 server, injected by a TCP proxy the tests
 * control: the server unreachable or hung at start-up, a connection reset in the middle of
 * an upload, a server that stops answering. Every operation must end (resolve or reject
 * with a typed error) within its configured time, and nothing partial may stay behind.
 */
import { HeadBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { MediaStorage } from '../../lib/media.storage.js';
import { BucketBootstrapError, StorageOperationError, StorageTimeoutError } from '../../lib/storage.errors.js';
import type { MediaStorageOptions, StorageModuleOptions } from '../../lib/storage-module-options.interface.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { createTestBucket, deleteTestBucket, mediaOptions, rawClient, s3, uniqueBucket } from '../harness/s3-test-env.js';
import { FaultProxy } from './fault-proxy.js';

const MIB = 1024 * 1024;
let proxy: FaultProxy;
let bucket: string;
let raw: S3Client;
const buckets: string[] = [];
const fixtures: StorageFixture[] = [];

beforeAll(async () => {
  proxy = await FaultProxy.start(s3.endpoint);
  bucket = await createTestBucket('rel-faults');
  buckets.push(bucket);
  raw = rawClient();
});

afterAll(async () => {
  for (const fx of fixtures) await fx.moduleRef.close().catch(() => undefined);
  await proxy?.close();
  raw?.destroy();
  for (const b of buckets) await deleteTestBucket(b);
});

/** Media options that reach the server through the proxy. */
function viaProxy(b: string, overrides: Partial<MediaStorageOptions> = {}): MediaStorageOptions {
  return mediaOptions(b, { endpoint: proxy.endpoint, ...overrides });
}

async function started(options: StorageModuleOptions): Promise<MediaStorage> {
  const fx = await storageFixture(options);
  fixtures.push(fx);
  return fx.storage;
}

/** What a promise settled with and how long it took; `cap` ms stops a hang failing the whole file. */
async function timed<T>(work: () => Promise<T>, cap = 20_000): Promise<{ ms: number; value?: T; error?: unknown }> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${cap} ms (hung)`)), cap);
  });
  try {
    const value = await Promise.race([work(), hung]);
    return { ms: Date.now() - t0, value };
  } catch (error) {
    return { ms: Date.now() - t0, error };
  } finally {
    clearTimeout(timer);
  }
}

/** Objects and in-progress multipart uploads under `prefix`, asked of the server directly. */
async function leftovers(prefix: string): Promise<{ objects: string[]; uploads: string[] }> {
  const objects = await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return { objects: (objects.Contents ?? []).map((o) => o.Key!), uploads: (uploads.Uploads ?? []).map((u) => u.Key!) };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `data` as a stream of 256 KiB chunks, so the module cannot know its length up front. */
function streamOf(data: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += 256 * 1024) chunks.push(data.subarray(i, i + 256 * 1024));
  return Readable.from(chunks);
}

describe('server unreachable or hung at start-up', () => {
  const BOOT_MS = 2000;
  const cases = [
    { mode: 'create', fault: 'refuse', reason: 'unreachable' },
    { mode: 'check', fault: 'refuse', reason: 'unreachable' },
    { mode: 'create', fault: 'stall', reason: 'timeout' },
    { mode: 'check', fault: 'stall', reason: 'timeout' },
  ] as const;

  it.each(cases)("ensureBucket '$mode' with the server behind '$fault' fails start-up within bootstrapTimeout as '$reason'; a restart once it is back succeeds", async ({ mode, fault, reason }) => {
    // 'check' needs a bucket that exists; 'create' one that does not yet.
    const target = mode === 'check' ? await createTestBucket('rel-boot') : uniqueBucket('rel-boot');
    buckets.push(target);
    const options: StorageModuleOptions = { media: viaProxy(target), ensureBucket: mode, bootstrapTimeout: BOOT_MS };
    if (fault === 'refuse') await proxy.refuse();
    else proxy.stall();
    try {
      const fx = await storageFixture(options, false);
      const boot = await timed(() => fx.moduleRef.init());
      await fx.moduleRef.close().catch(() => undefined);
      expect(boot.error).toBeInstanceOf(BucketBootstrapError);
      const error = boot.error as BucketBootstrapError;
      expect(error.reason).toBe(reason);
      expect(error.message).toContain(`"${target}"`);
      expect(error.message).toContain(proxy.endpoint);
      // Retries and back-off included, start-up gives up within the budget (plus scheduling slack).
      expect(boot.ms).toBeLessThan(BOOT_MS + 1000);
    } finally {
      await proxy.pass();
    }
    const fx = await storageFixture(options, false);
    fixtures.push(fx);
    await expect(fx.moduleRef.init()).resolves.toBeDefined();
    await expect(raw.send(new HeadBucketCommand({ Bucket: target }))).resolves.toBeDefined();
  });
});

describe('connection reset in the middle of save()', () => {
  // A fresh random body per case: identical bytes read back cannot come from an earlier case.
  const cases = [
    { body: 'a 30 MiB stream (multipart, 5 MiB parts)', size: 30 * MIB, resetAt: 12 * MIB, stream: true },
    { body: 'a 4 MiB Buffer (one PutObject)', size: 4 * MIB, resetAt: 1 * MIB, stream: false },
  ];

  it.each(cases)('with maxAttempts 1, $body rejects with a typed error and leaves no object and no multipart upload', async ({ size, resetAt, stream }) => {
    const storage = await started({ media: viaProxy(bucket, { partSize: 5 * MIB, maxAttempts: 1 }), ensureBucket: 'off' });
    const prefix = `reset-fail-${randomBytes(4).toString('hex')}/`;
    const data = randomBytes(size);
    await proxy.pass();
    const resetsBefore = proxy.resets;
    proxy.resetAfter(resetAt);
    const result = await timed(() => storage.save(`${prefix}big.bin`, stream ? streamOf(data) : data));
    await proxy.pass();
    expect(proxy.resets).toBe(resetsBefore + 1);
    expect(result.error).toBeInstanceOf(StorageOperationError);
    const error = result.error as StorageOperationError;
    expect(error.operation).toBe('save');
    expect(error.message).toContain(`${prefix}big.bin`);
    expect(error.message).toMatch(/unreachable \((ECONNRESET|EPIPE)\)/);
    expect(await leftovers(prefix)).toEqual({ objects: [], uploads: [] });
  });

  it.each(cases)('with the default retries, $body survives one reset and reads back byte-identical', async ({ size, resetAt, stream }) => {
    const storage = await started({ media: viaProxy(bucket, { partSize: 5 * MIB }), ensureBucket: 'off' });
    const prefix = `reset-retry-${randomBytes(4).toString('hex')}/`;
    const data = randomBytes(size);
    const resetsBefore = proxy.resets;
    proxy.resetAfter(resetAt);
    const result = await timed(() => storage.save(`${prefix}big.bin`, stream ? streamOf(data) : data));
    await proxy.pass();
    expect(result.error).toBeUndefined();
    // The fault really happened: the upload survived it rather than missed it.
    expect(proxy.resets).toBe(resetsBefore + 1);
    expect(sha256(await storage.read(result.value!))).toBe(sha256(data));
    const left = await leftovers(prefix);
    expect(left).toEqual({ objects: [`${prefix}big.bin`], uploads: [] });
    await storage.delete(result.value!); // memstore keeps data in RAM
  });
});

describe('a stalled server', () => {
  const TIMEOUT = 1500;
  const SLACK = 1000;
  let storage: MediaStorage;
  const seeded = 'stall/seed.txt';

  beforeAll(async () => {
    // `timeout` (per operation, retries included) below `requestTimeout`: the deadline is what fires.
    storage = await started({ media: viaProxy(bucket, { timeout: TIMEOUT, requestTimeout: 10_000 }), ensureBucket: 'off' });
    await proxy.pass();
    await storage.save(seeded, 'seed', { overwrite: true });
  });

  const operations: [string, () => Promise<unknown>][] = [
    ['save (small)', () => storage.save('stall/new.txt', 'x')],
    ['save (small, overwrite)', () => storage.save('stall/new.txt', 'x', { overwrite: true })],
    ['read', () => storage.read(seeded)],
    ['open', () => storage.open(seeded)],
    ['exists', () => storage.exists(seeded)],
    ['stat', () => storage.stat(seeded)],
    ['delete', () => storage.delete(seeded)],
    ['list', async () => {
      for await (const entry of storage.list('stall/')) return entry;
      return undefined;
    }],
  ];

  it.each(operations)('%s rejects with StorageTimeoutError after `timeout` ms instead of hanging', async (_name, run) => {
    proxy.stall();
    try {
      const result = await timed(run);
      expect(result.error).toBeInstanceOf(StorageTimeoutError);
      expect((result.error as StorageTimeoutError).code).toBe('STORAGE_TIMEOUT');
      expect(result.ms).toBeGreaterThanOrEqual(TIMEOUT - 50);
      expect(result.ms).toBeLessThan(TIMEOUT + SLACK);
    } finally {
      await proxy.pass();
    }
  });

  it('url() sends nothing, so it answers at once while the server is stalled', async () => {
    proxy.stall();
    const accepted = proxy.accepted;
    try {
      // Anything that waited on the stalled server would reject with StorageTimeoutError.
      const result = await timed(() => storage.url(seeded), TIMEOUT + SLACK);
      expect(result.error).toBeUndefined();
      expect(String(result.value)).toContain('X-Amz-Signature=');
      expect(proxy.accepted).toBe(accepted);
    } finally {
      await proxy.pass();
    }
  });

  it('with `timeout` off, `requestTimeout` still ends every request: a multipart save and a small read reject with StorageTimeoutError', async () => {
    const REQUEST_MS = 1000;
    const perRequest = await started({ media: viaProxy(bucket, { timeout: 0, requestTimeout: REQUEST_MS, maxAttempts: 2, partSize: 5 * MIB }), ensureBucket: 'off' });
    const prefix = `stall-mp-${randomBytes(4).toString('hex')}/`;
    proxy.stall();
    try {
      const save = await timed(() => perRequest.save(`${prefix}big.bin`, streamOf(randomBytes(12 * MIB)), { overwrite: true }), 8000);
      expect(save.error).toBeInstanceOf(StorageTimeoutError);
      // Two attempts of one second each, plus the SDK's back-off between them.
      expect(save.ms).toBeLessThan(2 * REQUEST_MS + 2 * SLACK);
      const read = await timed(() => perRequest.read(seeded), 8000);
      expect(read.error).toBeInstanceOf(StorageTimeoutError);
      expect(read.ms).toBeLessThan(2 * REQUEST_MS + 2 * SLACK);
    } finally {
      await proxy.pass();
    }
    // CreateMultipartUpload never reached the server, so there is nothing to clean up.
    expect(await leftovers(prefix)).toEqual({ objects: [], uploads: [] });
  });

  it('a server that stalls in the middle of a download fails the read after `requestTimeout` instead of hanging', async () => {
    const REQUEST_MS = 1000;
    const perRequest = await started({ media: viaProxy(bucket, { requestTimeout: REQUEST_MS }), ensureBucket: 'off' });
    const name = `stall-body-${randomBytes(4).toString('hex')}.bin`;
    await perRequest.save(name, randomBytes(8 * MIB), { overwrite: true });
    const stream = await perRequest.open(name);
    // One iterator throughout: leaving a for-await early would destroy the stream.
    const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const first = await chunks.next();
    expect(first.done).toBe(false);
    proxy.stall();
    try {
      const rest = await timed(async () => {
        let bytes = first.value.length;
        for (let next = await chunks.next(); !next.done; next = await chunks.next()) bytes += next.value.length;
        return bytes;
      }, 8000);
      // Either the bytes already buffered were all there was, or the stall surfaces as an error.
      // 8 MiB cannot all sit in socket buffers: the reader must see the stall as an error.
      expect(rest.value).toBeUndefined();
      expect(String((rest.error as Error).message)).not.toMatch(/hung/);
      expect(rest.ms).toBeLessThan(REQUEST_MS + 2 * SLACK);
    } finally {
      stream.destroy();
      await proxy.pass();
      await perRequest.delete(name);
    }
  });

});
