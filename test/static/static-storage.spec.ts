import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutBucketPolicyCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { createS3Client } from '../../lib/s3-client.factory.js';
import { IMMUTABLE_CACHE_CONTROL, MANIFEST_CACHE_CONTROL, StaticManifestStorage } from '../../lib/static-manifest.storage.js';
import { ManifestError, StorageError } from '../../lib/storage.errors.js';
import type { StaticStorageOptions } from '../../lib/storage-module-options.interface.js';
import { createTestBucket, deleteTestBucket, rawClient, s3, itRequires } from '../harness/s3-test-env.js';
import { countRequests, publicReadPolicy, removeTree, staticOptions, writeTree } from './static-fixtures.js';

let bucket: string;
let raw: S3Client;
const clients: S3Client[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  bucket = await createTestBucket('static');
  raw = rawClient();
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  raw?.destroy();
  for (const d of dirs) removeTree(d);
  await deleteTestBucket(bucket);
});

/** A storage under its own location, with a request counter on its client. */
function storage(location: string, overrides: Partial<StaticStorageOptions> = {}) {
  const options = staticOptions(bucket, { location, ...overrides });
  const client = createS3Client(options);
  clients.push(client);
  return { storage: new StaticManifestStorage(client, options), requests: countRequests(client), options };
}

function tree(files: Record<string, string | Buffer>): string {
  const dir = writeTree(files);
  dirs.push(dir);
  return dir;
}

