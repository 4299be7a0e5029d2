/**
 * The collectstatic pipeline against a real S3 server: originals beside hashed copies,
 * strict missing references, kept names, deploys in one request, `verify`, and a manifest
 * Django's own `ManifestStaticFilesStorage` reads. Requests are counted by an HTTP proxy in
 * front of the server, so retries and hidden requests would show.
 */
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createS3Client } from '../../lib/s3-client.factory.js';
import { IMMUTABLE_CACHE_CONTROL, MANIFEST_RECORD_KEY, ORIGINAL_CACHE_CONTROL, StaticManifestStorage, type CollectOptions } from '../../lib/static-manifest.storage.js';
import { CollectStaticError, StorageError } from '../../lib/storage.errors.js';
import type { StaticStorageOptions } from '../../lib/storage-module-options.interface.js';
import { createTestBucket, deleteTestBucket, rawClient, s3, skipWithReason } from '../harness/s3-test-env.js';
import { countingProxy, removeTree, staticOptions, writeTree, type SeenRequest } from './static-fixtures.js';

let bucket: string;
let raw: S3Client;
let proxy: Awaited<ReturnType<typeof countingProxy>>;
const clients: S3Client[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  bucket = await createTestBucket('collect');
  raw = rawClient();
  proxy = await countingProxy(s3.endpoint);
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  raw?.destroy();
  await proxy?.close();
  for (const d of dirs) removeTree(d);
  await deleteTestBucket(bucket);
});

/** A storage under `location` whose requests all go through the counting proxy. */
function storage(location: string, overrides: Partial<StaticStorageOptions> = {}): StaticManifestStorage {
  const options = staticOptions(bucket, { location, endpoint: proxy.endpoint, maxAttempts: 1, ...overrides });
  const client = createS3Client(options);
  clients.push(client);
  return new StaticManifestStorage(client, options);
}

