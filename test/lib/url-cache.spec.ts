/**
 * Stable signed URLs (`urlCacheWindow`): pure, at an injected clock. The Ceph round trip is
 * in test/integration/url-cache-window.spec.ts.
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { MediaStorage } from '../../lib/media.storage.js';
import { createS3Client } from '../../lib/s3-client.factory.js';
import { StorageError } from '../../lib/storage.errors.js';
import { resolveStorageOptions, validateStorageOptions } from '../../lib/storage-options.validation.js';
import { storageOptionsFromEnv } from '../../lib/storage-env.js';
import type { MediaStorageOptions } from '../../lib/storage-module-options.interface.js';
import { cacheWindowAt, UrlCache, URL_CACHE_MAX_ENTRIES } from '../../lib/url-cache.js';
import { contentDisposition, UrlSigner, type CredentialSource, type SigningCredentials } from '../../lib/url-signer.js';

const T0 = Date.parse('2026-03-04T05:06:07.890Z');
const STATIC: SigningCredentials = { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const KEYS = ['a.png', 'avatars/42/photo ü+%.png', "quote's (paren) *star* !bang.png", 'emoji/😀.png', 'percent%20literal.png'];
const clients: S3Client[] = [];
afterAll(() => clients.forEach((c) => c.destroy()));

interface Rig {
  storage: MediaStorage;
  signer: UrlSigner;
  clock: { now: number };
}

function rig(overrides: Partial<MediaStorageOptions> = {}, credentials: CredentialSource = { ...STATIC }): Rig {
  const { media } = resolveStorageOptions({
    media: { bucket: 'media', endpoint: 'http://localhost:9000', credentials: { ...STATIC }, location: 'm', ...overrides },
  });
  const client = createS3Client(media);
  clients.push(client);
  const clock = { now: T0 };
  const signer = new UrlSigner({ bucket: 'media', endpoint: 'http://localhost:9000', forcePathStyle: true, region: 'us-east-1', credentials, clock: () => clock.now });
  return { storage: new MediaStorage(client, media, signer), signer, clock };
}

function query(url: string): URLSearchParams {
  return new URL(url).searchParams;
}

/** When the URL stops working, from its own X-Amz-Date and X-Amz-Expires. */
function expiryOf(url: string): number {
  const q = query(url);
  const d = q.get('X-Amz-Date')!;
  const signed = Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +d.slice(9, 11), +d.slice(11, 13), +d.slice(13, 15));
  return signed + Number(q.get('X-Amz-Expires')) * 1000;
}

