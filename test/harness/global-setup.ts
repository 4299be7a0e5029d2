/**
 * Picks the S3 server the integration tests run against, in this order:
 *   1. an endpoint from the environment (`S3_TEST_ENDPOINT`, `S3_TEST_ACCESS_KEY`,
 *      `S3_TEST_SECRET_KEY`, optional `S3_TEST_REGION`), e.g. the Ceph gateway `.ci/run` starts;
 *   2. MinIO through @testcontainers/minio when a container runtime is reachable;
 *   3. the package's guarded local server (s3rver) in-process on loopback.
 * Then probes what the server enforces (signatures, private objects, conditional writes on
 * PutObject and on CompleteMultipartUpload, long key segments), so tests that need a
 * capability can skip with a printed reason where it is missing.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetBucketLifecycleConfigurationCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutBucketLifecycleConfigurationCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as LocalS3Module from '../../lib/local-s3.js';

export interface TestServer {
  kind: 'external' | 'minio' | 's3rver';
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** A second account on the same server (`S3_TEST_ACCESS_KEY_2`/`S3_TEST_SECRET_KEY_2`; test/s3-server/ceph.sh makes one). */
  secondUser?: { accessKeyId: string; secretAccessKey: string };
  stop(): Promise<void>;
}

/**
 * - `conditional-writes`: PutObject with `If-None-Match: *` over an existing key gets 412.
 * - `conditional-complete`: CompleteMultipartUpload with `If-None-Match: *` over an existing
 *   key gets 412 (AWS, MinIO; Ceph RGW ignores it). No test requires it: the library's
 *   no-overwrite guarantee must hold without it, so CI on Ceph runs everything.
 * - `long-key-segments`: a key whose one segment is 1,000 bytes is stored (not s3rver, which
 *   keeps each segment as a file name).
 * - `list-pagination`: ListObjectsV2 pages with continuation tokens (s3rver 3.7 makes them
 *   with DES, which OpenSSL 3 refuses: a truncated listing gets a 500).
 * - `lifecycle`: PutBucketLifecycleConfiguration is accepted and reads back (not s3rver).
 * - `bucket-policies`: a policy granting anonymous GetObject on `pub/*` makes that prefix,
 *   and only it, readable anonymously (not s3rver).
 */
export type Capability =
  | 'signatures'
  | 'private'
  | 'conditional-writes'
  | 'conditional-complete'
  | 'long-key-segments'
  | 'list-pagination'
  | 'lifecycle'
  | 'bucket-policies';

/**
 * The built lib's local server: jest's global setup gets no moduleNameMapper, so it loads
 * the build (npm test builds first) rather than the TypeScript source.
 */
async function loadLocalS3(): Promise<typeof LocalS3Module> {
  const built = pathToFileURL(resolve('dist/esm/local-s3.js')).href;
  try {
    return (await import(built)) as typeof LocalS3Module;
  } catch (error) {
    throw new Error(`cannot load ${built} (${(error as Error).message}): run the tests with "npm test", which builds first`);
  }
}

export async function startTestServer(): Promise<TestServer> {
  const env = process.env;
  if (env.S3_TEST_ENDPOINT) {
    if (!env.S3_TEST_ACCESS_KEY || !env.S3_TEST_SECRET_KEY) {
      throw new Error('S3_TEST_ENDPOINT is set: set S3_TEST_ACCESS_KEY and S3_TEST_SECRET_KEY too');
    }
    return {
      kind: 'external',
      endpoint: env.S3_TEST_ENDPOINT,
      accessKeyId: env.S3_TEST_ACCESS_KEY,
      secretAccessKey: env.S3_TEST_SECRET_KEY,
      region: env.S3_TEST_REGION ?? 'us-east-1',
      secondUser:
        env.S3_TEST_ACCESS_KEY_2 && env.S3_TEST_SECRET_KEY_2 ? { accessKeyId: env.S3_TEST_ACCESS_KEY_2, secretAccessKey: env.S3_TEST_SECRET_KEY_2 } : undefined,
      stop: async () => undefined,
    };
  }
  const minio = await startMinio();
  if (minio) return minio;
  const { startLocalS3 } = await loadLocalS3();
  // A secret unlike the access key id, so tests can tell them apart in URLs and logs.
  const local = await startLocalS3({ accessKeyId: 'nss3-local', secretAccessKey: `nss3-local-secret-${randomBytes(8).toString('hex')}` });
  return {
    kind: 's3rver',
    endpoint: local.endpoint,
    accessKeyId: local.accessKeyId,
    secretAccessKey: local.secretAccessKey,
    region: local.region,
    stop: () => local.close(),
  };
}

async function startMinio(): Promise<TestServer | undefined> {
  let testcontainers: typeof import('testcontainers');
  try {
    testcontainers = await import('testcontainers');
    await testcontainers.getContainerRuntimeClient();
  } catch {
    return undefined; // no container runtime here
  }
  const { MinioContainer } = await import('@testcontainers/minio');
  const container = await new MinioContainer('minio/minio:RELEASE.2025-04-22T22-12-26Z').start();
  return {
    kind: 'minio',
    endpoint: container.getConnectionUrl(),
    accessKeyId: container.getUsername(),
    secretAccessKey: container.getPassword(),
    region: 'us-east-1',
    stop: async () => void (await container.stop()),
  };
}