async function keys(prefix: string): Promise<string[]> {
  const out = await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/` }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

async function text(key: string): Promise<string> {
  const out = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return out.Body!.transformToString('utf-8');
}

const md5 = (s: string) => createHash('md5').update(s).digest('hex').slice(0, 12);

/** The bundler's output directory: stored under its own names. */
const KEEP = ['assets/**'];

const SITE = {
  'img/logo.png': 'PNG-logo',
  'css/app.css': '@import "base.css";\n.logo{background:url("../img/logo.png")}\n',
  'css/base.css': 'body{margin:0}\n',
  'js/app.js': 'console.log("hi");\n',
  'assets/index-B4c9Xk2a.js': 'export const built = 1;\n',
  '.DS_Store': 'junk',
};

describe('StaticManifestStorage.collect against a real S3 server', () => {
  const location = 'site';
  let result: Awaited<ReturnType<StaticManifestStorage['collect']>>;
  let manifest: { paths: Record<string, string>; version: string; hash: string };

  beforeAll(async () => {
    result = await storage(location).storage.collect(tree(SITE), { keepNames: KEEP });
    manifest = JSON.parse(await text(`${location}/staticfiles.json`));
  });

  it('stores hashed names beside the originals (kept names as they are), skips dot-files, and reports the counts', async () => {
    const logo = `img/logo.${md5('PNG-logo')}.png`;
    const base = `css/base.${md5('body{margin:0}\n')}.css`;
    const js = `js/app.${md5('console.log("hi");\n')}.js`;
    expect(manifest.paths['img/logo.png']).toBe(logo);
    expect(manifest.paths['css/base.css']).toBe(base);
    expect(manifest.paths['js/app.js']).toBe(js);
    expect(manifest.paths['assets/index-B4c9Xk2a.js']).toBe('assets/index-B4c9Xk2a.js');
    expect(manifest.paths['css/app.css']).toMatch(/^css\/app\.[0-9a-f]{12}\.css$/);
    expect(Object.keys(manifest.paths)).toHaveLength(5);
    const originals = ['img/logo.png', 'css/base.css', 'js/app.js', 'css/app.css'];
    expect(await keys(location)).toEqual(
      [logo, base, js, manifest.paths['css/app.css']!, 'assets/index-B4c9Xk2a.js', 'staticfiles.json', ...originals].map((k) => `${location}/${k}`).sort(),
    );
    expect(result).toMatchObject({ files: 5, unchanged: 0, deleted: [], manifestWritten: true, dryRun: false, missingReferences: [] });
    expect(result.uploaded).toHaveLength(9);
  });

  it('stores the CSS rewritten to the hashed names, and names it by the hash of the rewritten bytes', async () => {
    const stored = manifest.paths['css/app.css']!;
    const css = await text(`${location}/${stored}`);
    expect(css).toBe(`@import url("${manifest.paths['css/base.css']!.slice(4)}");\n.logo{background:url("../${manifest.paths['img/logo.png']}")}\n`);
    expect(stored).toBe(`css/app.${md5(css)}.css`);
  });

  it('writes a Django-compatible manifest (version 1.1, 12-hex hash)', () => {
    expect(manifest.version).toBe('1.1');
    expect(manifest.hash).toMatch(/^[0-9a-f]{12}$/);
    expect(manifest.hash).toBe(result.manifestHash);
  });

  it('sends Content-Type and an immutable Cache-Control with hashed files, a short one with the manifest', async () => {
    const head = (key: string) => raw.send(new HeadObjectCommand({ Bucket: bucket, Key: `${location}/${key}` }));
    const css = await head(manifest.paths['css/app.css']!);
    expect(css.ContentType).toBe('text/css; charset=utf-8');
    expect(css.CacheControl).toBe(IMMUTABLE_CACHE_CONTROL);
    const png = await head(manifest.paths['img/logo.png']!);
    expect(png.ContentType).toBe('image/png');
    expect(png.CacheControl).toBe('public, max-age=31536000, immutable');
    const bundled = await head('assets/index-B4c9Xk2a.js');
    expect(bundled.ContentType).toBe('text/javascript; charset=utf-8');
    expect(bundled.CacheControl).toBe(IMMUTABLE_CACHE_CONTROL);
    const m = await head('staticfiles.json');
    expect(m.ContentType).toBe('application/json');
    expect(m.CacheControl).toBe(MANIFEST_CACHE_CONTROL);
    expect(MANIFEST_CACHE_CONTROL).toMatch(/max-age=\d{1,3}$/);
  });

  it('resolves url() through the manifest to a public URL the browser can fetch', async () => {
    if (s3.capabilities.has('private')) {
      await raw.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: publicReadPolicy(bucket, location) }));
    }
    const { storage: app } = storage(location);
    await app.load();
    const url = app.url('css/app.css');
    expect(url).toBe(`${s3.endpoint}/${bucket}/${location}/${manifest.paths['css/app.css']}`);
    expect(app.url('/img/logo.png?v=2#top')).toBe(`${s3.endpoint}/${bucket}/${location}/${manifest.paths['img/logo.png']}?v=2#top`);
    expect(app.hashedName('js/app.js')).toBe(manifest.paths['js/app.js']);
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain(manifest.paths['img/logo.png']);
  });

  it('builds URLs on customDomain or publicEndpoint', async () => {
    const cdn = storage(location, { customDomain: 'cdn.example.com' }).storage;
    await cdn.load();
    expect(cdn.url('img/logo.png')).toBe(`https://cdn.example.com/${location}/${manifest.paths['img/logo.png']}`);
    const pub = storage(location, { publicEndpoint: 'http://localhost:9000/' }).storage;
    await pub.load();
    expect(pub.url('img/logo.png')).toBe(`http://localhost:9000/${bucket}/${location}/${manifest.paths['img/logo.png']}`);
  });

  it('is strict: an unknown name throws a ManifestError naming the file; non-strict falls back to the name', async () => {
    const { storage: strict } = storage(location);
    await strict.load();
    expect(() => strict.url('css/missing.css')).toThrow("Missing staticfiles manifest entry for 'css/missing.css'");
    try {
      strict.hashedName('nope.js');
      throw new Error('expected a ManifestError');
    } catch (error) {
      expect(error).toBeInstanceOf(ManifestError);
      expect(error).toBeInstanceOf(StorageError);
      expect((error as ManifestError).reason).toBe('missing-entry');
    }
    const { storage: lax } = storage(location, { manifestStrict: false });
    await lax.load();
    expect(lax.url('css/missing.css')).toBe(`${s3.endpoint}/${bucket}/${location}/css/missing.css`);
  });

  it('re-runs without change in one request: the manifest GET, no listing, no upload, no manifest write', async () => {
    const again = storage(location);
    const second = await again.storage.collect(tree(SITE), { keepNames: KEEP });
    expect(second).toMatchObject({ uploaded: [], unchanged: 9, deleted: [], manifestWritten: false, listed: false });
    expect(again.requests.counts).toEqual({ GetObjectCommand: 1 });
  });

  it('uploads only what changed: a new image re-hashes the CSS that points at it', async () => {
    const next = await storage(location).storage.collect(tree({ ...SITE, 'img/logo.png': 'PNG-logo-v2' }), { keepNames: KEEP });
    const newManifest = JSON.parse(await text(`${location}/staticfiles.json`));
    expect(newManifest.paths['css/app.css']).not.toBe(manifest.paths['css/app.css']);
    expect(newManifest.paths['css/base.css']).toBe(manifest.paths['css/base.css']);
    // The CSS original is byte for byte what it was: only the image's original is new.
    expect(next.uploaded.sort()).toEqual(
      [`${location}/${newManifest.paths['css/app.css']}`, `${location}/${newManifest.paths['img/logo.png']}`, `${location}/img/logo.png`].sort(),
    );
    expect(next.unchanged).toBe(6);
    expect(next.manifestWritten).toBe(true);
  });
});

