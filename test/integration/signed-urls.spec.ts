/**
 * The seed's endpoint split, done right: the app talks to the server on one host name
 * (`endpoint`, like http://minio:9000 inside docker compose) and URLs are signed for the
 * host the browser uses (`publicEndpoint`, like http://localhost:9000).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { contentDisposition } from '../../lib/url-signer.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { deleteTestBucket, itRequires, mediaOptions, s3, uniqueBucket } from '../harness/s3-test-env.js';

const internal = new URL(s3.endpoint);
const publicEndpoint = `${internal.protocol}//localhost:${internal.port}`;
const bucket = uniqueBucket('urls');
let fx: StorageFixture;

beforeAll(async () => {
  if (internal.hostname !== '127.0.0.1') throw new Error(`these tests expect the S3 test server on 127.0.0.1, got ${s3.endpoint}`);
  fx = await storageFixture({ media: mediaOptions(bucket, { endpoint: s3.endpoint, publicEndpoint, location: 'media' }) });
});
afterAll(async () => {
  await fx?.moduleRef.close();
  await deleteTestBucket(bucket);
});

/** Changes one hex digit of the signature. */
function tamper(url: string): string {
  return url.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === 'a' ? 'b' : 'a'}`);
}

describe('signed URLs through the browser-facing endpoint', () => {
  it('are signed for the public host, sent no request, and fetch 200 with the right bytes', async () => {
    await fx.storage.save('avatars/1/me.png', Buffer.from('avatar bytes'));
    fx.requests.length = 0;
    const url = await fx.storage.url('avatars/1/me.png');
    expect(fx.requests).toEqual([]);
    expect(url.startsWith(`${publicEndpoint}/${bucket}/media/avatars/1/me.png?`)).toBe(true);
    expect(url).not.toMatch(/x-amz-checksum/i);
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).toString()).toBe('avatar bytes');
  });

  it('work for keys with spaces, unicode, +, %, #, ?, ~ and quotes', async () => {
    const names = ['a b.txt', 'ünï/日本.txt', 'plus+.txt', '100%.txt', 'hash#.txt', 'what?.txt', 'tilde~.txt', "it's (1) *.txt", 'emoji😀.txt'];
    for (const name of names) {
      const stored = await fx.storage.save(`tricky/${name}`, `body of ${name}`);
      const response = await fetch(await fx.storage.url(stored));
      expect({ name, status: response.status }).toEqual({ name, status: 200 });
      expect(await response.text()).toBe(`body of ${name}`);
    }
  });

  it('apply response overrides: download filename (RFC 6266) and content type', async () => {
    await fx.storage.save('docs/report.bin', 'pdf-ish');
    const response = await fetch(await fx.storage.url('docs/report.bin', { downloadAs: 'Résumé 2026.pdf', responseContentType: 'application/pdf' }));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/pdf');
    expect(response.headers.get('content-disposition')).toBe(contentDisposition('Résumé 2026.pdf'));
  });

  itRequires('signatures', 'answer 403 when one character of the signature changes', async () => {
    await fx.storage.save('sig/a.txt', 'x');
    const url = await fx.storage.url('sig/a.txt');
    expect((await fetch(url)).status).toBe(200);
    expect((await fetch(tamper(url))).status).toBe(403);
  });

  itRequires('signatures', 'answer 403 once expired', async () => {
    await fx.storage.save('sig/expiring.txt', 'x');
    const url = await fx.storage.url('sig/expiring.txt', { expiresIn: 1 });
    expect((await fetch(url)).status).toBe(200);
    await sleep(2500);
    expect((await fetch(url)).status).toBe(403);
  });

  itRequires('private', 'the object itself stays private: an unsigned GET on the public host answers 403', async () => {
    await fx.storage.save('sig/private.txt', 'x');
    expect((await fetch(`${publicEndpoint}/${bucket}/media/sig/private.txt`)).status).toBe(403);
  });

  itRequires('signatures', "the seed's trick, signing for the internal host and rewriting it, fails (SignatureDoesNotMatch)", async () => {
    await fx.storage.save('sig/rewrite.txt', 'x');
    const internalFx = await storageFixture({ media: mediaOptions(bucket, { location: 'media' }), ensureBucket: 'off' });
    try {
      const signedForInternal = await internalFx.storage.url('sig/rewrite.txt');
      expect((await fetch(signedForInternal)).status).toBe(200);
      const rewritten = signedForInternal.replace(s3.endpoint, publicEndpoint);
      const response = await fetch(rewritten);
      expect(response.status).toBe(403);
      // Ours, signed for the public host, works there.
      expect((await fetch(await fx.storage.url('sig/rewrite.txt'))).status).toBe(200);
    } finally {
      await internalFx.moduleRef.close();
    }
  });
});

describe('public mode', () => {
  it('signedUrls: false gives plain URLs on the public endpoint; customDomain gives CDN URLs', async () => {
    const plain = await storageFixture({ media: mediaOptions(bucket, { publicEndpoint, signedUrls: false, location: 'pub' }), ensureBucket: 'off' });
    const cdn = await storageFixture({ media: mediaOptions(bucket, { customDomain: 'cdn.example.com/assets', location: 'pub' }), ensureBucket: 'off' });
    try {
      expect(await plain.storage.url('a b/ü.png')).toBe(`${publicEndpoint}/${bucket}/pub/a%20b/%C3%BC.png`);
      expect(await cdn.storage.url('a b/ü.png')).toBe('https://cdn.example.com/assets/pub/a%20b/%C3%BC.png');
    } finally {
      await plain.moduleRef.close();
      await cdn.moduleRef.close();
    }
  });

  it("with acl 'public-read' the plain URL fetches 200", async () => {
    const pub = await storageFixture({ media: mediaOptions(bucket, { publicEndpoint, signedUrls: false, acl: 'public-read', location: 'pub' }), ensureBucket: 'off' });
    try {
      const name = await pub.storage.save('open.txt', 'for everyone');
      const response = await fetch(await pub.storage.url(name));
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('for everyone');
    } finally {
      await pub.moduleRef.close();
    }
  });
});
