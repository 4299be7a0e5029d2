/**
 * Bucket settings the library owns: lifecycle rules (media), a CORS rule (media) and a
 * public-read policy statement (static). One rule for all three: read the bucket's current
 * configuration, replace only the rules and statements carrying our IDs/Sids, and write it
 * back only when that changed something. Rules others put there (another app, another named
 * storage sharing the bucket, a console click) are kept as they were.
 *
 * The read-modify-write is not atomic (S3 has no conditional PUT for bucket configuration).
 * Within one process the settings of a bucket are applied one storage at a time; two
 * processes applying different settings to one bucket at the same instant can lose one
 * write. Applying the same settings concurrently is harmless; a re-run converges.
 */
import {
  GetBucketCorsCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketPolicyCommand,
  PutBucketCorsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketPolicyCommand,
  type CORSRule,
  type LifecycleRule,
  type S3Client,
  type TransitionDefaultMinimumObjectSize,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { PENDING_PREFIX } from './direct-uploads.js';
import { codeOf, isNetworkError, isTimeout, statusOf } from './s3-errors.js';
import { BucketBootstrapError } from './storage.errors.js';
import type { StorageCorsRule } from './storage-module-options.interface.js';
import type { ResolvedLifecycleOptions, ResolvedMediaOptions, ResolvedStaticOptions } from './storage-options.validation.js';

/** The settings to apply to one bucket; absent parts are left alone. */
export interface BucketSettings {
  /** Lifecycle rules for the media storage at `location`. */
  lifecycle?: ResolvedLifecycleOptions & { location: string };
  /** The CORS rule of the media storage at `location`. */
  cors?: Required<StorageCorsRule> & { location: string };
  /** Anonymous `s3:GetObject` on `<location>/*` (the static files). */
  publicRead?: { location: string };
}

/** Per kind of setting: written, already as wanted, or not configured. */
export type BucketSettingOutcome = 'updated' | 'unchanged' | 'skipped';

/** What {@link applyBucketSettings} did. */
export interface BucketSettingsResult {
  lifecycle: BucketSettingOutcome;
  cors: BucketSettingOutcome;
  policy: BucketSettingOutcome;
}

/** The Sid of the public-read statement. */
export const PUBLIC_READ_SID = 'nestjs-s3-storage-static-public-read';
const ID_PREFIX = 'nestjs-s3-storage';

/** The settings a media storage asks of its bucket. */
export function mediaBucketSettings(media: Pick<ResolvedMediaOptions, 'location' | 'lifecycle' | 'cors'>): BucketSettings {
  return {
    lifecycle: media.lifecycle && { ...media.lifecycle, location: media.location },
    cors: media.cors && { ...media.cors, location: media.location },
  };
}

/** The settings the static storage asks of its bucket. */
export function staticBucketSettings(st: Pick<ResolvedStaticOptions, 'location' | 'publicRead'>): BucketSettings {
  return { publicRead: st.publicRead ? { location: st.location } : undefined };
}

/** Both storages' settings, for a bucket they share. */
export function mergeBucketSettings(a: BucketSettings, b: BucketSettings): BucketSettings {
  return { lifecycle: a.lifecycle ?? b.lifecycle, cors: a.cors ?? b.cors, publicRead: a.publicRead ?? b.publicRead };
}

/** True when `settings` asks for anything. */
export function hasBucketSettings(settings: BucketSettings): boolean {
  return Boolean(settings.lifecycle || settings.cors || settings.publicRead);
}

/**
 * Applies `settings` to `bucket`, merged with what is there (see the file comment).
 * @throws BucketBootstrapError naming the permission or setting to fix.
 */
export async function applyBucketSettings(
  client: S3Client,
  bucket: string,
  settings: BucketSettings,
  endpoint: string,
  timeoutMs: number,
): Promise<BucketSettingsResult> {
  return serialized(`${endpoint} ${bucket}`, async () => {
    const ctx = { client, bucket, endpoint, options: { abortSignal: AbortSignal.timeout(timeoutMs) }, timeoutMs };
    return {
      lifecycle: settings.lifecycle ? await applyLifecycle(ctx, settings.lifecycle) : 'skipped',
      cors: settings.cors ? await applyCorsRule(ctx, settings.cors) : 'skipped',
      policy: settings.publicRead ? await applyPublicRead(ctx, settings.publicRead.location) : 'skipped',
    };
  });
}

/**
 * Two callers in one process applying settings to one bucket at once (two apps booting side by
 * side, storages sharing a bucket, direct calls) would both read the same configuration, and
 * the second write would drop the first one's rules: one bucket's settings go one at a time.
 */
const queues = new Map<string, Promise<unknown>>();
function serialized<T>(key: string, run: () => Promise<T>): Promise<T> {
  const previous = queues.get(key) ?? Promise.resolve();
  const next = previous.then(run, run);
  const settled = next.catch(() => undefined);
  queues.set(key, settled);
  void settled.then(() => {
    if (queues.get(key) === settled) queues.delete(key);
  });
  return next;
}

/**
 * Puts the CORS rule of a media storage at the bucket root on the bucket, merged by rule ID
 * with the rules already there (kept for compatibility; the bootstrap uses {@link applyBucketSettings}).
 */
export async function applyCors(client: S3Client, bucket: string, rule: Required<StorageCorsRule>, endpoint: string, timeoutMs: number): Promise<void> {
  await applyBucketSettings(client, bucket, { cors: { ...rule, location: '' } }, endpoint, timeoutMs);
}

interface Ctx {
  client: S3Client;
  bucket: string;
  endpoint: string;
  options: { abortSignal: AbortSignal };
  timeoutMs: number;
}

/** `nestjs-s3-storage-<what>` for the bucket root, `…:<location>` under a prefix (hashed past S3's 255-character ID limit). */
export function settingId(what: string, location: string): string {
  const id = location === '' ? `${ID_PREFIX}-${what}` : `${ID_PREFIX}-${what}:${location}`;
  return id.length <= 255 ? id : `${ID_PREFIX}-${what}:sha256-${createHash('sha256').update(location).digest('hex')}`;
}

/** The two lifecycle rules, scoped to the storage's location (never bucket-wide unless the location is the root). */
export function lifecycleRules(lifecycle: ResolvedLifecycleOptions & { location: string }): LifecycleRule[] {
  const base = lifecycle.location === '' ? '' : `${lifecycle.location}/`;
  return [
    {
      ID: settingId('abort-incomplete-multipart', lifecycle.location),
      Status: 'Enabled',
      Filter: { Prefix: base },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: lifecycle.abortIncompleteMultipartUploadDays },
    },
    {
      ID: settingId('expire-pending', lifecycle.location),
      Status: 'Enabled',
      Filter: { Prefix: `${base}${PENDING_PREFIX}/` },
      Expiration: { Days: lifecycle.expirePendingDays },
    },
  ];
}

