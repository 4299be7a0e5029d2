/**
 * Upload throughput: `MediaStorage.save()` of a 512 MiB stream of unknown length against a raw
 * `@aws-sdk/lib-storage` `Upload` of the same stream, same part size and concurrency, same
 * server, alternating rounds in one process.
 */
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { createMediaSigner, createS3Client, ensureBucket, MediaStorage, resolveStorageOptions } from 'nestjs-s3-storage';
import { benchServer, dropBucket, rawS3Client, table } from './bench-util.js';

const MIB = 1024 * 1024;

/** `total` bytes from a pool of random 1 MiB blocks: generation costs next to nothing. */
function source(total: number, pool: Buffer[]): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const block = pool[(sent / MIB) % pool.length]!;
      const chunk = block.subarray(0, Math.min(block.length, total - sent));
      sent += chunk.length;
      this.push(chunk);
    },
  });
}

export interface UploadBenchResult {
  oursMiBps: number;
  sdkMiBps: number;
  ratio: number;
}

export async function runUploadBench(sizeMiB = 512, rounds = 3): Promise<UploadBenchResult | undefined> {
  const server = benchServer();
  if (!server) {
    console.log('\n## Upload throughput: skipped (set S3_TEST_ENDPOINT, S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY)');
    return undefined;
  }
  const bucket = `nss3-bench-upload-${Date.now().toString(36)}`;
  const partSize = 8 * MIB;
  const queueSize = 4;
  const { media } = resolveStorageOptions({
    media: { bucket, endpoint: server.endpoint, region: server.region, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey }, partSize, queueSize, overwrite: true },
  });
  const client = createS3Client(media);
  const storage = new MediaStorage(client, media, createMediaSigner(media, client));
  const raw = rawS3Client(server);
  await ensureBucket(client, media, 'create', 10_000);
  const pool = Array.from({ length: 16 }, () => randomBytes(MIB));
  const total = sizeMiB * MIB;
  const ours: number[] = [];
  const sdk: number[] = [];
  const timed = async (fn: () => Promise<unknown>): Promise<number> => {
    const start = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - start) / 1e9;
  };
  try {
    for (let round = 0; round < rounds; round++) {
      ours.push(await timed(() => storage.save('bench/ours.bin', source(total, pool))));
      await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'bench/ours.bin' }));
      sdk.push(
        await timed(() =>
          new Upload({ client: raw, params: { Bucket: bucket, Key: 'bench/sdk.bin', Body: source(total, pool) }, partSize, queueSize }).done(),
        ),
      );
      await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'bench/sdk.bin' }));
    }
  } finally {
    client.destroy();
    raw.destroy();
    await dropBucket(server, bucket);
  }
  // Median of the rounds: one slow round on a shared 2-core machine should not decide.
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const oursMiBps = sizeMiB / median(ours);
  const sdkMiBps = sizeMiB / median(sdk);
  const ratio = oursMiBps / sdkMiBps;
  console.log(`\n## Upload throughput: ${sizeMiB} MiB stream of unknown length, part ${partSize / MIB} MiB x ${queueSize}, ${rounds} alternating rounds (median)\n`);
  console.log(
    table([
      ['uploader', 'seconds per round', 'MiB/s', 'ratio vs SDK'],
      ['MediaStorage.save()', ours.map((s) => s.toFixed(2)).join(' / '), oursMiBps, ratio],
      ['lib-storage Upload (AWS SDK)', sdk.map((s) => s.toFixed(2)).join(' / '), sdkMiBps, 1],
    ]),
  );
  console.log(`target: ratio >= 0.95 -> ${ratio >= 0.95 ? 'met' : 'NOT MET'}`);
  return { oursMiBps, sdkMiBps, ratio };
}