/** Runs `collect` and returns what it did with the HTTP requests it made. */
async function collect(location: string, dir: string, options: CollectOptions = {}, overrides: Partial<StaticStorageOptions> = {}) {
  const before = proxy.seen.length;
  const result = await storage(location, overrides).collect(dir, options);
  return { result, requests: proxy.seen.slice(before) };
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

async function manifestOf(location: string): Promise<{ paths: Record<string, string>; version: string; hash: string } & Record<string, unknown>> {
  return JSON.parse(await text(`${location}/staticfiles.json`));
}

const h12 = (s: string) => createHash('md5').update(s).digest('hex').slice(0, 12);
const kinds = (requests: SeenRequest[]) => requests.map((r) => `${r.method} ${r.url.replace(/\?.*$/, (q) => (/list-type=2/.test(q) ? '?list' : ''))}`);

const SITE = {
  'img/logo.png': 'PNG-logo',
  'css/app.css': ".logo{background:url('../img/logo.png')}\n",
  'js/app.js': 'console.log("hi");\n',
};

describe('originals beside the hashed copies', () => {
  it('uploads each file under its own name too, byte for byte as on disk, cached for 60 s; hashed copies stay immutable', async () => {
    const { result } = await collect('orig', tree(SITE));
    const m = await manifestOf('orig');
    expect(await keys('orig')).toEqual(
      ['css/app.css', 'img/logo.png', 'js/app.js', 'staticfiles.json', ...Object.values(m.paths)].map((k) => `orig/${k}`).sort(),
    );
    expect(result.uploaded).toHaveLength(6);
    // The original CSS is not rewritten: Django's collectstatic copies it as it is.
    expect(await text('orig/css/app.css')).toBe(SITE['css/app.css']);
    expect(await text(`orig/${m.paths['css/app.css']}`)).toContain(m.paths['img/logo.png']!.slice(4));
    const head = (key: string) => raw.send(new HeadObjectCommand({ Bucket: bucket, Key: `orig/${key}` }));
    const original = await head('img/logo.png');
    expect(original.CacheControl).toBe('public, max-age=60');
    expect(ORIGINAL_CACHE_CONTROL).toBe('public, max-age=60');
    expect(original.ContentType).toBe('image/png');
    expect((await head(m.paths['img/logo.png']!)).CacheControl).toBe(IMMUTABLE_CACHE_CONTROL);
  });

  it('originals: false uploads only hashed copies; a later run with originals adds them', async () => {
    const dir = tree(SITE);
    const { result } = await collect('noorig', dir, { originals: false });
    const m = await manifestOf('noorig');
    expect(result.uploaded.sort()).toEqual(Object.values(m.paths).map((k) => `noorig/${k}`).sort());
    expect(await keys('noorig')).toEqual([...Object.values(m.paths), 'staticfiles.json'].map((k) => `noorig/${k}`).sort());

    const { result: withOriginals } = await collect('noorig', dir);
    expect(withOriginals.uploaded.sort()).toEqual(['noorig/css/app.css', 'noorig/img/logo.png', 'noorig/js/app.js']);
    expect(withOriginals.manifestWritten).toBe(true);
  });
});

describe('references to missing files', () => {
  const BROKEN = { ...SITE, 'css/broken.css': '.a{background:url("../img/gone.png")}\n@import "missing.css";\n' };

  it('fail the run, as in Django: a CollectStaticError names each file and reference, and nothing is published', async () => {
    const error = await collect('strict', tree(BROKEN)).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(CollectStaticError);
    expect(error).toBeInstanceOf(StorageError);
    const e = error as CollectStaticError;
    expect(e.reason).toBe('missing-reference');
    expect(e.code).toBe('STORAGE_COLLECT');
    expect(e.files).toEqual([
      { file: 'css/broken.css', line: 1, reference: '../img/gone.png', target: 'img/gone.png' },
      { file: 'css/broken.css', line: 2, reference: 'missing.css', target: 'css/missing.css' },
    ]);
    expect(e.message).toContain('css/broken.css:1 references "../img/gone.png" (img/gone.png)');
    expect(e.message).toContain('Nothing was uploaded');
    expect(e.message).toContain('--allow-missing');
    expect(await keys('strict')).toEqual([]);
  });

  it('allowMissing only reports them and leaves the references as written', async () => {
    const { result } = await collect('lax', tree(BROKEN), { allowMissing: true });
    expect(result.missingReferences).toEqual([
      { file: 'css/broken.css', line: 1, reference: '../img/gone.png', target: 'img/gone.png' },
      { file: 'css/broken.css', line: 2, reference: 'missing.css', target: 'css/missing.css' },
    ]);
    const m = await manifestOf('lax');
    expect(await text(`lax/${m.paths['css/broken.css']}`)).toBe(BROKEN['css/broken.css']);
  });
});

describe('names kept unhashed', () => {
  it('keeps names matching keepNames globs (** spans directories) and hashes the rest', async () => {
    const dir = tree({ 'assets/index-B4c9Xk2a.js': 'built', 'assets/deep/x-1.css': 'x{}', 'fonts/a.woff2': 'font', 'img/bg-Header01.png': 'bg' });
    await collect('globs', dir, { keepNames: ['assets/**', '**/*.woff2'] });
    const m = await manifestOf('globs');
    expect(m.paths).toEqual({
      'assets/deep/x-1.css': 'assets/deep/x-1.css',
      'assets/index-B4c9Xk2a.js': 'assets/index-B4c9Xk2a.js',
      'fonts/a.woff2': 'fonts/a.woff2',
      // Looks bundler-hashed, but nothing says it is: hashed, as Django would.
      'img/bg-Header01.png': `img/bg-Header01.${h12('bg')}.png`,
    });
    // A kept name has no separate original: it is its own original.
    expect(await keys('globs')).toEqual(
      ['assets/deep/x-1.css', 'assets/index-B4c9Xk2a.js', 'fonts/a.woff2', `img/bg-Header01.${h12('bg')}.png`, 'img/bg-Header01.png', 'staticfiles.json']
        .map((k) => `globs/${k}`)
        .sort(),
    );
    const kept = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'globs/assets/index-B4c9Xk2a.js' }));
    expect(kept.CacheControl).toBe(IMMUTABLE_CACHE_CONTROL);
  });

  it("keeps the files a Vite manifest lists (file, css, assets), relative to the bundler's outDir", async () => {
    const dir = tree({
      'assets/index-B4c9Xk2a.js': 'entry',
      'assets/index-Cq1XkZ9b.css': 'body{}',
      'assets/logo-D2k4LmNo.svg': '<svg/>',
      'assets/not-listed.js': 'extra',
      'robots.txt': 'ok',
    });
    mkdirSync(join(dir, '.vite'));
    writeFileSync(
      join(dir, '.vite', 'manifest.json'),
      JSON.stringify({
        'index.html': { file: 'assets/index-B4c9Xk2a.js', src: 'index.html', isEntry: true, css: ['assets/index-Cq1XkZ9b.css'], assets: ['assets/logo-D2k4LmNo.svg'] },
      }),
    );
    await collect('vite', dir, { bundlerManifest: join(dir, '.vite', 'manifest.json') });
    const m = await manifestOf('vite');
    expect(m.paths['assets/index-B4c9Xk2a.js']).toBe('assets/index-B4c9Xk2a.js');
    expect(m.paths['assets/index-Cq1XkZ9b.css']).toBe('assets/index-Cq1XkZ9b.css');
    expect(m.paths['assets/logo-D2k4LmNo.svg']).toBe('assets/logo-D2k4LmNo.svg');
    expect(m.paths['assets/not-listed.js']).toBe(`assets/not-listed.${h12('extra')}.js`);
    expect(m.paths['robots.txt']).toBe(`robots.${h12('ok')}.txt`);
    expect(Object.keys(m.paths)).not.toContain('.vite/manifest.json');
  });

  it('never overwrites a kept name with different bytes: the run fails naming the file, and the stored bytes and manifest stay', async () => {
    const keepNames = ['assets/**'];
    await collect('kept', tree({ 'assets/app-B4c9Xk2a.js': 'aaaa', 'a.txt': 'a' }), { keepNames });
    const before = await text('kept/staticfiles.json');
    const error = await collect('kept', tree({ 'assets/app-B4c9Xk2a.js': 'bbbb', 'a.txt': 'a2' }), { keepNames }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(CollectStaticError);
    expect((error as CollectStaticError).reason).toBe('kept-name-changed');
    expect((error as CollectStaticError).files).toEqual([{ file: 'assets/app-B4c9Xk2a.js' }]);
    expect((error as Error).message).toContain('"kept/assets/app-B4c9Xk2a.js" would be overwritten with different bytes');
    expect(await text('kept/assets/app-B4c9Xk2a.js')).toBe('aaaa');
    expect(await text('kept/staticfiles.json')).toBe(before);
    expect(await keys('kept')).not.toContain(`kept/a.${h12('a2')}.txt`);
    // The same bytes again are fine.
    const { result } = await collect('kept', tree({ 'assets/app-B4c9Xk2a.js': 'aaaa', 'a.txt': 'a' }), { keepNames });
    expect(result.uploaded).toEqual([]);
  });

  it('also refuses when the kept name is already in the bucket with other bytes but in no manifest', async () => {
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'foreign/assets/app-B4c9Xk2a.js', Body: 'someone else' }));
    // With a previous manifest that does not record the name, the name is checked with a HEAD.
    await collect('foreign', tree({ 'a.txt': 'a' }));
    const error = await collect('foreign', tree({ 'assets/app-B4c9Xk2a.js': 'mine', 'a.txt': 'a' }), { keepNames: ['assets/**'] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as CollectStaticError).reason).toBe('kept-name-changed');
    expect(await text('foreign/assets/app-B4c9Xk2a.js')).toBe('someone else');
  });
});

