/**
 * CloudFront-signed URLs and cookies. There is no CloudFront here: equality with
 * `@aws-sdk/cloudfront-signer` at the same inputs and time, and RSA verification with the
 * public key through Node's crypto, are what prove them.
 */
import { getSignedCookies, getSignedUrl } from '@aws-sdk/cloudfront-signer';
import { afterAll, describe, expect, it, jest } from '@jest/globals';
import { generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { MediaStorage } from '../../lib/media.storage.js';
import { createS3Client } from '../../lib/s3-client.factory.js';
import { StorageConfigurationError } from '../../lib/storage.errors.js';
import { resolveStorageOptions, validateStorageOptions } from '../../lib/storage-options.validation.js';
import { storageOptionsFromEnv } from '../../lib/storage-env.js';
import type { MediaStorageOptions } from '../../lib/storage-module-options.interface.js';
import { cacheWindowAt } from '../../lib/url-cache.js';
import { UrlSigner } from '../../lib/url-signer.js';

const T0 = Date.parse('2026-03-04T05:06:07.890Z');
const DOMAIN = 'd111111abcdef8.cloudfront.net';
const KEY_ID = 'K2JCJMDEHXQW5F';
const { privateKey: pkcs8, publicKey } = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  publicKeyEncoding: { type: 'spki', format: 'pem' },
});
const pkcs1 = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
const KEYS = ['a.png', 'avatars/42/photo ü+%.png', "quote's (paren) *star* !bang.png", 'emoji/😀.png', 'percent%20literal.png', 'hash#tag?.png'];

const clients: { destroy(): void }[] = [];
afterAll(() => clients.forEach((c) => c.destroy()));

function rig(overrides: Partial<MediaStorageOptions> = {}, pem = pkcs8) {
  const { media } = resolveStorageOptions({
    media: { bucket: 'media', location: 'media', cloudfront: { domain: DOMAIN, keyPairId: KEY_ID, privateKey: pem }, ...overrides },
  });
  const client = createS3Client(media);
  clients.push(client);
  const clock = { now: T0 };
  const signer = new UrlSigner({ bucket: 'media', forcePathStyle: false, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, clock: () => clock.now });
  return { storage: new MediaStorage(client, media, signer), clock };
}

/** CloudFront's base64 back to standard base64. */
function unbase64(value: string): Buffer {
  return Buffer.from(value.replace(/-/g, '+').replace(/_/g, '=').replace(/~/g, '/'), 'base64');
}

function verifies(policy: string, signature: string, key: KeyObject | string = publicKey): boolean {
  return verify('sha1', Buffer.from(policy), key, unbase64(signature));
}

