/**
 * The start-up bucket check (the seed's `ensure_s3_bucket`): one HeadBucket when the bucket
 * exists, a CreateBucket when it is missing and `ensureBucket` is `'create'`. Many app
 * instances may race to create it: "already owned by you" is success. Bounded in time:
 * start-up fails after `bootstrapTimeout` ms with an error naming endpoint and bucket.
 */
import { CreateBucketCommand, HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import {
  applyBucketSettings,
  hasBucketSettings,
  mediaBucketSettings,
  mergeBucketSettings,
  staticBucketSettings,
  type BucketSettings,
  type BucketSettingsResult,
} from './bucket-settings.js';
import { describeEndpoint } from './s3-client.factory.js';
import { codeOf, isNetworkError, isNotFound, isTimeout, statusOf } from './s3-errors.js';
import { MEDIA_S3_CLIENT, STATIC_S3_CLIENT, STORAGE_OPTIONS } from './storage.constants.js';
import { BucketBootstrapError } from './storage.errors.js';
import type { EnsureBucketMode } from './storage-module-options.interface.js';
import type { ResolvedConnectionOptions, ResolvedStorageOptions } from './storage-options.validation.js';

/** What {@link ensureBucket} found or did. */
export type EnsureBucketResult = 'exists' | 'created' | 'skipped';

const OWNED = new Set(['BucketAlreadyOwnedByYou']);
const IN_PROGRESS = new Set(['OperationAborted', 'ConflictingOperationInProgress']);

/**
 * Makes sure the bucket of `connection` exists, per `mode`.
 * @throws BucketBootstrapError with `reason` unreachable, access-denied, missing, timeout, name-taken or failed.
 */
export async function ensureBucket(
  client: S3Client,
  connection: Pick<ResolvedConnectionOptions, 'bucket' | 'endpoint' | 'region'>,
  mode: EnsureBucketMode,
  timeoutMs: number,
): Promise<EnsureBucketResult> {
  if (mode === 'off') return 'skipped';
  const { bucket } = connection;
  const context = { bucket, endpoint: describeEndpoint(connection) };
  const deadline = AbortSignal.timeout(timeoutMs);
  const options = { abortSignal: deadline };

  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }), options);
        return 'exists';
      } catch (error) {
        if (!isNotFound(error) && codeOf(error) !== 'NoSuchBucket') throw error;
      }
      if (mode === 'check') {
        throw new BucketBootstrapError('missing', 'the bucket does not exist (ensureBucket is "check"; create it, or use "create")', context);
      }
      try {
        const region = connection.region;
        await client.send(
          new CreateBucketCommand({
            Bucket: bucket,
            // us-east-1 is the one region that must not be named in CreateBucket.
            CreateBucketConfiguration: region && region !== 'us-east-1' ? { LocationConstraint: region as never } : undefined,
          }),
          options,
        );
        return 'created';
      } catch (error) {
        const code = codeOf(error);
        if (code && OWNED.has(code)) return 'exists';
        // Another instance is creating it right now: look again.
        if (code && IN_PROGRESS.has(code) && attempt < 20) {
          await delay(100 * (attempt + 1), deadline);
          continue;
        }
        // Some servers answer a concurrent create of our own bucket with BucketAlreadyExists:
        // if we can see the bucket, it is ours to use.
        if (code === 'BucketAlreadyExists' && (await canSee(client, bucket, options))) return 'exists';
        if (code === 'BucketAlreadyExists') {
          throw new BucketBootstrapError('name-taken', 'the bucket name is taken by another account; choose another name', {
            ...context,
            cause: error,
          });
        }
        throw error;
      }
    }
  } catch (error) {
    throw classify(error, deadline, timeoutMs, context);
  }
}

async function canSee(client: S3Client, bucket: string, options: { abortSignal: AbortSignal }): Promise<boolean> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }), options);
    return true;
  } catch {
    return false;
  }
}

