/**
 * A `@nestjs/terminus` health indicator for a storage's bucket. It lives behind the
 * `nestjs-s3-storage/terminus` entry so the main entry never loads `@nestjs/terminus` (an
 * optional peer).
 *
 * One HeadBucket per check, never a list: it proves the endpoint, the credentials and the
 * bucket at the cost of one tiny request, without reading anyone's objects. The result
 * names the bucket and a short reason; the endpoint goes only to the server log, because a
 * health endpoint is often public and the storage's internal address is not its business.
 */
import { Injectable, Logger } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { describeEndpoint } from './s3-client.factory.js';
import { codeOf, isNetworkError, isNotFound, statusOf } from './s3-errors.js';
import { StorageConfigurationError } from './storage.errors.js';
import type { ResolvedStorageOptions } from './storage-options.validation.js';
import { getMediaS3ClientToken, getStorageOptionsToken } from './storage-tokens.js';

/** Options of {@link StorageHealthIndicator.isHealthy}. */
export interface StorageHealthCheckOptions {
  /**
   * The name of the storage to check, as given to `StorageModule.forRoot({ name })`.
   * @default undefined (the unnamed storage)
   */
  storage?: string;
  /**
   * Milliseconds the HeadBucket may take before the storage counts as down (reason
   * `'timeout'`). Keep it under your probe's own timeout.
   * @default 3000
   */
  timeout?: number;
}

/** @default timeout of {@link StorageHealthCheckOptions} */
export const STORAGE_HEALTH_TIMEOUT_MS = 3000;

/**
 * Why a storage is down, short and safe to show anyone: `'timeout'`, `'unreachable'`,
 * `'NoSuchBucket'`, `'AccessDenied'`, another S3 error code, or `'HTTP <status>'`.
 */
export type StorageHealthReason = string;

/** What the indicator adds next to `status` in a storage's result. */
export interface StorageHealthDetails {
  bucket: string;
  /** Only when down. */
  reason?: StorageHealthReason;
  /** Only when down: a sentence for a person, without the endpoint. */
  message?: string;
}

interface Target {
  client: S3Client;
  bucket: string;
  endpoint: string;
}

/**
 * `health.check([() => storageHealth.isHealthy('media')])`. List it in `providers` next to an
 * imported `TerminusModule`, or import `StorageHealthModule`.
 */
@Injectable()
export class StorageHealthIndicator {
  private readonly logger = new Logger('StorageHealth');

  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly healthIndicatorService: HealthIndicatorService,
  ) {}

  /**
   * Sends one HeadBucket to the storage's bucket and reports it under `key`: `up` with the
   * bucket, or `down` with the bucket and a short reason. Never throws for a storage that
   * is down; throws {@link StorageConfigurationError} when no such storage is registered.
   */
  async isHealthy<const Key extends string>(key: Key, options: StorageHealthCheckOptions = {}): Promise<HealthIndicatorResult<Key>> {
    const timeout = options.timeout ?? STORAGE_HEALTH_TIMEOUT_MS;
    if (!Number.isFinite(timeout) || timeout <= 0) {
      throw new StorageConfigurationError([`health check timeout must be a positive number of milliseconds, got ${String(timeout)}`]);
    }
    const target = this.resolve(options.storage);
    const indicator = this.healthIndicatorService.check(key);
    const reason = await headBucket(target, timeout, this.logger);
    if (reason === undefined) return indicator.up({ bucket: target.bucket });
    return indicator.down({ bucket: target.bucket, reason, message: `Storage unavailable (${reason}); the server log has the details.` });
  }

  /** Looked up on every check, so the indicator works wherever it is listed and whatever was registered after it. */
  private resolve(name: string | undefined): Target {
    const label = name === undefined ? 'the unnamed storage' : `storage "${name}"`;
    // The module registers a storage's client and its options together.
    const client = this.find<S3Client>(getMediaS3ClientToken(name));
    const options = this.find<ResolvedStorageOptions>(getStorageOptionsToken(name));
    if (!client || !options) {
      throw new StorageConfigurationError(
        [`${label} is not registered: import StorageModule.forRoot${name === undefined ? '' : `({ name: '${name}', … })`} in the application`],
        'StorageHealthIndicator cannot check a storage',
      );
    }
    return { client, bucket: options.media.bucket, endpoint: describeEndpoint(options.media) };
  }

  private find<T>(token: string | symbol | (abstract new (...args: never[]) => unknown)): T | undefined {
    try {
      return this.moduleRef.get<T>(token as string, { strict: false });
    } catch {
      return undefined;
    }
  }
}

/** The reason the bucket is not healthy, or undefined when it answered. */
async function headBucket({ client, bucket, endpoint }: Target, timeoutMs: number, logger: Logger): Promise<StorageHealthReason | undefined> {
  const deadline = AbortSignal.timeout(timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  // The abort signal ends the request; the timer bounds what the signal cannot reach (a
  // credential provider that hangs before any request is sent).
  const overdue = new Promise<'overdue'>((resolve) => {
    timer = setTimeout(() => resolve('overdue'), timeoutMs + 50);
  });
  try {
    const outcome = await Promise.race([client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: deadline }), overdue]);
    if (outcome !== 'overdue') return undefined;
    logger.warn(`Bucket "${bucket}" at ${endpoint} did not answer HeadBucket within ${timeoutMs} ms`);
    return 'timeout';
  } catch (error) {
    const reason = deadline.aborted ? 'timeout' : reasonOf(error);
    // Name and code only: an SDK error's message can quote the request.
    const detail = error instanceof Error ? `${error.name}${codeOf(error) ? ` ${codeOf(error)}` : ''}` : String(error);
    logger.warn(`Bucket "${bucket}" at ${endpoint} is unhealthy (${reason}): HeadBucket failed with ${detail}${statusOf(error) ? ` (HTTP ${statusOf(error)})` : ''}`);
    return reason;
  } finally {
    clearTimeout(timer);
  }
}

function reasonOf(error: unknown): StorageHealthReason {
  const status = statusOf(error);
  const code = codeOf(error);
  // HeadBucket answers have no body, so the SDK only knows the status: name it as S3 would.
  if (isNotFound(error) || code === 'NoSuchBucket') return 'NoSuchBucket';
  if (status === 403 || code === 'AccessDenied' || code === 'Forbidden') return 'AccessDenied';
  if (status === undefined && isNetworkError(error)) return 'unreachable';
  if (code === 'TimeoutError' || code === 'RequestTimeout') return 'timeout';
  if (code && /^[A-Za-z]{1,64}$/.test(code)) return code;
  return status !== undefined ? `HTTP ${status}` : 'unexpected';
}
