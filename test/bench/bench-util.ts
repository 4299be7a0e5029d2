import { DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

/** Small helpers shared by the benchmarks: timing, formatting, the S3 server from env. */
export interface Timing {
  ops: number;
  seconds: number;
  perSecond: number;
  microsPerOp: number;
}

/** Runs `fn` `ops` times (awaiting each) after `warmup` calls, and times the measured part. */
export async function timeIt(ops: number, warmup: number, fn: (i: number) => Promise<unknown> | unknown): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const start = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) await fn(i);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { ops, seconds, perSecond: ops / seconds, microsPerOp: (seconds * 1e6) / ops };
}

export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

export function formatNumber(n: number): string {
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);
}

/** The S3 server benchmarks that need one talk to (the same variables the tests use). */
export function benchServer(): { endpoint: string; accessKeyId: string; secretAccessKey: string; region: string } | undefined {
  const { S3_TEST_ENDPOINT, S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY, S3_TEST_REGION } = process.env;
  if (!S3_TEST_ENDPOINT || !S3_TEST_ACCESS_KEY || !S3_TEST_SECRET_KEY) return undefined;
  return { endpoint: S3_TEST_ENDPOINT, accessKeyId: S3_TEST_ACCESS_KEY, secretAccessKey: S3_TEST_SECRET_KEY, region: S3_TEST_REGION ?? 'us-east-1' };
}

export type BenchServer = NonNullable<ReturnType<typeof benchServer>>;

/** A plain AWS SDK client for the benchmark server, set up as a careful user would. */
export function rawS3Client(server: BenchServer): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Deletes every object of a benchmark bucket, then the bucket (the server keeps data in RAM). */
export async function dropBucket(server: BenchServer, bucket: string): Promise<void> {
  const client = rawS3Client(server);
  try {
    for (;;) {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      const objects = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (objects.length === 0) break;
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch (error) {
    if ((error as { name?: string }).name !== 'NoSuchBucket') throw error;
  } finally {
    client.destroy();
  }
}
