/**
 * Validates module options once, with class-validator, and fills in the defaults.
 * Every problem is collected; one {@link StorageConfigurationError} names each bad option
 * and how to fix it. Values of credentials are never quoted.
 */
import 'reflect-metadata';
import {
  ArrayNotEmpty,
  IsArray,
  IsBoolean,
  IsDate,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  ValidateBy,
  ValidateIf,
  ValidateNested,
  validateSync,
  type ValidationArguments,
  type ValidationError,
} from 'class-validator';
import { KeyObject } from 'node:crypto';
import { parseCloudFrontKey } from './cloudfront-signer.js';
import { normalizeName } from './key-normalizer.js';
import { InvalidKeyError, StorageConfigurationError, StorageError } from './storage.errors.js';
import { hasUserInfo, redactUserInfo } from './url-user-info.js';
import type {
  CloudFrontOptions,
  EnsureBucketMode,
  MediaStorageOptions,
  ObjectParameters,
  S3ConnectionOptions,
  StaticStorageOptions,
  StorageCannedAcl,
  StorageChecksumMode,
  StorageCorsRule,
  StorageCredentialProvider,
  StorageCredentials,
  StorageLifecycleOptions,
  StorageModuleOptions,
} from './storage-module-options.interface.js';

const MIB = 1024 * 1024;
/** SigV4 presigned URLs live at most seven days. */
export const MAX_URL_EXPIRES_IN = 604_800;

const ACLS: StorageCannedAcl[] = [
  'private',
  'public-read',
  'public-read-write',
  'authenticated-read',
  'aws-exec-read',
  'bucket-owner-read',
  'bucket-owner-full-control',
];
const URL_PATTERN = /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/;
const URL_HINT = 'must be an http(s) URL such as "http://minio:9000" or "https://s3.eu-west-1.amazonaws.com"';
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** A region is one DNS label of the endpoint host (the SDK refuses anything else at request time). */
const REGION_PATTERN = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const USER_INFO_HINT =
  'must not contain user-info ("user:password@" before the host; the value is not shown): URLs are printed in logs and error messages. ' +
  'Give S3 keys as credentials instead ({ accessKeyId, secretAccessKey }; MEDIA_S3_ACCESS_KEY / MEDIA_S3_SECRET_KEY, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for static files)';

/** A `(got …)` message for URL options: the value is quoted with any user-info redacted. */
function urlMessage(hint: string): (args: ValidationArguments) => string {
  return (args) => `${hint} (got ${typeof args.value === 'string' ? redactUserInfo(args.value) : String(args.value)})`;
}

/** Refuses user-info in a URL option, without quoting the value. Listed last, so it runs first. */
function NoUserInfo(): PropertyDecorator {
  return ValidateBy({
    name: 'noUserInfo',
    validator: { validate: (value: unknown) => typeof value !== 'string' || !hasUserInfo(value), defaultMessage: () => USER_INFO_HINT },
  });
}

