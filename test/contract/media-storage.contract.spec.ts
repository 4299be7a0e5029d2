/**
 * The contract: one set of behaviour tests, run against MediaStorage on the test server
 * (Ceph in CI, the embedded fallback on a bare machine) and against the test kit's
 * InMemoryStorage. What passes here for one passes for the other, so a unit test written
 * against the in-memory storage tells the truth about the real one.
 *
 * URLs and forms are checked the way each backend can be: the real one by fetching the URL
 * and posting the form over HTTP (an S3 refusal becomes the StorageOperationError that a
 * 403 gives in MediaStorage), the in-memory one with resolveUrl() and post(). Expiry is
 * tested without waiting: the real storage signs with a clock set back, the in-memory one
 * moves its clock forward. On a server that verifies no signatures (the embedded fallback)
 * the tests of refusals are skipped, each with its reason printed.
 *
 * copy, move, deleteMany, deletePrefix and list pages are here with their key and overwrite
 * rules and cursors. What only a server has is not: multipart copy above
 * multipartCopyThreshold, per-key refusals of a bulk delete (a bucket policy) and request
 * counts are in test/integration/object-operations.spec.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { DirectUpload } from '../../lib/direct-uploads.js';
import type { MediaStorageApi } from '../../lib/media-storage.api.js';
import { MediaStorage, type ListEntry, type ListPage } from '../../lib/media.storage.js';
import { createS3Client } from '../../lib/s3-client.factory.js';
import {
  InvalidBodyError,
  InvalidKeyError,
  ObjectNotFoundError,
  StorageAbortedError,
  StorageConfigurationError,
  StorageError,
  StorageOperationError,
  UploadRejectedError,
} from '../../lib/storage.errors.js';
import { resolveStorageOptions } from '../../lib/storage-options.validation.js';
import { InMemoryStorage } from '../../lib/testing/in-memory.storage.js';
import { UrlSigner, type SigningCredentials } from '../../lib/url-signer.js';
import type { Capability } from '../harness/global-setup.js';
import { createTestBucket, deleteTestBucket, itRequires, mediaOptions } from '../harness/s3-test-env.js';

const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(300)]);
const LOCATION = 'media';

/** What the suite needs from a backend beyond the storage itself. */
interface Backend {
  storage: MediaStorageApi;
  /** A GET of the URL as a browser makes it: the bytes, or the refusal as a StorageOperationError. */
  fetchUrl(url: string): Promise<Buffer>;
  /** The browser's POST of a form; a refusal as a StorageOperationError. */
  post(upload: DirectUpload, body: Buffer, contentType?: string): Promise<void>;
  /** The browser's PUT of a part to a signed part URL: its ETag header, or the refusal as a StorageOperationError. */
  putPart(url: string, body: Buffer): Promise<string>;
  /** Runs `make` as if it were `seconds` ago (what it makes is that old afterwards). */
  inThePast<T>(seconds: number, make: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

interface BackendFactory {
  label: string;
  /** `it` for tests that need the server to verify signatures and policies. */
  itSigned(name: string, fn: () => Promise<void>): void;
  /** `it` for tests that need the server to have `capability`. */
  itNeeds(capability: Capability, name: string, fn: () => Promise<void>, timeout?: number): void;
  start(): Promise<Backend>;
}

/** An S3 error answer (`<Code>…</Code>`) as the error MediaStorage makes of a 4xx. */
async function refusal(operation: string, bucket: string, response: Response): Promise<StorageOperationError> {
  const text = await response.text();
  const s3Code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1];
  return new StorageOperationError(operation, `HTTP ${response.status}`, { bucket, status: response.status, s3Code });
}

const real: BackendFactory = {
  label: 'MediaStorage on the test server',
  itSigned: (name, fn) => itRequires('signatures', name, fn),
  itNeeds: (capability, name, fn, timeout) => itRequires(capability, name, fn, timeout),
  async start() {
    const bucket = await createTestBucket('contract');
    const media = resolveStorageOptions({ media: mediaOptions(bucket, { location: LOCATION }) }).media;
    const client = createS3Client(media);
    let offset = 0;
    const signer = new UrlSigner({
      bucket,
      endpoint: media.endpoint,
      forcePathStyle: media.forcePathStyle,
      region: media.region!,
      credentials: media.credentials as SigningCredentials,
      clock: () => Date.now() + offset,
    });
    const storage = new MediaStorage(client, media, signer);
    return {
      storage,
      async fetchUrl(url) {
        const response = await fetch(url);
        if (!response.ok) throw await refusal('GET', bucket, response);
        return Buffer.from(await response.arrayBuffer());
      },
      async post(upload, body, contentType) {
        const form = new FormData();
        for (const [k, v] of Object.entries(upload.fields)) form.append(k, k === 'Content-Type' && contentType !== undefined ? contentType : v);
        form.append('file', new Blob([body], { type: contentType ?? upload.fields['Content-Type'] }), 'upload.bin');
        const response = await fetch(upload.url, { method: 'POST', body: form });
        if (!response.ok) throw await refusal('POST', bucket, response);
        await response.arrayBuffer();
      },
      async putPart(url, body) {
        const response = await fetch(url, { method: 'PUT', body });
        if (!response.ok) throw await refusal('PUT', bucket, response);
        await response.arrayBuffer();
        return response.headers.get('etag')!;
      },
      async inThePast(seconds, make) {
        offset = -seconds * 1000;
        try {
          return await make();
        } finally {
          offset = 0;
        }
      },
      async close() {
        client.destroy();
        await deleteTestBucket(bucket);
      },
    };
  },
};

const memory: BackendFactory = {
  label: 'InMemoryStorage',
  itSigned: (name, fn) => it(name, fn),
  itNeeds: (_, name, fn, timeout) => it(name, fn, timeout),
  async start() {
    const storage = new InMemoryStorage({ location: LOCATION });
    return {
      storage,
      fetchUrl: (url) => storage.resolveUrl(url),
      post: (upload, body, contentType) => storage.post(upload, body, contentType),
      putPart: (url, body) => storage.putPart(url, body),
      async inThePast(seconds, make) {
        const made = await make();
        storage.advanceClock(seconds * 1000);
        return made;
      },
      close: async () => undefined,
    };
  },
};

async function names(storage: MediaStorageApi, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of storage.list(prefix)) found.push(entry.name);
  return found;
}

