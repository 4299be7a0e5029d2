/**
 * Builds object URLs for the browser: SigV4 query-string signed GET URLs, or plain URLs for
 * public buckets and CDNs.
 *
 * Signing is a pure computation over Node's `crypto`: no S3 client, no network, the day's
 * signing key cached. URLs are signed for the host the browser will use (`publicEndpoint`),
 * never signed for one host and rewritten to another, which SigV4 forbids: the host is part
 * of the signature. The output is byte-for-byte what `@aws-sdk/s3-request-presigner`'s
 * `getSignedUrl` returns for a client with `responseChecksumValidation: 'WHEN_REQUIRED'`.
 */
import { createHmac } from 'node:crypto';
import { HmacSha256, sha256Hex } from './hmac.js';
import { StorageConfigurationError } from './storage.errors.js';
import { MAX_URL_EXPIRES_IN } from './storage-options.validation.js';

/** Credentials as the AWS SDK's providers return them. */
export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When temporary credentials stop working; URLs never outlive them. */
  expiration?: Date;
}

/** Static credentials, or a provider such as the S3 client's memoized `config.credentials`. */
export type CredentialSource = SigningCredentials | (() => Promise<SigningCredentials>);

/** Where and as whom URLs are signed. */
export interface UrlSignerOptions {
  bucket: string;
  /** The browser-facing endpoint (`publicEndpoint`, else `endpoint`); unset for AWS. */
  endpoint?: string;
  /** Path-style (`host/bucket/key`) rather than virtual-hosted (`bucket.host/key`). */
  forcePathStyle: boolean;
  /** The signing region, or a provider of it (the SDK's region resolution). */
  region: string | (() => Promise<string>);
  credentials: CredentialSource;
  /** Current time in ms; tests pin it. @default Date.now */
  clock?: () => number;
  /**
   * Where the one warning about URL lifetimes clamped to expiring credentials goes (the
   * module passes its Nest `Logger`; this file stays free of Nest for the CLI).
   * @default process.emitWarning
   */
  warn?: (message: string) => void;
}

/** Per-URL options of a signed GET URL. */
export interface SignedUrlOptions {
  /** Seconds the URL stays valid (1 to 604800). */
  expiresIn: number;
  /** `response-content-disposition`: the header S3 answers with, e.g. `attachment; filename="a.png"`. */
  responseContentDisposition?: string;
  /** `response-content-type`: the Content-Type S3 answers with. */
  responseContentType?: string;
  /**
   * `response-cache-control`: the Cache-Control S3 answers with. A function receives the
   * expiry actually signed (after clamping), so a max-age can be derived from it.
   */
  responseCacheControl?: string | ((expiresIn: number) => string);
  /** The signing time in ms, instead of the clock (stable URLs sign at the window start). */
  signingDate?: number;
}

interface Base {
  /** `scheme://host[:port]` */
  origin: string;
  host: string;
  /** Path before the encoded key, e.g. `/media/` (path-style) or `/` (virtual-hosted). */
  pathPrefix: string;
  region: string;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/** Percent-encodes like the AWS SDK (RFC 3986: also `!'()*`). */
export function encodeRfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Encodes an object key for a URL path: each `/`-separated segment percent-encoded. */
export function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeRfc3986).join('/');
}

/**
 * A `Content-Disposition` value per RFC 6266: an ASCII fallback `filename` and, for
 * non-ASCII names, a UTF-8 `filename*`.
 */
export function contentDisposition(filename: string, type: 'attachment' | 'inline' = 'attachment'): string {
  const fallback = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  if (fallback === filename) return `${type}; filename="${fallback}"`;
  return `${type}; filename="${fallback}"; filename*=UTF-8''${encodeRfc3986(filename)}`;
}

/** Signs GET (and UploadPart) URLs for one bucket. Cheap to call: a few microseconds, no I/O. */
export class UrlSigner {
  /** The time source (ms); stable URLs floor it to their cache window. */
  readonly clock: () => number;
  private base?: Base;
  private basePromise?: Promise<Base>;
  private signingKey?: { scope: string; secret: string; key: HmacSha256 };
  private clampWarned = false;

  constructor(private readonly options: UrlSignerOptions) {
    this.clock = options.clock ?? Date.now;
  }

