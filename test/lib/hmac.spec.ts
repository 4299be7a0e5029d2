import { describe, expect, it } from '@jest/globals';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { HmacSha256, md5Hex, sha256Hex } from '../../lib/hmac.js';

describe('hmac.ts one-shot digests', () => {
  // Key lengths around SHA-256's 64-byte block (shorter keys are padded, longer ones hashed first).
  it.each([0, 1, 32, 63, 64, 65, 200])('HmacSha256 equals createHmac for a %p-byte key', (length) => {
    const key = randomBytes(length);
    const hmac = new HmacSha256(key);
    for (const data of ['', 'AWS4-HMAC-SHA256\n20261202T000000Z\n20261202/us-east-1/s3/aws4_request\nabc', 'ünïcødé ✓ '.repeat(40)]) {
      expect(hmac.hex(data)).toBe(createHmac('sha256', key).update(data, 'utf8').digest('hex'));
      expect(hmac.digest(data).equals(createHmac('sha256', key).update(data, 'utf8').digest())).toBe(true);
    }
  });

  it('takes a string key as UTF-8, as createHmac does', () => {
    expect(new HmacSha256('AWS4sécret').hex('20261202')).toBe(createHmac('sha256', 'AWS4sécret').update('20261202').digest('hex'));
  });

  it('sha256Hex and md5Hex equal createHash', () => {
    const bytes = randomBytes(100_000);
    expect(sha256Hex('canonical\nrequest ✓')).toBe(createHash('sha256').update('canonical\nrequest ✓').digest('hex'));
    expect(md5Hex(bytes)).toBe(createHash('md5').update(bytes).digest('hex'));
    expect(md5Hex('')).toBe('d41d8cd98f00b204e9800998ecf8427e');
  });
});
