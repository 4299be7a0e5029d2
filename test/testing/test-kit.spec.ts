/**
 * The test kit itself (`nestjs-s3-storage/testing`): what the contract suite does not cover
 * because only the in-memory storage has it (assertions, clock, URLs of another instance),
 * StorageTestingModule's tokens, startLocalS3()'s helpers, and that the main entry never
 * loads any of it.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Inject, Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AssertionError } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { startLocalS3, type LocalS3 } from '../../lib/local-s3.js';
import type { MediaStorageApi } from '../../lib/media-storage.api.js';
import { MediaStorage } from '../../lib/media.storage.js';
import { StorageOperationError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import { InMemoryStorage } from '../../lib/testing/in-memory.storage.js';
import { StorageTestingModule } from '../../lib/testing/storage-testing.module.js';

const run = promisify(execFile);

@Injectable()
class AvatarService {
  constructor(@Inject(MediaStorage) private readonly media: MediaStorageApi) {}
  async setAvatar(userId: string, bytes: Buffer): Promise<string> {
    return this.media.save(`avatars/${userId}.png`, bytes, { contentType: 'image/png' });
  }
}

@Injectable()
class InvoiceService {
  constructor(@Inject('nestjs-s3-storage:storage:invoices') readonly invoices: MediaStorageApi) {}
}

describe('InMemoryStorage helpers', () => {
  it('assertExists / assertMissing / assertCount / contents pass when true and throw AssertionErrors naming the object when not', async () => {
    const storage = new InMemoryStorage();
    await storage.save('docs/a.txt', 'A');
    await storage.save('docs/b.txt', 'B');
    await expect(storage.assertExists('docs/a.txt')).resolves.toBeUndefined();
    await expect(storage.assertMissing('docs/c.txt')).resolves.toBeUndefined();
    await expect(storage.assertCount('docs/', 2)).resolves.toBeUndefined();
    expect((await storage.contents('docs/b.txt')).toString()).toBe('B');

    const missing = await storage.assertExists('docs/c.txt').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(AssertionError);
    expect((missing as Error).message).toBe('expected "docs/c.txt" to exist in in-memory bucket "in-memory", but it does not (stored under "docs/": "docs/a.txt", "docs/b.txt")');
    await expect(storage.assertMissing('docs/a.txt')).rejects.toThrow('expected "docs/a.txt" to be missing from in-memory bucket "in-memory", but it exists');
    await expect(storage.assertCount('docs/', 3)).rejects.toThrow('expected 3 object(s) under prefix "docs/" in in-memory bucket "in-memory", found 2: "docs/a.txt", "docs/b.txt"');
    await expect(storage.contents('nope/x.txt')).rejects.toThrow(/"nope\/x\.txt".*does not exist \(nothing is stored under "nope\/"\)/);
    await expect(storage.assertExists('../x')).rejects.toMatchObject({ code: 'STORAGE_INVALID_KEY' });
  });

  it('names() and clear()', async () => {
    const storage = new InMemoryStorage({ location: 'm' });
    await storage.save('b', '1');
    await storage.save('a', '2');
    expect(storage.names()).toEqual(['a', 'b']);
    storage.clear();
    expect(storage.names()).toEqual([]);
  });

  it("copy and move follow the storage's overwrite option unless the call sets one; a copy gets a new lastModified", async () => {
    let now = Date.UTC(2030, 0, 1, 12, 0, 0);
    const storage = new InMemoryStorage({ overwrite: true }, { clock: () => now });
    await storage.save('a.txt', 'A');
    await storage.save('b.txt', 'B');
    now += 60_000;
    expect(await storage.copy('a.txt', 'b.txt')).toBe('b.txt');
    expect((await storage.contents('b.txt')).toString()).toBe('A');
    expect((await storage.stat('b.txt')).lastModified.toISOString()).toBe('2030-01-01T12:01:00.000Z');
    expect((await storage.stat('a.txt')).lastModified.toISOString()).toBe('2030-01-01T12:00:00.000Z');
    expect(await storage.copy('a.txt', 'b.txt', { overwrite: false })).toMatch(/^b_[A-Za-z0-9]{8}\.txt$/);
    expect(await storage.move('a.txt', 'b.txt')).toBe('b.txt');
    await storage.assertMissing('a.txt');
    await storage.assertCount('', 2);
  });

  it('through MediaStorageApi, list() is one page with limit or cursor and the iterable without (the types keep them apart)', async () => {
    const api: MediaStorageApi = new InMemoryStorage();
    await Promise.all(['p/1', 'p/2', 'p/3'].map((name) => api.save(name, name)));
    const first = await api.list('p/', { limit: 2 });
    expect(first).toMatchObject({ items: [{ name: 'p/1' }, { name: 'p/2' }], cursor: Buffer.from('p/2').toString('base64url') });
    const rest = await api.list('p/', { cursor: first.cursor! });
    expect(rest.items.map((e) => e.name)).toEqual(['p/3']);
    const iterable: AsyncIterable<{ name: string }> = api.list('p/', { signal: new AbortController().signal });
    const names: string[] = [];
    for await (const entry of iterable) names.push(entry.name);
    expect(names).toEqual(['p/1', 'p/2', 'p/3']);
    const maybeCursor = undefined as string | undefined;
    // @ts-expect-error a cursor that may be undefined alone could mean either form: use listPage() or pass limit
    void api.list('p/', { cursor: maybeCursor });
    expect(await api.listPage('p/', { cursor: maybeCursor })).toEqual({ items: expect.any(Array), cursor: undefined });
  });

  it('the injectable clock moves URL expiry and lastModified; advanceClock adds to it', async () => {
    let now = Date.UTC(2030, 0, 1, 12, 0, 0, 400);
    const storage = new InMemoryStorage({ urlExpiresIn: 60 }, { clock: () => now });
    await storage.save('c.txt', 'c');
    expect((await storage.stat('c.txt')).lastModified.toISOString()).toBe('2030-01-01T12:00:00.000Z');
    const info = await storage.urlInfo('c.txt');
    expect(info.expiresAt!.toISOString()).toBe('2030-01-01T12:01:00.000Z');
    now += 59_000;
    expect((await storage.resolveUrl(info.url)).toString()).toBe('c');
    storage.advanceClock(1000);
    await expect(storage.resolveUrl(info.url)).rejects.toMatchObject({ code: 'STORAGE_OPERATION', status: 403, s3Code: 'AccessDenied' });
    expect(() => storage.advanceClock(-1)).toThrow(RangeError);
  });

  it("another instance's URL and form are refused: each instance signs with its own secret", async () => {
    const one = new InMemoryStorage();
    const two = new InMemoryStorage();
    await one.save('x.txt', 'x');
    await two.save('x.txt', 'x');
    const error = await two.resolveUrl(await one.url('x.txt')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageOperationError);
    expect(error).toMatchObject({ status: 403, s3Code: 'SignatureDoesNotMatch', message: expect.stringContaining('access denied (SignatureDoesNotMatch)') });
    const form = await one.createUpload({ maxBytes: 10 });
    await expect(two.post(form, 'abc')).rejects.toMatchObject({ status: 403, s3Code: 'AccessDenied' });
    await expect(one.resolveUrl('https://example.com/x.txt')).rejects.toMatchObject({ status: 400 });
    expect(await one.url('x.txt')).toMatch(/^memory:\/\/in-memory\/x\.txt\?expires=\d+&sig=[\w-]+$/);
  });

  it('signedUrls: false gives unsigned URLs it resolves; a signed storage refuses an unsigned URL', async () => {
    const open = new InMemoryStorage({ signedUrls: false });
    await open.save('p.txt', 'public');
    expect(await open.url('p.txt')).toBe('memory://in-memory/p.txt');
    expect((await open.resolveUrl('memory://in-memory/p.txt')).toString()).toBe('public');
    const signed = new InMemoryStorage();
    await signed.save('p.txt', 'private');
    await expect(signed.resolveUrl('memory://in-memory/p.txt')).rejects.toMatchObject({ status: 403, s3Code: 'AccessDenied' });
  });

  it('validates its options like StorageModule does', () => {
    expect(() => new InMemoryStorage({ urlExpiresIn: 0 })).toThrow(/urlExpiresIn/);
    expect(new InMemoryStorage({ bucket: 'avatars' }).bucket).toBe('avatars');
  });
});

describe('StorageTestingModule', () => {
  it('provides one InMemoryStorage under MediaStorage and InMemoryStorage; services get it unchanged', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [StorageTestingModule.forRoot()], providers: [AvatarService] }).compile();
    const memory = moduleRef.get(InMemoryStorage);
    expect(moduleRef.get(MediaStorage)).toBe(memory);
    expect(memory).toBeInstanceOf(InMemoryStorage);
    expect(await moduleRef.get(AvatarService).setAvatar('7', Buffer.from('png'))).toBe('avatars/7.png');
    await memory.assertExists('avatars/7.png');
    await moduleRef.close();
  });

  it('a named storage is provided under the string token getStorageToken(name) gives, next to the unnamed one', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [StorageTestingModule.forRoot(), StorageTestingModule.forRoot({ name: 'invoices', media: { bucket: 'invoices' } })],
      providers: [InvoiceService],
    }).compile();
    const invoices = moduleRef.get<InMemoryStorage>('nestjs-s3-storage:storage:invoices');
    expect(invoices).toBeInstanceOf(InMemoryStorage);
    expect(invoices.bucket).toBe('invoices');
    expect(moduleRef.get(InvoiceService).invoices).toBe(invoices);
    expect(moduleRef.get(MediaStorage)).not.toBe(invoices);
    await moduleRef.close();
  });

  it('overrideProvider(MediaStorage) swaps the real storage of StorageModule for an InMemoryStorage', async () => {
    const memory = new InMemoryStorage();
    const moduleRef = await Test.createTestingModule({
      imports: [StorageModule.forRoot({ media: { bucket: 'never-contacted', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 's' } }, ensureBucket: 'off' })],
      providers: [AvatarService],
    })
      .overrideProvider(MediaStorage)
      .useValue(memory)
      .compile();
    await moduleRef.get(AvatarService).setAvatar('8', Buffer.from('png'));
    expect((await memory.contents('avatars/8.png')).toString()).toBe('png');
    await moduleRef.close();
  });
});

describe('startLocalS3 helpers', () => {
  let local: LocalS3;
  beforeAll(async () => {
    local = await startLocalS3();
  });
  afterAll(async () => {
    await local?.stop();
  });

  it('mediaOptions(bucket) reaches the server through StorageModule (the bucket is created at start-up)', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [StorageModule.forRoot({ media: local.mediaOptions('kit-local') })] }).compile();
    await moduleRef.init();
    const media = moduleRef.get(MediaStorage);
    const name = await media.save('hello.txt', 'local');
    expect((await media.read(name)).toString()).toBe('local');
    expect(local.mediaOptions('b', { location: 'x' })).toMatchObject({ bucket: 'b', endpoint: local.endpoint, location: 'x', forcePathStyle: true });
    await moduleRef.close();
  });

  it('stop() is close(): the server stops listening', async () => {
    const other = await startLocalS3();
    await other.stop();
    await expect(fetch(other.endpoint)).rejects.toThrow();
  });
});

describe('the main entry never loads the test kit', () => {
  const ROOT = resolve('.');
  const esmIndex = join(ROOT, 'dist/esm/index.js');

  /** Every file reachable from `entry` through relative imports of the ESM build. */
  function reachable(entry: string): Set<string> {
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const m of source.matchAll(/(?:from\s*|import\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) visit(resolve(dirname(file), m[1]!));
    };
    visit(entry);
    return seen;
  }

  it('no file the ESM index imports (transitively) is under testing/ or local-s3', () => {
    if (!existsSync(esmIndex)) throw new Error('dist/ is missing: run "npm run build" first');
    const files = [...reachable(esmIndex)].map((f) => f.slice(ROOT.length + 1));
    expect(files.length).toBeGreaterThan(20);
    expect(files.filter((f) => f.includes('/testing/') || f.endsWith('local-s3.js'))).toEqual([]);
    expect(reachable(join(ROOT, 'dist/esm/testing/index.js')).has(join(ROOT, 'dist/esm/testing/in-memory.storage.js'))).toBe(true);
  });

  it('requiring the CJS main entry loads nothing of testing/; requiring the subpath does', async () => {
    const script = `
      const before = require(${JSON.stringify(join(ROOT, 'dist/cjs/index.js'))});
      const loaded = () => Object.keys(require.cache).filter((f) => f.includes('/testing/') || f.endsWith('local-s3.js'));
      const main = loaded();
      const kit = require(${JSON.stringify(join(ROOT, 'dist/cjs/testing/index.js'))});
      console.log(JSON.stringify({ main, kit: loaded().length, sameToken: typeof before.MediaStorage === 'function', hasKit: typeof kit.InMemoryStorage === 'function' && typeof kit.startLocalS3 === 'function' }));
    `;
    const { stdout } = await run('node', ['-e', script], { env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
    const result = JSON.parse(stdout.trim()) as { main: string[]; kit: number; sameToken: boolean; hasKit: boolean };
    expect(result.main).toEqual([]);
    expect(result.kit).toBeGreaterThanOrEqual(4);
    expect(result).toMatchObject({ sameToken: true, hasKit: true });
  });

  it('package.json exports ./testing with import, require and types in both builds', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    expect(manifest.exports['./testing']).toEqual({
      import: { types: './dist/esm/testing/index.d.ts', default: './dist/esm/testing/index.js' },
      require: { types: './dist/cjs/testing/index.d.ts', default: './dist/cjs/testing/index.js' },
    });
    for (const file of ['dist/esm/testing/index.js', 'dist/esm/testing/index.d.ts', 'dist/cjs/testing/index.js', 'dist/cjs/testing/index.d.ts']) expect(existsSync(join(ROOT, file))).toBe(true);
  });
});
