/**
 * The options of `StorageModule.forRoot()` / `forRootAsync()`. Every option is validated
 * once, at module initialisation; one error lists every problem found.
 */
import type { KeyObject } from 'node:crypto';

/**
 * A set of credentials, as the AWS SDK's credential providers return them. Omit
 * `credentials` to use the SDK's default provider chain (env, profile, IAM role).
 *
 * Structurally the SDK's `AwsCredentialIdentity` (`@smithy/types`), SDK attribution
 * (`$source`) included: credentials an S3 client has already used, or the module's own
 * resolved options, are accepted as they are. They are copied, never modified.
 */
export interface StorageCredentials {
  /** Access key id. Env: `MEDIA_S3_ACCESS_KEY` (media), `AWS_ACCESS_KEY_ID` (static). */
  readonly accessKeyId: string;
  /** Secret access key. Never logged, never quoted in an error. Env: `MEDIA_S3_SECRET_KEY` (media), `AWS_SECRET_ACCESS_KEY` (static). */
  readonly secretAccessKey: string;
  /**
   * Session token of temporary credentials (STS, Lambda, CodeBuild, GitHub OIDC). Sent with
   * every request and in every signed URL. Never logged.
   * Env: `MEDIA_S3_SESSION_TOKEN` (media), `AWS_SESSION_TOKEN` (static).
   * @default undefined (long-term keys)
   */
  readonly sessionToken?: string;
  /**
   * When temporary credentials stop working. Signed URLs never outlive it.
   * @default undefined (no expiry)
   */
  readonly expiration?: Date;
  /**
   * The SDK's credential scope (set by some providers).
   * @default undefined
   */
  readonly credentialScope?: string;
  /**
   * The AWS account id (set by some providers).
   * @default undefined
   */
  readonly accountId?: string;
  /**
   * The SDK's feature attribution, added to credentials it has used. Accepted and ignored.
   * @default undefined
   */
  readonly $source?: Readonly<Record<string, string | undefined>>;
}

/**
 * A credential provider: a function resolving {@link StorageCredentials}, such as the AWS
 * SDK's `AwsCredentialIdentityProvider`s (`fromTemporaryCredentials()`,
 * `fromNodeProviderChain()`, `fromWebToken()` from `@aws-sdk/credential-providers`). The S3
 * client memoizes it and calls it again shortly before the credentials it returned expire.
 */
export type StorageCredentialProvider = (identityProperties?: Record<string, unknown>) => Promise<StorageCredentials>;

/**
 * Canned ACLs. Send one only when you need it: buckets created on AWS since April 2023
 * have ACLs disabled and reject every ACL but `bucket-owner-full-control`.
 */
export type StorageCannedAcl =
  | 'private'
  | 'public-read'
  | 'public-read-write'
  | 'authenticated-read'
  | 'aws-exec-read'
  | 'bucket-owner-read'
  | 'bucket-owner-full-control';

/**
 * Flexible checksums. `'when-required'` sends checksums only for operations that need
 * them (what MinIO, Ceph and most S3-compatible servers accept); `'when-supported'` is the
 * AWS SDK's default (CRC32 on every upload, aws-chunked trailers on streams).
 */
export type StorageChecksumMode = 'when-required' | 'when-supported';

/** What the start-up hook does about the bucket. */
export type EnsureBucketMode = 'create' | 'check' | 'off';