describe('urlCacheWindow: the same URL within a window', () => {
  it('is off by default: no response-cache-control, a new signing time every second', async () => {
    const { storage, clock } = rig();
    const a = await storage.url('a.png');
    clock.now += 1000;
    const b = await storage.url('a.png');
    expect(a).not.toBe(b);
    expect(query(a).has('response-cache-control')).toBe(false);
    expect(resolveStorageOptions({ media: { bucket: 'media' } }).media.urlCacheWindow).toBe(0);
  });

  it('returns one string for 1,000 calls across the window, signed once (also when the calls race)', async () => {
    const { storage, signer, clock } = rig({ urlCacheWindow: 600 });
    const sign = jest.spyOn(signer, 'sign');
    const { start } = cacheWindowAt(T0, 600);
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      clock.now = start + Math.floor((i * 600_000) / 1000); // first to last millisecond of the window
      seen.add(await storage.url('avatars/1.png'));
    }
    const racing = await Promise.all(Array.from({ length: 200 }, () => storage.url('avatars/2.png')));
    expect(seen.size).toBe(1);
    expect(new Set(racing).size).toBe(1);
    expect(sign).toHaveBeenCalledTimes(2);
  });

  it('gives a new URL in the next window, and every URL stays valid urlExpiresIn after it was issued', async () => {
    const { storage, clock } = rig({ urlCacheWindow: 300, urlExpiresIn: 900 });
    const { start, end } = cacheWindowAt(T0, 300);
    clock.now = start;
    const first = await storage.url('a.png');
    clock.now = end - 1;
    expect(await storage.url('a.png')).toBe(first);
    expect(expiryOf(first) - clock.now).toBeGreaterThanOrEqual(900_000);
    expect(query(first).get('X-Amz-Date')).toBe(new Date(start).toISOString().replace(/[-:]|\.\d{3}/g, ''));
    expect(query(first).get('X-Amz-Expires')).toBe('1200');
    // The browser may keep the bytes 900 s: fetched at the window's end, that ends when the signature does.
    expect(query(first).get('response-cache-control')).toBe('private, max-age=900');
    expect(end + 900_000).toBeLessThanOrEqual(expiryOf(first));

    clock.now = end;
    const second = await storage.url('a.png');
    expect(second).not.toBe(first);
    expect(expiryOf(second) - clock.now).toBeGreaterThanOrEqual(900_000);
    const info = await storage.urlInfo('a.png');
    expect(info).toEqual({ url: second, expiresAt: new Date(expiryOf(second)), maxAge: 900 });
  });

  it('is byte-identical to getSignedUrl at the same signingDate, tricky keys and response overrides included', async () => {
    const { storage, clock } = rig({ urlCacheWindow: 3600, urlExpiresIn: 600 });
    const sdk = new S3Client({
      endpoint: 'http://localhost:9000',
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { ...STATIC },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    clients.push(sdk);
    const { start } = cacheWindowAt(T0, 3600);
    clock.now = T0;
    for (const name of KEYS) {
      for (const downloadAs of [undefined, 'Résumé "final".pdf']) {
        const expected = await getSignedUrl(
          sdk,
          new GetObjectCommand({
            Bucket: 'media',
            Key: `m/${name}`,
            ResponseCacheControl: 'private, max-age=600',
            ResponseContentDisposition: downloadAs === undefined ? undefined : contentDisposition(downloadAs),
          }),
          { expiresIn: 4200, signingDate: new Date(start) },
        );
        expect(await storage.url(name, { downloadAs })).toBe(expected);
      }
    }
  });

  it('keys the cache by options: expiry, disposition and type each get their own URL', async () => {
    const { storage } = rig({ urlCacheWindow: 60 });
    const urls = await Promise.all([
      storage.url('a.png'),
      storage.url('a.png', { expiresIn: 120 }),
      storage.url('a.png', { downloadAs: 'a.png' }),
      storage.url('a.png', { responseContentType: 'image/png' }),
      storage.url('b.png'),
    ]);
    expect(new Set(urls).size).toBe(5);
    expect(await storage.url('a.png', { downloadAs: 'a.png' })).toBe(urls[2]);
  });

  it('per call: cacheWindow overrides the storage setting, and 0 turns it off', async () => {
    const off = rig();
    const a = await off.storage.url('a.png', { cacheWindow: 60 });
    off.clock.now += 1000;
    expect(await off.storage.url('a.png', { cacheWindow: 60 })).toBe(a);
    expect(query(a).get('response-cache-control')).toBe('private, max-age=3600');

    const on = rig({ urlCacheWindow: 60 });
    const b = await on.storage.url('a.png', { cacheWindow: 0 });
    on.clock.now += 1000;
    expect(await on.storage.url('a.png', { cacheWindow: 0 })).not.toBe(b);
    expect(query(b).has('response-cache-control')).toBe(false);

    await expect(on.storage.url('a.png', { cacheWindow: 604_000 })).rejects.toThrow(
      'url(): expiresIn + cacheWindow must be at most 604800 seconds (got 3600 + 604000); shorten one of the two',
    );
    await expect(on.storage.url('a.png', { cacheWindow: -1 })).rejects.toBeInstanceOf(StorageError);
  });

  it('makes the credentials identity part of the key: rotated credentials sign anew', async () => {
    let current: SigningCredentials = { accessKeyId: 'ASIAONE', secretAccessKey: 's1', sessionToken: 'token-1' };
    const { storage } = rig({ urlCacheWindow: 600 }, async () => current);
    const one = await storage.url('a.png');
    current = { accessKeyId: 'ASIAONE', secretAccessKey: 's1', sessionToken: 'token-2' };
    const two = await storage.url('a.png');
    current = { accessKeyId: 'ASIATWO', secretAccessKey: 's2', sessionToken: 'token-2' };
    const three = await storage.url('a.png');
    expect(query(one).get('X-Amz-Security-Token')).toBe('token-1');
    expect(query(two).get('X-Amz-Security-Token')).toBe('token-2');
    expect(query(three).get('X-Amz-Credential')).toMatch(/^ASIATWO\//);
    expect(new Set([one, two, three]).size).toBe(3);
  });

  it('lets expiring credentials win: the URL and its max-age never outlive them', async () => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const expiration = new Date(T0 + 1000 * 1000);
    const { storage } = rig({ urlCacheWindow: 600, urlExpiresIn: 3600 }, async () => ({ ...STATIC, sessionToken: 't', expiration }));
    const info = await storage.urlInfo('a.png');
    expect(expiryOf(info.url)).toBeLessThanOrEqual(expiration.getTime());
    expect(info.expiresAt!.getTime()).toBe(expiryOf(info.url));
    const maxAge = Number(/max-age=(\d+)/.exec(query(info.url).get('response-cache-control')!)![1]);
    expect(maxAge).toBe(info.maxAge);
    const { end } = cacheWindowAt(T0, 600);
    expect(end + maxAge * 1000).toBeLessThanOrEqual(expiration.getTime());
  });
});

describe('UrlCache', () => {
  it('is a bounded LRU: the least recently used entry goes first', () => {
    const cache = new UrlCache<string>(3);
    const make = jest.fn((v: string) => () => v);
    for (const k of ['a', 'b', 'c']) cache.lookup('id', '', k, make(k));
    cache.lookup('id', '', 'a', make('a2')); // a is now the most recent
    cache.lookup('id', '', 'd', make('d'));
    expect(cache.size).toBe(3);
    expect(cache.lookup('id', '', 'a', () => 'miss')).toBe('a');
    expect(cache.lookup('id', '', 'b', () => 'miss')).toBe('miss');
    expect(URL_CACHE_MAX_ENTRIES).toBe(10_000);
    expect(new UrlCache().maxEntries).toBe(URL_CACHE_MAX_ENTRIES);
  });

  it('drops a failed signature so the next call tries again', async () => {
    const cache = new UrlCache<string>();
    await expect(cache.lookup('id', '', 'k', () => Promise.reject(new Error('provider down')))).rejects.toThrow('provider down');
    await expect(cache.lookup('id', '', 'k', () => Promise.resolve('ok'))).resolves.toBe('ok');
  });

  it('holds a storage with many names within its bound', async () => {
    const { storage } = rig({ urlCacheWindow: 60 });
    for (let i = 0; i < URL_CACHE_MAX_ENTRIES + 50; i++) await storage.url(`n/${i}.png`);
    const cache = (storage as unknown as { urls: { urlCache: UrlCache<unknown> } }).urls.urlCache;
    expect(cache.size).toBe(URL_CACHE_MAX_ENTRIES);
  });
});

describe('urlCacheWindow options', () => {
  it('checks urlExpiresIn + urlCacheWindow <= 604800 at start-up', () => {
    expect(validateStorageOptions({ media: { bucket: 'media', urlCacheWindow: 601_300 } })).toEqual([
      'media.urlCacheWindow: urlExpiresIn + urlCacheWindow must be at most 604800 seconds (7 days, the SigV4 limit), because URLs handed out at a window\'s end stay valid urlExpiresIn beyond it (got 3600 + 601300 = 604900); shorten one of the two',
    ]);
    expect(validateStorageOptions({ media: { bucket: 'media', urlCacheWindow: 601_200 } })).toEqual([]);
    expect(validateStorageOptions({ media: { bucket: 'media', urlCacheWindow: -5 } })).toEqual(['media.urlCacheWindow: must be 0 (off) or more seconds']);
    expect(validateStorageOptions({ media: { bucket: 'media', urlCacheWindow: 1.5 } })).toEqual([
      'media.urlCacheWindow: must be a whole number of seconds (0 turns it off)',
    ]);
  });

  it('reads MEDIA_S3_URL_CACHE_WINDOW', () => {
    expect(storageOptionsFromEnv({ MEDIA_S3_BUCKET_NAME: 'media', MEDIA_S3_URL_CACHE_WINDOW: '300' }).media.urlCacheWindow).toBe(300);
  });
});