async function applyLifecycle(ctx: Ctx, lifecycle: ResolvedLifecycleOptions & { location: string }): Promise<BucketSettingOutcome> {
  const wanted = lifecycleRules(lifecycle);
  let current: LifecycleRule[];
  // A bucket-wide setting beside the rules (AWS): written back as it was, or the PUT would reset it.
  let minimumSize: TransitionDefaultMinimumObjectSize | undefined;
  try {
    const out = await ctx.client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: ctx.bucket }), ctx.options);
    current = out.Rules ?? [];
    minimumSize = out.TransitionDefaultMinimumObjectSize;
  } catch (error) {
    if (codeOf(error) !== 'NoSuchLifecycleConfiguration') throw settingError(ctx, 'read the lifecycle rules', 's3:GetLifecycleConfiguration', 'media.lifecycle', error);
    current = [];
  }
  const merged = mergeById(current, wanted, (r) => r.ID, sameLifecycleRule);
  if (!merged) return 'unchanged';
  try {
    await ctx.client.send(
      new PutBucketLifecycleConfigurationCommand({ Bucket: ctx.bucket, LifecycleConfiguration: { Rules: merged }, TransitionDefaultMinimumObjectSize: minimumSize }),
      ctx.options,
    );
  } catch (error) {
    throw settingError(ctx, 'apply the lifecycle rules', 's3:PutLifecycleConfiguration', 'media.lifecycle', error);
  }
  return 'updated';
}

/** The default methods include PUT and `ETag` is exposed: browsers uploading parts need both. */
export function corsRule(cors: Required<StorageCorsRule> & { location: string }): CORSRule {
  return {
    ID: settingId('cors', cors.location),
    AllowedOrigins: [...cors.allowedOrigins],
    AllowedMethods: [...cors.allowedMethods],
    AllowedHeaders: [...cors.allowedHeaders],
    ExposeHeaders: [...cors.exposeHeaders],
    MaxAgeSeconds: cors.maxAgeSeconds,
  };
}