/** How to reach one bucket. Shared by media and static storage. */
export interface S3ConnectionOptions {
  /** Bucket name. Required. Env: `MEDIA_S3_BUCKET_NAME` (media), `AWS_STORAGE_BUCKET_NAME` (static). */
  bucket: string;
  /**
   * The S3 API endpoint the server-side client talks to, e.g. `http://minio:9000` inside
   * docker compose. Leave unset for AWS S3 (the SDK picks the regional endpoint).
   * Env: `MEDIA_S3_ENDPOINT_URL` (media), `AWS_S3_ENDPOINT_URL` (static).
   * @default undefined (AWS)
   */
  endpoint?: string;
  /**
   * Region. Env: `MEDIA_S3_REGION` (media), `AWS_S3_REGION` (static).
   * @default 'us-east-1' when `endpoint` is set; otherwise the SDK's own resolution (AWS_REGION, profile)
   */
  region?: string;
  /**
   * Static credentials (with `sessionToken` for temporary ones), or a credential provider
   * such as `fromTemporaryCredentials()`. Signed URLs never outlive credentials that expire.
   * Env: `MEDIA_S3_ACCESS_KEY`, `MEDIA_S3_SECRET_KEY`, `MEDIA_S3_SESSION_TOKEN` (media);
   * `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (static).
   * @default undefined (the AWS SDK default credential provider chain)
   */
  credentials?: StorageCredentials | StorageCredentialProvider;
  /**
   * Path-style addressing (`https://host/bucket/key`) instead of virtual-hosted
   * (`https://bucket.host/key`).
   * @default true when `endpoint` is set, false otherwise
   */
  forcePathStyle?: boolean;
  /**
   * Flexible checksums for requests and response validation.
   * @default 'when-required' when `endpoint` is set, 'when-supported' otherwise
   */
  checksums?: StorageChecksumMode;
  /**
   * Milliseconds a single HTTP request may take to answer (socket idle time) before it
   * is failed and, where safe, retried.
   * @default 30000
   */
  requestTimeout?: number;
  /**
   * Milliseconds a whole operation may take, retries included, before it rejects with
   * `StorageTimeoutError`. Applies to every request/response call (stat, exists, read's
   * response headers, delete, a list page, a single-request save); not to multipart
   * uploads or to streaming a body, which `requestTimeout` guards per request. 0 disables it.
   * @default 60000
   */
  timeout?: number;
  /**
   * Milliseconds to establish a TCP/TLS connection.
   * @default 5000
   */
  connectionTimeout?: number;
  /**
   * Attempts per request including the first (the SDK's standard retry policy:
   * throttling, 5xx and connection errors, with jittered backoff).
   * @default 3
   */
  maxAttempts?: number;
  /**
   * Upper bound on concurrent sockets to the endpoint (keep-alive agent). Requests beyond
   * it queue instead of opening more connections.
   * @default 64
   */
  maxSockets?: number;
}

/** Parameters applied to every object the storage writes, unless a call overrides them. */
export interface ObjectParameters {
  /** `Cache-Control` header stored with each object, e.g. `'max-age=86400'`. */
  cacheControl?: string;
  /** `Content-Disposition` stored with each object. */
  contentDisposition?: string;
  /** User metadata (`x-amz-meta-*`) stored with each object. */
  metadata?: Record<string, string>;
}

/** A bucket CORS rule, for browsers that upload directly or read media with `fetch()`. */
export interface StorageCorsRule {
  /** Origins allowed, e.g. `['http://localhost:3000']`. Required. */
  allowedOrigins: string[];
  /**
   * Methods allowed (PUT for browsers sending multipart parts to signed part URLs).
   * @default ['GET', 'HEAD', 'POST', 'PUT']
   */
  allowedMethods?: ('GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE')[];
  /**
   * Request headers allowed.
   * @default ['*']
   */
  allowedHeaders?: string[];
  /**
   * Response headers scripts may read (a browser completing a multipart upload reads each part's `ETag`).
   * @default ['ETag']
   */
  exposeHeaders?: string[];
  /**
   * Seconds browsers may cache a preflight.
   * @default 3000
   */
  maxAgeSeconds?: number;
}

/** Day counts of the lifecycle rules the bucket bootstrap applies for a media storage. */
export interface StorageLifecycleOptions {
  /**
   * Days after which S3 aborts a multipart upload that was never completed (and deletes its
   * parts), under the media `location`. At most `expirePendingDays` (a configuration error
   * otherwise): the record of a resumable upload lives under `.pending/`, and an upload whose
   * record expired can no longer be completed.
   * @default 7, or `expirePendingDays` when that is smaller
   */
  abortIncompleteMultipartUploadDays?: number;
  /**
   * Days after which S3 deletes objects under `<location>/.pending/`: direct uploads never
   * confirmed, and the claims `confirmUpload()` leaves there.
   * @default 7
   */
  expirePendingDays?: number;
}

