/**
 * URLs that an `InMemoryStorage` hands out and checks itself: `memory://<bucket>/<key>?…`
 * with an expiry and an HMAC over everything before it, keyed with a secret of that one
 * instance. Any change to the URL (key, expiry, a response parameter) breaks the signature.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { encodeKeyPath, encodeRfc3986 } from '../url-signer.js';

/** The scheme of in-memory URLs. */
export const MEMORY_URL_SCHEME = 'memory:';

/** What a URL grants, once its signature is checked. */
export interface MemoryUrlGrant {
  bucket: string;
  key: string;
  /** Unix seconds after which the URL no longer works; undefined for an unsigned URL. */
  expires?: number;
  /** The response parameters it was signed with (`response-content-type`, …). */
  response: Record<string, string>;
}

/** Why a URL is refused: the S3 code a real server gives for the same case. */
export type MemoryUrlProblem = 'SignatureDoesNotMatch' | 'AccessDenied' | 'InvalidRequest';

/** Signs and checks in-memory URLs with one secret. */
export class MemoryUrlSigner {
  constructor(private readonly secret: Buffer) {}

  /** The unsigned URL of a key (what a public bucket or `signedUrls: false` gives). */
  unsigned(bucket: string, key: string): string {
    return `${MEMORY_URL_SCHEME}//${bucket}/${encodeKeyPath(key)}`;
  }

  /** A signed URL for `key`, valid until `expires` (unix seconds). */
  sign(bucket: string, key: string, expires: number, response: Record<string, string | undefined> = {}): string {
    const params = [`expires=${expires}`];
    for (const [name, value] of Object.entries(response)) if (value !== undefined) params.push(`${name}=${encodeRfc3986(value)}`);
    const body = `${this.unsigned(bucket, key)}?${params.join('&')}`;
    return `${body}&sig=${this.mac(body)}`;
  }

  /**
   * What the URL grants, or the problem with it. The signature is checked before the expiry
   * (as S3 does: a changed expiry is a bad signature, not an expired URL).
   */
  verify(url: string, nowMs: number, acceptUnsigned: boolean): MemoryUrlGrant | MemoryUrlProblem {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return 'InvalidRequest';
    }
    if (parsed.protocol !== MEMORY_URL_SCHEME || !parsed.host) return 'InvalidRequest';
    const key = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
    const bucket = parsed.host;
    const at = url.lastIndexOf('&sig=');
    if (at < 0) {
      if (parsed.search !== '' || !acceptUnsigned) return 'AccessDenied';
      return { bucket, key, response: {} };
    }
    const given = Buffer.from(url.slice(at + 5));
    const expected = Buffer.from(this.mac(url.slice(0, at)));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'SignatureDoesNotMatch';
    const response: Record<string, string> = {};
    for (const [name, value] of parsed.searchParams) if (name !== 'expires' && name !== 'sig') response[name] = value;
    const expires = Number(parsed.searchParams.get('expires'));
    if (!(nowMs / 1000 <= expires)) return 'AccessDenied';
    return { bucket, key, expires, response };
  }

  /** A MAC over `text` (form policies use it too). */
  mac(text: string): string {
    return createHmac('sha256', this.secret).update(text).digest('base64url');
  }
}
