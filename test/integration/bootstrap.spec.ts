import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import { Test } from '@nestjs/testing';
import { BucketBootstrapError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import { storageFixture } from '../harness/nest-storage.js';
import { blackhole, closedPort } from '../harness/net.js';
import { deleteTestBucket, itRequires, mediaOptions, rawClient, s3, uniqueBucket } from '../harness/s3-test-env.js';

const SECRET = 'sentinel-SECRET-d41d8cd98f00b204e9800998ecf8427e';
const buckets: string[] = [];
afterAll(async () => {
  for (const b of buckets) await deleteTestBucket(b);
});

/** The error start-up failed with, everything a log would show of it, and how long it took. */
async function bootError(options: Parameters<typeof storageFixture>[0]): Promise<{ error: BucketBootstrapError; text: string; ms: number }> {
  const started = Date.now();
  const fx = await storageFixture(options, false);
  const error = await fx.moduleRef.init().then(() => undefined, (e: unknown) => e);
  const ms = Date.now() - started;
  await fx.moduleRef.close().catch(() => undefined);
  expect(error).toBeInstanceOf(BucketBootstrapError);
  const e = error as BucketBootstrapError;
  return { error: e, text: `${e.message}\n${e.stack}\n${inspect(e, { depth: 8 })}\n${JSON.stringify(e)}`, ms };
}

describe('bucket bootstrap (OnApplicationBootstrap)', () => {
  it("'create' makes one HeadBucket when the bucket exists", async () => {
    const bucket = uniqueBucket('boot');
    buckets.push(bucket);
    const first = await storageFixture({ media: mediaOptions(bucket) }, false);
    await first.moduleRef.init();
    expect(first.requests).toEqual(['HeadBucketCommand', 'CreateBucketCommand']);
    await first.moduleRef.close();
    const second = await storageFixture({ media: mediaOptions(bucket) }, false);
    await second.moduleRef.init();
    expect(second.requests).toEqual(['HeadBucketCommand']);
    await second.moduleRef.close();
  });

  it('ten instances booting at once against a missing bucket all start', async () => {
    const bucket = uniqueBucket('race');
    buckets.push(bucket);
    const fixtures = await Promise.all(Array.from({ length: 10 }, () => storageFixture({ media: mediaOptions(bucket) }, false)));
    const results = await Promise.allSettled(fixtures.map((f) => f.moduleRef.init()));
    expect(results.map((r) => r.status)).toEqual(Array(10).fill('fulfilled'));
    const client = rawClient();
    await expect(client.send(new HeadBucketCommand({ Bucket: bucket }))).resolves.toBeDefined();
    client.destroy();
    await Promise.all(fixtures.map((f) => f.moduleRef.close()));
  });

  it("'check' fails start-up when the bucket is missing, naming bucket and endpoint", async () => {
    const bucket = uniqueBucket('check');
    const { error } = await bootError({ media: mediaOptions(bucket), ensureBucket: 'check' });
    expect(error.reason).toBe('missing');
    expect(error.message).toBe(
      `Bucket "${bucket}" at ${s3.endpoint}: the bucket does not exist (ensureBucket is "check"; create it, or use "create")`,
    );
  });

  it("'off' sends nothing at start-up", async () => {
    const fx = await storageFixture({ media: mediaOptions(uniqueBucket('off')), ensureBucket: 'off' }, false);
    await fx.moduleRef.init();
    expect(fx.requests).toEqual([]);
    await fx.moduleRef.close();
  });

  it('an unreachable endpoint fails start-up quickly as "unreachable", naming endpoint and bucket, without the secret', async () => {
    const port = await closedPort();
    const { error, text, ms } = await bootError({
      media: mediaOptions('media', { endpoint: `http://127.0.0.1:${port}`, credentials: { accessKeyId: 'AKID', secretAccessKey: SECRET } }),
      bootstrapTimeout: 5000,
    });
    expect(error.reason).toBe('unreachable');
    expect(error.message).toBe(
      `Bucket "media" at http://127.0.0.1:${port}: the endpoint is unreachable (is the S3 server running, and is the endpoint right?)`,
    );
    expect(ms).toBeLessThan(5000);
    expect(text).not.toContain(SECRET);
  });

  it('a server that accepts connections but never answers fails start-up within bootstrapTimeout', async () => {
    const { port, close } = await blackhole();
    try {
      const { error, ms } = await bootError({
        media: mediaOptions('media', { endpoint: `http://127.0.0.1:${port}` }),
        bootstrapTimeout: 1500,
      });
      expect(error.reason).toBe('timeout');
      expect(error.message).toBe(
        `Bucket "media" at http://127.0.0.1:${port}: the endpoint did not answer within 1500 ms (unreachable or stalled; bootstrapTimeout sets the limit)`,
      );
      expect(ms).toBeGreaterThanOrEqual(1400);
      expect(ms).toBeLessThan(4000);
    } finally {
      close();
    }
  });

  it('with static storage on a stalled server, start-up still fails within bootstrapTimeout', async () => {
    const { port, close } = await blackhole();
    const started = Date.now();
    try {
      const error = await Test.createTestingModule({
        imports: [
          StorageModule.forRoot({
            media: mediaOptions('media'),
            static: mediaOptions('assets', { endpoint: `http://127.0.0.1:${port}`, requestTimeout: 30_000 }),
            ensureBucket: 'off',
            bootstrapTimeout: 800,
          }),
        ],
      })
        .compile()
        .then(() => undefined, (e: unknown) => e);
      expect(error).toMatchObject({ code: 'STORAGE_TIMEOUT', bucket: 'assets' });
      expect((error as Error).message).toBe(
        `load manifest "static/staticfiles.json" in bucket "assets" at http://127.0.0.1:${port} failed: no answer within bootstrapTimeout while reading the manifest at start-up`,
      );
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      close();
    }
  });

  itRequires('signatures', 'wrong credentials fail start-up as "access denied", without the secret', async () => {
    const bucket = uniqueBucket('creds');
    const { error, text } = await bootError({
      media: mediaOptions(bucket, { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: SECRET } }),
    });
    expect(error.reason).toBe('access-denied');
    expect(error.message).toMatch(
      new RegExp(`^Bucket "${bucket}" at ${s3.endpoint.replace(/[.]/g, '\\.')}: access denied( \\(\\w+\\))?: check the access key and secret key`),
    );
    expect(text).not.toContain(SECRET);
  });
});