describe('CloudFront-signed URLs', () => {
  const expires = Math.floor(T0 / 1000) + 3600;

  it('take precedence over signedUrls and equal cloudfront-signer getSignedUrl (canned policy) for tricky keys', async () => {
    const { storage } = rig({ signedUrls: true });
    for (const name of KEYS) {
      const url = await storage.url(name);
      const base = `https://${DOMAIN}/media/${name.split('/').map(encodeURIComponent).join('/')}`;
      expect(url).toBe(getSignedUrl({ url: base, keyPairId: KEY_ID, privateKey: pkcs8, dateLessThan: new Date(expires * 1000) }));
      const q = new URL(url).searchParams;
      expect(q.get('Expires')).toBe(String(expires));
      expect(q.get('Key-Pair-Id')).toBe(KEY_ID);
      const canned = JSON.stringify({ Statement: [{ Resource: base, Condition: { DateLessThan: { 'AWS:EpochTime': expires } } }] });
      expect(verifies(canned, q.get('Signature')!)).toBe(true);
      expect(verifies(canned.replace(String(expires), String(expires + 1)), q.get('Signature')!)).toBe(false);
    }
  });

  it('sign a custom policy on request: an IP range, or a wildcard resource relative to location', async () => {
    const { storage } = rig();
    const base = `https://${DOMAIN}/media/avatars/1.png`;
    const withIp = await storage.url('avatars/1.png', { policy: { ipAddress: '203.0.113.0/24' } });
    expect(withIp).toBe(getSignedUrl({ url: base, keyPairId: KEY_ID, privateKey: pkcs8, dateLessThan: new Date(expires * 1000), ipAddress: '203.0.113.0/24' }));

    const wildcard = await storage.url('avatars/1.png', { policy: { resource: 'avatars/*', ipAddress: '198.51.100.7' } });
    const policy = JSON.stringify({
      Statement: [{ Resource: `https://${DOMAIN}/media/avatars/*`, Condition: { DateLessThan: { 'AWS:EpochTime': expires }, IpAddress: { 'AWS:SourceIp': '198.51.100.7/32' } } }],
    });
    expect(wildcard).toBe(getSignedUrl({ url: base, keyPairId: KEY_ID, privateKey: pkcs8, policy }));
    const q = new URL(wildcard).searchParams;
    expect(unbase64(q.get('Policy')!).toString()).toBe(policy);
    expect(verifies(policy, q.get('Signature')!)).toBe(true);
    await expect(storage.url('a.png', { policy: { ipAddress: '300.1.1.1' } })).rejects.toThrow('must be an IPv4 address or CIDR range');
  });

  it('accept PKCS#1 keys too', async () => {
    const { storage } = rig({}, pkcs1.privateKey);
    const url = await storage.url('a.png');
    expect(url).toBe(getSignedUrl({ url: `https://${DOMAIN}/media/a.png`, keyPairId: KEY_ID, privateKey: pkcs1.privateKey, dateLessThan: new Date(expires * 1000) }));
  });

  it('honour the cache window: one string per window, valid urlExpiresIn after the window ends', async () => {
    const { storage, clock } = rig({ urlCacheWindow: 600 });
    const { start, end } = cacheWindowAt(T0, 600);
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      clock.now = start + Math.floor((i * 600_000) / 1000);
      seen.add(await storage.url('a.png'));
    }
    expect(seen.size).toBe(1);
    const [url] = [...seen];
    expect(Number(new URL(url!).searchParams.get('Expires'))).toBe(end / 1000 + 3600);
    expect(url).toBe(getSignedUrl({ url: `https://${DOMAIN}/media/a.png`, keyPairId: KEY_ID, privateKey: pkcs8, dateLessThan: new Date(end + 3600_000) }));
    clock.now = end;
    expect(await storage.url('a.png')).not.toBe(url);
  });
});

