/**
 * 200 concurrent avatar uploads through the sample app, distinct users, random sizes up to
 * the limit: every one answers 201, every stored object has the SHA-256 of what was sent,
 * and the app's connections to S3 stay within the agent's pool (`maxSockets`, default 64)
 * and are all closed on shutdown. The app reaches S3 through a pass-through proxy so its
 * sockets can be counted apart from every other test's.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DEFAULT_AVATAR_MAX_BYTES } from '../../sample-app/src/app.config.js';
import { createTestBucket, deleteTestBucket, rawClient } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from '../sample-app/app-fixture.js';
import { png } from '../sample-app/images.js';
import { FaultProxy } from './fault-proxy.js';
import { bucketContents } from './http-raw.js';

const UPLOADS = 200;
/** The pool bound documented for `maxSockets`. */
const MAX_SOCKETS = 64;
let bucket: string;
let proxy: FaultProxy;
let sample: SampleApp | undefined;
let raw: S3Client;

beforeAll(async () => {
  bucket = await createTestBucket('rel-load');
  raw = rawClient();
  proxy = await FaultProxy.start(mediaEnv(bucket).MEDIA_S3_ENDPOINT_URL!);
  sample = await startSampleApp({ ...mediaEnv(bucket), MEDIA_S3_ENDPOINT_URL: proxy.endpoint });
});
afterAll(async () => {
  await sample?.close();
  await proxy?.close();
  raw?.destroy();
  await deleteTestBucket(bucket); // memstore keeps ~500 MiB of avatars in RAM until then
});

/** ESTABLISHED TCP connections whose remote end is `port` (client sides only), from the kernel. */
function establishedTo(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 3 && f[2]!.endsWith(`:${hex}`) && f[3] === '01') n++;
    }
  }
  return n;
}

const sha256 = (b: Buffer | Uint8Array): string => createHash('sha256').update(b).digest('hex');

it(`${UPLOADS} concurrent avatar uploads: all 201, every object byte-identical, no 5xx, sockets within maxSockets and none left after shutdown`, async () => {
  // Sizes spread over the whole range, the exact limit included.
  const sizes = Array.from({ length: UPLOADS }, (_, i) => (i === 0 ? DEFAULT_AVATAR_MAX_BYTES : randomInt(1024, DEFAULT_AVATAR_MAX_BYTES + 1)));
  const users = sizes.map((_, i) => `load${i}-${randomBytes(3).toString('hex')}`);
  const images = sizes.map((size) => png(8, size));
  proxy.resetPeak();
  let kernelPeak = 0;
  const sampler = setInterval(() => (kernelPeak = Math.max(kernelPeak, establishedTo(proxy.port))), 10);
  const t0 = Date.now();
  const responses = await Promise.all(
    images.map(async (image, i) => {
      const body = new FormData();
      body.append('avatar', new Blob([image], { type: 'image/png' }), `a${i}.png`);
      const res = await fetch(`${sample!.baseUrl}/users/${users[i]}/avatar`, { method: 'POST', body, signal: AbortSignal.timeout(120_000) });
      return { status: res.status, body: (await res.json()) as { key?: string } };
    }),
  );
  const ms = Date.now() - t0;
  clearInterval(sampler);
  const megabytes = sizes.reduce((a, b) => a + b, 0) / 1024 / 1024;
  console.log(`${UPLOADS} uploads, ${megabytes.toFixed(0)} MiB in ${ms} ms; S3 connections at most ${proxy.peak} (proxy) / ${kernelPeak} (kernel)`);

  expect(responses.filter((r) => r.status >= 500)).toEqual([]);
  expect(responses.map((r) => r.status)).toEqual(Array(UPLOADS).fill(201));
  // Each user has exactly one avatar, and its bytes are exactly the ones that user sent.
  const keys = responses.map((r, i) => {
    expect(r.body.key).toMatch(new RegExp(`^avatars/${users[i]}/[^/]+\\.png$`));
    return r.body.key!;
  });
  expect((await bucketContents(raw, bucket)).keys).toEqual([...keys].sort());
  for (let i = 0; i < keys.length; i += 16) {
    await Promise.all(
      keys.slice(i, i + 16).map(async (key, j) => {
        const out = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        expect([key, sha256(await out.Body!.transformToByteArray())]).toEqual([key, sha256(images[i + j]!)]);
      }),
    );
  }
  // The pool is bounded, and it was really used (not one socket doing everything in turn).
  expect(proxy.peak).toBeLessThanOrEqual(MAX_SOCKETS);
  expect(kernelPeak).toBeLessThanOrEqual(MAX_SOCKETS);
  expect(proxy.peak).toBeGreaterThan(1);

  await sample!.close();
  sample = undefined;
  // Shutdown destroys the client: no socket to S3 outlives the app.
  for (let waited = 0; (proxy.open > 0 || establishedTo(proxy.port) > 0) && waited < 3000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  expect(proxy.open).toBe(0);
  expect(establishedTo(proxy.port)).toBe(0);
}, 600_000);