describe('StaticManifestStorage.load', () => {
  it('warns and stays usable without a manifest; strict lookups then throw, naming the file and the missing manifest', async () => {
    const { storage: fresh } = storage('never-collected');
    await expect(fresh.load()).resolves.toBeUndefined();
    expect(() => fresh.url('css/app.css')).toThrow(
      /^Missing staticfiles manifest entry for 'css\/app\.css' \(the manifest "never-collected\/staticfiles\.json" was not found in bucket "[^"]+": run "nestjs-s3-storage collectstatic <dir>"\)$/,
    );
  });

  it('rejects a corrupt manifest with ManifestError corrupt-manifest', async () => {
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'corrupt/staticfiles.json', Body: '{"paths": {"a.css": ' }));
    const { storage: broken } = storage('corrupt');
    const error = await broken.load().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).reason).toBe('corrupt-manifest');
    expect((error as ManifestError).message).toMatch(/^The static files manifest "corrupt\/staticfiles\.json" in bucket "[^"]+" is corrupt: it is not valid JSON/);
  });

  it('throws before load() has run', () => {
    const { storage: unloaded } = storage('unloaded');
    expect(() => unloaded.url('a.css')).toThrow(/load\(\) has not run/);
  });
});

describe('collect --dry-run and --prune', () => {
  it('--dry-run reports what it would do and sends only read requests', async () => {
    const dry = storage('dry');
    const out = await dry.storage.collect(tree(SITE), { dryRun: true, prune: true, keepNames: KEEP });
    expect(out).toMatchObject({ dryRun: true, manifestWritten: true, unchanged: 0, deleted: [] });
    expect(out.uploaded).toHaveLength(9);
    expect(Object.keys(dry.requests.counts).sort()).toEqual(['GetObjectCommand', 'ListObjectsV2Command']);
    expect(await keys('dry')).toEqual([]);
  });

  it('--prune refuses to run at the bucket root, where it would delete everything else', async () => {
    await expect(storage('').storage.collect(tree(SITE), { prune: true })).rejects.toThrow(
      `static.location: is empty, so prune would delete every other object in bucket "${bucket}"`,
    );
  });

  it('--prune deletes what neither the new nor the previous manifest references, and nothing outside the location', async () => {
    const v = (n: number) => ({ 'img/a.png': `image ${n}`, 'css/a.css': '.a{background:url(../img/a.png)}', 'keep.txt': 'same' });
    const run = (n: number, prune = false) => storage('pruned').storage.collect(tree(v(n)), { prune });
    await run(1);
    const v1 = JSON.parse(await text('pruned/staticfiles.json')).paths;
    await run(2);
    const v2 = JSON.parse(await text('pruned/staticfiles.json')).paths;
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'pruned/stray.txt', Body: 'stray' }));
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'pruned-not-mine/x.txt', Body: 'x' }));

    const dry = await storage('pruned').storage.collect(tree(v(3)), { prune: true, dryRun: true });
    expect(dry.deleted).toEqual([`pruned/${v1['css/a.css']}`, `pruned/${v1['img/a.png']}`, 'pruned/stray.txt'].sort());
    expect(await keys('pruned')).toContain('pruned/stray.txt');

    const out = await run(3, true);
    const v3 = JSON.parse(await text('pruned/staticfiles.json')).paths;
    expect(out.deleted).toEqual(dry.deleted);
    const originals = ['img/a.png', 'css/a.css', 'keep.txt'];
    const expected = new Set(['pruned/staticfiles.json', ...[...Object.values(v2), ...Object.values(v3), ...originals].map((n) => `pruned/${n as string}`)]);
    expect(await keys('pruned')).toEqual([...expected].sort());
    expect(await text('pruned-not-mine/x.txt')).toBe('x');
  });

  it('--prune refuses to run on a corrupt previous manifest, before writing or deleting anything', async () => {
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'badprev/staticfiles.json', Body: 'not json' }));
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'badprev/old.txt', Body: 'old' }));
    const error = await storage('badprev').storage.collect(tree({ 'a.txt': 'a' }), { prune: true }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).reason).toBe('corrupt-manifest');
    expect(await keys('badprev')).toEqual(['badprev/old.txt', 'badprev/staticfiles.json']);
  });
});

