/**
 * `StorageHealthIndicator` (nestjs-s3-storage/terminus) against the real server, through
 * terminus's own `HealthCheckService`: one HeadBucket per check, a short reason when down,
 * within the timeout, and never the endpoint or a secret in the result.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Logger, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckService, TerminusModule, type HealthCheckResult } from '@nestjs/terminus';
import { Test, type TestingModule } from '@nestjs/testing';
import { StorageConfigurationError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import { getMediaS3ClientToken } from '../../lib/storage-tokens.js';
import { StorageHealthIndicator, StorageHealthModule } from '../../lib/terminus.js';
import { blackhole, closedPort } from '../harness/net.js';
import { createTestBucket, deleteTestBucket, itRequires, mediaOptions, s3, uniqueBucket } from '../harness/s3-test-env.js';

let bucket: string;
let invoicesBucket: string;
beforeAll(async () => {
  [bucket, invoicesBucket] = await Promise.all([createTestBucket('health'), createTestBucket('health-inv')]);
});
afterAll(async () => {
  await Promise.all([deleteTestBucket(bucket), deleteTestBucket(invoicesBucket)]);
});

const refs: TestingModule[] = [];
afterEach(async () => {
  jest.restoreAllMocks();
  for (const ref of refs.splice(0)) await ref.close();
});

interface App {
  ref: TestingModule;
  health: HealthCheckService;
  indicator: StorageHealthIndicator;
  /** HTTP attempts per command name, counted per attempt (inside the SDK's retries). */
  sent: string[];
}

type StorageRoot = Parameters<typeof StorageModule.forRoot>[0];

async function app(storages: StorageRoot[], how: 'providers' | 'module' = 'providers'): Promise<App> {
  const ref = await Test.createTestingModule({
    imports: [...storages.map((o) => StorageModule.forRoot({ ensureBucket: 'off', ...o })), ...(how === 'module' ? [StorageHealthModule] : [TerminusModule])],
    providers: how === 'providers' ? [StorageHealthIndicator] : [],
  }).compile();
  refs.push(ref);
  await ref.init();
  const sent: string[] = [];
  for (const o of storages) {
    const client = ref.get<S3Client>(getMediaS3ClientToken(o.name), { strict: false });
    if (client.middlewareStack.identify().some((m) => m.startsWith('nss3HealthCounter'))) continue; // a shared client
    client.middlewareStack.add(
      (next, context) => async (args) => {
        sent.push(String(context.commandName));
        return next(args);
      },
      { step: 'deserialize', name: 'nss3HealthCounter' },
    );
  }
  return { ref, health: ref.get(HealthCheckService), indicator: ref.get(StorageHealthIndicator), sent };
}

/** terminus answers 503 by throwing; its response is the same result shape. */
async function check(health: HealthCheckService, fns: Parameters<HealthCheckService['check']>[0]): Promise<{ ok: boolean; result: HealthCheckResult }> {
  try {
    return { ok: true, result: await health.check(fns) };
  } catch (error) {
    if (!(error instanceof ServiceUnavailableException)) throw error;
    return { ok: false, result: error.getResponse() as HealthCheckResult };
  }
}

