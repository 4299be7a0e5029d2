/**
 * What integration tests need to reach the S3 server chosen by the global setup, plus
 * per-file buckets that are emptied and removed afterwards.
 */
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import type { MediaStorageOptions } from '../../lib/storage-module-options.interface.js';
import type { Capability } from './global-setup.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with "npm test" (jest's global setup starts a server)`);
  return value;
}

export const s3 = {
  endpoint: required('S3_TEST_ENDPOINT'),
  accessKeyId: required('S3_TEST_ACCESS_KEY'),
  secretAccessKey: required('S3_TEST_SECRET_KEY'),
  region: process.env.S3_TEST_REGION ?? 'us-east-1',
  kind: process.env.S3_TEST_KIND ?? 'external',
  capabilities: new Set((process.env.S3_TEST_CAPABILITIES ?? '').split(',').filter(Boolean) as Capability[]),
  /** A second, unrelated account on the same server, when the server has one (test/s3-server/ceph.sh makes it). */
  secondUser:
    process.env.S3_TEST_ACCESS_KEY_2 && process.env.S3_TEST_SECRET_KEY_2
      ? { accessKeyId: process.env.S3_TEST_ACCESS_KEY_2, secretAccessKey: process.env.S3_TEST_SECRET_KEY_2 }
      : undefined,
};

const WHY: Record<Capability, string> = {
  signatures: 'does not verify presigned-URL signatures',
  private: 'does not deny anonymous reads of private objects',
  'conditional-writes': 'ignores If-None-Match on PUT',
  'conditional-complete': 'ignores If-None-Match on CompleteMultipartUpload',
  'long-key-segments': 'cannot store a key segment longer than a file name (255 bytes)',
  'list-pagination': 'cannot page ListObjectsV2 with continuation tokens',
  lifecycle: 'has no bucket lifecycle configuration (PutBucketLifecycleConfiguration)',
  'bucket-policies': 'does not honour bucket policies (an anonymous GetObject grant on a prefix)',
};

/**
 * `it`, or a skip with a printed reason when the server lacks `capability`. With
 * `S3_TEST_REQUIRE_ALL=1` (set by .ci/run) a missing capability fails the test instead.
 */
export function itRequires(capability: Capability, name: string, fn: () => Promise<void>, timeout?: number): void {
  if (s3.capabilities.has(capability)) {
    it(name, fn, timeout);
    return;
  }
  skipWithReason(name, `the ${s3.kind} server at ${s3.endpoint} ${WHY[capability]}`, fn);
}

/**
 * Skips `name` with the reason printed, or, under `S3_TEST_REQUIRE_ALL=1` (set by .ci/run),
 * registers a test that fails with it: CI must run everything.
 */
export function skipWithReason(name: string, reason: string, fn: () => Promise<void>): void {
  if (process.env.S3_TEST_REQUIRE_ALL === '1') {
    it(name, () => {
      throw new Error(`S3_TEST_REQUIRE_ALL is set but ${reason}`);
    });
    return;
  }
  console.warn(`Skipping "${name}": ${reason}`);
  it.skip(`${name} [skipped: ${reason}]`, fn);
}

/** A plain SDK client for the test server, as the test user (or with `credentials`, e.g. `s3.secondUser`). */
export function rawClient(credentials: { accessKeyId: string; secretAccessKey: string } = s3): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** A bucket name no other test uses. */
export function uniqueBucket(label: string): string {
  return `nss3-${label}-${randomBytes(4).toString('hex')}`.toLowerCase().slice(0, 63);
}

export async function createTestBucket(label: string): Promise<string> {
  const bucket = uniqueBucket(label);
  const client = rawClient();
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}

/** Empties (objects and in-progress multipart uploads) and deletes a bucket (of the test user, or of `owner`); a missing one is fine. */
export async function deleteTestBucket(bucket: string, owner?: { accessKeyId: string; secretAccessKey: string }): Promise<void> {
  const client = rawClient(owner);
  try {
    for (;;) {
      // ListObjects (v1): its first page needs no continuation token, which s3rver cannot make.
      const page = await client.send(new ListObjectsCommand({ Bucket: bucket }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length === 0) break;
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    }
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket })).catch((error: unknown) => {
      if ((error as { name?: string }).name === 'NotImplemented') return { Uploads: [] }; // s3rver
      throw error;
    });
    for (const u of uploads.Uploads ?? []) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key!, UploadId: u.UploadId! }));
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch (error) {
    if ((error as { name?: string }).name !== 'NoSuchBucket') throw error;
  } finally {
    client.destroy();
  }
}

/** Media options for the test server and `bucket`. */
export function mediaOptions(bucket: string, overrides: Partial<MediaStorageOptions> = {}): MediaStorageOptions {
  return {
    bucket,
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    ...overrides,
  };
}