/** A CloudFront distribution whose origin is the media bucket, and the key that signs for it. */
export interface CloudFrontOptions {
  /** The distribution's domain, e.g. `'d111111abcdef8.cloudfront.net'` (https is assumed). Env: `MEDIA_S3_CLOUDFRONT_DOMAIN`. */
  domain: string;
  /** The id of the public key uploaded to CloudFront (in the distribution's key group). Env: `MEDIA_S3_CLOUDFRONT_KEY_ID`. */
  keyPairId: string;
  /**
   * The RSA private key, PEM (or a `KeyObject` already made with `crypto.createPrivateKey`,
   * which is also what the resolved options hold). Parsed once at start-up; never logged,
   * never quoted in an error. Env: `MEDIA_S3_CLOUDFRONT_KEY` (line breaks may be written as `\n`).
   */
  privateKey: string | KeyObject;
}

/** Options of the media storage (user uploads). */
export interface MediaStorageOptions extends S3ConnectionOptions {
  /**
   * The endpoint the browser uses, when it differs from `endpoint` (MinIO in docker
   * compose: the app talks to `http://minio:9000`, the browser to `http://localhost:9000`).
   * URLs are signed for this host; they are never rewritten after signing.
   * Env: `MEDIA_S3_URL_ENDPOINT_URL`.
   * @default undefined (URLs use `endpoint`, or the AWS endpoint)
   */
  publicEndpoint?: string;
  /**
   * A key prefix under which every name is stored (`'media'` stores `a.png` at `media/a.png`).
   * Names can never escape it.
   * @default '' (bucket root)
   */
  location?: string;
  /**
   * A canned ACL sent with each upload. Objects are private by default without it.
   * @default undefined (no ACL header; objects stay private)
   */
  acl?: StorageCannedAcl;
  /**
   * Whether `save()` may replace an existing object. When false, saving to a taken name
   * stores under a new unique name (`photo_k3J9a0Qx.png`) and returns it.
   * @default false
   */
  overwrite?: boolean;
  /**
   * Lifetime of signed URLs in seconds (at most 604800, SigV4's limit).
   * @default 3600
   */
  urlExpiresIn?: number;
  /**
   * Seconds of a cache window: within one window `url()` returns the byte-identical URL
   * (signed once, at the window's start, valid `urlExpiresIn` beyond the window's end), with a
   * `response-cache-control: private, max-age=…` that lets the browser keep the bytes while
   * the URL works. Only for names whose bytes never change (see the README). 0 turns it off;
   * `url(name, { cacheWindow })` overrides it per call. `urlExpiresIn + urlCacheWindow` must be
   * at most 604800. Env: `MEDIA_S3_URL_CACHE_WINDOW`.
   * @default 0 (off: every call signs a new URL)
   */
  urlCacheWindow?: number;
  /**
   * Serve media through a CloudFront distribution in front of the (private) bucket: `url()`
   * returns CloudFront-signed URLs (taking precedence over `signedUrls`) and `cookies()` signed
   * cookies. Cannot be combined with `customDomain`.
   * @default undefined (URLs on the S3 endpoint)
   */
  cloudfront?: CloudFrontOptions;
  /**
   * Sign URLs. Set false for public-read buckets or a CDN in front: `url()` then returns
   * plain URLs.
   * @default true (false when `customDomain` is set)
   */
  signedUrls?: boolean;
  /**
   * A CDN or custom domain base for unsigned URLs, e.g. `'https://cdn.example.com'` or
   * `'cdn.example.com/media'` (https is assumed).
   * @default undefined
   */
  customDomain?: string;
  /** Headers stored with every object. */
  objectParameters?: ObjectParameters;
  /**
   * A CORS rule the bucket bootstrap (and `nestjs-s3-storage ensure-bucket`) puts on the
   * bucket, for direct browser uploads. Merged by its rule ID (`nestjs-s3-storage-cors`,
   * `…:<location>` under a location): other rules on the bucket are kept. Not applied with
   * `ensureBucket: 'off'`. Env: `MEDIA_S3_CORS_ORIGINS`.
   * @default undefined (the bucket's CORS configuration is left alone)
   */
  cors?: StorageCorsRule;
  /**
   * Lifecycle rules the bucket bootstrap (and `ensure-bucket`) applies, so nothing is left
   * behind: abort incomplete multipart uploads under `location` after N days, and expire
   * `<location>/.pending/` after N days. `true` takes the defaults (7 and 7). Merged by rule
   * ID: other rules on the bucket are kept. Not applied with `ensureBucket: 'off'`.
   * Env: `MEDIA_S3_LIFECYCLE` (`true`/`false`).
   * @default false (the bucket's lifecycle configuration is left alone)
   */
  lifecycle?: boolean | StorageLifecycleOptions;
  /**
   * Part size in bytes for multipart uploads of large or unknown-length bodies (min 5 MiB).
   * Bodies up to one part are sent in a single PutObject.
   * @default 8388608 (8 MiB)
   */
  partSize?: number;
  /**
   * Parts uploaded in parallel per multipart upload. Memory per upload is bounded by about
   * `partSize * (queueSize + 1)`: the parts in flight and the one being filled.
   * @default 4
   */
  queueSize?: number;
  /**
   * Size in bytes above which `copy()` and `move()` use a multipart copy (UploadPartCopy, in
   * parts of this size, `queueSize` at a time) instead of one CopyObject (5 MiB to 5 GiB; S3's
   * CopyObject takes at most 5 GiB).
   * @default 5368709120 (5 GiB)
   */
  multipartCopyThreshold?: number;
}