describe('CloudFront-signed cookies', () => {
  const expires = Math.floor(T0 / 1000) + 3600;

  it('are synchronous and equal getSignedCookies for a path pattern relative to location', () => {
    const { storage } = rig();
    const cookies = storage.cookies('avatars/*');
    expect(cookies).not.toBeInstanceOf(Promise);
    const policy = JSON.stringify({ Statement: [{ Resource: `https://${DOMAIN}/media/avatars/*`, Condition: { DateLessThan: { 'AWS:EpochTime': expires } } }] });
    expect(cookies).toEqual(getSignedCookies({ keyPairId: KEY_ID, privateKey: pkcs8, policy }));
    expect(Object.keys(cookies).sort()).toEqual(['CloudFront-Key-Pair-Id', 'CloudFront-Policy', 'CloudFront-Signature']);
    expect(unbase64(cookies['CloudFront-Policy']).toString()).toBe(policy);
    expect(verifies(policy, cookies['CloudFront-Signature'])).toBe(true);
  });

  it('take an IP range and a window', () => {
    const { storage, clock } = rig();
    const a = storage.cookies('/*', { ipAddress: '203.0.113.9', cacheWindow: 60, expiresIn: 300 });
    clock.now += 30_000;
    const { end } = cacheWindowAt(T0, 60);
    expect(T0 + 30_000).toBeLessThan(end);
    expect(storage.cookies('/*', { ipAddress: '203.0.113.9', cacheWindow: 60, expiresIn: 300 })).toBe(a);
    const policy = JSON.stringify({
      Statement: [{ Resource: `https://${DOMAIN}/media/*`, Condition: { DateLessThan: { 'AWS:EpochTime': end / 1000 + 300 }, IpAddress: { 'AWS:SourceIp': '203.0.113.9/32' } } }],
    });
    expect(a).toEqual(getSignedCookies({ keyPairId: KEY_ID, privateKey: pkcs8, policy }));
    expect(verifies(policy, a['CloudFront-Signature'])).toBe(true);
  });

  it('need cloudfront configured, and refuse paths escaping the location', () => {
    const plain = resolveStorageOptions({ media: { bucket: 'media' } }).media;
    const client = createS3Client(plain);
    clients.push(client);
    const storage = new MediaStorage(client, plain, new UrlSigner({ bucket: 'media', forcePathStyle: false, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
    expect(() => storage.cookies('*')).toThrow('cookies(): media.cloudfront is not configured');
    expect(() => rig().storage.cookies('../*')).toThrow('"." and ".." segments are not allowed');
  });
});

describe('CloudFront options', () => {
  it('parse the key once, at start-up, into a KeyObject', () => {
    const { media } = resolveStorageOptions({ media: { bucket: 'media', cloudfront: { domain: DOMAIN, keyPairId: KEY_ID, privateKey: pkcs8 } } });
    expect(media.cloudfront!.privateKey.type).toBe('private');
    expect(media.cloudfront!.domain).toBe(`https://${DOMAIN}`);
    expect(JSON.stringify(media)).not.toContain('PRIVATE KEY');
  });

  it('fail start-up on a bad key with a clear message that never prints it', () => {
    const bad = pkcs8.replace(/[A-Za-z]{20}/, 'AAAAAAAAAAAAAAAAAAAA');
    const lines = [pkcs8, bad].map((pem) => pem.slice(40, 80));
    for (const privateKey of [bad, 'not a key at all', publicKey]) {
      const problems = validateStorageOptions({ media: { bucket: 'media', cloudfront: { domain: DOMAIN, keyPairId: KEY_ID, privateKey } } });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^media\.cloudfront\.privateKey: is not a readable PEM private key/);
      for (const line of [...lines, privateKey.slice(30, 60)].filter(Boolean)) expect(problems[0]).not.toContain(line);
      expect(() => resolveStorageOptions({ media: { bucket: 'media', cloudfront: { domain: DOMAIN, keyPairId: KEY_ID, privateKey } } })).toThrow(StorageConfigurationError);
    }
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    expect(validateStorageOptions({ media: { bucket: 'media', cloudfront: { domain: DOMAIN, keyPairId: KEY_ID, privateKey: ec.privateKey } } })).toEqual([
      'media.cloudfront.privateKey: is a ec key: CloudFront signs with RSA keys (2048-bit) only',
    ]);
  });

  it('reject customDomain alongside cloudfront, and name missing fields', () => {
    expect(validateStorageOptions({ media: { bucket: 'media', customDomain: 'cdn.example.com', cloudfront: { domain: DOMAIN, keyPairId: KEY_ID, privateKey: pkcs8 } } })).toEqual([
      "media.customDomain: cannot be set with media.cloudfront: CloudFront URLs are on the distribution's domain (set cloudfront.domain to your custom domain instead); remove one of the two",
    ]);
    expect(validateStorageOptions({ media: { bucket: 'media', cloudfront: { domain: '', keyPairId: 'K-1', privateKey: '' } } })).toEqual([
      'media.cloudfront.domain: must be the distribution\'s domain such as "d111111abcdef8.cloudfront.net" (got )',
      'media.cloudfront.keyPairId: must be the id CloudFront shows for the public key, such as "K2JCJMDEHXQW5F" (got K-1)',
      'media.cloudfront.privateKey: is required: the PEM private key of the key pair (MEDIA_S3_CLOUDFRONT_KEY)',
    ]);
  });

  it('come from MEDIA_S3_CLOUDFRONT_*, with \\n line breaks in the key', async () => {
    const env = storageOptionsFromEnv({
      MEDIA_S3_BUCKET_NAME: 'media',
      MEDIA_S3_CLOUDFRONT_DOMAIN: DOMAIN,
      MEDIA_S3_CLOUDFRONT_KEY_ID: KEY_ID,
      MEDIA_S3_CLOUDFRONT_KEY: pkcs8.trim().replace(/\n/g, '\\n'),
    });
    expect(env.media.cloudfront).toEqual({ domain: DOMAIN, keyPairId: KEY_ID, privateKey: pkcs8.trim() });
    expect(validateStorageOptions(env)).toEqual([]);
  });

  it('never log the key', async () => {
    const spy = jest.spyOn(console, 'log');
    const { storage } = rig();
    await storage.url('a.png');
    for (const call of spy.mock.calls) expect(String(call)).not.toContain('PRIVATE KEY');
  });
});
