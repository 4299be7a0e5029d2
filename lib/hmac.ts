/**
 * HMAC-SHA256 (RFC 2104) and SHA-256/MD5 digests through `crypto.hash`'s one-shot calls,
 * for work repeated tens of thousands of times: SigV4 signatures (every collectstatic PUT,
 * every signed URL) and the md5 of every static file.
 *
 * `createHash`/`createHmac` make a native-backed object per call. V8 keeps such objects
 * alive through young-generation collections, so each one is promoted to the old
 * generation before it dies: about 1 KiB of old-space garbage per digest, which grew a
 * 20,000-file collectstatic by tens of MiB until the next full collection. One-shot digests
 * allocate nothing but their result.
 */
import { hash } from 'node:crypto';

const BLOCK = 64;

/** A key prepared once (its padded inner and outer blocks), for many HMAC-SHA256s. */
export class HmacSha256 {
  private readonly inner: Buffer;
  private readonly outer: Buffer;

  constructor(key: Buffer | string) {
    let bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    if (bytes.length > BLOCK) bytes = hash('sha256', bytes, 'buffer');
    this.inner = Buffer.alloc(BLOCK, 0x36);
    this.outer = Buffer.alloc(BLOCK, 0x5c);
    for (let i = 0; i < bytes.length; i++) {
      this.inner[i] = this.inner[i]! ^ bytes[i]!;
      this.outer[i] = this.outer[i]! ^ bytes[i]!;
    }
  }

  /** HMAC-SHA256 of `data` (UTF-8) in hex. */
  hex(data: string): string {
    return hash('sha256', Buffer.concat([this.outer, this.innerDigest(data)]), 'hex');
  }

  /** HMAC-SHA256 of `data` (UTF-8) as 32 bytes. */
  digest(data: string): Buffer {
    return hash('sha256', Buffer.concat([this.outer, this.innerDigest(data)]), 'buffer');
  }

  private innerDigest(data: string): Buffer {
    return hash('sha256', Buffer.concat([this.inner, Buffer.from(data, 'utf8')]), 'buffer');
  }
}

/** SHA-256 of `value` (UTF-8) in hex. */
export function sha256Hex(value: string): string {
  return hash('sha256', value, 'hex');
}

/** MD5 of `data` in hex. */
export function md5Hex(data: Buffer | string): string {
  return hash('md5', data, 'hex');
}