/** The pattern lets through what `new URL` refuses (`http://h:99999`); the client would fail later with less to go on. */
function ParsesAsUrl(hint: string, assumeScheme = false): PropertyDecorator {
  return ValidateBy({
    name: 'parsesAsUrl',
    validator: {
      validate: (value: unknown) => typeof value !== 'string' || URL.canParse(assumeScheme && !/^https?:\/\//.test(value) ? `https://${value}` : value),
      defaultMessage: (args?: ValidationArguments) => `${hint}; it does not parse as a URL (got ${redactUserInfo(String(args?.value))})`,
    },
  });
}
// class-validator runs a property's decorators bottom-up and stopAtFirstError keeps the
// first failure, so each property lists its type check last.
const BUCKET_HINT =
  'must be a valid S3 bucket name: 3-63 characters, lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit';

class CredentialsSchema implements StorageCredentials {
  @IsNotEmpty({ message: 'must not be empty: set MEDIA_S3_ACCESS_KEY, or omit credentials to use the AWS provider chain' })
  @IsString({ message: 'must be a string (the access key id)' })
  accessKeyId!: string;

  @IsNotEmpty({ message: 'must not be empty: set MEDIA_S3_SECRET_KEY, or omit credentials to use the AWS provider chain' })
  @IsString({ message: 'must be a string' })
  secretAccessKey!: string;

  @IsString({ message: 'must be a string (the session token of temporary credentials)' })
  @IsOptional()
  sessionToken?: string;

  // The SDK's own fields: credentials a provider or an S3 client has handled carry them.
  @IsDate({ message: 'must be a Date (when the temporary credentials expire)' })
  @IsOptional()
  expiration?: Date;

  @IsString({ message: 'must be a string' })
  @IsOptional()
  credentialScope?: string;

  @IsString({ message: 'must be a string' })
  @IsOptional()
  accountId?: string;

  @IsObject({ message: 'must be an object (the AWS SDK\'s feature attribution)' })
  @IsOptional()
  $source?: Record<string, string | undefined>;
}

class ObjectParametersSchema implements ObjectParameters {
  @IsString({ message: 'must be a Cache-Control header value such as "max-age=86400"' })
  @IsOptional()
  cacheControl?: string;

  @IsString({ message: 'must be a Content-Disposition header value' })
  @IsOptional()
  contentDisposition?: string;

  @IsObject({ message: 'must be an object of string values' })
  @IsOptional()
  metadata?: Record<string, string>;
}

class CorsSchema implements StorageCorsRule {
  @IsString({ each: true, message: 'must be a list of origins such as ["http://localhost:3000"]' })
  @ArrayNotEmpty({ message: 'must list at least one origin, e.g. ["http://localhost:3000"]' })
  @IsArray({ message: 'must be a list of origins such as ["http://localhost:3000"]' })
  allowedOrigins!: string[];

  @IsIn(['GET', 'HEAD', 'POST', 'PUT', 'DELETE'], { each: true, message: 'must list methods among GET, HEAD, POST, PUT, DELETE' })
  @IsArray({ message: 'must be a list such as ["GET", "POST"]' })
  @IsOptional()
  allowedMethods?: StorageCorsRule['allowedMethods'];

  @IsString({ each: true, message: 'must be a list of header names' })
  @IsArray({ message: 'must be a list of header names' })
  @IsOptional()
  allowedHeaders?: string[];

  @IsString({ each: true, message: 'must be a list of header names' })
  @IsArray({ message: 'must be a list of header names' })
  @IsOptional()
  exposeHeaders?: string[];

  @Min(0, { message: 'must be 0 or more seconds' })
  @IsInt({ message: 'must be a whole number of seconds' })
  @IsOptional()
  maxAgeSeconds?: number;
}

class LifecycleSchema implements StorageLifecycleOptions {
  @Max(3650, { message: 'must be at most 3650 days' })
  @Min(1, { message: 'must be at least 1 day (S3 counts lifecycle ages in whole days)' })
  @IsInt({ message: 'must be a whole number of days, e.g. 7' })
  @IsOptional()
  abortIncompleteMultipartUploadDays?: number;

  @Max(3650, { message: 'must be at most 3650 days' })
  @Min(1, { message: 'must be at least 1 day (S3 counts lifecycle ages in whole days)' })
  @IsInt({ message: 'must be a whole number of days, e.g. 7' })
  @IsOptional()
  expirePendingDays?: number;
}

class CloudFrontSchema implements CloudFrontOptions {
  @Matches(/^(https?:\/\/)?[^\s/?#]+$/, { message: 'must be the distribution\'s domain such as "d111111abcdef8.cloudfront.net" (got $value)' })
  @IsString({ message: 'is required: the distribution\'s domain such as "d111111abcdef8.cloudfront.net" (MEDIA_S3_CLOUDFRONT_DOMAIN)' })
  domain!: string;

  @Matches(/^[A-Za-z0-9]+$/, { message: 'must be the id CloudFront shows for the public key, such as "K2JCJMDEHXQW5F" (got $value)' })
  @IsString({ message: 'is required: the id CloudFront shows for the public key (MEDIA_S3_CLOUDFRONT_KEY_ID)' })
  keyPairId!: string;

  // The value is a secret: no message quotes it.
  @IsNotEmpty({ message: 'is required: the PEM private key of the key pair (MEDIA_S3_CLOUDFRONT_KEY)' })
  @ValidateIf((o: CloudFrontSchema) => !(o.privateKey instanceof KeyObject))
  @IsString({ message: 'must be the PEM private key as a string, or a KeyObject from crypto.createPrivateKey (MEDIA_S3_CLOUDFRONT_KEY)' })
  privateKey!: string | KeyObject;
}

class ConnectionSchema implements S3ConnectionOptions {
  @Matches(BUCKET_PATTERN, { message: `${BUCKET_HINT} (got $value)` })
  @IsString({ message: `is required and ${BUCKET_HINT}` })
  bucket!: string;

  @ParsesAsUrl(URL_HINT)
  @Matches(URL_PATTERN, { message: urlMessage(URL_HINT) })
  @NoUserInfo()
  @IsOptional()
  endpoint?: string;

  @Matches(REGION_PATTERN, { message: 'must be a region name such as "us-east-1" (got $value)' })
  @IsOptional()
  region?: string;

  // A provider function is taken as it is; an object is checked by CredentialsSchema.
  @ValidateNested()
  @IsOptional()
  credentials?: StorageCredentials | StorageCredentialProvider;

  @IsBoolean({ message: 'must be true or false' })
  @IsOptional()
  forcePathStyle?: boolean;

  @IsIn(['when-required', 'when-supported'], { message: 'must be "when-required" or "when-supported" (got $value)' })
  @IsOptional()
  checksums?: StorageChecksumMode;

  @Min(1, { message: 'must be at least 1 ms' })
  @IsInt({ message: 'must be a whole number of milliseconds' })
  @IsOptional()
  requestTimeout?: number;

  @Min(0, { message: 'must be 0 (no limit) or more' })
  @IsInt({ message: 'must be a whole number of milliseconds' })
  @IsOptional()
  timeout?: number;

  @Min(1, { message: 'must be at least 1 ms' })
  @IsInt({ message: 'must be a whole number of milliseconds' })
  @IsOptional()
  connectionTimeout?: number;

  @Max(20, { message: 'must be at most 20' })
  @Min(1, { message: 'must be at least 1 (1 means no retries)' })
  @IsInt({ message: 'must be a whole number' })
  @IsOptional()
  maxAttempts?: number;

  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be a whole number' })
  @IsOptional()
  maxSockets?: number;
}

class MediaSchema extends ConnectionSchema implements MediaStorageOptions {
  @ParsesAsUrl(URL_HINT)
  @Matches(URL_PATTERN, { message: urlMessage(`${URL_HINT}; it is the host the browser uses, e.g. "http://localhost:9000"`) })
  @NoUserInfo()
  @IsOptional()
  publicEndpoint?: string;

  @IsString({ message: 'must be a key prefix string such as "media"' })
  @IsOptional()
  location?: string;

  @IsIn(ACLS, { message: `must be one of ${ACLS.join(', ')}, or omitted to keep objects private (got $value)` })
  @IsOptional()
  acl?: StorageCannedAcl;

  @IsBoolean({ message: 'must be true or false' })
  @IsOptional()
  overwrite?: boolean;

  @Max(MAX_URL_EXPIRES_IN, { message: `must be at most ${MAX_URL_EXPIRES_IN} seconds (7 days, the SigV4 limit)` })
  @Min(1, { message: 'must be at least 1 second' })
  @IsInt({ message: 'must be a whole number of seconds' })
  @IsOptional()
  urlExpiresIn?: number;

  @Max(MAX_URL_EXPIRES_IN, { message: `must be at most ${MAX_URL_EXPIRES_IN} seconds` })
  @Min(0, { message: 'must be 0 (off) or more seconds' })
  @IsInt({ message: 'must be a whole number of seconds (0 turns it off)' })
  @IsOptional()
  urlCacheWindow?: number;

  @ValidateNested()
  @IsObject({ message: 'must be an object such as { domain: "d111111abcdef8.cloudfront.net", keyPairId: "K2JCJMDEHXQW5F", privateKey: "-----BEGIN PRIVATE KEY-----…" }' })
  @IsOptional()
  cloudfront?: CloudFrontOptions;

  @IsBoolean({ message: 'must be true or false' })
  @IsOptional()
  signedUrls?: boolean;

  @ParsesAsUrl('must be a host or base URL such as "cdn.example.com"', true)
  @Matches(/^(https?:\/\/)?[^\s/?#]+(\/[^\s?#]*)?$/, {
    message: urlMessage('must be a host or base URL such as "cdn.example.com" or "https://cdn.example.com/media"'),
  })
  @NoUserInfo()
  @IsOptional()
  customDomain?: string;

  @ValidateNested()
  @IsOptional()
  objectParameters?: ObjectParameters;

  @ValidateNested()
  @IsObject({ message: 'must be an object such as { allowedOrigins: ["http://localhost:3000"] }' })
  @IsOptional()
  cors?: StorageCorsRule;

  @ValidateNested()
  @IsObject({ message: 'must be true, false or an object such as { abortIncompleteMultipartUploadDays: 7, expirePendingDays: 7 } (got $value)' })
  @ValidateIf((o: MediaSchema) => typeof o.lifecycle !== 'boolean')
  @IsOptional()
  lifecycle?: boolean | StorageLifecycleOptions;

  @Max(5 * 1024 * MIB, { message: 'must be at most 5 GiB (the S3 maximum part size)' })
  @Min(5 * MIB, { message: 'must be at least 5242880 bytes (5 MiB, the S3 minimum part size)' })
  @IsInt({ message: 'must be a whole number of bytes' })
  @IsOptional()
  partSize?: number;

  @Max(64, { message: 'must be at most 64' })
  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be a whole number' })
  @IsOptional()
  queueSize?: number;

  @Max(5 * 1024 * MIB, { message: 'must be at most 5368709120 bytes (5 GiB, the largest object one CopyObject copies)' })
  @Min(5 * MIB, { message: 'must be at least 5242880 bytes (5 MiB, the S3 minimum part size)' })
  @IsInt({ message: 'must be a whole number of bytes' })
  @IsOptional()
  multipartCopyThreshold?: number;
}

class StaticSchema extends ConnectionSchema implements StaticStorageOptions {
  @IsString({ message: 'must be a key prefix string such as "static"' })
  @IsOptional()
  location?: string;

  @ParsesAsUrl('must be a host or base URL such as "cdn.example.com"', true)
  @Matches(/^(https?:\/\/)?[^\s/?#]+(\/[^\s?#]*)?$/, {
    message: urlMessage('must be a host or base URL such as "cdn.example.com"'),
  })
  @NoUserInfo()
  @IsOptional()
  customDomain?: string;

  @ParsesAsUrl(URL_HINT)
  @Matches(URL_PATTERN, { message: urlMessage(URL_HINT) })
  @NoUserInfo()
  @IsOptional()
  publicEndpoint?: string;

  @Matches(/^[^/\\\s][^\\\s]*$/, { message: 'must be a file name such as "staticfiles.json"' })
  @IsOptional()
  manifestName?: string;

  @Matches(/^(\/|https?:\/\/[^\s/?#]+\/)([^\s?#]*\/)?$/, { message: 'must be a path or absolute URL ending in "/", such as "/static/" (Django\'s STATIC_URL)' })
  @IsOptional()
  url?: string;

  @IsBoolean({ message: 'must be true or false' })
  @IsOptional()
  manifestStrict?: boolean;

  @Max(256, { message: 'must be at most 256' })
  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be a whole number' })
  @IsOptional()
  concurrency?: number;

  @IsBoolean({ message: 'must be true or false (AWS_S3_PUBLIC_READ: "true" or "false")' })
  @IsOptional()
  publicRead?: boolean;
}

class ModuleSchema {
  @ValidateNested()
  @IsObject({ message: 'is required: pass { media: { bucket: "..." } } (or set MEDIA_S3_BUCKET_NAME with storageConfig)' })
  media!: MediaStorageOptions;

  @ValidateNested()
  @IsObject({ message: 'must be an object such as { bucket: "assets" }' })
  @IsOptional()
  static?: StaticStorageOptions;

  @IsIn(['create', 'check', 'off'], { message: 'must be "create", "check" or "off" (got $value)' })
  @IsOptional()
  ensureBucket?: EnsureBucketMode;

  @Min(1, { message: 'must be at least 1 ms' })
  @IsInt({ message: 'must be a whole number of milliseconds' })
  @IsOptional()
  bootstrapTimeout?: number;
}

/** Connection options with every default applied. */
export interface ResolvedConnectionOptions {
  bucket: string;
  endpoint?: string;
  region?: string;
  /** A frozen copy of static credentials (without the SDK's `$source`), or the provider as given. */
  credentials?: Readonly<StorageCredentials> | StorageCredentialProvider;
  forcePathStyle: boolean;
  checksums: StorageChecksumMode;
  requestTimeout: number;
  timeout: number;
  connectionTimeout: number;
  maxAttempts: number;
  maxSockets: number;
}

/** Lifecycle day counts with defaults applied. */
export interface ResolvedLifecycleOptions {
  abortIncompleteMultipartUploadDays: number;
  expirePendingDays: number;
}

/** Media options with every default applied. */
export interface ResolvedMediaOptions extends ResolvedConnectionOptions {
  publicEndpoint?: string;
  location: string;
  acl?: StorageCannedAcl;
  overwrite: boolean;
  urlExpiresIn: number;
  /** 0 when off. */
  urlCacheWindow: number;
  /** With the key parsed (never the PEM text). */
  cloudfront?: ResolvedCloudFrontOptions;
  signedUrls: boolean;
  customDomain?: string;
  objectParameters: ObjectParameters;
  cors?: Required<StorageCorsRule>;
  /** Undefined when off. */
  lifecycle?: ResolvedLifecycleOptions;
  partSize: number;
  queueSize: number;
  multipartCopyThreshold: number;
}

/** CloudFront options, the domain as `https://host` and the key parsed once. */
export interface ResolvedCloudFrontOptions {
  domain: string;
  keyPairId: string;
  privateKey: KeyObject;
}

/** Static options with every default applied. */
export interface ResolvedStaticOptions extends ResolvedConnectionOptions {
  location: string;
  customDomain?: string;
  publicEndpoint?: string;
  manifestName: string;
  /** Django's `STATIC_URL`: `/<location>/` unless given. */
  url: string;
  manifestStrict: boolean;
  concurrency: number;
  publicRead: boolean;
}

/** Module options after validation, with every default applied. */
export interface ResolvedStorageOptions {
  media: ResolvedMediaOptions;
  static?: ResolvedStaticOptions;
  ensureBucket: EnsureBucketMode;
  bootstrapTimeout: number;
}

/**
 * Validates `options` and returns them with defaults applied.
 * @throws StorageConfigurationError listing every problem.
 */
export function resolveStorageOptions(options: StorageModuleOptions): ResolvedStorageOptions {
  const problems = validateStorageOptions(options);
  if (problems.length > 0) throw new StorageConfigurationError(problems);

  const media = options.media;
  const resolvedMedia: ResolvedMediaOptions = {
    ...resolveConnection(media),
    publicEndpoint: trimSlash(media.publicEndpoint),
    location: trimPrefix(media.location ?? ''),
    acl: media.acl,
    overwrite: media.overwrite ?? false,
    urlExpiresIn: media.urlExpiresIn ?? 3600,
    urlCacheWindow: media.urlCacheWindow ?? 0,
    cloudfront: media.cloudfront && {
      domain: normalizeDomain(media.cloudfront.domain)!,
      keyPairId: media.cloudfront.keyPairId,
      privateKey: parseCloudFrontKey(media.cloudfront.privateKey),
    },
    signedUrls: media.signedUrls ?? media.customDomain === undefined,
    customDomain: normalizeDomain(media.customDomain),
    objectParameters: { ...media.objectParameters },
    cors: media.cors && {
      allowedOrigins: [...media.cors.allowedOrigins],
      allowedMethods: media.cors.allowedMethods ?? ['GET', 'HEAD', 'POST', 'PUT'],
      allowedHeaders: media.cors.allowedHeaders ?? ['*'],
      exposeHeaders: media.cors.exposeHeaders ?? ['ETag'],
      maxAgeSeconds: media.cors.maxAgeSeconds ?? 3000,
    },
    lifecycle: resolveLifecycle(media.lifecycle),
    partSize: media.partSize ?? 8 * MIB,
    queueSize: media.queueSize ?? 4,
    multipartCopyThreshold: media.multipartCopyThreshold ?? 5 * 1024 * MIB,
  };
  const st = options.static;
  const resolvedStatic: ResolvedStaticOptions | undefined = st && {
    ...resolveConnection(st),
    location: trimPrefix(st.location ?? 'static'),
    customDomain: normalizeDomain(st.customDomain),
    publicEndpoint: trimSlash(st.publicEndpoint),
    manifestName: st.manifestName ?? 'staticfiles.json',
    url: st.url ?? defaultStaticUrl(trimPrefix(st.location ?? 'static')),
    manifestStrict: st.manifestStrict ?? true,
    concurrency: st.concurrency ?? 16,
    publicRead: st.publicRead ?? false,
  };
  return {
    media: resolvedMedia,
    static: resolvedStatic,
    ensureBucket: options.ensureBucket ?? 'create',
    bootstrapTimeout: options.bootstrapTimeout ?? 10_000,
  };
}

/** Returns one line per problem (`media.endpoint: must be …`); empty when the options are valid. */
export function validateStorageOptions(options: unknown): string[] {
  if (options === null || typeof options !== 'object') {
    return ['options: must be an object such as { media: { bucket: "media" } }'];
  }
  const plain = options as Record<string, unknown>;
  const schema = Object.assign(new ModuleSchema(), plain);
  if (isObject(plain.media)) schema.media = toConnection(new MediaSchema(), plain.media);
  if (isObject(plain.static)) schema.static = toConnection(new StaticSchema(), plain.static);

  const problems = flatten(
    validateSync(schema, { whitelist: true, forbidNonWhitelisted: true, stopAtFirstError: true, validationError: { target: false } }),
    '',
  );
  problems.push(...crossFieldProblems(plain));
  problems.push(...regionProblems(plain));
  return problems;
}

function toConnection<T extends ConnectionSchema>(target: T, plain: Record<string, unknown>): T {
  const out = Object.assign(target, plain);
  if (isObject(plain.credentials)) out.credentials = Object.assign(new CredentialsSchema(), plain.credentials);
  // A provider is a function, which class-validator cannot check (it is called on first use);
  // any other non-object is reported by crossFieldProblems with a message that says what fits.
  else delete out.credentials;
  if (isObject(plain.objectParameters) && out instanceof MediaSchema) {
    (out as MediaSchema).objectParameters = Object.assign(new ObjectParametersSchema(), plain.objectParameters);
  }
  if (isObject(plain.cloudfront) && out instanceof MediaSchema) {
    (out as MediaSchema).cloudfront = Object.assign(new CloudFrontSchema(), plain.cloudfront);
  }
  if (isObject(plain.cors) && out instanceof MediaSchema) (out as MediaSchema).cors = Object.assign(new CorsSchema(), plain.cors);
  if (isObject(plain.lifecycle) && out instanceof MediaSchema) (out as MediaSchema).lifecycle = Object.assign(new LifecycleSchema(), plain.lifecycle);
  return out;
}

function crossFieldProblems(plain: Record<string, unknown>): string[] {
  const problems: string[] = [];
  // A location is a key prefix: it gets the same checks as names, so nothing can escape it.
  for (const [section, field] of [['media', 'location'], ['static', 'location'], ['static', 'manifestName']] as const) {
    const value = isObject(plain[section]) ? (plain[section] as Record<string, unknown>)[field] : undefined;
    if (typeof value !== 'string' || /^[/\\]*$/.test(value)) continue;
    try {
      normalizeName(value);
    } catch (error) {
      if (error instanceof InvalidKeyError) problems.push(`${section}.${field}: ${error.reason}`);
    }
  }
  for (const section of ['media', 'static'] as const) {
    const credentials = isObject(plain[section]) ? (plain[section] as Record<string, unknown>).credentials : undefined;
    if (credentials === undefined || typeof credentials === 'function' || isObject(credentials)) continue;
    problems.push(
      `${section}.credentials: must be an object { accessKeyId, secretAccessKey, sessionToken? } or a credential provider function such as fromTemporaryCredentials({ ... }); omit it to use the AWS provider chain`,
    );
  }
  const media = isObject(plain.media) ? plain.media : undefined;
  if (media?.signedUrls === true && typeof media.customDomain === 'string') {
    problems.push(
      'media.signedUrls: cannot be true with media.customDomain: URLs on a custom domain or CDN are unsigned; remove one of the two',
    );
  }
  problems.push(...urlCacheProblems(media));
  problems.push(...lifecycleProblems(media));
  problems.push(...publicReadProblems(media, isObject(plain.static) ? plain.static : undefined));
  if (media && isObject(media.objectParameters) && isObject(media.objectParameters.metadata)) {
    for (const [k, v] of Object.entries(media.objectParameters.metadata)) {
      if (typeof v !== 'string') problems.push(`media.objectParameters.metadata.${k}: must be a string`);
    }
  }
  return problems;
}

/**
 * A resumable upload's record lives under `.pending/`: expired before S3 aborts the upload, the
 * upload could no longer be completed, yet its parts would stay billed until then.
 */
function lifecycleProblems(media: Record<string, unknown> | undefined): string[] {
  if (!media || !isObject(media.lifecycle)) return [];
  const days = media.lifecycle as StorageLifecycleOptions;
  // Only when both are given: abortIncompleteMultipartUploadDays defaults to fit expirePendingDays.
  if (typeof days.expirePendingDays !== 'number' || typeof days.abortIncompleteMultipartUploadDays !== 'number') return [];
  if (days.expirePendingDays >= days.abortIncompleteMultipartUploadDays) return [];
  return [
    `media.lifecycle: expirePendingDays (${days.expirePendingDays}) must be at least abortIncompleteMultipartUploadDays (${days.abortIncompleteMultipartUploadDays}): the record of a resumable upload is kept under ".pending/", and once it expires the upload can no longer be completed; raise expirePendingDays or lower abortIncompleteMultipartUploadDays`,
  ];
}

/** Day counts with the defaults (7 and 7: slow resumable uploads survive a week); undefined when off. */
function resolveLifecycle(lifecycle: MediaStorageOptions['lifecycle']): ResolvedLifecycleOptions | undefined {
  if (!lifecycle) return undefined;
  const days = lifecycle === true ? {} : lifecycle;
  const expirePendingDays = days.expirePendingDays ?? 7;
  // Never later than the records of resumable uploads expire (see lifecycleProblems).
  return { abortIncompleteMultipartUploadDays: days.abortIncompleteMultipartUploadDays ?? Math.min(7, expirePendingDays), expirePendingDays };
}

/**
 * `static.publicRead` makes `<static location>/*` readable by anyone: refuse it when that
 * would cover more than the static files (the whole bucket, a wildcard, media names).
 */
function publicReadProblems(media: Record<string, unknown> | undefined, st: Record<string, unknown> | undefined): string[] {
  if (!st || st.publicRead !== true) return [];
  // An invalid location is reported on its own (crossFieldProblems).
  const safeTrim = (location: string): string | undefined => {
    try {
      return trimPrefix(location);
    } catch {
      return undefined;
    }
  };
  const stLocation = safeTrim(typeof st.location === 'string' ? st.location : 'static');
  if (stLocation === undefined) return [];
  if (stLocation === '') {
    return ['static.publicRead: cannot be true with static files at the bucket root (static.location ""): the whole bucket would be public; give static files a location such as "static"'];
  }
  if (/[*?]/.test(stLocation)) {
    return [`static.publicRead: cannot be true with a static.location containing "*" or "?" ("${stLocation}"): the policy's resource would match other prefixes too`];
  }
  if (!media || media.bucket !== st.bucket || (media.endpoint ?? undefined) !== (st.endpoint ?? undefined)) return [];
  const mediaLocation = safeTrim(typeof media.location === 'string' ? media.location : '');
  if (mediaLocation === undefined) return [];
  const overlaps =
    mediaLocation === '' ||
    mediaLocation === stLocation ||
    mediaLocation.startsWith(`${stLocation}/`) ||
    stLocation.startsWith(`${mediaLocation}/`);
  if (!overlaps) return [];
  return [
    `static.publicRead: media files (location "${mediaLocation}") share bucket "${String(st.bucket)}" with static files (location "${stLocation}") and their prefixes overlap, so media would become public too; give media and static files separate locations (e.g. "media" and "static")`,
  ];
}

/**
 * `aws-global` is the SDK's name for AWS's global endpoint (`s3.amazonaws.com`, signed for
 * us-east-1). Against any other server it means nothing, and the SDK signs some requests
 * for region "aws-global" there.
 */
function regionProblems(plain: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const section of ['media', 'static'] as const) {
    const o = isObject(plain[section]) ? (plain[section] as Record<string, unknown>) : undefined;
    if (o?.region !== 'aws-global' || (o.endpoint === undefined && o.publicEndpoint === undefined)) continue;
    problems.push(
      `${section}.region: "aws-global" names AWS's global endpoint and cannot be used with ${section}.${o.endpoint === undefined ? 'publicEndpoint' : 'endpoint'}; give the region your S3 server expects, e.g. "us-east-1"`,
    );
  }
  return problems;
}

/** The cache window extends each URL's expiry; the CloudFront key must parse (its text is never quoted). */
function urlCacheProblems(media: Record<string, unknown> | undefined): string[] {
  if (!media) return [];
  const problems: string[] = [];
  const window = media.urlCacheWindow;
  const expiresIn = media.urlExpiresIn ?? 3600;
  if (typeof window === 'number' && Number.isInteger(window) && window > 0 && typeof expiresIn === 'number' && expiresIn + window > MAX_URL_EXPIRES_IN) {
    problems.push(
      `media.urlCacheWindow: urlExpiresIn + urlCacheWindow must be at most ${MAX_URL_EXPIRES_IN} seconds (7 days, the SigV4 limit), because URLs handed out at a window's end stay valid urlExpiresIn beyond it (got ${expiresIn} + ${window} = ${expiresIn + window}); shorten one of the two`,
    );
  }
  if (isObject(media.cloudfront)) {
    if (typeof media.customDomain === 'string') {
      problems.push('media.customDomain: cannot be set with media.cloudfront: CloudFront URLs are on the distribution\'s domain (set cloudfront.domain to your custom domain instead); remove one of the two');
    }
    const pem = media.cloudfront.privateKey;
    if ((typeof pem === 'string' && pem.trim() !== '') || pem instanceof KeyObject) {
      try {
        parseCloudFrontKey(pem);
      } catch (error) {
        if (!(error instanceof StorageError)) throw error;
        problems.push(`media.cloudfront.privateKey: ${error.message}`);
      }
    }
  }
  return problems;
}

function flatten(errors: ValidationError[], parent: string): string[] {
  const out: string[] = [];
  for (const error of errors) {
    const path = parent ? `${parent}.${error.property}` : error.property;
    for (const [rule, message] of Object.entries(error.constraints ?? {})) {
      out.push(rule === 'whitelistValidation' ? `${path}: is not a known option; check its spelling (see the README's options table)` : `${path}: ${message}`);
    }
    out.push(...flatten(error.children ?? [], path));
  }
  return out;
}

function resolveConnection(o: S3ConnectionOptions): ResolvedConnectionOptions {
  const endpoint = trimSlash(o.endpoint);
  const custom = endpoint !== undefined;
  return {
    bucket: o.bucket,
    endpoint,
    region: o.region ?? (custom ? 'us-east-1' : undefined),
    credentials: resolveCredentials(o.credentials),
    forcePathStyle: o.forcePathStyle ?? custom,
    checksums: o.checksums ?? (custom ? 'when-required' : 'when-supported'),
    requestTimeout: o.requestTimeout ?? 30_000,
    timeout: o.timeout ?? 60_000,
    connectionTimeout: o.connectionTimeout ?? 5_000,
    maxAttempts: o.maxAttempts ?? 3,
    maxSockets: o.maxSockets ?? 64,
  };
}

/**
 * Static credentials are copied (without the SDK's `$source`, which the S3 client adds to
 * the object it is given) and frozen, so neither the caller's object nor the resolved
 * options ever change. A provider is kept as it is: the S3 client memoizes it.
 */
function resolveCredentials(
  credentials: StorageCredentials | StorageCredentialProvider | undefined,
): Readonly<StorageCredentials> | StorageCredentialProvider | undefined {
  if (credentials === undefined || typeof credentials === 'function') return credentials;
  const { $source: _attribution, ...copy } = credentials;
  return Object.freeze(copy);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function trimSlash(url: string | undefined): string | undefined {
  return url?.replace(/\/+$/, '');
}

/** A validated location in its normal form: `'/uploads/'` → `'uploads'`, `''` stays `''`. */
/** Django's `STATIC_URL` for files served from the bucket's `location`: `/static/`. */
function defaultStaticUrl(location: string): string {
  return location === '' ? '/' : `/${location}/`;
}

function trimPrefix(location: string): string {
  return /^[/\\]*$/.test(location) ? '' : normalizeName(location);
}

function normalizeDomain(domain: string | undefined): string | undefined {
  if (domain === undefined) return undefined;
  const withScheme = /^https?:\/\//.test(domain) ? domain : `https://${domain}`;
  return withScheme.replace(/\/+$/, '');
}