describe('collect with a hash cache', () => {
  it('trusts cached md5s of untouched files and re-hashes a file whose content changed at the same size', async () => {
    const dir = tree({ 'a.txt': 'aaaa', 'b.txt': 'bbbb' });
    const cacheFile = `${dir}-cache/hashes.json`;
    dirs.push(`${dir}-cache`);
    // Files written within the last second are never cached: age them.
    const { utimesSync, readFileSync, writeFileSync } = await import('node:fs');
    const old = new Date(Date.now() - 60_000);
    for (const f of ['a.txt', 'b.txt']) utimesSync(`${dir}/${f}`, old, old);
    await storage('cached').storage.collect(dir, { hashCache: cacheFile });
    const cache = JSON.parse(readFileSync(cacheFile, 'utf8'));
    expect(Object.keys(cache.files).sort()).toEqual(['a.txt', 'b.txt']);
    expect(cache.files['a.txt'][1]).toBe(createHash('md5').update('aaaa').digest('hex'));

    // Proof the cache is read: a doctored entry with the file's exact stamp is believed.
    cache.files['a.txt'][1] = 'feedfacefeedfacefeedfacefeedface';
    writeFileSync(cacheFile, JSON.stringify(cache));
    const trusted = await storage('cached').storage.collect(dir, { hashCache: cacheFile, dryRun: true });
    expect(trusted.uploaded).toContain('cached/a.feedfacefeed.txt');

    // A changed file (same size, new mtime) is read again whatever the cache says.
    writeFileSync(`${dir}/a.txt`, 'AAAA');
    const changed = await storage('cached').storage.collect(dir, { hashCache: cacheFile, dryRun: true });
    expect(changed.uploaded.sort()).toEqual(['cached/a.txt', `cached/a.${md5('AAAA')}.txt`].sort());
    expect(changed.unchanged).toBe(2);
  });
});

// s3rver 3.7.1 answers 500 to any ListObjectsV2 whose result is truncated (checked by hand);
// Ceph, MinIO and AWS page correctly.
describe('collect at scale', () => {
  itRequires('list-pagination', 're-runs 1,100 files in one request, and --verify pages the listing (1,000 keys a page)', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 1100; i++) files[`many/f${String(i).padStart(4, '0')}.txt`] = `file ${i}`;
    const dir = tree(files);
    const first = await storage('scale').storage.collect(dir, { originals: false });
    expect(first.uploaded).toHaveLength(1100);
    const again = storage('scale');
    const second = await again.storage.collect(dir, { originals: false });
    expect(second).toMatchObject({ uploaded: [], unchanged: 1100, manifestWritten: false });
    expect(again.requests.counts).toEqual({ GetObjectCommand: 1 });
    const verified = storage('scale');
    const third = await verified.storage.collect(dir, { originals: false, verify: true });
    expect(third).toMatchObject({ uploaded: [], unchanged: 1100, manifestWritten: false, listed: true });
    expect(verified.requests.counts).toEqual({ GetObjectCommand: 1, ListObjectsV2Command: 2 });
  }, 120_000);
});
