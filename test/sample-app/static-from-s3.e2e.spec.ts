/**
 * The sample app's optional static-on-S3 mode: after `collectstatic sample-app/public`, the
 * page links its JS and CSS from the bucket under hashed names, through StaticManifestStorage.
 */
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { createS3Client } from '../../lib/s3-client.factory.js';
import { StaticManifestStorage } from '../../lib/static-manifest.storage.js';
import { resolveStorageOptions } from '../../lib/storage-options.validation.js';
import { createTestBucket, deleteTestBucket, rawClient, s3 } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from './app-fixture.js';

let bucket: string;
let sample: SampleApp;
let client: S3Client;

beforeAll(async () => {
  bucket = await createTestBucket('sample-static');
  client = rawClient();
  const { static: options } = resolveStorageOptions({
    media: { bucket },
    static: { bucket, endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
  });
  const collector = createS3Client(options!);
  try {
    await new StaticManifestStorage(collector, options!).collect('sample-app/public');
  } finally {
    collector.destroy();
  }
  sample = await startSampleApp({
    ...mediaEnv(bucket),
    AWS_STORAGE_BUCKET_NAME: bucket,
    AWS_S3_ENDPOINT_URL: s3.endpoint,
    AWS_S3_REGION: s3.region,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  });
});
afterAll(async () => {
  await sample?.close();
  client?.destroy();
  await deleteTestBucket(bucket);
});

describe('static assets from S3', () => {
  it('links the hashed JS and CSS from the bucket, stored immutable', async () => {
    const page = await request(sample.app.getHttpServer()).get('/');
    expect(page.status).toBe(200);
    const all = [...page.text.matchAll(/(?:href|src)="([^"]+\.(?:css|js))"/g)].map((m) => m[1]!);
    // The Uppy bundle is built into dist/ (not part of the collected sample-app/public), so
    // the app serves it itself; the collected app.css and app.js come from the bucket.
    const bundle = all.filter((link) => /\/files\.[0-9a-f]{12}\.(css|js)$/.test(link));
    expect(bundle.map((link) => link.replace(/[0-9a-f]{12}/, 'H')).sort()).toEqual(['/static/files.H.css', '/static/files.H.js']);
    const links = all.filter((link) => !bundle.includes(link));
    expect(links).toHaveLength(2);
    for (const link of links) {
      expect(link).toMatch(new RegExp(`^${s3.endpoint}/${bucket}/static/app\\.[0-9a-f]{12}\\.(css|js)$`));
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: new URL(link).pathname.slice(bucket.length + 2) }));
      expect(head.CacheControl).toBe('public, max-age=31536000, immutable');
    }
  });
});