  /** A SigV4 query-string signed GET URL for the (already normalized, full) key. */
  async sign(key: string, options: SignedUrlOptions): Promise<string> {
    return this.presign('GET', key, options.expiresIn, options.signingDate, (expiresIn) => {
      const params: [string, string][] = [];
      if (options.responseCacheControl !== undefined) {
        const value = typeof options.responseCacheControl === 'function' ? options.responseCacheControl(expiresIn) : options.responseCacheControl;
        params.push(['response-cache-control', encodeRfc3986(value)]);
      }
      if (options.responseContentDisposition !== undefined) {
        params.push(['response-content-disposition', encodeRfc3986(options.responseContentDisposition)]);
      }
      if (options.responseContentType !== undefined) {
        params.push(['response-content-type', encodeRfc3986(options.responseContentType)]);
      }
      params.push(['x-id', 'GetObject']);
      return params;
    });
  }

  /**
   * A SigV4 query-string signed UploadPart URL: a `PUT` of one part's bytes to the (full) key,
   * what `getSignedUrl` gives for an `UploadPartCommand`. The method, part number and upload id
   * are signed, so the URL uploads that part of that upload and does nothing else.
   */
  async signUploadPart(key: string, options: { uploadId: string; partNumber: number; expiresIn: number }): Promise<string> {
    return this.presign('PUT', key, options.expiresIn, undefined, () => [
      ['partNumber', String(options.partNumber)],
      ['uploadId', encodeRfc3986(options.uploadId)],
      ['x-id', 'UploadPart'],
    ]);
  }