describe('deploys in one request', () => {
  const files: Record<string, string> = { 'css/site.css': '.a{background:url(../img/i0.png)}\n', 'js/app.js': 'app()\n' };
  for (let i = 0; i < 300; i++) files[`img/i${i}.png`] = `image ${i}`;
  files['assets/app-B4c9Xk2a.js'] = 'kept';
  const keepNames = ['assets/**'];
  let dir: string;

  beforeAll(async () => {
    dir = tree(files);
    await collect('deploy', dir, { keepNames });
  });

  it('a run with nothing changed sends exactly one request: GET of the manifest', async () => {
    const { result, requests } = await collect('deploy', dir, { keepNames });
    expect(kinds(requests)).toEqual([`GET /${bucket}/deploy/staticfiles.json`]);
    expect(result).toMatchObject({ uploaded: [], manifestWritten: false, listed: false, unchanged: 2 * 302 + 1 });
  });

  it('records the md5s a hashed name cannot prove under an extra key, and the manifest is still Django-shaped', async () => {
    const m = await manifestOf('deploy');
    expect(Object.keys(m).sort()).toEqual(['hash', MANIFEST_RECORD_KEY, 'paths', 'version'].sort());
    expect(m.version).toBe('1.1');
    const record = m[MANIFEST_RECORD_KEY] as { originals: boolean; md5: Record<string, string> };
    expect(record.originals).toBe(true);
    // The kept name, and the originals of the rewritten CSS (its hashed name is the rewrite's).
    // (js/app.js has no reference to rewrite: its hashed name is its original's md5.)
    expect(Object.keys(record.md5).sort()).toEqual(['assets/app-B4c9Xk2a.js', 'css/site.css']);
    expect(record.md5['assets/app-B4c9Xk2a.js']).toBe(createHash('md5').update('kept').digest('hex'));
  });

  it('a changed run trusts the previous manifest: no listing, and only the new names and changed originals are written', async () => {
    const changed = tree({ ...files, 'img/i5.png': 'image 5 v2', 'css/site.css': '/* edited */\n.a{background:url(../img/i0.png)}\n', 'new.txt': 'new' });
    const { result, requests } = await collect('deploy', changed, { keepNames });
    const m = await manifestOf('deploy');
    const expected = [m.paths['img/i5.png'], 'img/i5.png', m.paths['css/site.css'], 'css/site.css', m.paths['new.txt'], 'new.txt'].map((k) => `deploy/${k}`);
    expect(result.uploaded.sort()).toEqual(expected.sort());
    expect(result.listed).toBe(false);
    expect(kinds(requests).sort()).toEqual(
      [`GET /${bucket}/deploy/staticfiles.json`, ...expected.map((k) => `PUT /${bucket}/${k}`), `PUT /${bucket}/deploy/staticfiles.json`].sort(),
    );
    // The manifest is written last, after every upload.
    expect(kinds(requests).at(-1)).toBe(`PUT /${bucket}/deploy/staticfiles.json`);
    dir = changed;
  });

  it('notices a changed original under the same hashed name (a CSS whose rewrite is unchanged)', async () => {
    // Django writes url("…") whatever the quotes: the rewrite, and so the hashed name, stay the same.
    const quoted = tree({ ...files, 'img/i5.png': 'image 5 v2', 'css/site.css': '/* edited */\n.a{background:url("../img/i0.png")}\n', 'new.txt': 'new' });
    const before = (await manifestOf('deploy')).paths['css/site.css'];
    const { result } = await collect('deploy', quoted, { keepNames });
    expect((await manifestOf('deploy')).paths['css/site.css']).toBe(before);
    expect(result.uploaded).toEqual(['deploy/css/site.css']);
    expect(await text('deploy/css/site.css')).toContain('url("../img/i0.png")');
    dir = quoted;
  });

  it('verify lists the prefix and repairs objects deleted by hand, which a plain run trusts are there', async () => {
    const m = await manifestOf('deploy');
    await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: `deploy/${m.paths['img/i7.png']}` }));
    await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'deploy/img/i8.png' }));
    const plain = await collect('deploy', dir, { keepNames });
    expect(plain.result.uploaded).toEqual([]);
    expect(plain.requests).toHaveLength(1);

    const { result, requests } = await collect('deploy', dir, { keepNames, verify: true });
    expect(result.listed).toBe(true);
    expect(result.uploaded.sort()).toEqual([`deploy/${m.paths['img/i7.png']}`, 'deploy/img/i8.png'].sort());
    expect(kinds(requests).filter((k) => k.endsWith('?list'))).toHaveLength(1);
    expect(await text('deploy/img/i8.png')).toBe('image 8');
    const again = await collect('deploy', dir, { keepNames, verify: true });
    expect(again.result.uploaded).toEqual([]);
  });
});

