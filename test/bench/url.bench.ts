/**
 * URLs per second: `MediaStorage.url()` against `getSignedUrl` from
 * @aws-sdk/s3-request-presigner, on the same keys, same credentials, one process, one run;
 * then with a warm cache window; then CloudFront `url()` against `@aws-sdk/cloudfront-signer`'s
 * `getSignedUrl` per URL, without and with a window. No network: everything signs locally.
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl as getCloudFrontSignedUrl } from '@aws-sdk/cloudfront-signer';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { generateKeyPairSync } from 'node:crypto';
import { createMediaSigner, createS3Client, MediaStorage, resolveStorageOptions, type MediaStorageOptions } from 'nestjs-s3-storage';
import { table, timeIt } from './bench-util.js';

export interface UrlBenchResult {
  oursPerSecond: number;
  sdkPerSecond: number;
  ratio: number;
  /** Warm cache window against getSignedUrl. */
  windowRatio: number;
  /** CloudFront url() against cloudfront-signer's getSignedUrl per URL. */
  cloudFrontRatio: number;
  cloudFrontWindowRatio: number;
}

/** Alternates rounds of `a` and `b` so neither gets a warmer machine; returns ops/s of each. */
async function compare(
  a: { ops: number; fn: (i: number) => unknown },
  b: { ops: number; fn: (i: number) => unknown },
): Promise<{ a: number; b: number; aOps: number; bOps: number }> {
  let aOps = 0;
  let bOps = 0;
  let aSeconds = 0;
  let bSeconds = 0;
  for (let round = 0; round < 3; round++) {
    const x = await timeIt(a.ops, round === 0 ? Math.ceil(a.ops / 10) : 0, a.fn);
    const y = await timeIt(b.ops, round === 0 ? Math.ceil(b.ops / 10) : 0, b.fn);
    aOps += x.ops;
    aSeconds += x.seconds;
    bOps += y.ops;
    bSeconds += y.seconds;
  }
  return { a: aOps / aSeconds, b: bOps / bSeconds, aOps, bOps };
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

  // A warm cache window: every key signed once (the warm-up), then served from the cache.
  const windowed = storageWith({ urlCacheWindow: 3600 });
  const sdk2 = new S3Client({
    endpoint: 'http://localhost:9000',
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  for (const key of keys) await windowed.storage.url(key);
  const w = await compare(
    { ops: 300_000, fn: (i) => windowed.storage.url(keys[i % keys.length]!) },
    { ops: 3_000, fn: (i) => getSignedUrl(sdk2, new GetObjectCommand({ Bucket: 'media', Key: `media/${keys[i % keys.length]!}` }), { expiresIn: 3600 }) },
  );
  windowed.destroy();
  sdk2.destroy();
  const windowRatio = w.a / w.b;
  console.log('\n## Stable signed URLs (urlCacheWindow 3600, warm) vs getSignedUrl per URL\n');
  console.log(
    table([
      ['signer', 'URLs', 'URLs/s', 'us/URL', 'ratio vs SDK'],
      ['MediaStorage.url(), warm window', w.aOps, w.a, 1e6 / w.a, windowRatio],
      ['getSignedUrl (AWS SDK)', w.bOps, w.b, 1e6 / w.b, 1],
    ]),
  );
  console.log(`target: ratio >= 100 -> ${windowRatio >= 100 ? 'met' : 'NOT MET'}`);

  // CloudFront: the SDK's signer parses the PEM on every call; ours parsed it at start-up.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  const cloudfront = { domain: 'd111111abcdef8.cloudfront.net', keyPairId: 'K2JCJMDEHXQW5F', privateKey };
  const cf = storageWith({ cloudfront });
  const cfWindowed = storageWith({ cloudfront, urlCacheWindow: 3600 });
  const sdkCloudFront = (i: number) =>
    getCloudFrontSignedUrl({
      url: `https://${cloudfront.domain}/media/${encodeURIComponent(keys[i % keys.length]!)}`,
      keyPairId: cloudfront.keyPairId,
      privateKey,
      dateLessThan: new Date(Date.now() + 3600_000),
    });
  const c = await compare({ ops: 3_000, fn: (i) => cf.storage.url(keys[i % keys.length]!) }, { ops: 1_000, fn: sdkCloudFront });
  for (const key of keys) await cfWindowed.storage.url(key);
  const cw = await compare({ ops: 300_000, fn: (i) => cfWindowed.storage.url(keys[i % keys.length]!) }, { ops: 1_000, fn: sdkCloudFront });
  cf.destroy();
  cfWindowed.destroy();
  const cloudFrontRatio = c.a / c.b;
  const cloudFrontWindowRatio = cw.a / cw.b;
  console.log('\n## CloudFront-signed URLs vs @aws-sdk/cloudfront-signer getSignedUrl per URL\n');
  console.log(
    table([
      ['signer', 'URLs', 'URLs/s', 'us/URL', 'ratio vs SDK'],
      ['MediaStorage.url(), CloudFront', c.aOps, c.a, 1e6 / c.a, cloudFrontRatio],
      ['getSignedUrl (cloudfront-signer)', c.bOps, c.b, 1e6 / c.b, 1],
      ['MediaStorage.url(), CloudFront, warm window', cw.aOps, cw.a, 1e6 / cw.a, cloudFrontWindowRatio],
      ['getSignedUrl (cloudfront-signer)', cw.bOps, cw.b, 1e6 / cw.b, 1],
    ]),
  );
  console.log(`target: ratio >= 2.5 without a window -> ${cloudFrontRatio >= 2.5 ? 'met' : 'NOT MET'}`);
  console.log(`target: ratio >= 100 with a warm window -> ${cloudFrontWindowRatio >= 100 ? 'met' : 'NOT MET'}`);
  return { oursPerSecond, sdkPerSecond, ratio, windowRatio, cloudFrontRatio, cloudFrontWindowRatio };

  function storageWith(overrides: Partial<MediaStorageOptions>): { storage: MediaStorage; destroy: () => void } {
    const { media: options } = resolveStorageOptions({
      media: { bucket: 'media', endpoint: 'http://minio:9000', publicEndpoint: 'http://localhost:9000', credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey }, location: 'media', ...overrides },
    });
    const c2 = createS3Client(options);
    return { storage: new MediaStorage(c2, options, createMediaSigner(options, c2)), destroy: () => c2.destroy() };
  }
}