async function applyCorsRule(ctx: Ctx, cors: Required<StorageCorsRule> & { location: string }): Promise<BucketSettingOutcome> {
  const wanted = [corsRule(cors)];
  let current: CORSRule[];
  try {
    const out = await ctx.client.send(new GetBucketCorsCommand({ Bucket: ctx.bucket }), ctx.options);
    current = out.CORSRules ?? [];
  } catch (error) {
    if (codeOf(error) !== 'NoSuchCORSConfiguration') throw settingError(ctx, 'read the CORS configuration', 's3:GetBucketCORS', 'media.cors', error);
    current = [];
  }
  const merged = mergeById(current, wanted, (r) => r.ID, sameCorsRule);
  if (!merged) return 'unchanged';
  try {
    await ctx.client.send(new PutBucketCorsCommand({ Bucket: ctx.bucket, CORSConfiguration: { CORSRules: merged } }), ctx.options);
  } catch (error) {
    throw settingError(ctx, 'apply the CORS rule', 's3:PutBucketCORS', 'media.cors', error);
  }
  return 'updated';
}

interface PolicyStatement {
  Sid?: string;
  Effect?: string;
  Principal?: unknown;
  Action?: string | string[];
  Resource?: string | string[];
  [k: string]: unknown;
}

/** Anonymous reads of the static location only: never the bucket, never another prefix. */
export function publicReadStatement(bucket: string, location: string): PolicyStatement {
  return { Sid: PUBLIC_READ_SID, Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/${location}/*` };
}

async function applyPublicRead(ctx: Ctx, location: string): Promise<BucketSettingOutcome> {
  const wanted = publicReadStatement(ctx.bucket, location);
  let text: string | undefined;
  try {
    text = (await ctx.client.send(new GetBucketPolicyCommand({ Bucket: ctx.bucket }), ctx.options)).Policy;
  } catch (error) {
    if (codeOf(error) !== 'NoSuchBucketPolicy') throw settingError(ctx, 'read the bucket policy', 's3:GetBucketPolicy', 'static.publicRead', error);
  }
  let policy: { Version?: string; Statement?: PolicyStatement | PolicyStatement[]; [k: string]: unknown } = {};
  try {
    if (text) policy = JSON.parse(text) as typeof policy;
  } catch (error) {
    // Never overwrite a policy we cannot read: it would drop every statement in it.
    throw new BucketBootstrapError('failed', 'the bucket policy is not valid JSON, so the public-read statement was not merged in; fix or delete the policy', {
      bucket: ctx.bucket,
      endpoint: ctx.endpoint,
      cause: error,
    });
  }
  const statements = policy.Statement === undefined ? [] : Array.isArray(policy.Statement) ? policy.Statement : [policy.Statement];
  const merged = mergeById(statements, [wanted], (s) => s.Sid, sameStatement);
  if (!merged) return 'unchanged';
  const body = JSON.stringify({ ...policy, Version: policy.Version ?? '2012-10-17', Statement: merged });
  try {
    await ctx.client.send(new PutBucketPolicyCommand({ Bucket: ctx.bucket, Policy: body }), ctx.options);
  } catch (error) {
    throw settingError(
      ctx,
      'apply the public-read policy for static files',
      's3:PutBucketPolicy',
      'static.publicRead',
      error,
      // AWS refuses public policies while Block Public Access is on (the default for new buckets).
      '; on AWS, also lift Block Public Access for this bucket (BlockPublicPolicy and RestrictPublicBuckets false), or set static.publicRead false and serve static files through a CDN',
    );
  }
  return 'updated';
}

/**
 * `current` with every item whose id is one of `wanted`'s replaced by it (in place, or
 * appended), or undefined when that changes nothing. Items with other ids, or none, stay.
 */
function mergeById<T>(current: T[], wanted: T[], id: (item: T) => string | undefined, same: (a: T, b: T) => boolean): T[] | undefined {
  const wantedIds = new Set(wanted.map(id));
  const ours = current.filter((item) => wantedIds.has(id(item)));
  const unchanged = ours.length === wanted.length && wanted.every((w) => ours.some((o) => id(o) === id(w) && same(o, w)));
  if (unchanged) return undefined;
  return [...current.filter((item) => !wantedIds.has(id(item))), ...wanted];
}

function sameLifecycleRule(a: LifecycleRule, b: LifecycleRule): boolean {
  return JSON.stringify(lifecycleShape(a)) === JSON.stringify(lifecycleShape(b));
}

/** What a rule does, whichever way the server spells its filter. */
function lifecycleShape(rule: LifecycleRule): unknown {
  const legacyPrefix = (rule as { Prefix?: string }).Prefix;
  return {
    status: rule.Status,
    prefix: rule.Filter?.Prefix ?? rule.Filter?.And?.Prefix ?? legacyPrefix ?? '',
    tags: rule.Filter?.Tag ?? rule.Filter?.And?.Tags ?? null,
    abort: rule.AbortIncompleteMultipartUpload?.DaysAfterInitiation ?? null,
    expire: rule.Expiration?.Days ?? null,
    expireDate: rule.Expiration?.Date ?? null,
    transitions: rule.Transitions?.length ?? 0,
    noncurrent: rule.NoncurrentVersionExpiration?.NoncurrentDays ?? null,
  };
}

function sameCorsRule(a: CORSRule, b: CORSRule): boolean {
  const shape = (r: CORSRule) => ({
    origins: sorted(r.AllowedOrigins),
    methods: sorted(r.AllowedMethods?.map((m) => m.toUpperCase())),
    headers: sorted(r.AllowedHeaders?.map((h) => h.toLowerCase())),
    expose: sorted(r.ExposeHeaders?.map((h) => h.toLowerCase())),
    maxAge: r.MaxAgeSeconds ?? null,
  });
  return JSON.stringify(shape(a)) === JSON.stringify(shape(b));
}

function sameStatement(a: PolicyStatement, b: PolicyStatement): boolean {
  const principal = (p: unknown): unknown => {
    // "*" and { AWS: "*" } / { AWS: ["*"] } mean the same: anyone.
    if (p && typeof p === 'object' && 'AWS' in p && Object.keys(p).length === 1) {
      const aws = (p as { AWS: unknown }).AWS;
      return Array.isArray(aws) ? sorted(aws as string[]) : [aws];
    }
    return Array.isArray(p) ? sorted(p as string[]) : [p];
  };
  const list = (v: string | string[] | undefined) => sorted(v === undefined ? [] : Array.isArray(v) ? v : [v]);
  const { Sid: _a, Effect: ea, Principal: pa, Action: aa, Resource: ra, ...restA } = a;
  const { Sid: _b, Effect: eb, Principal: pb, Action: ab, Resource: rb, ...restB } = b;
  return (
    ea === eb &&
    JSON.stringify(principal(pa)) === JSON.stringify(principal(pb)) &&
    JSON.stringify(list(aa)) === JSON.stringify(list(ab)) &&
    JSON.stringify(list(ra)) === JSON.stringify(list(rb)) &&
    Object.keys(restA).length === 0 &&
    Object.keys(restB).length === 0
  );
}

function sorted(values: readonly string[] | undefined): string[] {
  return [...(values ?? [])].sort();
}

const UNSUPPORTED = new Set(['NotImplemented', 'MethodNotAllowed']);

function settingError(ctx: Ctx, what: string, permission: string, option: string, error: unknown, hint = ''): BucketBootstrapError {
  const status = statusOf(error);
  const code = codeOf(error);
  const detail = [code, status && `HTTP ${status}`].filter(Boolean).join(', ') || 'no answer';
  const context = { bucket: ctx.bucket, endpoint: ctx.endpoint, cause: error };
  if (ctx.options.abortSignal.aborted || isTimeout(error)) {
    return new BucketBootstrapError('timeout', `could not ${what}: no answer within ${ctx.timeoutMs} ms (bootstrapTimeout sets the limit)`, context);
  }
  if (isNetworkError(error)) {
    return new BucketBootstrapError('unreachable', `could not ${what}: the endpoint is unreachable`, context);
  }
  if (status === 501 || status === 405 || (code && UNSUPPORTED.has(code))) {
    return new BucketBootstrapError(
      'failed',
      `could not ${what} (${detail}): this server does not support it; set ${option} to false here (or ensureBucket to "off") and configure the bucket by hand`,
      context,
    );
  }
  return new BucketBootstrapError(
    status === 403 ? 'access-denied' : 'failed',
    `could not ${what} (${detail}); the policy needs ${permission}${status === 403 ? hint : ''}`,
    context,
  );
}
