/**
 * The no-change fast path of a collect with a hash cache: when every file's stamp, the
 * options and the bucket's manifest are those of the last run, the run sends one GET and
 * reads no file, and reports exactly what a full run would.
 */
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createS3Client } from '../../lib/s3-client.factory.js';
import { StaticManifestStorage } from '../../lib/static-manifest.storage.js';
import { createTestBucket, deleteTestBucket, rawClient } from '../harness/s3-test-env.js';
import { countRequests, removeTree, staticOptions, writeTree } from './static-fixtures.js';

let bucket: string;
let raw: S3Client;
const clients: S3Client[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  bucket = await createTestBucket('static-fast');
  raw = rawClient();
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  raw?.destroy();
  for (const d of dirs) removeTree(d);
  await deleteTestBucket(bucket);
});

function storage(location: string) {
  const options = staticOptions(bucket, { location });
  const client = createS3Client(options);
  clients.push(client);
  return { storage: new StaticManifestStorage(client, options), requests: countRequests(client) };
}

const SITE = {
  'img/logo.png': 'PNG-logo',
  'css/app.css': '@import "base.css";\n.logo{background:url("../img/logo.png")}\n.x{background:url(missing.png)}\n',
  'css/base.css': 'body{margin:0}\n',
  'assets/index-B4c9Xk2a.js': 'console.log(1)\n',
};

/** A tree whose files are older than the cache's one-second rule. */
function agedTree(): string {
  const dir = writeTree(SITE);
  dirs.push(dir, `${dir}-cache`);
  const old = new Date(Date.now() - 60_000);
  for (const name of Object.keys(SITE)) utimesSync(join(dir, name), old, old);
  return dir;
}

const comparable = (r: { durationMs: number }) => ({ ...r, durationMs: 0 });

describe('collect with a warm hash cache and nothing changed', () => {
  it('sends one GET and reports what a full run reports', async () => {
    const dir = agedTree();
    const cacheFile = `${dir}-cache/hashes.json`;
    const opts = { hashCache: cacheFile, keepNames: ['assets/**'], allowMissing: true };
    const first = await storage('fast').storage.collect(dir, opts);
    expect(first.uploaded.length).toBeGreaterThan(0);
    expect(JSON.parse(readFileSync(cacheFile, 'utf8')).last).toBeDefined();

    const full = storage('fast');
    const slow = await full.storage.collect(dir, { ...opts, hashCache: undefined });
    expect(slow.uploaded).toEqual([]);

    // A full run rewrites the cache; the fast path has nothing new to record and leaves it be.
    const aged = new Date(Date.now() - 3_600_000);
    utimesSync(cacheFile, aged, aged);
    const { storage: s, requests } = storage('fast');
    const fast = await s.collect(dir, opts);
    expect(Math.abs(statSync(cacheFile).mtimeMs - aged.getTime())).toBeLessThan(1); // utimes keeps sub-ms float noise
    expect(requests.counts).toEqual({ GetObjectCommand: 1 });
    expect(comparable(fast)).toEqual(comparable(slow));
    expect(fast.missingReferences).toEqual(first.missingReferences);
    expect(fast.missingReferences.length).toBe(1);
    expect(s.hashedName('css/base.css')).toBe(full.storage.hashedName('css/base.css'));
  });

  it('falls back to a full run when the bucket holds another manifest than the cache recorded', async () => {
    const dir = agedTree();
    const cacheFile = `${dir}-cache/hashes.json`;
    const opts = { hashCache: cacheFile, keepNames: ['assets/**'], allowMissing: true };
    await storage('fast2').storage.collect(dir, opts);
    // Someone else deployed over it: same content, other bytes (a reordered object).
    const manifest = JSON.parse(await (await raw.send(new GetObjectCommand({ Bucket: bucket, Key: 'fast2/staticfiles.json' }))).Body!.transformToString());
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'fast2/staticfiles.json', Body: JSON.stringify({ hash: manifest.hash, version: manifest.version, paths: manifest.paths }) }));
    const { storage: s, requests } = storage('fast2');
    const again = await s.collect(dir, opts);
    expect(again.manifestWritten).toBe(true); // a full run noticed its record is gone
    expect(requests.counts.GetObjectCommand).toBe(1);
    expect(requests.counts.PutObjectCommand).toBeGreaterThanOrEqual(1);
  });

  it('falls back to a full run when a file changed or the options did', async () => {
    const dir = agedTree();
    const cacheFile = `${dir}-cache/hashes.json`;
    const opts = { hashCache: cacheFile, keepNames: ['assets/**'], allowMissing: true };
    await storage('fast3').storage.collect(dir, opts);
    const noOriginals = await storage('fast3').storage.collect(dir, { ...opts, originals: false, dryRun: true });
    expect(noOriginals.unchanged).toBe(4); // 3 hashed copies and the kept name, no originals
    writeFileSync(join(dir, 'css/base.css'), 'body{margin:1}\n');
    const changed = await storage('fast3').storage.collect(dir, { ...opts, dryRun: true });
    expect(changed.uploaded.length).toBeGreaterThan(0);
  });

  it('falls back to a full run when jsModules changed (it renames importing files)', async () => {
    const dir = writeTree({ 'js/a.js': "import { b } from './b.js';\nb();\n", 'js/b.js': 'export const b = () => 1;\n' });
    dirs.push(dir, `${dir}-cache`);
    const old = new Date(Date.now() - 60_000);
    for (const name of ['js/a.js', 'js/b.js']) utimesSync(join(dir, name), old, old);
    const opts = { hashCache: `${dir}-cache/hashes.json` };
    const first = await storage('fast4').storage.collect(dir, opts);
    expect(first.uploaded.length).toBe(4);
    const again = storage('fast4');
    const same = await again.storage.collect(dir, opts);
    expect(same.uploaded).toEqual([]);
    const withModules = await storage('fast4').storage.collect(dir, { ...opts, jsModules: true, dryRun: true });
    // a.js now points at b's hashed name, so its own hashed name (and the manifest) change.
    expect(withModules.uploaded.some((key) => /js\/a\.[0-9a-f]{12}\.js$/.test(key))).toBe(true);
    expect(withModules.manifestWritten).toBe(true);
  });
});
