/**
 * Picks the S3 server the integration tests run against, in this order:
 *   1. an endpoint from the environment (`S3_TEST_ENDPOINT`, `S3_TEST_ACCESS_KEY`,
 *      `S3_TEST_SECRET_KEY`, optional `S3_TEST_REGION`), e.g. the Ceph gateway `.ci/run` starts;
 *   2. MinIO through @testcontainers/minio when a container runtime is reachable;
 *   3. s3rver in-process on loopback.
 * Then probes what the server enforces (signatures, private objects, conditional writes),
 * so tests that need a capability can skip with a printed reason where it is missing.
 */
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

export interface TestServer {
  kind: 'external' | 'minio' | 's3rver';
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  stop(): Promise<void>;
}

export type Capability = 'signatures' | 'private' | 'conditional-writes';

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
      stop: async () => undefined,
    };
  }
  const minio = await startMinio();
  if (minio) return minio;
  // Not the sample app's embedded-s3.ts: jest loads global setup without path mapping,
  // so this file imports packages only.
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory: mkdtempSync(join(tmpdir(), 'nss3-test-s3rver-')), silent: true, vhostBuckets: false });
  const { port } = await server.run();
  return {
    kind: 's3rver',
    endpoint: `http://127.0.0.1:${port}`,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    region: 'us-east-1',
    stop: () => server.close(),
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
    try {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'again', IfNoneMatch: '*' }));
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412) found.push('conditional-writes');
    }
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return found;
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
  process.stdout.write(`\nS3 test server: ${server.kind} at ${server.endpoint} (enforces: ${capabilities.join(', ') || 'nothing'})\n`);
}
