/**
 * URLs per second: `MediaStorage.url()` against `getSignedUrl` from
 * @aws-sdk/s3-request-presigner, on the same keys, same credentials, one process, one run.
 * No network: both sign locally.
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createMediaSigner, createS3Client, MediaStorage, resolveStorageOptions } from 'nestjs-s3-storage';
import { table, timeIt } from './bench-util.js';

export interface UrlBenchResult {
  oursPerSecond: number;
  sdkPerSecond: number;
  ratio: number;
}

export async function runUrlBench(): Promise<UrlBenchResult> {
  const credentials = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
  const { media } = resolveStorageOptions({
    media: { bucket: 'media', endpoint: 'http://minio:9000', publicEndpoint: 'http://localhost:9000', credentials, location: 'media' },
  });
  const client = createS3Client(media);
  const storage = new MediaStorage(client, media, createMediaSigner(media, client));
  // The raw SDK, configured the way a careful user would for the browser host.
  const sdk = new S3Client({
    endpoint: 'http://localhost:9000',
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const keys = Array.from({ length: 1000 }, (_, i) => `avatars/${i % 97}/photo ${i} ü+%.png`);

  // Alternate rounds so neither side gets a warmer machine.
  let ours = 0;
  let theirs = 0;
  let oursSeconds = 0;
  let theirsSeconds = 0;
  for (let round = 0; round < 3; round++) {
    const a = await timeIt(20_000, round === 0 ? 2_000 : 0, (i) => storage.url(keys[i % keys.length]!, { expiresIn: 3600 }));
    const b = await timeIt(3_000, round === 0 ? 300 : 0, (i) =>
      getSignedUrl(sdk, new GetObjectCommand({ Bucket: 'media', Key: `media/${keys[i % keys.length]!}` }), { expiresIn: 3600 }),
    );
    ours += a.ops;
    oursSeconds += a.seconds;
    theirs += b.ops;
    theirsSeconds += b.seconds;
  }
  client.destroy();
  sdk.destroy();
  const oursPerSecond = ours / oursSeconds;
  const sdkPerSecond = theirs / theirsSeconds;
  const ratio = oursPerSecond / sdkPerSecond;
  console.log('\n## Signed URLs (no network; same keys, same credentials)\n');
  console.log(
    table([
      ['signer', 'URLs', 'URLs/s', 'us/URL', 'ratio vs SDK'],
      ['MediaStorage.url()', ours, oursPerSecond, 1e6 / oursPerSecond, ratio],
      ['getSignedUrl (AWS SDK)', theirs, sdkPerSecond, 1e6 / sdkPerSecond, 1],
    ]),
  );
  console.log(`target: ratio >= 10 -> ${ratio >= 10 ? 'met' : 'NOT MET'}`);
  return { oursPerSecond, sdkPerSecond, ratio };
}