describe('StorageHealthIndicator', () => {
  it('up: one HeadBucket, no list, status up with the bucket', async () => {
    const { health, indicator, sent } = await app([{ media: mediaOptions(bucket) }]);
    const { ok, result } = await check(health, [() => indicator.isHealthy('media')]);
    expect(ok).toBe(true);
    expect(result.status).toBe('ok');
    expect(result.details).toEqual({ media: { status: 'up', bucket } });
    expect(sent).toEqual(['HeadBucketCommand']);
  });

  it('missing bucket: down with NoSuchBucket and the bucket, after one HeadBucket', async () => {
    const missing = uniqueBucket('health-missing');
    const { health, indicator, sent } = await app([{ media: mediaOptions(missing) }]);
    const { ok, result } = await check(health, [() => indicator.isHealthy('media')]);
    expect(ok).toBe(false);
    expect(result.status).toBe('error');
    expect(result.error).toEqual({ media: { status: 'down', bucket: missing, reason: 'NoSuchBucket', message: 'Storage unavailable (NoSuchBucket); the server log has the details.' } });
    expect(sent).toEqual(['HeadBucketCommand']);
  });

  itRequires('signatures', 'wrong secret: down with AccessDenied, and neither secret in the result', async () => {
    const wrong = 'wrong-secret-' + 'x'.repeat(20);
    const { health, indicator } = await app([{ media: mediaOptions(bucket, { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: wrong } }) }]);
    const { ok, result } = await check(health, [() => indicator.isHealthy('media')]);
    expect(ok).toBe(false);
    expect(result.error?.media).toMatchObject({ status: 'down', bucket, reason: 'AccessDenied' });
    expect(JSON.stringify(result)).not.toContain(wrong);
    expect(JSON.stringify(result)).not.toContain(s3.secretAccessKey);
  });

  it('unreachable endpoint: down in time, endpoint only in the log, never in the result', async () => {
    const port = await closedPort();
    const endpoint = `127.0.0.1:${port}`;
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { health, indicator } = await app([{ media: mediaOptions(bucket, { endpoint: `http://${endpoint}` }) }]);
    const started = Date.now();
    const { ok, result } = await check(health, [() => indicator.isHealthy('media', { timeout: 3000 })]);
    expect(Date.now() - started).toBeLessThan(3000 + 2000);
    expect(ok).toBe(false);
    expect(result.error?.media).toMatchObject({ status: 'down', bucket, reason: 'unreachable' });
    const json = JSON.stringify(result);
    expect(json).not.toContain(endpoint);
    expect(json).not.toContain(String(port));
    expect(json).not.toContain(s3.secretAccessKey);
    const logged = warn.mock.calls.map((c) => String(c[0])).filter((m) => m.includes(bucket));
    expect(logged.some((m) => m.includes(endpoint) && m.includes('unreachable'))).toBe(true);
    expect(logged.join('\n')).not.toContain(s3.secretAccessKey);
  });

  it('an endpoint that never answers: down with reason timeout, within the timeout', async () => {
    const hole = await blackhole();
    try {
      const { health, indicator } = await app([{ media: mediaOptions(bucket, { endpoint: `http://127.0.0.1:${hole.port}` }) }]);
      const started = Date.now();
      const { ok, result } = await check(health, [() => indicator.isHealthy('media', { timeout: 2000 })]);
      const elapsed = Date.now() - started;
      expect(ok).toBe(false);
      expect(result.error?.media).toMatchObject({ status: 'down', bucket, reason: 'timeout' });
      expect(elapsed).toBeGreaterThanOrEqual(1900);
      expect(elapsed).toBeLessThan(2000 + 2000);
      expect(JSON.stringify(result)).not.toContain(String(hole.port));
    } finally {
      hole.close();
    }
  });

  it('a named storage is checked by name; without `storage`, the unnamed one', async () => {
    const missing = uniqueBucket('health-unnamed');
    const { health, indicator, sent } = await app([{ media: mediaOptions(missing) }, { name: 'invoices', media: mediaOptions(invoicesBucket) }]);
    const { ok, result } = await check(health, [() => indicator.isHealthy('invoices', { storage: 'invoices' }), () => indicator.isHealthy('media')]);
    expect(ok).toBe(false);
    expect(result.info).toEqual({ invoices: { status: 'up', bucket: invoicesBucket } });
    expect(result.error).toEqual({ media: expect.objectContaining({ status: 'down', bucket: missing, reason: 'NoSuchBucket' }) });
    expect(sent).toEqual(['HeadBucketCommand', 'HeadBucketCommand']);
  });

  it('an unregistered storage name is a configuration error that names it', async () => {
    const { indicator } = await app([{ media: mediaOptions(bucket) }]);
    const attempt = indicator.isHealthy('reports', { storage: 'reports' });
    await expect(attempt).rejects.toThrow(StorageConfigurationError);
    await expect(indicator.isHealthy('reports', { storage: 'reports' })).rejects.toThrow('storage "reports" is not registered');
    await expect(indicator.isHealthy('media', { timeout: 0 })).rejects.toThrow('timeout must be a positive number');
  });

  it('StorageHealthModule gives the indicator and HealthCheckService in one import', async () => {
    const { health, indicator, sent } = await app([{ media: mediaOptions(bucket) }], 'module');
    const { ok, result } = await check(health, [() => indicator.isHealthy('storage')]);
    expect(ok).toBe(true);
    expect(result.info).toEqual({ storage: { status: 'up', bucket } });
    expect(sent).toEqual(['HeadBucketCommand']);
  });
});
