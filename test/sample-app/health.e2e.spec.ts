/** `GET /health` (terminus + StorageHealthIndicator): 200 when the bucket answers, 503 when the storage is down or the bucket is gone. */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { HEALTH_TIMEOUT_MS } from '../../sample-app/src/health/health.controller.js';
import { closedPort } from '../harness/net.js';
import { createTestBucket, deleteTestBucket, s3, uniqueBucket } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from './app-fixture.js';

let bucket: string;
const apps: SampleApp[] = [];

beforeAll(async () => {
  bucket = await createTestBucket('sample-health');
});

afterAll(async () => {
  for (const app of apps) await app.close();
  await deleteTestBucket(bucket);
});

async function start(env: Record<string, string>): Promise<SampleApp> {
  const app = await startSampleApp(env);
  apps.push(app);
  return app;
}

describe('GET /health', () => {
  it('answers 200 with the bucket when the storage is reachable', async () => {
    const app = await start(mediaEnv(bucket));
    const res = await request(app.app.getHttpServer()).get('/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok', info: { storage: { status: 'up', bucket } }, error: {}, details: { storage: { status: 'up', bucket } } });
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('answers 503 in time, with a reason but neither the internal endpoint nor a secret, when the storage is unreachable', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    // ensureBucket off: the app must start without storage to report on it.
    const app = await start({ ...mediaEnv(bucket), MEDIA_S3_ENDPOINT_URL: endpoint, STORAGE_ENSURE_BUCKET: 'off' });
    const started = Date.now();
    const res = await request(app.app.getHttpServer()).get('/health');
    expect(Date.now() - started).toBeLessThan(HEALTH_TIMEOUT_MS + 2000);
    expect(res.status).toBe(503);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      status: 'error',
      info: {},
      error: { storage: { status: 'down', bucket, reason: 'unreachable', message: 'Storage unavailable (unreachable); the server log has the details.' } },
      details: { storage: { status: 'down', bucket, reason: 'unreachable', message: 'Storage unavailable (unreachable); the server log has the details.' } },
    });
    expect(JSON.stringify(res.body)).not.toContain(new URL(endpoint).host);
    expect(JSON.stringify(res.body)).not.toContain(endpoint);
    expect(JSON.stringify(res.body)).not.toContain(s3.secretAccessKey);
  });

  it('answers 503 when the bucket does not exist', async () => {
    const missing = uniqueBucket('sample-missing');
    const app = await start({ ...mediaEnv(missing), STORAGE_ENSURE_BUCKET: 'off' });
    const res = await request(app.app.getHttpServer()).get('/health');
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ status: 'error', error: { storage: { status: 'down', reason: 'NoSuchBucket', bucket: missing } } });
  });
});
