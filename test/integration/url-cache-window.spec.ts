/**
 * Stable signed URLs against the real, signature-verifying server. The storage's clock is
 * injected (the server keeps real time), so a window can be placed where it proves the point:
 * the URL issued at a window's last millisecond still works when a URL signed at the window
 * start for only `urlExpiresIn` is already refused.
 */
import { afterAll, beforeAll, describe, expect } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaStorage } from '../../lib/media.storage.js';
import { createS3Client } from '../../lib/s3-client.factory.js';
import { resolveStorageOptions } from '../../lib/storage-options.validation.js';
import { UrlSigner } from '../../lib/url-signer.js';
import { createTestBucket, deleteTestBucket, itRequires, mediaOptions, s3 } from '../harness/s3-test-env.js';

const WINDOW = 5; // seconds
const EXPIRES_IN = 9; // seconds
let bucket: string;
let storage: MediaStorage;
let signer: UrlSigner;
let destroy: () => void;
const clock = { now: 0 };

beforeAll(async () => {
  bucket = await createTestBucket('url-window');
  const { media } = resolveStorageOptions({ media: mediaOptions(bucket, { urlCacheWindow: WINDOW, urlExpiresIn: EXPIRES_IN }) });
  const client = createS3Client(media);
  destroy = () => client.destroy();
  signer = new UrlSigner({ bucket, endpoint: s3.endpoint, forcePathStyle: true, region: s3.region, credentials: media.credentials!, clock: () => clock.now });
  storage = new MediaStorage(client, media, signer);
  await storage.save('avatars/cached.png', Buffer.from('avatar bytes'), { contentType: 'image/png' });
});

afterAll(async () => {
  destroy?.();
  await deleteTestBucket(bucket);
});

function fields(url: string): { signedAt: number; expires: number; cacheControl: string | null } {
  const q = new URL(url).searchParams;
  const d = q.get('X-Amz-Date')!;
  return {
    signedAt: Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +d.slice(9, 11), +d.slice(11, 13), +d.slice(13, 15)),
    expires: Number(q.get('X-Amz-Expires')),
    cacheControl: q.get('response-cache-control'),
  };
}

describe('urlCacheWindow against the server', () => {
  itRequires('signatures', 'one string per window that the server accepts; the next window another; both valid urlExpiresIn after issue; tampering gets 403', async () => {
    // Place "now" in the first second of a real window, then use the window two back: its
    // start is 10-11 s ago. A URL signed there for 9 s has expired; ours (9 s past the
    // window's end) has 3-4 s left, and was issued (at the window's last ms) 5-6 s ago.
    while (Date.now() % (WINDOW * 1000) >= 1000) await sleep(100);
    const real = Date.now();
    const start = Math.floor(real / (WINDOW * 1000)) * WINDOW * 1000 - 2 * WINDOW * 1000;

    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      // From the window's first millisecond to its last.
      clock.now = i === 999 ? start + WINDOW * 1000 - 1 : start + i * WINDOW;
      seen.add(await storage.url('avatars/cached.png'));
    }
    const lastIssue = clock.now;
    expect(lastIssue).toBe(start + WINDOW * 1000 - 1);
    expect(seen.size).toBe(1);
    const [url] = [...seen] as [string];

    const naive = await signer.sign(storage.key('avatars/cached.png'), { expiresIn: EXPIRES_IN, signingDate: start });
    const [ours, plain] = await Promise.all([fetch(url), fetch(naive)]);
    const checkedAt = Date.now();
    expect(plain.status).toBe(403); // what a window without the extended expiry would hand out
    expect(ours.status).toBe(200);
    await expect(ours.text()).resolves.toBe('avatar bytes');
    expect(ours.headers.get('cache-control')).toBe(`private, max-age=${EXPIRES_IN}`);

    const f = fields(url);
    expect(f.signedAt).toBe(start);
    expect(f.expires).toBe(EXPIRES_IN + WINDOW);
    // Valid at least urlExpiresIn after every issue in the window, the last one included.
    expect(f.signedAt + f.expires * 1000 - lastIssue).toBeGreaterThanOrEqual(EXPIRES_IN * 1000);
    expect(checkedAt - lastIssue).toBeLessThan(EXPIRES_IN * 1000);

    clock.now = start + WINDOW * 1000;
    const next = await storage.url('avatars/cached.png');
    expect(next).not.toBe(url);
    expect(fields(next).signedAt).toBe(start + WINDOW * 1000);
    expect(fields(next).signedAt + fields(next).expires * 1000 - (start + 2 * WINDOW * 1000 - 1)).toBeGreaterThanOrEqual(EXPIRES_IN * 1000);
    const second = await fetch(next);
    expect(second.status).toBe(200);
    await second.arrayBuffer();

    // Anything changed in a signed URL is refused: the signature, or the max-age it carries.
    const badSignature = url.replace(/X-Amz-Signature=([0-9a-f])/, (_, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
    const longerCache = url.replace(`max-age%3D${EXPIRES_IN}`, 'max-age%3D31536000');
    expect(longerCache).not.toBe(url);
    for (const tampered of [badSignature, longerCache]) {
      const response = await fetch(tampered);
      expect(response.status).toBe(403);
      await response.arrayBuffer();
    }
  }, 30_000);
});
