/**
 * The one place environment variables are read: the seed's names mapped to module options.
 * Free of Nest imports, so the CLI starts fast; `storage.config.ts` wraps it for @nestjs/config.
 */
import { checkStorageName } from './storage-name.js';
import type { CloudFrontOptions, StorageCredentials, StorageModuleOptions } from './storage-module-options.interface.js';

/** Environment variables read by {@link storageOptionsFromEnv}, with what they set. */
export const STORAGE_ENV = {
  MEDIA_S3_BUCKET_NAME: 'media.bucket',
  MEDIA_S3_ACCESS_KEY: 'media.credentials.accessKeyId',
  MEDIA_S3_SECRET_KEY: 'media.credentials.secretAccessKey',
  MEDIA_S3_SESSION_TOKEN: 'media.credentials.sessionToken',
  MEDIA_S3_ENDPOINT_URL: 'media.endpoint',
  MEDIA_S3_URL_ENDPOINT_URL: 'media.publicEndpoint',
  MEDIA_S3_REGION: 'media.region',
  MEDIA_S3_LOCATION: 'media.location',
  MEDIA_S3_URL_EXPIRES_IN: 'media.urlExpiresIn',
  MEDIA_S3_CUSTOM_DOMAIN: 'media.customDomain',
  MEDIA_S3_URL_CACHE_WINDOW: 'media.urlCacheWindow',
  MEDIA_S3_CLOUDFRONT_DOMAIN: 'media.cloudfront.domain',
  MEDIA_S3_CLOUDFRONT_KEY_ID: 'media.cloudfront.keyPairId',
  MEDIA_S3_CLOUDFRONT_KEY: 'media.cloudfront.privateKey (PEM; \\n for line breaks)',
  MEDIA_S3_CORS_ORIGINS: 'media.cors.allowedOrigins (comma-separated)',
  MEDIA_S3_LIFECYCLE: 'media.lifecycle (true or false)',
  MEDIA_S3_TIMEOUT: 'media.timeout (ms)',
  MEDIA_S3_MAX_ATTEMPTS: 'media.maxAttempts',
  AWS_STORAGE_BUCKET_NAME: 'static.bucket',
  AWS_ACCESS_KEY_ID: 'static.credentials.accessKeyId',
  AWS_SECRET_ACCESS_KEY: 'static.credentials.secretAccessKey',
  AWS_SESSION_TOKEN: 'static.credentials.sessionToken',
  AWS_S3_REGION: 'static.region (AWS_S3_REGION_NAME also accepted)',
  AWS_S3_ENDPOINT_URL: 'static.endpoint',
  AWS_S3_URL_ENDPOINT_URL: 'static.publicEndpoint',
  AWS_S3_CUSTOM_DOMAIN: 'static.customDomain',
  AWS_LOCATION: 'static.location',
  AWS_S3_PUBLIC_READ: 'static.publicRead (true or false)',
  STATIC_URL: 'static.url (Django\'s STATIC_URL, e.g. /static/)',
  STORAGE_ENSURE_BUCKET: 'ensureBucket',
} as const;

type Env = Record<string, string | undefined>;

/**
 * Module options from environment variables (see {@link STORAGE_ENV}).
 *
 * `media` reads `MEDIA_S3_*`. When `MEDIA_S3_BUCKET_NAME` is unset but
 * `AWS_STORAGE_BUCKET_NAME` is set (the seed's "static on S3 too" setup), media shares the
 * `AWS_*` connection (keys and session token included) under the `media/` prefix. `static` is configured only when
 * `AWS_STORAGE_BUCKET_NAME` is set. Invalid values are passed through for validation to
 * report, never silently dropped.
 */