/** Finds out what the server enforces, with a throw-away bucket. */
export async function probeCapabilities(server: TestServer): Promise<Capability[]> {
  const client = new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const bucket = `nss3-probe-${Date.now().toString(36)}`;
  const Key = 'probe.txt';
  const found: Capability[] = [];
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'probe' }));
    const anonymous = await fetch(`${server.endpoint}/${bucket}/${Key}`);
    if (anonymous.status === 403) found.push('private');
    const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key }), { expiresIn: 60 });
    const tampered = url.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
    if ((await fetch(tampered)).status === 403) found.push('signatures');
    if (await refused412(client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'again', IfNoneMatch: '*' })))) found.push('conditional-writes');
    if (await completeRefused(client, bucket, Key)) found.push('conditional-complete');
    const longKey = `long/${'a'.repeat(1000)}`;
    if (await client.send(new PutObjectCommand({ Bucket: bucket, Key: longKey, Body: 'long' })).then(() => true, () => false)) {
      found.push('long-key-segments');
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: longKey }));
    }
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'page-2.txt', Body: 'p' }));
    if (await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 })).then((page) => Boolean(page.NextContinuationToken), () => false)) found.push('list-pagination');
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'page-2.txt' }));
    if (await lifecycleReadsBack(client, bucket)) found.push('lifecycle');
    if (await prefixPolicyHonoured(client, server.endpoint, bucket, Key)) found.push('bucket-policies');
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return found;
}

async function lifecycleReadsBack(client: S3Client, Bucket: string): Promise<boolean> {
  const Rules = [{ ID: 'probe', Status: 'Enabled' as const, Filter: { Prefix: 'probe/' }, Expiration: { Days: 1 } }];
  try {
    await client.send(new PutBucketLifecycleConfigurationCommand({ Bucket, LifecycleConfiguration: { Rules } }));
    const out = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket }));
    return out.Rules?.some((r) => r.ID === 'probe') ?? false;
  } catch {
    return false;
  }
}

async function prefixPolicyHonoured(client: S3Client, endpoint: string, Bucket: string, privateKey: string): Promise<boolean> {
  const Key = 'pub/probe.txt';
  try {
    await client.send(new PutObjectCommand({ Bucket, Key, Body: 'public probe' }));
    const Policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${Bucket}/pub/*` }] });
    await client.send(new PutBucketPolicyCommand({ Bucket, Policy }));
    const pub = await fetch(`${endpoint}/${Bucket}/${Key}`);
    const priv = await fetch(`${endpoint}/${Bucket}/${privateKey}`);
    return pub.status === 200 && priv.status === 403;
  } catch {
    return false;
  } finally {
    await client.send(new DeleteObjectCommand({ Bucket, Key })).catch(() => undefined);
  }
}

/** True when `request` failed with 412 Precondition Failed; false when it succeeded or failed otherwise. */
async function refused412(request: Promise<unknown>): Promise<boolean> {
  return request.then(
    () => false,
    (error: unknown) => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412,
  );
}

/** A real multipart upload completed with `If-None-Match: *` over the existing `Key`. */
async function completeRefused(client: S3Client, Bucket: string, Key: string): Promise<boolean> {
  const upload = await client.send(new CreateMultipartUploadCommand({ Bucket, Key })).catch(() => undefined);
  if (!upload?.UploadId) return false;
  const { UploadId } = upload;
  try {
    const part = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: 'multipart probe' }));
    const refused = await refused412(
      client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, IfNoneMatch: '*', MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } })),
    );
    return refused;
  } finally {
    // After a refused (or failed) Complete the upload is still open; after a success this 404s.
    await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
  }
}

declare global {
  // Kept for the teardown, which runs in the same process.
  var __NSS3_TEST_SERVER__: TestServer | undefined;
}

export default async function globalSetup(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const server = await startTestServer();
  globalThis.__NSS3_TEST_SERVER__ = server;
  const capabilities = await probeCapabilities(server);
  Object.assign(process.env, {
    S3_TEST_ENDPOINT: server.endpoint,
    S3_TEST_ACCESS_KEY: server.accessKeyId,
    S3_TEST_SECRET_KEY: server.secretAccessKey,
    S3_TEST_REGION: server.region,
    S3_TEST_KIND: server.kind,
    S3_TEST_CAPABILITIES: capabilities.join(','),
  });
  // Only the external server's second user is real: never pair stray keys with another server.
  if (server.secondUser) Object.assign(process.env, { S3_TEST_ACCESS_KEY_2: server.secondUser.accessKeyId, S3_TEST_SECRET_KEY_2: server.secondUser.secretAccessKey });
  else for (const name of ['S3_TEST_ACCESS_KEY_2', 'S3_TEST_SECRET_KEY_2']) delete process.env[name];
  process.stdout.write(`\nS3 test server: ${server.kind} at ${server.endpoint} (enforces: ${capabilities.join(', ') || 'nothing'}); Node ${process.version}\n`);
}