/** The URL with its expiry changed by one second (`X-Amz-Expires=` or `expires=`). */
function withExpiryChanged(url: string): string {
  const changed = url.replace(/([?&](?:X-Amz-Expires|expires)=)(\d+)/, (_, name: string, value: string) => `${name}${Number(value) + 1}`);
  expect(changed).not.toBe(url);
  return changed;
}

describe.each([real, memory])('the MediaStorage contract: $label', (factory) => {
  let b: Backend;
  let s: MediaStorageApi;
  beforeAll(async () => {
    b = await factory.start();
    s = b.storage;
  });
  afterAll(async () => {
    await b?.close();
  });

  describe('save, read, stat', () => {
    it('round-trips bytes and reports what was stored, under the location', async () => {
      const stored = await s.upload('rt/hello.txt', 'hello');
      expect(stored).toEqual({ name: 'rt/hello.txt', key: `${LOCATION}/rt/hello.txt`, size: 5, etag: '5d41402abc4b2a76b9719d911017c592', contentType: 'text/plain; charset=utf-8' });
      expect((await s.read('rt/hello.txt')).toString()).toBe('hello');
      expect(s.key('rt/hello.txt')).toBe(`${LOCATION}/rt/hello.txt`);
      const chunks: Buffer[] = [];
      for await (const chunk of await s.open('rt/hello.txt')) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('hello');
    });

    it('stores the type, cache control and metadata given (metadata names in lower case)', async () => {
      await s.save('rt/meta.bin', PNG, { contentType: 'image/png', cacheControl: 'max-age=60', metadata: { Owner: 'u1' } });
      const stat = await s.stat('rt/meta.bin');
      expect(stat).toMatchObject({ size: PNG.length, contentType: 'image/png', cacheControl: 'max-age=60', metadata: { owner: 'u1' } });
      expect(stat.etag).toMatch(/^[0-9a-f]{32}$/);
      expect(stat.lastModified.getTime()).toBeGreaterThan(Date.now() - 10 * 60_000);
    });

    it('takes Uint8Array and streams of strings (a character split between chunks stays whole)', async () => {
      await s.save('rt/u8.bin', new Uint8Array([1, 2, 3]));
      expect([...(await s.read('rt/u8.bin'))]).toEqual([1, 2, 3]);
      const emoji = '😀';
      await s.save('rt/split.txt', Readable.from(['a', emoji[0]!, emoji[1]!, 'b']));
      expect((await s.read('rt/split.txt')).toString()).toBe(`a${emoji}b`);
    });

    it('reads a range; a start past the end is an error', async () => {
      await s.save('rt/range.txt', '0123456789');
      expect((await s.read('rt/range.txt', { range: { start: 2, end: 4 } })).toString()).toBe('234');
      expect((await s.read('rt/range.txt', { range: { start: 7 } })).toString()).toBe('789');
      expect((await s.read('rt/range.txt', { range: { start: 8, end: 100 } })).toString()).toBe('89');
      await expect(s.read('rt/range.txt', { range: { start: 10 } })).rejects.toMatchObject({ code: 'STORAGE_OPERATION', status: 416 });
    });

    it('reads only the version named by ifMatch; another ETag is status 412 (PreconditionFailed)', async () => {
      await s.save('rt/if-match.txt', '0123456789', { overwrite: true });
      const { etag } = await s.stat('rt/if-match.txt');
      expect((await s.read('rt/if-match.txt', { ifMatch: etag, range: { start: 5 } })).toString()).toBe('56789');
      await s.save('rt/if-match.txt', 'replaced', { overwrite: true });
      await expect(s.read('rt/if-match.txt', { ifMatch: etag })).rejects.toMatchObject({ code: 'STORAGE_OPERATION', status: 412, s3Code: 'PreconditionFailed' });
    });

    it('refuses what is not bytes, and a body of another size than declared, storing nothing', async () => {
      await expect(s.save('rt/bad.bin', 42 as unknown as string)).rejects.toBeInstanceOf(InvalidBodyError);
      await expect(s.save('rt/bad.bin', Readable.from([{ not: 'bytes' }]))).rejects.toMatchObject({ code: 'STORAGE_INVALID_BODY' });
      await expect(s.save('rt/bad.bin', 'abc', { size: 4 })).rejects.toMatchObject({ code: 'STORAGE_UPLOAD_REJECTED', reason: 'size-mismatch' });
      expect(await s.exists('rt/bad.bin')).toBe(false);
    });

    it('a source stream that fails fails the save with its message, storing nothing', async () => {
      async function* failing(): AsyncGenerator<Buffer> {
        yield Buffer.from('part');
        throw new Error('the upstream socket closed');
      }
      const error = await s.save('rt/failed.txt', Readable.from(failing())).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      expect(error).toMatchObject({ code: 'STORAGE_OPERATION', operation: 'save', message: expect.stringContaining('the upstream socket closed') });
      expect(await s.exists('rt/failed.txt')).toBe(false);
    });

    it('an aborted save is StorageAbortedError and stores nothing', async () => {
      const controller = new AbortController();
      controller.abort();
      const error = await s.save('rt/aborted.txt', 'x', { signal: controller.signal }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageAbortedError);
      expect(error).toMatchObject({ code: 'STORAGE_ABORTED' });
      expect(await s.exists('rt/aborted.txt')).toBe(false);
    });
  });

  describe('key rules', () => {
    it('normalizes slashes, dots, backslashes and Unicode to one key', async () => {
      expect(await s.save('/keys/./a//b.txt', 'one')).toBe('keys/a/b.txt');
      expect((await s.read('keys\\a\\b.txt')).toString()).toBe('one');
      expect(await s.save('keys/x/../e\u0301.txt', 'nfc', { overwrite: true })).toBe('keys/\u00e9.txt');
      expect((await s.read('keys/\u00e9.txt')).toString()).toBe('nfc');
      expect(s.key('keys/x/../y.txt')).toBe(`${LOCATION}/keys/y.txt`);
    });

    it.each([
      ['escaping the location', '../outside.txt'],
      ['empty', '/./'],
      ['a control character', 'keys/a\nb.txt'],
      ['an unpaired surrogate', 'keys/\ud800.txt'],
      ['over 1,024 bytes with the location', `keys/${'x'.repeat(1020)}`],
    ])('refuses a name %s with InvalidKeyError, before any request', async (_, name) => {
      await expect(s.save(name, 'x')).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(s.read(name)).rejects.toMatchObject({ code: 'STORAGE_INVALID_KEY' });
      await expect(s.exists(name)).rejects.toBeInstanceOf(InvalidKeyError);
      expect(() => s.key(name)).toThrow(InvalidKeyError);
    });
  });

  describe('overwrite rule', () => {
    it('keeps a taken name: the second save gets a new name and the first bytes stay', async () => {
      expect(await s.save('ow/dup.txt', 'first')).toBe('ow/dup.txt');
      const second = await s.save('ow/dup.txt', 'second');
      expect(second).toMatch(/^ow\/dup_[A-Za-z0-9]{8}\.txt$/);
      expect((await s.read('ow/dup.txt')).toString()).toBe('first');
      expect((await s.read(second)).toString()).toBe('second');
    });

    factory.itNeeds('conditional-writes', 'saves racing for one name each get their own name; no bytes are lost', async () => {
      const bodies = Array.from({ length: 6 }, (_, i) => `racer ${i}`);
      const stored = await Promise.all(bodies.map((body) => s.save('ow/race.txt', body)));
      expect(new Set(stored).size).toBe(bodies.length);
      expect(stored).toContain('ow/race.txt');
      expect((await Promise.all(stored.map(async (name) => (await s.read(name)).toString()))).sort()).toEqual(bodies.sort());
    });

    it('replaces with overwrite: true', async () => {
      await s.save('ow/replace.txt', 'first');
      expect(await s.save('ow/replace.txt', 'second', { overwrite: true })).toBe('ow/replace.txt');
      expect((await s.read('ow/replace.txt')).toString()).toBe('second');
    });
  });

  describe('missing objects', () => {
    it('read, open and stat throw ObjectNotFoundError; exists is false; delete is a no-op', async () => {
      await expect(s.read('missing/none.txt')).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(s.open('missing/none.txt')).rejects.toMatchObject({ code: 'STORAGE_NOT_FOUND', key: `${LOCATION}/missing/none.txt`, bucket: s.bucket });
      await expect(s.stat('missing/none.txt')).rejects.toBeInstanceOf(ObjectNotFoundError);
      expect(await s.exists('missing/none.txt')).toBe(false);
      await expect(s.delete('missing/none.txt')).resolves.toBeUndefined();
    });

    it('a deleted object is gone', async () => {
      await s.save('missing/gone.txt', 'x');
      await s.delete('missing/gone.txt');
      expect(await s.exists('missing/gone.txt')).toBe(false);
      expect(await names(s, 'missing/')).toEqual([]);
    });
  });

  describe('list', () => {
    it('lists names under a prefix in S3 key order (UTF-8 bytes), relative to the location', async () => {
      // In UTF-16 order U+1F600 sorts before U+FFFD; in S3's (UTF-8) order it sorts after.
      for (const name of ['ls/b.txt', 'ls/a.txt', 'ls/Z.txt', 'ls/sub/c.txt', 'ls/\ufffd.txt', 'ls/\u{1f600}.txt', 'ls-other/x.txt']) await s.save(name, name);
      expect(await names(s, 'ls/')).toEqual(['ls/Z.txt', 'ls/a.txt', 'ls/b.txt', 'ls/sub/c.txt', 'ls/\ufffd.txt', 'ls/\u{1f600}.txt']);
      expect(await names(s, 'ls')).toContain('ls-other/x.txt');
      expect(await names(s, 'ls/sub/')).toEqual(['ls/sub/c.txt']);
      const entries: { name: string; size: number }[] = [];
      for await (const e of s.list('ls/sub')) entries.push({ name: e.name, size: e.size });
      expect(entries).toEqual([{ name: 'ls/sub/c.txt', size: 'ls/sub/c.txt'.length }]);
    });
  });

  describe('list paging', () => {
    factory.itNeeds('list-pagination', 'goes past a page of 1,000; each page is a snapshot, and a key saved after the cursor shows up', async () => {
      const all = Array.from({ length: 1003 }, (_, i) => `page/${String(i).padStart(4, '0')}.txt`);
      for (let i = 0; i < all.length; i += 50) await Promise.all(all.slice(i, i + 50).map((name) => s.save(name, 'p', { overwrite: true })));
      const seen: string[] = [];
      for await (const entry of s.list('page/')) {
        seen.push(entry.name);
        if (seen.length === 1) {
          // Within the first page, already answered: still listed. After the cursor: listed.
          await s.delete('page/0500.txt');
          await s.save('page/late.txt', 'late');
        }
      }
      expect(seen).toEqual([...all, 'page/late.txt']);
    }, 120_000);
  });

  describe('copy and move', () => {
    it('copy keeps the bytes, type, cache control and metadata, leaves the source, and returns the name stored', async () => {
      await s.save('cp/src.bin', PNG, { contentType: 'image/png', cacheControl: 'max-age=60', metadata: { Owner: 'u1' } });
      const source = await s.stat('cp/src.bin');
      expect(await s.copy('/cp//src.bin', './cp/dst.bin')).toBe('cp/dst.bin');
      expect(await s.read('cp/dst.bin')).toEqual(PNG);
      expect(await s.read('cp/src.bin')).toEqual(PNG);
      const copied = await s.stat('cp/dst.bin');
      expect(copied).toMatchObject({ size: PNG.length, etag: source.etag, contentType: 'image/png', cacheControl: 'max-age=60' });
      // Exactly the source's metadata: nothing of the placeholder that won the name is left.
      expect(copied.metadata).toEqual({ owner: 'u1' });
    });

    it('copy with overwrite false onto a taken name stores an alternative name and keeps both; so does a copy onto itself', async () => {
      await s.save('cp/taken-src.txt', 'new bytes');
      await s.save('cp/taken.txt', 'old bytes');
      const stored = await s.copy('cp/taken-src.txt', 'cp/taken.txt');
      expect(stored).toMatch(/^cp\/taken_[A-Za-z0-9]{8}\.txt$/);
      expect((await s.read('cp/taken.txt')).toString()).toBe('old bytes');
      expect((await s.read(stored)).toString()).toBe('new bytes');
      const self = await s.copy('cp/taken.txt', 'cp/taken.txt', { overwrite: false });
      expect(self).toMatch(/^cp\/taken_[A-Za-z0-9]{8}\.txt$/);
      expect(self).not.toBe(stored);
      expect((await s.read(self)).toString()).toBe('old bytes');
      expect((await s.read('cp/taken.txt')).toString()).toBe('old bytes');
    });

    it('copy with overwrite true replaces the destination; onto itself it changes nothing', async () => {
      await s.save('cp/ow-src.txt', 'replacement', { contentType: 'text/x-new' });
      await s.save('cp/ow.txt', 'original', { metadata: { old: 'yes' } });
      expect(await s.copy('cp/ow-src.txt', 'cp/ow.txt', { overwrite: true })).toBe('cp/ow.txt');
      expect((await s.read('cp/ow.txt')).toString()).toBe('replacement');
      expect(await s.stat('cp/ow.txt')).toMatchObject({ contentType: 'text/x-new', metadata: {} });
      const before = await s.stat('cp/ow.txt');
      expect(await s.copy('cp//ow.txt', 'cp/ow.txt', { overwrite: true })).toBe('cp/ow.txt');
      expect(await s.stat('cp/ow.txt')).toEqual(before);
      expect(await names(s, 'cp/ow')).toEqual(['cp/ow-src.txt', 'cp/ow.txt']);
    });

    it('move copies then deletes the source; overwrite false takes an alternative name, true replaces; onto itself it does nothing', async () => {
      await s.save('mv/a.txt', 'moving', { metadata: { kind: 'm' } });
      expect(await s.move('mv/a.txt', 'mv/b.txt')).toBe('mv/b.txt');
      expect(await s.exists('mv/a.txt')).toBe(false);
      expect((await s.read('mv/b.txt')).toString()).toBe('moving');
      expect((await s.stat('mv/b.txt')).metadata).toEqual({ kind: 'm' });

      await s.save('mv/src1.txt', 'one');
      const stored = await s.move('mv/src1.txt', 'mv/b.txt');
      expect(stored).toMatch(/^mv\/b_[A-Za-z0-9]{8}\.txt$/);
      expect((await s.read('mv/b.txt')).toString()).toBe('moving');
      expect((await s.read(stored)).toString()).toBe('one');
      expect(await s.exists('mv/src1.txt')).toBe(false);

      await s.save('mv/src2.txt', 'two');
      expect(await s.move('mv/src2.txt', 'mv/b.txt', { overwrite: true })).toBe('mv/b.txt');
      expect((await s.read('mv/b.txt')).toString()).toBe('two');
      expect(await s.exists('mv/src2.txt')).toBe(false);

      // Onto itself (also with overwrite false): nothing moves, nothing is deleted.
      expect(await s.move('mv/b.txt', './mv//b.txt')).toBe('mv/b.txt');
      expect((await s.read('mv/b.txt')).toString()).toBe('two');
      expect((await names(s, 'mv/')).sort()).toEqual([stored, 'mv/b.txt'].sort());
    });

    it('a missing source is ObjectNotFoundError naming its key, and nothing is stored', async () => {
      for (const attempt of [() => s.copy('cp/missing.txt', 'cp/from-missing.txt'), () => s.move('cp/missing.txt', 'cp/from-missing.txt'), () => s.move('cp/missing.txt', 'cp/missing.txt')]) {
        const error = await attempt().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ObjectNotFoundError);
        expect(error).toMatchObject({ code: 'STORAGE_NOT_FOUND', key: `${LOCATION}/cp/missing.txt`, bucket: s.bucket });
      }
      await expect(s.copy('cp/missing.txt', 'cp/missing.txt', { overwrite: true })).rejects.toBeInstanceOf(ObjectNotFoundError);
      expect(await s.exists('cp/from-missing.txt')).toBe(false);
      expect(await s.exists('cp/missing.txt')).toBe(false);
    });

    it.each([
      ['a source escaping the location', '../outside.txt', 'cp/bad-dst.txt'],
      ['an empty destination', 'cp/valid.txt', '/./'],
      ['a control character in the destination', 'cp/valid.txt', 'cp/a\u0000b.txt'],
      ['a destination over 1,024 bytes with the location', 'cp/valid.txt', `cp/${'x'.repeat(1020)}`],
    ])('refuses %s with InvalidKeyError; nothing is copied or moved', async (_, from, to) => {
      await s.save('cp/valid.txt', 'stays', { overwrite: true });
      const before = await names(s, 'cp/');
      await expect(s.copy(from, to)).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(s.copy(from, to, { overwrite: true })).rejects.toMatchObject({ code: 'STORAGE_INVALID_KEY' });
      await expect(s.move(from, to)).rejects.toBeInstanceOf(InvalidKeyError);
      expect(await names(s, 'cp/')).toEqual(before);
      expect((await s.read('cp/valid.txt')).toString()).toBe('stays');
    });
  });

  describe('deleteMany', () => {
    it('deletes existing names, counts missing ones as deleted, reports invalid ones, and reports each duplicate as passed in', async () => {
      await Promise.all(['dm/a.txt', 'dm/b.txt', 'dm/c.txt', 'dm-keep/x.txt'].map((name) => s.save(name, name)));
      const result = await s.deleteMany(['dm/a.txt', 'dm/missing.txt', '../outside.txt', '/dm//b.txt', '', 'dm/b.txt', 'dm/c.txt', 'dm/a\nb.txt']);
      expect(result.errors.map(({ name, code }) => ({ name, code }))).toEqual([
        { name: '../outside.txt', code: 'InvalidKey' },
        { name: '', code: 'InvalidKey' },
        { name: 'dm/a\nb.txt', code: 'InvalidKey' },
      ]);
      // The message is the InvalidKeyError the name gives anywhere else.
      const invalid = (() => {
        try {
          return s.key('../outside.txt');
        } catch (error) {
          return (error as Error).message;
        }
      })();
      expect(result.errors[0]!.message).toBe(invalid);
      expect([...result.deleted].sort()).toEqual(['/dm//b.txt', 'dm/a.txt', 'dm/b.txt', 'dm/c.txt', 'dm/missing.txt']);
      expect(await names(s, 'dm')).toEqual(['dm-keep/x.txt']);
      expect(await s.deleteMany([])).toEqual({ deleted: [], errors: [] });
      expect(await s.deleteMany(['../only-invalid'])).toMatchObject({ deleted: [], errors: [{ name: '../only-invalid', code: 'InvalidKey' }] });
    });

    it('takes more than 1,000 names (two DeleteObjects on S3), from any iterable', async () => {
      const existing = Array.from({ length: 30 }, (_, i) => `dm-big/${String(i * 40).padStart(4, '0')}.txt`);
      await Promise.all(existing.map((name) => s.save(name, 'x', { overwrite: true })));
      const all = Array.from({ length: 1200 }, (_, i) => `dm-big/${String(i).padStart(4, '0')}.txt`);
      function* generated(): Generator<string> {
        yield* all;
      }
      const result = await s.deleteMany(generated());
      expect(result.errors).toEqual([]);
      expect(result.deleted).toHaveLength(1200);
      expect(new Set(result.deleted)).toEqual(new Set(all));
      expect(await names(s, 'dm-big/')).toEqual([]);
    }, 60_000);
  });

  describe('deletePrefix', () => {
    it('deletes a few hundred keys under a prefix and returns the count; neighbours stay', async () => {
      const all = Array.from({ length: 300 }, (_, i) => `dp/${i % 3}/${String(i).padStart(4, '0')}.txt`);
      for (let i = 0; i < all.length; i += 50) await Promise.all(all.slice(i, i + 50).map((name) => s.save(name, 'd', { overwrite: true })));
      await s.save('dp-neighbour/keep.txt', 'keep');
      await s.save('dp', 'a file named like the folder');
      expect(await s.deletePrefix('dp/1/')).toBe(100);
      expect(await names(s, 'dp/1/')).toEqual([]);
      expect(await s.deletePrefix('/dp//')).toBe(200);
      expect(await names(s, 'dp/')).toEqual([]);
      expect(await s.exists('dp-neighbour/keep.txt')).toBe(true);
      expect(await s.exists('dp')).toBe(true);
      expect(await s.deletePrefix('dp/')).toBe(0);
    }, 120_000);

    it('refuses an empty prefix (the whole location) and one escaping it with InvalidKeyError, deleting nothing', async () => {
      await s.save('dp-safe/x.txt', 'x');
      for (const prefix of ['', '/', './', '.', '\\']) {
        const error = await s.deletePrefix(prefix).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidKeyError);
        expect((error as Error).message).toBe(
          `Invalid object name ${JSON.stringify(prefix)}: deletePrefix() needs a non-empty prefix; an empty one would delete everything in the storage location (delete the objects by name, or use a prefix such as "users/42/")`,
        );
      }
      await expect(s.deletePrefix('../up/')).rejects.toBeInstanceOf(InvalidKeyError);
      expect(await s.exists('dp-safe/x.txt')).toBe(true);
    });
  });

  describe('list pages', () => {
    const PAGED = Array.from({ length: 25 }, (_, i) => `pg/${String(i).padStart(2, '0')}.txt`);
    const cursorOf = (name: string): string => Buffer.from(name, 'utf8').toString('base64url');
    beforeAll(async () => {
      await Promise.all(PAGED.map((name) => s.save(name, `body of ${name}`, { overwrite: true })));
      await s.save('pg-other/x.txt', 'outside the prefix');
      await s.save('pg/\u00e9.txt', 'after the ASCII names in UTF-8 order');
    });

    it('limit and cursor page through a prefix, entry for entry what the iterator gives; the cursor is the last name, base64url', async () => {
      const iterated: ListEntry[] = [];
      for await (const entry of s.list('pg/')) iterated.push(entry);
      expect(iterated.map((e) => e.name)).toEqual([...PAGED, 'pg/\u00e9.txt']);
      const sizes: number[] = [];
      const paged: ListEntry[] = [];
      const cursors: (string | undefined)[] = [];
      let cursor: string | undefined;
      do {
        const page: ListPage = await s.list('pg/', { limit: 10, cursor });
        sizes.push(page.items.length);
        paged.push(...page.items);
        cursors.push(page.cursor);
        cursor = page.cursor;
      } while (cursor);
      expect(sizes).toEqual([10, 10, 6]);
      expect(cursors).toEqual([cursorOf('pg/09.txt'), cursorOf('pg/19.txt'), undefined]);
      expect(paged).toEqual(iterated);
      // listPage() is the same page; a limit covering exactly the rest ends with no cursor.
      expect(await s.listPage('pg/', { limit: 10 })).toEqual(await s.list('pg/', { limit: 10 }));
      expect(await s.listPage('pg/', { cursor: cursorOf('pg/19.txt'), limit: 6 })).toEqual({ items: iterated.slice(20), cursor: undefined });
      expect(await s.listPage('pg/')).toEqual({ items: iterated, cursor: undefined });
      expect(await s.listPage('pg/none/')).toEqual({ items: [], cursor: undefined });
    });

    it('a forged cursor never leaves the prefix it is used with', async () => {
      // A name sorting before the prefix starts at the prefix's first entry…
      expect((await s.list('pg/', { cursor: cursorOf('pg-other/x.txt'), limit: 3 })).items.map((e) => e.name)).toEqual(PAGED.slice(0, 3));
      expect((await s.list('pg/', { cursor: cursorOf('a'), limit: 2 })).items.map((e) => e.name)).toEqual(PAGED.slice(0, 2));
      // …one sorting after it gives an empty last page, never an entry from outside…
      expect(await s.list('pg/', { cursor: cursorOf('zzz') })).toEqual({ items: [], cursor: undefined });
      // …and one within it resumes after that name, whether or not it exists.
      expect((await s.list('pg/', { cursor: cursorOf('pg/04.zz'), limit: 2 })).items.map((e) => e.name)).toEqual(['pg/05.txt', 'pg/06.txt']);
    });

    it('refuses a limit outside 1 to 1,000 with StorageError and a non-cursor with InvalidKeyError', async () => {
      for (const limit of [0, 1001, 2.5, -1]) {
        const error = await s.list('pg/', { limit }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StorageError);
        expect(error).toMatchObject({ code: 'STORAGE_ERROR', message: `list(): limit must be a whole number from 1 to 1000 (got ${limit})` });
      }
      await expect(s.listPage('pg/', { limit: Number.NaN })).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
      const notCursor = await s.list('pg/', { cursor: 'not a cursor!' }).catch((e: unknown) => e);
      expect(notCursor).toBeInstanceOf(InvalidKeyError);
      expect((notCursor as Error).message).toBe('Invalid object name "not a cursor!": is not a cursor list() returned');
      // Base64url, but not of a name (padding, a different encoding, or a name breaking the key rules).
      for (const cursor of ['cGcvMDkudHh0=', `${cursorOf('pg/09.txt')}A`, cursorOf('../../etc'), '']) {
        await expect(s.listPage('pg/', { cursor })).rejects.toBeInstanceOf(InvalidKeyError);
      }
    });
  });

  describe('URLs', () => {
    it('a URL gives the bytes, and says when it expires', async () => {
      await s.save('url/a.txt', 'alpha');
      const before = Date.now();
      const info = await s.urlInfo('url/a.txt', { expiresIn: 120 });
      expect((await b.fetchUrl(info.url)).toString()).toBe('alpha');
      expect(info.expiresAt!.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 120_000);
      expect(info.expiresAt!.getTime()).toBeLessThanOrEqual(Date.now() + 121_000);
      expect((await b.fetchUrl(await s.url('url/a.txt', { downloadAs: 'résumé.txt' }))).toString()).toBe('alpha');
    });

    it('within a cache window, the same URL with a max-age; it works', async () => {
      await s.save('url/window.txt', 'w');
      const first = await s.urlInfo('url/window.txt', { cacheWindow: 600, expiresIn: 300 });
      const second = await s.urlInfo('url/window.txt', { cacheWindow: 600, expiresIn: 300 });
      expect(second.url).toBe(first.url);
      expect(first.maxAge).toBeGreaterThan(0);
      expect((await b.fetchUrl(first.url)).toString()).toBe('w');
    });

    it('refuses a lifetime out of range and a window past 7 days, as configuration errors', async () => {
      await expect(s.url('url/a.txt', { expiresIn: 0 })).rejects.toBeInstanceOf(StorageConfigurationError);
      await expect(s.url('url/a.txt', { expiresIn: 604_801 })).rejects.toMatchObject({ code: 'STORAGE_CONFIGURATION' });
      await expect(s.url('url/a.txt', { expiresIn: 604_800, cacheWindow: 1 })).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringMatching(/expiresIn \+ cacheWindow/) });
      await expect(s.url('../x')).rejects.toBeInstanceOf(InvalidKeyError);
    });

    it('a URL for a missing object is ObjectNotFoundError-shaped: the GET answers 404', async () => {
      const url = await s.url('url/never-saved.txt');
      const error = await b.fetchUrl(url).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageError);
      expect((error as { code: string }).code === 'STORAGE_NOT_FOUND' || (error as { status?: number }).status === 404).toBe(true);
    });

    factory.itSigned('a URL edited to another key is refused with a 403 (SignatureDoesNotMatch, or AccessDenied where the server tries STS next)', async () => {
      await s.save('url/one.txt', 'one');
      await s.save('url/two.txt', 'two');
      const url = await s.url('url/one.txt');
      expect(url).toContain('/url/one.txt');
      const error = await b.fetchUrl(url.replace('/url/one.txt', '/url/two.txt')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      // Ceph with STS enabled (as test/s3-server/ceph.sh runs it) falls through to its STS
      // engine after a bad signature and answers AccessDenied; AWS, MinIO and the fake say
      // SignatureDoesNotMatch. Same class, code and status either way.
      expect(error).toMatchObject({ code: 'STORAGE_OPERATION', status: 403, s3Code: expect.stringMatching(/^(SignatureDoesNotMatch|AccessDenied)$/) });
    });

    factory.itSigned('a URL with its expiry changed is refused with a 403 (SignatureDoesNotMatch, or AccessDenied where the server tries STS next)', async () => {
      await s.save('url/three.txt', 'three');
      const error = await b.fetchUrl(withExpiryChanged(await s.url('url/three.txt', { expiresIn: 60 }))).catch((e: unknown) => e);
      // Ceph with STS enabled (as test/s3-server/ceph.sh runs it) falls through to its STS
      // engine after a bad signature and answers AccessDenied; AWS, MinIO and the fake say
      // SignatureDoesNotMatch. Same class, code and status either way.
      expect(error).toMatchObject({ code: 'STORAGE_OPERATION', status: 403, s3Code: expect.stringMatching(/^(SignatureDoesNotMatch|AccessDenied)$/) });
    });

    factory.itSigned('an expired URL is refused with a 403 AccessDenied', async () => {
      await s.save('url/old.txt', 'old');
      const url = await b.inThePast(600, () => s.url('url/old.txt', { expiresIn: 60 }));
      const error = await b.fetchUrl(url).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageOperationError);
      expect(error).toMatchObject({ code: 'STORAGE_OPERATION', status: 403, s3Code: 'AccessDenied' });
    });
  });

  describe('cookies', () => {
    it('without CloudFront, cookies() throws the StorageError that names the missing option', () => {
      expect(() => s.cookies('avatars/*')).toThrow(StorageError);
      expect(() => s.cookies('avatars/*')).toThrow(/media\.cloudfront is not configured/);
    });
  });

  describe('direct uploads', () => {
    it('a posted form lands unpublished; confirmUpload checks and publishes it, and confirming again reads it only', async () => {
      const upload = await s.createUpload({ prefix: 'du/avatars', contentType: 'image/png', maxBytes: 1000 });
      expect(upload.name).toMatch(/^du\/avatars\/[0-9a-f-]{36}\.png$/);
      expect(upload.key).toBe(`${LOCATION}/${upload.name}`);
      expect(upload.fields).toMatchObject({ key: `${LOCATION}/.pending/${upload.name}`, 'Content-Type': 'image/png' });
      expect(upload.maxBytes).toBe(1000);
      expect(upload.expiresAt.getTime()).toBeGreaterThan(Date.now());
      await b.post(upload, PNG);
      expect(await s.exists(upload.name)).toBe(false);
      expect(await names(s, 'du/avatars/')).toEqual([]);
      const confirmed = await s.confirmUpload(upload.name, { maxBytes: 1000, contentType: 'image/png' });
      expect(confirmed).toMatchObject({ name: upload.name, key: upload.key, size: PNG.length, contentType: 'image/png' });
      expect(await s.read(upload.name)).toEqual(PNG);
      expect(await s.exists(`.pending/${upload.name}`)).toBe(false);
      expect(await s.confirmUpload(upload.name, { allowedTypes: ['image/png'] })).toMatchObject({ name: upload.name, size: PNG.length });
      await expect(s.confirmUpload(upload.name, { allowedTypes: ['image/gif'] })).rejects.toMatchObject({ reason: 'type-not-allowed' });
      expect(await s.read(upload.name)).toEqual(PNG);
      // The same form posted again does not replace the published name.
      await b.post(upload, Buffer.concat([PNG, Buffer.from('v2')]));
      expect(await s.confirmUpload(upload.name)).toMatchObject({ size: PNG.length });
      expect(await s.read(upload.name)).toEqual(PNG);
    });

    factory.itNeeds('conditional-writes', 'two confirmations at once publish once and both return it', async () => {
      const upload = await s.createUpload({ prefix: 'du/twice', contentType: 'image/png', maxBytes: 1000 });
      await b.post(upload, PNG);
      const [one, two] = await Promise.all([s.confirmUpload(upload.name), s.confirmUpload(upload.name)]);
      expect(one).toMatchObject({ name: upload.name, size: PNG.length, contentType: 'image/png' });
      expect(two).toMatchObject({ name: upload.name, size: PNG.length, etag: one.etag });
      expect(await s.read(upload.name)).toEqual(PNG);
    });

    it('an exact name; the form pins application/octet-stream without a type', async () => {
      const upload = await s.createUpload({ name: 'du/exact.bin', maxBytes: 10 });
      expect(upload.name).toBe('du/exact.bin');
      expect(upload.fields['Content-Type']).toBe('application/octet-stream');
      await b.post(upload, Buffer.from('12345'));
      expect(await s.confirmUpload('du/exact.bin')).toMatchObject({ size: 5, contentType: 'application/octet-stream' });
    });

    it('refuses bad maxBytes and reserved names before anything is signed', async () => {
      await expect(s.createUpload({ maxBytes: 0 })).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringMatching(/maxBytes/) });
      await expect(s.createUpload({ maxBytes: 1.5 })).rejects.toBeInstanceOf(StorageError);
      await expect(s.createUpload({ maxBytes: 10, name: '.pending/x.png' })).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(s.createUpload({ maxBytes: 10, name: '.claims/x.png' })).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(s.confirmUpload('.pending/x.png')).rejects.toBeInstanceOf(InvalidKeyError);
    });

    it('nothing posted: ObjectNotFoundError', async () => {
      const upload = await s.createUpload({ prefix: 'du/none', maxBytes: 10 });
      await expect(s.confirmUpload(upload.name)).rejects.toBeInstanceOf(ObjectNotFoundError);
    });

    it('an object put under .pending/ by other means is never published, and left alone', async () => {
      await s.save('.pending/du/forged.png', PNG);
      await expect(s.confirmUpload('du/forged.png')).rejects.toMatchObject({ code: 'STORAGE_UPLOAD_REJECTED', reason: 'not-direct-upload' });
      expect(await s.exists('.pending/du/forged.png')).toBe(true);
      expect(await s.exists('du/forged.png')).toBe(false);
      // A name that exists but was not published from a form is not "already published".
      await s.save('du/saved.png', PNG);
      await expect(s.confirmUpload('du/saved.png')).rejects.toMatchObject({ reason: 'not-direct-upload' });
    });

    it.each([
      ['type-not-allowed', 'bytes that are not the promised type', Buffer.from('<html>not a png</html>'), { contentType: 'image/png' }],
      ['too-large', 'more bytes than confirmUpload allows', PNG, { maxBytes: 100 }],
      ['type-not-allowed', 'a type outside allowedTypes', PNG, { allowedTypes: ['image/jpeg'] }],
    ] as const)('rejects %s (%s) and deletes the upload', async (reason, _, body, expectations) => {
      const upload = await s.createUpload({ prefix: 'du/rejected', contentType: 'image/png', maxBytes: 1000 });
      await b.post(upload, body);
      const error = await s.confirmUpload(upload.name, expectations).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UploadRejectedError);
      expect(error).toMatchObject({ code: 'STORAGE_UPLOAD_REJECTED', reason });
      expect(await s.exists(`.pending/${upload.name}`)).toBe(false);
      expect(await s.exists(upload.name)).toBe(false);
    });

    factory.itSigned('the server refuses a file over maxBytes (400 EntityTooLarge), storing nothing', async () => {
      const upload = await s.createUpload({ prefix: 'du/big', contentType: 'image/png', maxBytes: 100 });
      const error = await b.post(upload, PNG).catch((e: unknown) => e);
      expect(error).toMatchObject({ status: 400, s3Code: 'EntityTooLarge' });
      await expect(s.confirmUpload(upload.name)).rejects.toBeInstanceOf(ObjectNotFoundError);
    });

    factory.itSigned('the server refuses another Content-Type, another key and a changed policy (403)', async () => {
      const upload = await s.createUpload({ prefix: 'du/pinned', contentType: 'image/png', maxBytes: 1000 });
      await expect(b.post(upload, PNG, 'text/html')).rejects.toMatchObject({ status: 403 });
      await expect(b.post({ ...upload, fields: { ...upload.fields, key: `${LOCATION}/.pending/du/elsewhere.png` } }, PNG)).rejects.toMatchObject({ status: 403 });
      const policy = JSON.parse(Buffer.from(upload.fields.Policy!, 'base64').toString()) as Record<string, unknown>;
      const changed = Buffer.from(JSON.stringify({ ...policy, expiration: new Date(Date.now() + 86_400_000).toISOString() })).toString('base64');
      await expect(b.post({ ...upload, fields: { ...upload.fields, Policy: changed } }, PNG)).rejects.toMatchObject({ status: 403 });
      await expect(s.confirmUpload(upload.name)).rejects.toBeInstanceOf(ObjectNotFoundError);
    });

    factory.itSigned('the server refuses an expired form (403 AccessDenied)', async () => {
      const upload = await b.inThePast(600, () => s.createUpload({ prefix: 'du/expired', contentType: 'image/png', maxBytes: 1000, expiresIn: 60 }));
      await expect(b.post(upload, PNG)).rejects.toMatchObject({ status: 403, s3Code: 'AccessDenied' });
      await expect(s.confirmUpload(upload.name)).rejects.toBeInstanceOf(ObjectNotFoundError);
    });
  });
  describe('multipart direct uploads', () => {
    const MIB = 1024 * 1024;
    const file = (size: number): Buffer => Buffer.concat([PNG.subarray(0, 8), randomBytes(size - 8)]);
    async function sendParts(name: string, uploadId: string, data: Buffer, partSize: number, prefix?: string): Promise<{ partNumber: number; etag: string }[]> {
      const count = Math.ceil(data.length / partSize);
      const signed = await s.signParts(name, uploadId, Array.from({ length: count }, (_, i) => i + 1), { prefix });
      return Promise.all(signed.map(async ({ partNumber, url }) => ({ partNumber, etag: await b.putPart(url, data.subarray((partNumber - 1) * partSize, partNumber * partSize)) })));
    }
    async function refusedWith(promise: Promise<unknown>, reason: string): Promise<void> {
      const error = await promise.then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(UploadRejectedError);
      expect(error).toMatchObject({ code: 'STORAGE_UPLOAD_REJECTED', reason });
    }

    it('creates under .pending/ with a generated name, lists the parts sent, completes, reads back; a replay returns the same object', async () => {
      const data = file(5 * MIB + 1000);
      const handle = await s.createMultipartUpload({ prefix: 'mp/users/7', name: 'dir/../Clip "one".png', contentType: 'image/png', maxBytes: 6 * MIB, allowedTypes: ['image/png'] });
      expect(handle.name).toMatch(/^mp\/users\/7\/[A-Za-z0-9_-]{22}\/Clip _one_\.png$/);
      expect(handle.key).toBe(`${LOCATION}/.pending/${handle.name}`);
      expect(s.nameForKey(handle.key)).toBe(handle.name);
      expect(() => s.nameForKey(`${LOCATION}/${handle.name}`)).toThrow(InvalidKeyError);
      expect(handle.partSize).toBe(8 * MIB);
      // Advice that fits maxBytes in 10,000 parts: 100 GiB → 11 MiB parts.
      const huge = await s.createMultipartUpload({ prefix: 'mp/huge', maxBytes: 100 * 1024 * MIB });
      expect(huge.partSize).toBe(11 * MIB);
      await s.abortMultipartUpload(huge.name, huge.uploadId, { prefix: 'mp/huge' });
      const parts = await sendParts(handle.name, handle.uploadId, data, 5 * MIB, 'mp/users/7');
      expect((await s.listParts(handle.name, handle.uploadId, { prefix: 'mp/users/7' })).map((p) => [p.partNumber, p.size])).toEqual([[1, 5 * MIB], [2, 1000]]);
      expect(await s.exists(handle.name)).toBe(false);
      const stored = await s.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'mp/users/7' });
      expect(stored).toMatchObject({ name: handle.name, key: `${LOCATION}/${handle.name}`, size: data.length, contentType: 'image/png' });
      expect((await s.read(handle.name)).equals(data)).toBe(true);
      expect(await s.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix: 'mp/users/7' })).toEqual(stored);
      expect(await names(s, 'mp/users/7/')).toEqual([handle.name]);
      await refusedWith(s.listParts(handle.name, handle.uploadId, { prefix: 'mp/users/7' }), 'no-such-upload');
    });

    it('refuses parts over maxBytes (too-large) and bytes of a type not allowed (type-not-allowed); the upload is gone, nothing published', async () => {
      const big = await s.createMultipartUpload({ prefix: 'mp/big', maxBytes: 5 * MIB });
      const bigParts = await sendParts(big.name, big.uploadId, file(5 * MIB + 1), 5 * MIB, 'mp/big');
      await refusedWith(s.completeMultipartUpload(big.name, big.uploadId, bigParts, { prefix: 'mp/big' }), 'too-large');
      await refusedWith(s.listParts(big.name, big.uploadId, { prefix: 'mp/big' }), 'no-such-upload');
      await refusedWith(s.completeMultipartUpload(big.name, big.uploadId, bigParts, { prefix: 'mp/big' }), 'no-such-upload');

      const html = await s.createMultipartUpload({ prefix: 'mp/typed', maxBytes: MIB, allowedTypes: ['image/png'] });
      const htmlParts = await sendParts(html.name, html.uploadId, Buffer.from('<!doctype html><script>alert(1)</script>'), MIB, 'mp/typed');
      await refusedWith(s.completeMultipartUpload(html.name, html.uploadId, htmlParts, { prefix: 'mp/typed' }), 'type-not-allowed');
      await refusedWith(s.listParts(html.name, html.uploadId, { prefix: 'mp/typed' }), 'no-such-upload');
      expect([...(await names(s, 'mp/big/')), ...(await names(s, 'mp/typed/'))]).toEqual([]);
    });

    it('another prefix is not-owner for sign, list, complete and abort, and changes nothing; bad part numbers are bad-request', async () => {
      const handle = await s.createMultipartUpload({ prefix: 'mp/users/42', maxBytes: MIB });
      const parts = await sendParts(handle.name, handle.uploadId, file(100), MIB, 'mp/users/42');
      for (const prefix of ['mp/users/43', 'mp/users/4', 'mp/users']) {
        await refusedWith(s.signParts(handle.name, handle.uploadId, [1], { prefix }), 'not-owner');
        await refusedWith(s.listParts(handle.name, handle.uploadId, { prefix }), 'not-owner');
        await refusedWith(s.completeMultipartUpload(handle.name, handle.uploadId, parts, { prefix }), 'not-owner');
        await refusedWith(s.abortMultipartUpload(handle.name, handle.uploadId, { prefix }), 'not-owner');
      }
      for (const partNumber of [0, 10_001, 2.5]) await refusedWith(s.signParts(handle.name, handle.uploadId, [partNumber], { prefix: 'mp/users/42' }), 'bad-request');
      expect(await s.listParts(handle.name, handle.uploadId, { prefix: 'mp/users/42' })).toHaveLength(1);
      await s.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'mp/users/42' });
      await refusedWith(s.listParts(handle.name, handle.uploadId, { prefix: 'mp/users/42' }), 'no-such-upload');
      await s.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'mp/users/42' });
    });

    factory.itSigned('a part URL past its expiry is refused (403 AccessDenied), one changed to another part (403)', async () => {
      const handle = await s.createMultipartUpload({ prefix: 'mp/expired', maxBytes: MIB });
      const [expired] = await b.inThePast(600, () => s.signParts(handle.name, handle.uploadId, [1], { prefix: 'mp/expired', expiresIn: 60 }));
      await expect(b.putPart(expired!.url, file(100))).rejects.toMatchObject({ status: 403, s3Code: 'AccessDenied' });
      const [fresh] = await s.signParts(handle.name, handle.uploadId, [1], { prefix: 'mp/expired' });
      await expect(b.putPart(fresh!.url.replace('partNumber=1', 'partNumber=2'), file(100))).rejects.toMatchObject({ status: 403 });
      expect(await s.listParts(handle.name, handle.uploadId, { prefix: 'mp/expired' })).toEqual([]);
      await s.abortMultipartUpload(handle.name, handle.uploadId, { prefix: 'mp/expired' });
    });
  });
});