export function storageOptionsFromEnv(env: Env = process.env): StorageModuleOptions {
  const { value, number } = readers(env);
  const awsConnection = value('AWS_STORAGE_BUCKET_NAME') && {
    bucket: value('AWS_STORAGE_BUCKET_NAME') as string,
    endpoint: value('AWS_S3_ENDPOINT_URL'),
    region: value('AWS_S3_REGION') ?? value('AWS_S3_REGION_NAME'),
    credentials: credentials(value('AWS_ACCESS_KEY_ID'), value('AWS_SECRET_ACCESS_KEY'), value('AWS_SESSION_TOKEN')),
  };

  const mediaBucket = value('MEDIA_S3_BUCKET_NAME');
  const media: StorageModuleOptions['media'] =
    mediaBucket === undefined && awsConnection
      ? { ...awsConnection, location: value('MEDIA_S3_LOCATION') ?? 'media' }
      : prefixedConnection('MEDIA', value);
  Object.assign(media, prefixedMediaSettings('MEDIA', value, number));

  const options: StorageModuleOptions = {
    media: dropUndefined(media),
    static: awsConnection
      ? dropUndefined({
          ...awsConnection,
          publicEndpoint: value('AWS_S3_URL_ENDPOINT_URL'),
          customDomain: value('AWS_S3_CUSTOM_DOMAIN'),
          location: value('AWS_LOCATION'),
          url: value('STATIC_URL'),
          publicRead: flag(value('AWS_S3_PUBLIC_READ')),
        })
      : undefined,
    ensureBucket: value('STORAGE_ENSURE_BUCKET') as StorageModuleOptions['ensureBucket'],
  };
  return dropUndefined(options);
}

/**
 * Options of the named storage `name` from `<NAME>_S3_*` variables, with the suffixes
 * `MEDIA_S3_*` has (`<NAME>` is the name upper-cased, `-` as `_`: `invoices` reads
 * `INVOICES_S3_BUCKET_NAME`, …). A named storage has no static files and no `AWS_*` fallback;
 * `STORAGE_ENSURE_BUCKET` applies to it as to the unnamed one.
 */
export function namedStorageOptionsFromEnv(name: string, env: Env = process.env): StorageModuleOptions {
  const { value, number } = readers(env);
  const prefix = storageEnvPrefix(name);
  const media = Object.assign(prefixedConnection(prefix, value), prefixedMediaSettings(prefix, value, number));
  return dropUndefined({ media: dropUndefined(media), ensureBucket: value('STORAGE_ENSURE_BUCKET') as StorageModuleOptions['ensureBucket'] });
}

/** The variables' prefix for a storage: `MEDIA` for the unnamed one, `INVOICES` for `'invoices'`, `EXPORTS_V2` for `'exports-v2'`. */
export function storageEnvPrefix(name?: string): string {
  return name === undefined ? 'MEDIA' : checkStorageName(name).toUpperCase().replace(/-/g, '_');
}

type Value = (name: string) => string | undefined;
type NumberValue = (name: string) => number | undefined;

/** Trimmed values, an empty one as unset; numbers as `Number(…)` so validation sees what was written. */
function readers(env: Env): { value: Value; number: NumberValue } {
  const value = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === '' ? undefined : v;
  };
  const number = (name: string): number | undefined => {
    const v = value(name);
    return v === undefined ? undefined : Number(v);
  };
  return { value, number };
}

function prefixedConnection(prefix: string, value: Value): StorageModuleOptions['media'] {
  return {
    bucket: value(`${prefix}_S3_BUCKET_NAME`) as string,
    endpoint: value(`${prefix}_S3_ENDPOINT_URL`),
    region: value(`${prefix}_S3_REGION`),
    credentials: credentials(value(`${prefix}_S3_ACCESS_KEY`), value(`${prefix}_S3_SECRET_KEY`), value(`${prefix}_S3_SESSION_TOKEN`)),
    location: value(`${prefix}_S3_LOCATION`),
  };
}

function prefixedMediaSettings(prefix: string, value: Value, number: NumberValue): Partial<StorageModuleOptions['media']> {
  const p = `${prefix}_S3_`;
  const origins = value(`${p}CORS_ORIGINS`);
  return {
    publicEndpoint: value(`${p}URL_ENDPOINT_URL`),
    urlExpiresIn: number(`${p}URL_EXPIRES_IN`),
    customDomain: value(`${p}CUSTOM_DOMAIN`),
    urlCacheWindow: number(`${p}URL_CACHE_WINDOW`),
    cloudfront: cloudfront(value(`${p}CLOUDFRONT_DOMAIN`), value(`${p}CLOUDFRONT_KEY_ID`), value(`${p}CLOUDFRONT_KEY`)),
    timeout: number(`${p}TIMEOUT`),
    maxAttempts: number(`${p}MAX_ATTEMPTS`),
    cors: origins === undefined ? undefined : { allowedOrigins: origins.split(',').map((o) => o.trim()).filter(Boolean) },
    lifecycle: flag(value(`${p}LIFECYCLE`)),
  };
}