function classify(error: unknown, deadline: AbortSignal, timeoutMs: number, context: { bucket: string; endpoint: string }): BucketBootstrapError {
  if (error instanceof BucketBootstrapError) return error;
  const ctx = { ...context, cause: error };
  if (isNetworkError(error)) {
    return new BucketBootstrapError('unreachable', 'the endpoint is unreachable (is the S3 server running, and is the endpoint right?)', ctx);
  }
  if (deadline.aborted || isTimeout(error)) {
    return new BucketBootstrapError(
      'timeout',
      `the endpoint did not answer within ${timeoutMs} ms (unreachable or stalled; bootstrapTimeout sets the limit)`,
      ctx,
    );
  }
  const status = statusOf(error);
  const code = codeOf(error);
  if (status === 403) {
    return new BucketBootstrapError(
      'access-denied',
      `access denied${code && code !== 'Forbidden' ? ` (${code})` : ''}: check the access key and secret key, and that the policy allows s3:ListBucket (and s3:CreateBucket for ensureBucket "create")`,
      ctx,
    );
  }
  if (status === 301) {
    return new BucketBootstrapError('failed', 'the bucket lives in another region: set region to the bucket\'s region', ctx);
  }
  return new BucketBootstrapError('failed', `the bucket check failed (${[code, status && `HTTP ${status}`].filter(Boolean).join(', ') || 'unknown error'})`, ctx);
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export { applyCors } from './bucket-settings.js';

/**
 * One bucket's whole bootstrap, as the start-up hook and `ensure-bucket` run it: the bucket
 * check, then its settings, both within `timeoutMs` together.
 * @returns what the check found, and which settings were written (undefined: none, or unchanged)
 */
export async function ensureTarget(
  client: S3Client,
  connection: ResolvedConnectionOptions,
  settings: BucketSettings,
  mode: EnsureBucketMode,
  timeoutMs: number,
): Promise<{ result: EnsureBucketResult; settings: boolean; updated?: string }> {
  const started = Date.now();
  const result = await ensureBucket(client, connection, mode, timeoutMs);
  if (mode === 'off' || !hasBucketSettings(settings)) return { result, settings: false };
  const left = Math.max(1, timeoutMs - (Date.now() - started));
  const applied = await applyBucketSettings(client, connection.bucket, settings, describeEndpoint(connection), left);
  return { result, settings: true, updated: describeUpdated(applied) };
}

/** Runs {@link ensureBucket} for each configured bucket when the application boots. */
@Injectable()
export class StorageBootstrap implements OnApplicationBootstrap {
  private readonly logger = new Logger('nestjs-s3-storage');

  constructor(
    @Inject(STORAGE_OPTIONS) private readonly options: ResolvedStorageOptions,
    @Inject(MEDIA_S3_CLIENT) private readonly mediaClient: S3Client,
    @Inject(STATIC_S3_CLIENT) private readonly staticClient: S3Client | null,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const { ensureBucket: mode, bootstrapTimeout } = this.options;
    await Promise.all(
      bootstrapTargets(this.options, this.mediaClient, this.staticClient).map(async ({ client, connection, settings }) => {
        const { result, updated } = await ensureTarget(client, connection, settings, mode, bootstrapTimeout);
        if (result === 'created') this.logger.log(`Created bucket "${connection.bucket}" at ${describeEndpoint(connection)}`);
        if (updated) this.logger.log(`Updated ${updated} of bucket "${connection.bucket}" at ${describeEndpoint(connection)}`);
      }),
    );
  }
}

/** One bootstrap target per distinct bucket, with the settings every storage on it asks for. */
export interface BootstrapTarget<C> {
  client: C;
  connection: ResolvedConnectionOptions;
  settings: BucketSettings;
}

/**
 * The buckets to check and the settings to apply: media's, and static's unless it shares the
 * media bucket (then its settings join media's). `which` narrows it for `ensure-bucket --media|--static`.
 */
export function bootstrapTargets<C>(options: ResolvedStorageOptions, mediaClient: C, staticClient: C | null, which: 'media' | 'static' | 'both' = 'both'): BootstrapTarget<C>[] {
  const { media } = options;
  const st = options.static;
  const targets: BootstrapTarget<C>[] = [];
  if (which !== 'static') targets.push({ client: mediaClient, connection: media, settings: mediaBucketSettings(media) });
  if (which !== 'media' && st && staticClient) {
    const shared = targets.find((t) => t.connection.bucket === st.bucket && t.connection.endpoint === st.endpoint);
    if (shared) shared.settings = mergeBucketSettings(shared.settings, staticBucketSettings(st));
    else targets.push({ client: staticClient, connection: st, settings: staticBucketSettings(st) });
  }
  return targets;
}

/** "lifecycle rules and bucket policy", or '' when nothing was written. */
export function describeUpdated(result: BucketSettingsResult): string {
  const names = { lifecycle: 'lifecycle rules', cors: 'CORS rule', policy: 'bucket policy' } as const;
  const updated = (Object.keys(names) as (keyof typeof names)[]).filter((k) => result[k] === 'updated').map((k) => names[k]);
  return updated.length <= 1 ? (updated[0] ?? '') : `${updated.slice(0, -1).join(', ')} and ${updated.at(-1)}`;
}
