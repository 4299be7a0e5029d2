/**
 * The sample app with its S3 server stalled or gone: every route answers 503 within the
 * configured time (never a hung request, never a 500), and serves again once S3 is back.
 * The app's storage options are the env-derived ones plus a short `timeout`, so the test
 * does not wait the 60 s default. (`storageConfig.KEY` is a string token, the same in lib/ and dist/.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { storageConfig } from '../../lib/storage.config.js';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { AppModule } from '../../sample-app/src/app.module.js';
import { HEALTH_TIMEOUT_MS } from '../../sample-app/src/health/health.controller.js';
import { createTestBucket, deleteTestBucket, mediaOptions, s3 } from '../harness/s3-test-env.js';
import { png } from '../sample-app/images.js';
import { FaultProxy } from './fault-proxy.js';
import { multipart, rawRequest, type RawResponse } from './http-raw.js';

const TIMEOUT = 1500;
let bucket: string;
let proxy: FaultProxy;
let app: INestApplication;
let port: number;

beforeAll(async () => {
  bucket = await createTestBucket('rel-app-faults');
  proxy = await FaultProxy.start(s3.endpoint);
  const moduleRef = await Test.createTestingModule({ imports: [AppModule.forRoot({ ignoreEnvFile: true })] })
    .overrideProvider(storageConfig.KEY)
    .useValue({ media: mediaOptions(bucket, { endpoint: proxy.endpoint, timeout: TIMEOUT }), ensureBucket: 'off' })
    .compile();
  app = moduleRef.createNestApplication({ logger: false });
  await app.listen(0, '127.0.0.1');
  port = (app.getHttpServer().address() as AddressInfo).port;
});
afterAll(async () => {
  await app?.close();
  await proxy?.close();
  await deleteTestBucket(bucket);
});

function upload(user: string): Promise<RawResponse> {
  const { body, contentType } = multipart([{ field: 'avatar', filename: 'a.png', contentType: 'image/png', data: png(16) }]);
  return rawRequest(port, 'POST', `/users/${user}/avatar`, { 'Content-Type': contentType, 'Content-Length': String(body.length) }, body);
}

// Routes answer 504 when storage timed out, 503 when it is unreachable; the health probe is
// 503 either way (what load balancers expect), after at most its own limit (its HeadBucket
// has its own timeout, not the storage's `timeout`).
const routes: [string, (user: string) => Promise<RawResponse>, number, { stalled: number; refused: number }][] = [
  ['POST /users/:id/avatar', upload, TIMEOUT, { stalled: 504, refused: 503 }],
  ['GET /users/:id/avatar?format=json', (u) => rawRequest(port, 'GET', `/users/${u}/avatar?format=json`, {}), TIMEOUT, { stalled: 504, refused: 503 }],
  ['DELETE /users/:id/avatar', (u) => rawRequest(port, 'DELETE', `/users/${u}/avatar`, {}), TIMEOUT, { stalled: 504, refused: 503 }],
  ['GET /health', () => rawRequest(port, 'GET', '/health', {}), HEALTH_TIMEOUT_MS, { stalled: 503, refused: 503 }],
];

describe.each([
  { fault: 'stalled' as const, apply: async () => proxy.stall() },
  { fault: 'refused' as const, apply: () => proxy.refuse() },
])('S3 $fault', ({ fault, apply }) => {
  it.each(routes)('%s answers 503/504 within its time limit, then works again once S3 is back', async (_route, send, limit, statuses) => {
    const user = `fault-${randomBytes(4).toString('hex')}`;
    await apply();
    let res: RawResponse;
    const t0 = Date.now();
    try {
      res = await send(user);
    } finally {
      await proxy.pass();
    }
    const ms = Date.now() - t0;
    expect(res.status).toBe(statuses[fault]);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    // /health answers in terminus's shape: the message is the storage indicator's.
    expect(String(_route === 'GET /health' ? (res.json?.error as { storage?: { message?: string } } | undefined)?.storage?.message : res.json?.message)).toMatch(/storage/i);
    expect(res.text).not.toContain(s3.secretAccessKey);
    // A stalled server costs the configured limit; a refusing one fails fast (retries only).
    expect(ms).toBeLessThan(limit + 1000);
    if (fault === 'stalled') expect(ms).toBeGreaterThanOrEqual(limit - 50);
    // Recovered: the same user can upload and fetch.
    expect((await upload(user)).status).toBe(201);
    expect((await rawRequest(port, 'GET', `/users/${user}/avatar?format=json`, {})).status).toBe(200);
  });
});