/** Options of the static-files storage (hashed names, `staticfiles.json` manifest). */
export interface StaticStorageOptions extends S3ConnectionOptions {
  /**
   * Key prefix for static files.
   * @default 'static'
   */
  location?: string;
  /**
   * A CDN or custom domain base for static URLs.
   * @default undefined (URLs on `publicEndpoint`, `endpoint` or the AWS endpoint)
   */
  customDomain?: string;
  /**
   * The browser-facing endpoint when it differs from `endpoint`.
   * @default undefined
   */
  publicEndpoint?: string;
  /**
   * Name of the manifest object, under `location`.
   * @default 'staticfiles.json'
   */
  manifestName?: string;
  /**
   * The URL static files are served under, as Django's `STATIC_URL`: `collectstatic`
   * rewrites root-relative CSS/JS references that start with it (`url(/static/img/a.png)`)
   * to hashed names. A path (`/static/`) or an absolute URL (`https://cdn.example.com/static/`),
   * ending in `/`. It does not change the URLs `url()` returns (see `customDomain`).
   * Env: `STATIC_URL`.
   * @default `/<location>/` (`/static/`; `/` when `location` is empty)
   */
  url?: string;
  /**
   * Throw on names missing from the manifest (Django's `manifest_strict`).
   * @default true
   */
  manifestStrict?: boolean;
  /**
   * Uploads run in parallel by `collectstatic`.
   * @default 16
   */
  concurrency?: number;
  /**
   * Make static files publicly readable: the bucket bootstrap (and `ensure-bucket --static`)
   * merges a policy statement (Sid `nestjs-s3-storage-static-public-read`) granting anonymous
   * `s3:GetObject` on `<location>/*` only, never the bucket or the media prefix. Not applied
   * with `ensureBucket: 'off'`. On AWS, Block Public Access must be lifted for the bucket.
   * Env: `AWS_S3_PUBLIC_READ` (`true`/`false`).
   * @default false (the bucket policy is left alone)
   */
  publicRead?: boolean;
}

/** Options of `StorageModule.forRoot()`. */
export interface StorageModuleOptions {
  /** User media: avatars and any other upload. Required. */
  media: MediaStorageOptions;
  /** Static files on S3 with hashed names. When absent, `StaticManifestStorage` is not usable. */
  static?: StaticStorageOptions;
  /**
   * What the `OnApplicationBootstrap` hook does about each configured bucket: `'create'`
   * creates it when missing, `'check'` fails start-up when it is missing, `'off'` skips
   * the check. Unless `'off'`, the bucket settings (`media.cors`, `media.lifecycle`,
   * `static.publicRead`) are then merged into the bucket's configuration.
   * @default 'create'
   */
  ensureBucket?: EnsureBucketMode;
  /**
   * Milliseconds the start-up bucket check may take in all (retries included) before
   * start-up fails with an error naming the endpoint and bucket.
   * @default 10000
   */
  bootstrapTimeout?: number;
}