/** `true`/`false` (any case) as booleans; anything else passed through for validation to name. */
function flag(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  const lower = v.toLowerCase();
  if (lower === 'true' || lower === 'false') return lower === 'true';
  return v as unknown as boolean;
}

/**
 * Keys with their session token: temporary credentials (Lambda, CodeBuild, GitHub OIDC,
 * `aws sts …`) are refused without it. None of the three set: the SDK's provider chain.
 */
function credentials(
  accessKeyId: string | undefined,
  secretAccessKey: string | undefined,
  sessionToken: string | undefined,
): StorageCredentials | undefined {
  if (accessKeyId === undefined && secretAccessKey === undefined && sessionToken === undefined) return undefined;
  // A part without the rest is a mistake: keep the keys (empty) so validation names the missing one.
  const keys = { accessKeyId: accessKeyId ?? '', secretAccessKey: secretAccessKey ?? '' };
  return sessionToken === undefined ? keys : { ...keys, sessionToken };
}

function cloudfront(domain: string | undefined, keyPairId: string | undefined, privateKey: string | undefined): CloudFrontOptions | undefined {
  if (domain === undefined && keyPairId === undefined && privateKey === undefined) return undefined;
  // Keep all three (missing ones empty) so validation names what is missing.
  return { domain: domain ?? '', keyPairId: keyPairId ?? '', privateKey: (privateKey ?? '').replace(/\\n/g, '\n') };
}

function dropUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

/** The variables that configure each part of one storage, for messages that tell the user what to set. */
export interface StorageEnvNames {
  bucket: string;
  accessKey: string;
  secretKey: string;
  sessionToken: string;
  endpoint: string;
  publicEndpoint: string;
  region: string;
  location: string;
  customDomain: string;
  cors?: string;
  lifecycle?: string;
  publicRead?: string;
}

/**
 * Which variables {@link storageOptionsFromEnv} / {@link namedStorageOptionsFromEnv} read for
 * `which`: media's connection comes from `AWS_*` when it shares the static one.
 */
export function storageEnvNames(which: 'media' | 'static' | { name: string }, env: Env = process.env): StorageEnvNames {
  const aws = {
    bucket: 'AWS_STORAGE_BUCKET_NAME',
    accessKey: 'AWS_ACCESS_KEY_ID',
    secretKey: 'AWS_SECRET_ACCESS_KEY',
    sessionToken: 'AWS_SESSION_TOKEN',
    endpoint: 'AWS_S3_ENDPOINT_URL',
    region: 'AWS_S3_REGION',
  };
  if (which === 'static') {
    return { ...aws, publicEndpoint: 'AWS_S3_URL_ENDPOINT_URL', location: 'AWS_LOCATION', customDomain: 'AWS_S3_CUSTOM_DOMAIN', publicRead: 'AWS_S3_PUBLIC_READ' };
  }
  const p = `${storageEnvPrefix(which === 'media' ? undefined : which.name)}_S3_`;
  const { value } = readers(env);
  const shared = which === 'media' && value('MEDIA_S3_BUCKET_NAME') === undefined && value('AWS_STORAGE_BUCKET_NAME') !== undefined;
  const own = { bucket: `${p}BUCKET_NAME`, accessKey: `${p}ACCESS_KEY`, secretKey: `${p}SECRET_KEY`, sessionToken: `${p}SESSION_TOKEN`, endpoint: `${p}ENDPOINT_URL`, region: `${p}REGION` };
  return {
    ...(shared ? aws : own),
    publicEndpoint: `${p}URL_ENDPOINT_URL`,
    location: `${p}LOCATION`,
    customDomain: `${p}CUSTOM_DOMAIN`,
    cors: `${p}CORS_ORIGINS`,
    lifecycle: `${p}LIFECYCLE`,
  };
}
