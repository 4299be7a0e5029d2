import { ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { InvalidKeyError, ObjectNotFoundError, StorageAbortedError, StorageError } from '../../lib/storage.errors.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { blackhole } from '../harness/net.js';
import { deleteTestBucket, itRequires, mediaOptions, rawClient, s3, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const bucket = uniqueBucket('media');
let fx: StorageFixture;

beforeAll(async () => {
  fx = await storageFixture({ media: mediaOptions(bucket, { location: 'uploads' }) });
});
afterAll(async () => {
  await fx?.moduleRef.close();
  await deleteTestBucket(bucket);
});

describe('MediaStorage against a real S3 server', () => {
  it('an already-aborted signal rejects every operation with StorageAbortedError and changes nothing', async () => {
    await fx.storage.save('aborted/a.txt', 'a');
    const signal = AbortSignal.abort();
    const calls: [string, () => Promise<unknown>][] = [
      ['read', () => fx.storage.read('aborted/a.txt', { signal })],
      ['open', () => fx.storage.open('aborted/a.txt', { signal })],
      ['listPage', () => fx.storage.listPage('aborted/', { limit: 10, signal })],
      ['deleteMany', () => fx.storage.deleteMany(['aborted/a.txt'], { signal })],
      ['deletePrefix', () => fx.storage.deletePrefix('aborted/', { signal })],
      ['save', () => fx.storage.save('aborted/b.txt', 'b', { signal })],
    ];
    for (const [name, call] of calls) {
      const error = await call().then(() => undefined, (e: unknown) => e);
      expect([name, error instanceof StorageAbortedError]).toEqual([name, true]);
    }
    expect(await fx.storage.read('aborted/a.txt')).toEqual(Buffer.from('a'));
    expect(await fx.storage.exists('aborted/b.txt')).toBe(false);
  });

  it('saves a Buffer, a string and a Uint8Array, and reads each back', async () => {
    const bytes = randomBytes(1000);
    expect(await fx.storage.save('rt/buffer.bin', bytes)).toBe('rt/buffer.bin');
    expect(await fx.storage.save('rt/text.txt', 'héllo wörld')).toBe('rt/text.txt');
    expect(await fx.storage.save('rt/u8.bin', new Uint8Array([1, 2, 3]))).toBe('rt/u8.bin');
    expect(await fx.storage.read('rt/buffer.bin')).toEqual(bytes);
    expect((await fx.storage.read('rt/text.txt')).toString('utf8')).toBe('héllo wörld');
    expect([...(await fx.storage.read('rt/u8.bin'))]).toEqual([1, 2, 3]);
  });

  it('stores under the location prefix, guesses the content type and keeps headers and metadata', async () => {
    const name = await fx.storage.save('/meta\\photo.PNG', Buffer.from('png'), { cacheControl: 'max-age=60', metadata: { owner: '42' } });
    expect(name).toBe('meta/photo.PNG');
    expect(fx.storage.key(name)).toBe('uploads/meta/photo.PNG');
    const stat = await fx.storage.stat(name);
    expect(stat).toMatchObject({ size: 3, contentType: 'image/png', cacheControl: 'max-age=60', metadata: { owner: '42' } });
    expect(stat.etag).toBe(createHash('md5').update('png').digest('hex'));
    expect(stat.lastModified.getTime()).toBeGreaterThan(Date.now() - 10 * 60_000);
    const explicit = await fx.storage.save('meta/data', 'x', { contentType: 'application/x-custom' });
    expect((await fx.storage.stat(explicit)).contentType).toBe('application/x-custom');
  });

  it('exists() is true for an object and false for a missing one; stat/read/open of a missing one throw ObjectNotFoundError', async () => {
    await fx.storage.save('ex/here.txt', 'x');
    expect(await fx.storage.exists('ex/here.txt')).toBe(true);
    expect(await fx.storage.exists('ex/missing.txt')).toBe(false);
    for (const call of [() => fx.storage.stat('ex/missing.txt'), () => fx.storage.read('ex/missing.txt'), () => fx.storage.open('ex/missing.txt')]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ObjectNotFoundError);
      expect((error as ObjectNotFoundError).message).toBe(`Object "uploads/ex/missing.txt" not found in bucket "${bucket}" at ${s3.endpoint}`);
    }
  });

  it('delete() removes an object, and deleting a missing one is a no-op', async () => {
    await fx.storage.save('del/a.txt', 'x');
    await fx.storage.delete('del/a.txt');
    expect(await fx.storage.exists('del/a.txt')).toBe(false);
    await expect(fx.storage.delete('del/a.txt')).resolves.toBeUndefined();
    await expect(fx.storage.delete('del/never-was.txt')).resolves.toBeUndefined();
  });

  it('open() streams, with ranges', async () => {
    await fx.storage.save('open/digits.txt', '0123456789');
    const chunks: Buffer[] = [];
    for await (const chunk of await fx.storage.open('open/digits.txt', { range: { start: 2, end: 5 } })) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('2345');
  });

  // ListObjects with a marker: this pages on the embedded server too (its v2 tokens do not).
  it('lists 2,500 keys through the async iterable, page after page, relative to the location', async () => {
    const client = rawClient();
    const names = Array.from({ length: 2500 }, (_, i) => `many/${String(i).padStart(5, '0')}.txt`);
    try {
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(names.slice(i, i + 50).map((n) => client.send(new PutObjectCommand({ Bucket: bucket, Key: `uploads/${n}`, Body: n }))));
      }
    } finally {
      client.destroy();
    }
    fx.requests.length = 0;
    const listed: string[] = [];
    for await (const entry of fx.storage.list('many/')) {
      listed.push(entry.name);
      expect(entry.size).toBe(Buffer.byteLength(entry.name));
    }
    expect(listed).toEqual(names);
    expect(fx.requests.filter((r) => r === 'ListObjectsCommand')).toHaveLength(3);
    let first: string | undefined;
    for await (const entry of fx.storage.list('many')) {
      first = entry.name;
      break;
    }
    expect(first).toBe('many/00000.txt');
  }, 120_000);

  it('saves a 20 MiB Readable (multipart) and reads it back byte-identical, leaving no multipart upload behind', async () => {
    const data = randomBytes(20 * MIB);
    const stream = Readable.from((function* () {
      for (let i = 0; i < data.length; i += 64 * 1024) yield data.subarray(i, i + 64 * 1024);
    })());
    fx.requests.length = 0;
    const name = await fx.storage.save('big/20mib.bin', stream, { contentType: 'application/octet-stream' });
    expect(fx.requests).toContain('CreateMultipartUploadCommand');
    expect((await fx.storage.stat(name)).size).toBe(data.length);
    const back = await fx.storage.read(name);
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    const client = rawClient();
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    client.destroy();
    expect(uploads.Uploads ?? []).toEqual([]);
  }, 120_000);

  it('a short Readable goes up in one PutObject', async () => {
    fx.requests.length = 0;
    const name = await fx.storage.save('small/stream.txt', Readable.from([Buffer.from('a'), Buffer.from('b')]));
    expect(await fx.storage.read(name)).toEqual(Buffer.from('ab'));
    expect(fx.requests).toEqual(['HeadObjectCommand', 'PutObjectCommand', 'GetObjectCommand']);
  });

  it('with overwrite false, saving to a taken name stores under a new unique name and keeps both', async () => {
    const first = await fx.storage.save('ow/avatar.png', 'one');
    const second = await fx.storage.save('ow/avatar.png', 'two');
    expect(first).toBe('ow/avatar.png');
    expect(second).toMatch(/^ow\/avatar_[A-Za-z0-9]{8}\.png$/);
    expect((await fx.storage.read(first)).toString()).toBe('one');
    expect((await fx.storage.read(second)).toString()).toBe('two');
  });

  it('with overwrite true (per call), the object is replaced under its own name', async () => {
    await fx.storage.save('ow2/a.txt', 'one');
    expect(await fx.storage.save('ow2/a.txt', 'two', { overwrite: true })).toBe('ow2/a.txt');
    expect((await fx.storage.read('ow2/a.txt')).toString()).toBe('two');
  });

  itRequires('conditional-writes', 'with overwrite false, ten saves racing for one name all survive under distinct names', async () => {
    const bodies = Array.from({ length: 10 }, (_, i) => `racer-${i}`);
    const names = await Promise.all(bodies.map((b) => fx.storage.save('race/same.txt', b)));
    expect(new Set(names).size).toBe(10);
    expect(names).toContain('race/same.txt');
    const contents = await Promise.all(names.map(async (n) => (await fx.storage.read(n)).toString()));
    expect(contents).toEqual(bodies);
  });

  itRequires('private', 'objects are private: an anonymous GET answers 403', async () => {
    await fx.storage.save('private/secret.txt', 'nobody else');
    const response = await fetch(`${s3.endpoint}/${bucket}/uploads/private/secret.txt`);
    expect(response.status).toBe(403);
  });

  it('url() returns a signed URL that works on the endpoint the client uses', async () => {
    await fx.storage.save('url/a b+c.txt', 'signed bytes');
    const url = await fx.storage.url('url/a b+c.txt');
    expect(url.startsWith(`${s3.endpoint}/${bucket}/uploads/url/a%20b%2Bc.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&`)).toBe(true);
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('signed bytes');
  });

  it('rejects bad names with InvalidKeyError before sending any request', async () => {
    fx.requests.length = 0;
    const bad = ['../escape.txt', 'a/../../b', '', '/', 'nul\u0000byte', 'x'.repeat(1025)];
    for (const name of bad) {
      for (const call of [
        () => fx.storage.save(name, 'x'),
        () => fx.storage.read(name),
        () => fx.storage.exists(name),
        () => fx.storage.delete(name),
        () => fx.storage.url(name),
        () => fx.storage.stat(name),
      ]) {
        const error = await call().then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidKeyError);
        expect(error).toBeInstanceOf(StorageError);
      }
    }
    expect(fx.requests).toEqual([]);
  });

  it('rejects a body that is not bytes with a typed error', async () => {
    await expect(fx.storage.save('x.bin', 42 as unknown as string)).rejects.toThrow(
      'save(): body must be a Buffer, Uint8Array, string or Readable, got number',
    );
  });
});

describe('timeouts', () => {
  it('an operation against a stalled server rejects with StorageTimeoutError after `timeout` ms', async () => {
    const stall = await blackhole();
    const endpoint = `http://127.0.0.1:${stall.port}`;
    const stalled = await storageFixture({ media: mediaOptions('stalled', { endpoint, timeout: 400 }), ensureBucket: 'off' });
    try {
      for (const call of [() => stalled.storage.exists('a.txt'), () => stalled.storage.read('a.txt'), () => stalled.storage.save('a.txt', 'x')]) {
        const started = Date.now();
        const error = await call().then(() => undefined, (e: unknown) => e);
        expect(error).toMatchObject({ code: 'STORAGE_TIMEOUT', bucket: 'stalled', endpoint });
        expect((error as Error).message).toMatch(/^(exists|open|save) "a\.txt" in bucket "stalled" at http:\/\/127\.0\.0\.1:\d+ failed: no answer within 400 ms \(the timeout option\)$/);
        // Generous: the message above already says the 400 ms timeout fired; this only rules out a hang.
        expect(Date.now() - started).toBeLessThan(10_000);
      }
    } finally {
      await stalled.moduleRef.close();
      stall.close();
    }
  });
});
