/**
 * CloudFront-signed URLs and cookies for a private bucket behind a CloudFront distribution.
 *
 * Signing is `@aws-sdk/cloudfront-signer`'s own, but the private key is parsed once, at
 * start-up, into a `KeyObject` that is handed to it: parsing a PEM on every call is what
 * made URLs cost ~40 ms in other libraries (and ~3x the RSA signature itself here). What
 * remains per URL is one RSA signature.
 */
import { getSignedCookies, getSignedUrl } from '@aws-sdk/cloudfront-signer';
import { createPrivateKey, KeyObject } from 'node:crypto';
import { StorageError } from './storage.errors.js';

/** Where and with which key CloudFront URLs are signed. */
export interface CloudFrontSignerOptions {
  /** `https://d111111abcdef8.cloudfront.net` (or a custom domain of the distribution), no trailing slash. */
  origin: string;
  /** The id of the public key in CloudFront (a key group's member), e.g. `K2JCJMDEHXQW5F`. */
  keyPairId: string;
  /** The matching private key, parsed once. */
  privateKey: KeyObject;
}

/** The three cookies that let a browser fetch every object a custom policy covers. */
export interface CloudFrontCookies {
  'CloudFront-Policy': string;
  'CloudFront-Signature': string;
  'CloudFront-Key-Pair-Id': string;
}

/** A custom policy's restrictions besides the expiry. */
export interface CloudFrontPolicyOptions {
  /**
   * The resource the signature covers, `*` wildcards allowed: a path relative to `location`
   * (`'avatars/*'`) or a full URL (`'https://d111.cloudfront.net/*'`).
   * @default the URL being signed
   */
  resource?: string;
  /** The IPv4 address or CIDR range (`'203.0.113.0/24'`) the URL works from. */
  ipAddress?: string;
}

/**
 * Parses a PEM private key for CloudFront signing.
 * @throws StorageError whose message never contains the key
 */
export function parseCloudFrontKey(pem: string | KeyObject): KeyObject {
  const key = pem instanceof KeyObject ? pem : readPem(pem);
  if (key.type !== 'private') throw new StorageError(`is a ${key.type} key: CloudFront signs with the key pair's private key`);
  if (key.asymmetricKeyType !== 'rsa') {
    throw new StorageError(`is a ${key.asymmetricKeyType ?? 'non-RSA'} key: CloudFront signs with RSA keys (2048-bit) only`);
  }
  return key;
}

function readPem(pem: string): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new StorageError(
      `is not a readable PEM private key${typeof code === 'string' ? ` (${code})` : ''}: pass the whole .pem file of the key pair whose public key is in CloudFront, "-----BEGIN PRIVATE KEY-----" or "-----BEGIN RSA PRIVATE KEY-----" lines included (in an environment variable, line breaks may be written as \\n)`,
    );
  }
}

/** Encodes a path like the SDK does: each `/`-separated segment with `encodeURIComponent`. */
export function encodeCloudFrontPath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** Signs CloudFront URLs and cookies. Synchronous and network-free. */
export class CloudFrontSigner {
  constructor(private readonly options: CloudFrontSignerOptions) {}

  /** The unsigned CloudFront URL of a full object key. */
  urlOf(key: string): string {
    return `${this.options.origin}/${encodeCloudFrontPath(key)}`;
  }

  /** A resource pattern as a URL: full URLs as they are, anything else a path under `location`. */
  resourceOf(pattern: string, location: string): string {
    if (/^([a-z][a-z0-9+.-]*|\*):\/\//i.test(pattern)) return pattern;
    const path = pattern.replace(/^\/+/, '');
    if (path.split('/').some((segment) => segment === '..' || segment === '.')) {
      throw new StorageError(`CloudFront resource "${pattern}": "." and ".." segments are not allowed; give a path relative to the location`);
    }
    return this.urlOf(location ? `${location}/${path}` : path);
  }

  /**
   * A signed URL for `url` (from {@link urlOf}) until `expiresAt` (epoch seconds): a canned
   * policy, or a custom one when `policy` restricts the resource or the address.
   */
  sign(url: string, expiresAt: number, policy?: CloudFrontPolicyOptions): string {
    const custom = policy !== undefined && (policy.resource !== undefined || policy.ipAddress !== undefined);
    return getSignedUrl({
      url,
      keyPairId: this.options.keyPairId,
      privateKey: this.key(),
      ...(custom ? { policy: policyDocument(policy.resource ?? url, expiresAt, policy.ipAddress) } : { dateLessThan: new Date(expiresAt * 1000) }),
    });
  }

  /** The three cookies of a custom policy for `resource` (a URL, wildcards allowed) until `expiresAt`. */
  cookies(resource: string, expiresAt: number, ipAddress?: string): CloudFrontCookies {
    const signed = getSignedCookies({ keyPairId: this.options.keyPairId, privateKey: this.key(), policy: policyDocument(resource, expiresAt, ipAddress) });
    return {
      'CloudFront-Policy': signed['CloudFront-Policy']!,
      'CloudFront-Signature': signed['CloudFront-Signature'],
      'CloudFront-Key-Pair-Id': signed['CloudFront-Key-Pair-Id'],
    };
  }

  /**
   * The parsed key, for the signer. Its types say PEM string or Buffer, but it only hands the
   * key to `crypto.createSign().sign({ key })`, which takes a `KeyObject` as well; the
   * byte-equality tests against the PEM path pin that.
   */
  private key(): string {
    return this.options.privateKey as unknown as string;
  }
}

/** The policy JSON, with the key order CloudFront's documentation and the SDK use. */
function policyDocument(resource: string, expiresAt: number, ipAddress: string | undefined): string {
  const condition: Record<string, unknown> = { DateLessThan: { 'AWS:EpochTime': expiresAt } };
  if (ipAddress !== undefined) condition.IpAddress = { 'AWS:SourceIp': cidr(ipAddress) };
  return JSON.stringify({ Statement: [{ Resource: resource, Condition: condition }] });
}

/** `a.b.c.d` or `a.b.c.d/n` (IPv4, as CloudFront policies take it); a bare address is `/32`. */
function cidr(value: string): string {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(value);
  const valid = match !== null && match.slice(1, 5).every((octet) => Number(octet) <= 255) && (match[5] === undefined || Number(match[5]) <= 32);
  if (!valid) throw new StorageError(`CloudFront policy ipAddress "${value}": must be an IPv4 address or CIDR range such as "203.0.113.7" or "203.0.113.0/24"`);
  return match[5] === undefined ? `${value}/32` : value;
}