describe('static.url', () => {
  it('rewrites root-relative references under static.url (default /<location>/) to hashed names', async () => {
    const dir = tree({ 'img/a.png': 'A', 'css/a.css': '.a{background:url(/site/img/a.png)}\n.b{background:url(/elsewhere/b.png)}\n' });
    await collect('site', dir);
    const m = await manifestOf('site');
    expect(await text(`site/${m.paths['css/a.css']}`)).toContain(`url("/site/img/a.${h12('A')}.png")`);

    await collect('cdn', dir, { allowMissing: true }, { url: '/elsewhere/' });
    const c = await manifestOf('cdn');
    expect(await text(`cdn/${c.paths['css/a.css']}`)).toContain('url(/site/img/a.png)');
  });
});

describe('Django reads the manifest', () => {
  const python = '/usr/bin/python3';
  const probe = existsSync(python) ? spawnSync(python, ['-c', 'import django.contrib.staticfiles.storage'], { encoding: 'utf8' }) : undefined;
  const reason = probe === undefined ? `${python} not found` : probe.status !== 0 ? `Django is not importable by ${python} (apt-get install python3-django)` : undefined;
  const check = async () => {
    await collect('django', tree(SITE), { keepNames: ['assets/**'] });
    const manifest = await text('django/staticfiles.json');
    const root = mkdtempSync(join(tmpdir(), 'nss3-django-'));
    dirs.push(root);
    writeFileSync(join(root, 'staticfiles.json'), manifest);
    // Django 4.2+ reads versions "1.0" and "1.1" (5.2: `version in ("1.0", "1.1")`, then only
    // `paths` and `hash`); Debian's 3.2 reads only "1.0". On 3.2 the copy is relabelled "1.0",
    // which still proves what matters: load_manifest ignores our extra key.
    const script = [
      'import json, sys',
      'from django.conf import settings',
      'settings.configure(STATIC_ROOT=sys.argv[1], STATIC_URL="/static/", INSTALLED_APPS=["django.contrib.staticfiles"])',
      'import django; django.setup()',
      'import os',
      'path = os.path.join(sys.argv[1], "staticfiles.json")',
      'data = json.load(open(path))',
      'if django.VERSION < (4, 2): data["version"] = "1.0"; json.dump(data, open(path, "w"))',
      'from django.contrib.staticfiles.storage import ManifestStaticFilesStorage',
      's = ManifestStaticFilesStorage()',
      'print(json.dumps({"paths": s.hashed_files, "url": s.url("css/app.css")}))',
    ].join('\n');
    const out = spawnSync(python, ['-c', script, root], { encoding: 'utf8' });
    expect(out.stderr).toBe('');
    const parsed = JSON.parse(out.stdout) as { paths: Record<string, string>; url: string };
    const ours = JSON.parse(manifest) as { paths: Record<string, string> };
    expect(parsed.paths).toEqual(ours.paths);
    expect(parsed.url).toBe(`/static/${ours.paths['css/app.css']}`);
  };
  if (reason) skipWithReason("Django's ManifestStaticFilesStorage.load_manifest reads our staticfiles.json", reason, check);
  else it("Django's ManifestStaticFilesStorage.load_manifest reads our staticfiles.json", check);
});