  /**
   * Signs `method` on `key`. `tail` gives the request's own query parameters, already encoded
   * and in code-point order; they all sort after the `X-Amz-*` ones (lower case after upper).
   */
  private async presign(
    method: 'GET' | 'PUT',
    key: string,
    requestedExpiry: number,
    signingDate: number | undefined,
    tail: (expiresIn: number) => [string, string][],
  ): Promise<string> {
    const { base, credentials, expiresIn, amzDate, scope, signingKey } = await this.context(requestedExpiry, signingDate);

    const params: [string, string][] = [
      ['X-Amz-Algorithm', ALGORITHM],
      ['X-Amz-Content-Sha256', UNSIGNED_PAYLOAD],
      ['X-Amz-Credential', encodeRfc3986(`${credentials.accessKeyId}/${scope}`)],
      ['X-Amz-Date', amzDate],
      ['X-Amz-Expires', String(expiresIn)],
    ];
    if (credentials.sessionToken) params.push(['X-Amz-Security-Token', encodeRfc3986(credentials.sessionToken)]);
    params.push(['X-Amz-SignedHeaders', 'host']);
    params.push(...tail(expiresIn));
    // Already in code-point order of names, which SigV4's canonical query requires.
    const query = params.map(([k, v]) => `${k}=${v}`).join('&');

    const path = base.pathPrefix + encodeKeyPath(key);
    const canonicalRequest = `${method}\n${path}\n${query}\nhost:${base.host}\n\nhost\n${UNSIGNED_PAYLOAD}`;
    const stringToSign = `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
    const signature = signingKey.hex(stringToSign);

    // X-Amz-Signature sorts between X-Amz-Security-Token/X-Amz-Expires and X-Amz-SignedHeaders.
    const at = params.findIndex(([k]) => k === 'X-Amz-SignedHeaders');
    params.splice(at, 0, ['X-Amz-Signature', signature]);
    return `${base.origin}${path}?${params.map(([k, v]) => `${k}=${v}`).join('&')}`;
  }

  /**
   * A SigV4 presigned POST (browser form upload) for exactly `key`: the policy carries
   * `conditions` (e.g. `content-length-range`), so the server itself rejects what breaks them.
   * The policy does not cover the host, but the URL is built for the browser endpoint anyway.
   */
  async presignPost(
    key: string,
    options: { expiresIn: number; conditions: unknown[]; fields: Record<string, string> },
  ): Promise<{ url: string; fields: Record<string, string>; expiresAt: Date }> {
    const { base, credentials, now, expiresIn, amzDate, scope, signingKey } = await this.context(options.expiresIn);
    const expiresAt = new Date(now + expiresIn * 1000);
    const fields: Record<string, string> = {
      key,
      ...options.fields,
      'X-Amz-Algorithm': ALGORITHM,
      'X-Amz-Credential': `${credentials.accessKeyId}/${scope}`,
      'X-Amz-Date': amzDate,
      ...(credentials.sessionToken ? { 'X-Amz-Security-Token': credentials.sessionToken } : {}),
    };
    const conditions: unknown[] = [
      { bucket: this.options.bucket },
      ...Object.entries(fields).map(([name, value]) => ({ [name]: value })),
      ...options.conditions,
    ];
    const policy = Buffer.from(JSON.stringify({ expiration: expiresAt.toISOString(), conditions })).toString('base64');
    fields.Policy = policy;
    fields['X-Amz-Signature'] = signingKey.hex(policy);
    // POST goes to the bucket: path-style `host/bucket`, virtual-hosted `bucket.host/`.
    return { url: `${base.origin}${base.pathPrefix.replace(/\/$/, '') || '/'}`, fields, expiresAt };
  }

  /**
   * A 32-byte key for MACs the storage makes itself (direct-upload markers), derived one-way
   * from the secret access key under `label`: instances sharing credentials derive the same
   * key, and neither it nor the secret appears in anything sent out.
   */
  async deriveKey(label: string): Promise<Buffer> {
    const { secretAccessKey } = await this.credentials();
    return createHmac('sha256', `nestjs-s3-storage:${secretAccessKey}`).update(label).digest();
  }

  /** The unsigned URL of a key on the signing endpoint (for public-read buckets). */
  async unsignedUrl(key: string): Promise<string> {
    const base = this.base ?? (await this.resolveBase());
    return `${base.origin}${base.pathPrefix}${encodeKeyPath(key)}`;
  }

  /** What every signature needs: endpoint, credentials, clamped expiry, date, scope and key. */
  private async context(requestedExpiry: number, signingDate?: number) {
    const base = this.base ?? (await this.resolveBase());
    const credentials = await this.credentials();
    const now = signingDate ?? this.clock();
    const expiresIn = this.clampExpiry(requestedExpiry, credentials, now);
    const amzDate = new Date(now).toISOString().replace(/[-:]|\.\d{3}/g, '');
    const day = amzDate.slice(0, 8);
    const scope = `${day}/${base.region}/s3/aws4_request`;
    const signingKey = this.keyFor(scope, day, base.region, credentials.secretAccessKey);
    return { base, credentials, now, expiresIn, amzDate, scope, signingKey };
  }

  /** The credentials URLs are signed with now (their identity keys the URL cache). */
  async credentials(): Promise<SigningCredentials> {
    const source = this.options.credentials;
    return typeof source === 'function' ? source() : source;
  }

  private clampExpiry(requested: number, credentials: SigningCredentials, now: number): number {
    if (!Number.isInteger(requested) || requested < 1 || requested > MAX_URL_EXPIRES_IN) {
      throw new StorageConfigurationError([
        `expiresIn: must be a whole number of seconds from 1 to ${MAX_URL_EXPIRES_IN} (got ${String(requested)})`,
      ]);
    }
    if (!credentials.expiration) return requested;
    const left = Math.floor((credentials.expiration.getTime() - now) / 1000);
    if (left >= requested) return requested;
    if (!this.clampWarned) {
      this.clampWarned = true;
      (this.options.warn ?? ((message: string) => process.emitWarning(message, 'StorageWarning')))(
        `Signed URLs for bucket "${this.options.bucket}" are limited to ${Math.max(left, 1)} s instead of ${requested} s: ` +
          'the credentials they are signed with expire sooner (temporary credentials from the provider chain).',
      );
    }
    return Math.max(left, 1);
  }

  private keyFor(scope: string, day: string, region: string, secret: string): HmacSha256 {
    const cached = this.signingKey;
    if (cached && cached.scope === scope && cached.secret === secret) return cached.key;
    const key = new HmacSha256(deriveSigningKey(secret, day, region));
    this.signingKey = { scope, secret, key };
    return key;
  }

  private resolveBase(): Promise<Base> {
    this.basePromise ??= (async () => {
      const region = typeof this.options.region === 'function' ? await this.options.region() : this.options.region;
      this.base = computeBase(this.options.bucket, this.options.endpoint, this.options.forcePathStyle, region);
      return this.base;
    })().catch((error: unknown) => {
      // A transient failure of the region lookup must not stick: the next call tries again.
      this.basePromise = undefined;
      throw error;
    });
    return this.basePromise;
  }
}

/** The SigV4 signing key of one day, region and the `s3` service. */
export function deriveSigningKey(secret: string, day: string, region: string): Buffer {
  const kDate = createHmac('sha256', `AWS4${secret}`).update(day).digest();
  const kRegion = createHmac('sha256', kDate).update(region).digest();
  const kService = createHmac('sha256', kRegion).update('s3').digest();
  return createHmac('sha256', kService).update('aws4_request').digest();
}

/**
 * Origin, host, path prefix and signing region for a bucket: the S3 endpoint ruleset of
 * `@aws-sdk/client-s3` for plain bucket names (no ARNs, access points, FIPS, dual-stack or
 * accelerate, which the module never configures).
 * - Virtual-hosted (`bucket.host/`) only when path style is not forced and the bucket is a
 *   DNS label (`aws.isVirtualHostableS3Bucket`); over plain `http` a custom endpoint also
 *   takes dotted names (no TLS wildcard certificate to break).
 * - An IP-address endpoint (`http://127.0.0.1:9000`, `http://[::1]:9000`) is always
 *   path-style: a bucket cannot be a subdomain of an address.
 * - Without an endpoint the host is `s3.<region>.<partition DNS suffix>`; the `aws-global`
 *   pseudo-region means the global endpoint `s3.amazonaws.com`, signed for us-east-1.
 */
export function computeBase(bucket: string, endpoint: string | undefined, forcePathStyle: boolean, region: string): Base {
  const signingRegion = region === 'aws-global' ? 'us-east-1' : region;
  if (endpoint === undefined) {
    const suffix = dnsSuffix(region);
    const host = region === 'aws-global' ? `s3.${suffix}` : `s3.${region}.${suffix}`;
    if (!forcePathStyle && !sdkForcesPathStyle(bucket, undefined) && isVirtualHostable(bucket)) {
      return { origin: `https://${bucket}.${host}`, host: `${bucket}.${host}`, pathPrefix: '/', region: signingRegion };
    }
    return { origin: `https://${host}`, host, pathPrefix: `/${encodeRfc3986(bucket)}/`, region: signingRegion };
  }
  const url = new URL(endpoint);
  // `host` drops a default port (`https://h:443` is `h`), as the signed URL does.
  const authority = url.host;
  const basePath = url.pathname.replace(/\/+$/, '');
  const isIp = /^\d{1,3}(\.\d{1,3}){3}$/.test(url.hostname) || url.hostname.startsWith('[');
  const virtual = !forcePathStyle && !sdkForcesPathStyle(bucket, url.protocol) && !isIp;
  if (virtual && isVirtualHostable(bucket)) {
    const host = `${bucket}.${authority}`;
    return { origin: `${url.protocol}//${host}`, host, pathPrefix: `${basePath}/`, region: signingRegion };
  }
  if (virtual && url.protocol === 'http:' && bucket.split('.').every(isVirtualHostable)) {
    // The ruleset's branch for dotted names over http does not map aws-global (validation
    // refuses aws-global with an endpoint; this keeps the signer equal to the SDK anyway).
    const host = `${bucket}.${authority}`;
    return { origin: `${url.protocol}//${host}`, host, pathPrefix: `${basePath}/`, region };
  }
  return { origin: `${url.protocol}//${authority}`, host: authority, pathPrefix: `${basePath}/${encodeRfc3986(bucket)}/`, region: signingRegion };
}

/**
 * The SDK's `resolveParamsForS3` forces path style before the ruleset runs for names that
 * are not DNS-compatible, contain something IP-like (`/(\d+\.){3}\d+/` anywhere) or `..`,
 * or contain a dot unless the endpoint is plain `http` (it sees the endpoint as the client
 * normalized it, so `HTTP://` counts as http).
 */
function sdkForcesPathStyle(bucket: string, protocol: string | undefined): boolean {
  const dnsCompatible = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) && !/(\d+\.){3}\d+/.test(bucket) && !bucket.includes('..');
  return !dnsCompatible || (bucket.includes('.') && protocol !== 'http:');
}

/** A bucket name that can be one DNS label of a TLS-covered host: `aws.isVirtualHostableS3Bucket(bucket, false)`. */
function isVirtualHostable(bucket: string): boolean {
  return /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket);
}

/**
 * The DNS suffix of a region's partition, as in the SDK's `partitions.json` (the parity
 * test walks every region listed there): named regions first, then each partition's region
 * pattern, else the `aws` partition.
 */
function dnsSuffix(region: string): string {
  for (const [pattern, suffix] of PARTITION_SUFFIXES) if (pattern.test(region)) return suffix;
  return 'amazonaws.com';
}

const PARTITION_SUFFIXES: readonly [RegExp, string][] = [
  [/^(aws-cn-global|cn-\w+-\d+)$/, 'amazonaws.com.cn'],
  [/^eusc-de-\w+-\d+$/, 'amazonaws.eu'],
  [/^(aws-iso-global|us-iso-\w+-\d+)$/, 'c2s.ic.gov'],
  [/^(aws-iso-b-global|us-isob-\w+-\d+)$/, 'sc2s.sgov.gov'],
  [/^(aws-iso-e-global|eu-isoe-\w+-\d+)$/, 'cloud.adc-e.uk'],
  [/^(aws-iso-f-global|us-isof-\w+-\d+)$/, 'csp.hci.ic.gov'],
];

