/**
 * SigV4 signing of request headers (the `Authorization` header), for requests sent without
 * the AWS SDK. The body is not hashed (`UNSIGNED-PAYLOAD`): S3 accepts it for PutObject, and
 * `Content-MD5`, which the server checks, still protects the bytes. Key derivation is
 * url-signer.ts's; the day's key is cached, and signatures use hmac.ts's one-shot digests.
 */
import { HmacSha256, sha256Hex } from './hmac.js';
import type { SigningCredentials } from './url-signer.js';
import { deriveSigningKey } from './url-signer.js';

const ALGORITHM = 'AWS4-HMAC-SHA256';
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/** One request to sign: `path` is already percent-encoded as sent (S3 does not encode it twice). */
export interface HeaderSigningRequest {
  method: string;
  host: string;
  path: string;
  /** Headers to send and sign besides host and the `x-amz-*` ones this adds; lower-case names. */
  headers: Record<string, string>;
}

/** Signs requests for one region as whoever the credentials name. */
export class HeaderSigner {
  private cached?: { day: string; secret: string; key: HmacSha256 };

  constructor(private readonly region: string) {}

  /** The headers to send: the request's own, plus host, `x-amz-date`, content hash, token and `authorization`. */
  sign(request: HeaderSigningRequest, credentials: SigningCredentials, now: number): Record<string, string> {
    const amzDate = new Date(now).toISOString().replace(/[-:]|\.\d{3}/g, '');
    const day = amzDate.slice(0, 8);
    const headers: Record<string, string> = {
      ...request.headers,
      host: request.host,
      'x-amz-content-sha256': UNSIGNED_PAYLOAD,
      'x-amz-date': amzDate,
    };
    if (credentials.sessionToken) headers['x-amz-security-token'] = credentials.sessionToken;
    const names = Object.keys(headers).sort();
    const canonicalHeaders = names.map((name) => `${name}:${headers[name]!.trim().replace(/\s+/g, ' ')}\n`).join('');
    const signedHeaders = names.join(';');
    const scope = `${day}/${this.region}/s3/aws4_request`;
    const canonicalRequest = `${request.method}\n${request.path}\n\n${canonicalHeaders}\n${signedHeaders}\n${UNSIGNED_PAYLOAD}`;
    const stringToSign = `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
    const signature = this.keyFor(day, credentials.secretAccessKey).hex(stringToSign);
    headers.authorization = `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return headers;
  }

  private keyFor(day: string, secret: string): HmacSha256 {
    const c = this.cached;
    if (c && c.day === day && c.secret === secret) return c.key;
    const key = new HmacSha256(deriveSigningKey(secret, day, this.region));
    this.cached = { day, secret, key };
    return key;
  }
}