describe('review fixes', () => {
  const cacheOf = async (key: string) => (await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).CacheControl;
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

  it('a kept name that stops being kept is stored again with max-age=60, so its next edit is not hidden by a year of cache', async () => {
    await collect('unkeep', tree({ 'k.js': 'v1\n' }), { keepNames: ['k.js'] });
    expect(await cacheOf('unkeep/k.js')).toBe(IMMUTABLE_CACHE_CONTROL);
    const { result } = await collect('unkeep', tree({ 'k.js': 'v1\n' }));
    expect(result.uploaded.sort()).toEqual([`unkeep/k.${h12('v1\n')}.js`, 'unkeep/k.js'].sort());
    expect(await cacheOf('unkeep/k.js')).toBe(ORIGINAL_CACHE_CONTROL);
    await collect('unkeep', tree({ 'k.js': 'v2\n' }));
    expect(await text('unkeep/k.js')).toBe('v2\n');
    expect(await cacheOf('unkeep/k.js')).toBe(ORIGINAL_CACHE_CONTROL);
  });

  for (const verify of [false, true]) {
    it(`a hashed name that becomes kept is stored again as immutable (${verify ? 'verify: listing' : 'HEAD'})`, async () => {
      const location = verify ? 'rekeep-v' : 'rekeep';
      await collect(location, tree({ 'k.js': 'v1\n' }));
      expect(await cacheOf(`${location}/k.js`)).toBe(ORIGINAL_CACHE_CONTROL);
      const { result } = await collect(location, tree({ 'k.js': 'v1\n' }), { keepNames: ['k.js'], verify });
      expect(result.uploaded).toEqual([`${location}/k.js`]);
      expect(await cacheOf(`${location}/k.js`)).toBe(IMMUTABLE_CACHE_CONTROL);
      // And then it is up to date.
      expect((await collect(location, tree({ 'k.js': 'v1\n' }), { keepNames: ['k.js'], verify })).result.uploaded).toEqual([]);
    });
  }

  it('a kept name above 16 MiB (multipart ETag, no recorded md5) of another size is a conflict, on the listing and the HEAD path', async () => {
    const big = Buffer.alloc(17 * 1024 * 1024, 1);
    const bigger = Buffer.alloc(17 * 1024 * 1024 + 1, 2);
    await collect('bigkept', tree({ 'big.bin': big }), { keepNames: ['big.bin'] });
    const head = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'bigkept/big.bin' }));
    expect(head.ETag).toContain('-');
    // No manifest: the prefix is listed.
    await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'bigkept/staticfiles.json' }));
    const listed = await failure(collect('bigkept', tree({ 'big.bin': bigger }), { keepNames: ['big.bin'] }));
    expect((listed as CollectStaticError).reason).toBe('kept-name-changed');
    // A manifest that does not name it: checked with a HEAD.
    await collect('bigkept', tree({ 'a.txt': 'a' }));
    const headed = await failure(collect('bigkept', tree({ 'a.txt': 'a', 'big.bin': bigger }), { keepNames: ['big.bin'] }));
    expect((headed as CollectStaticError).reason).toBe('kept-name-changed');
    expect((await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'bigkept/big.bin' }))).ContentLength).toBe(big.length);
  }, 120_000);

  it('jsModules rewrites relative JS imports to hashed names, only when asked', async () => {
    const files = { 'a.js': "import './b.js';\n", 'b.js': 'export {};\n' };
    const plain = await collect('jsmod', tree(files));
    const a = (await manifestOf('jsmod')).paths['a.js']!;
    expect(a).toBe(`a.${h12(files['a.js'])}.js`);
    expect(await text(`jsmod/${a}`)).toBe(files['a.js']);
    expect(plain.result.cycles).toEqual([]);
    await collect('jsmod', tree(files), { jsModules: true });
    const rewritten = await text(`jsmod/${(await manifestOf('jsmod')).paths['a.js']}`);
    expect(rewritten).toContain(`b.${h12(files['b.js'])}.js`);
    expect(rewritten).not.toContain("'./b.js'");
  });

  it('reports reference cycles in the result', async () => {
    const { result } = await collect('cycle', tree({ 'a.css': '@import url("b.css");\n', 'b.css': '@import url("a.css");\n' }));
    expect(result.cycles).toEqual([['a.css', 'b.css']]);
  });

  const changedName = 'a file edited between hashing and upload is refused by the server (Content-MD5): the run fails asking to run again';
  const changed = async () => {
    const dir = tree({ 'x.txt': 'AAAA', 'y.txt': 'y' });
    const error = await failure(
      collect('edited', dir, {
        onProgress: (p) => {
          if (p.phase === 'hash' && p.done === p.total) writeFileSync(join(dir, 'x.txt'), 'BBBB');
        },
      }),
    );
    expect(error).toBeInstanceOf(CollectStaticError);
    expect((error as CollectStaticError).reason).toBe('file-changed');
    expect((error as Error).message).toContain('Run collectstatic again');
    expect(await keys('edited')).not.toContain('edited/staticfiles.json');
  };
  if (s3.kind === 's3rver') skipWithReason(changedName, 'the embedded s3rver does not check Content-MD5', changed);
  else it(changedName, changed);

  it('prune deletes nothing when another deploy wrote the manifest meanwhile, and warns', async () => {
    await collect('race', tree({ 'a.txt': '1' }));
    await collect('race', tree({ 'a.txt': '2' }));
    const options = staticOptions(bucket, { location: 'race', endpoint: s3.endpoint, maxAttempts: 1 });
    const client = createS3Client(options);
    clients.push(client);
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        const input = args.input as { Key?: string };
        if (context.commandName === 'PutObjectCommand' && input.Key === 'race/staticfiles.json') {
          await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'race/staticfiles.json', Body: '{"version":"1.1","paths":{},"hash":"other"}' }));
        }
        return out;
      },
      { step: 'initialize' },
    );
    const result = await new StaticManifestStorage(client, options).collect(tree({ 'a.txt': '3' }), { prune: true });
    expect(result.deleted).toEqual([]);
    expect(result.warnings.join('\n')).toContain('prune skipped');
    expect(await keys('race')).toContain(`race/a.${h12('1')}.txt`);
  });

  it('warns about keepNames globs and a bundler manifest that match no file', async () => {
    const { result } = await collect('nomatch', tree({ 'a.txt': 'a' }), { keepNames: ['asset/**', 'a.txt'] });
    expect(result.warnings).toEqual(['keepNames: the glob "asset/**" matches no file']);
    const dir = tree({ 'a.txt': 'a', '.vite/manifest.json': JSON.stringify({ 'main.js': { file: 'assets/main-B4c9Xk2a.js' } }) });
    const stale = await collect('nomatch', dir, { bundlerManifest: join(dir, '.vite/manifest.json') });
    expect(stale.result.warnings).toEqual([`bundlerManifest: "${join(dir, '.vite/manifest.json')}" lists no file in the directory`]);
  });
});
