/**
 * The CLI end to end: the built `bin` (dist/cjs/cli.js) spawned with the seed's env
 * variables against the test server. Needs `npm run build` first (`npm test` does it).
 */
import { DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { CJS_CLI, ESM_CLI, runCli as cli } from '../harness/cli.js';
import { deleteTestBucket, itRequires, rawClient, s3, uniqueBucket } from '../harness/s3-test-env.js';
import { removeTree, writeTree } from './static-fixtures.js';


const bucket = uniqueBucket('cli');
const env = {
  AWS_STORAGE_BUCKET_NAME: bucket,
  AWS_ACCESS_KEY_ID: s3.accessKeyId,
  AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  AWS_S3_ENDPOINT_URL: s3.endpoint,
  AWS_S3_REGION: s3.region,
};
let raw: S3Client;
let dir: string;

beforeAll(() => {
  if (!existsSync(CJS_CLI) || !existsSync(ESM_CLI)) throw new Error('dist/cjs/cli.js is missing: run "npm run build" first');
  raw = rawClient();
  dir = writeTree({ 'img/a.png': 'png', 'css/a.css': '.a{background:url(../img/a.png)}', 'js/a.js': 'a()' });
});
afterAll(async () => {
  raw?.destroy();
  removeTree(dir);
  await deleteTestBucket(bucket);
});

const SUMMARY = /^uploaded (\d+), unchanged (\d+), deleted (\d+) in \d+\.\d s\b/m;

describe('nestjs-s3-storage CLI (built CommonJS bin)', () => {
  it('ensure-bucket --static creates the bucket, then finds it', async () => {
    const first = await cli(['ensure-bucket', '--static'], env);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout).toBe(`bucket "${bucket}" at ${s3.endpoint}: created\n`);
    await raw.send(new HeadBucketCommand({ Bucket: bucket }));
    const second = await cli(['ensure-bucket'], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(`bucket "${bucket}" at ${s3.endpoint}: exists\n`);
  });

  it('collectstatic --dry-run lists what it would upload and writes nothing', async () => {
    const run = await cli(['collectstatic', dir, '--dry-run'], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^would upload static\/css\/a\.[0-9a-f]{12}\.css$/m);
    expect(run.stdout).toMatch(/^would write static\/staticfiles\.json$/m);
    expect(run.stdout).toMatch(/^would upload static\/css\/a\.css$/m);
    expect(SUMMARY.exec(run.stdout)?.slice(1)).toEqual(['6', '0', '0']);
    expect(run.stdout).toContain('(dry run: nothing was written');
    const listed = await raw.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(listed.KeyCount ?? 0).toBe(0);
  });

  it('collectstatic uploads, prints the summary, and a re-run uploads nothing', async () => {
    const first = await cli(['collectstatic', dir], env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(SUMMARY.exec(first.stdout)?.slice(1)).toEqual(['6', '0', '0']);
    const manifest = JSON.parse(
      await (await raw.send(new GetObjectCommand({ Bucket: bucket, Key: 'static/staticfiles.json' }))).Body!.transformToString(),
    );
    expect(Object.keys(manifest.paths).sort()).toEqual(['css/a.css', 'img/a.png', 'js/a.js']);

    const again = await cli(['collectstatic', dir, '--prune'], env);
    expect(again.code).toBe(0);
    expect(SUMMARY.exec(again.stdout)?.slice(1)).toEqual(['0', '6', '0']);
    expect(again.stdout).toContain('manifest unchanged');
  });

  it('runs from the ESM build too', async () => {
    const run = await cli(['--help'], {}, ESM_CLI);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('nestjs-s3-storage collectstatic <dir> [--dry-run] [--prune]');
  });

  it('exits 1 with the variable to fix on a bad configuration, without a stack or the secret', async () => {
    const run = await cli(['collectstatic', dir], { ...env, AWS_S3_ENDPOINT_URL: 'minio:9000', AWS_STORAGE_BUCKET_NAME: 'Bad_Bucket' });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('nestjs-s3-storage: Invalid storage configuration in the environment:');
    expect(run.stderr).toContain('AWS_S3_ENDPOINT_URL (static.endpoint): must be an http(s) URL');
    expect(run.stderr).toContain('AWS_STORAGE_BUCKET_NAME (static.bucket): must be a valid S3 bucket name');
    expect(run.stderr).not.toMatch(/^\s+at /m);
    expect(run.stderr).not.toContain(s3.secretAccessKey);
  });

  it('exits 1 when static files are not configured at all', async () => {
    const run = await cli(['collectstatic', dir], { MEDIA_S3_BUCKET_NAME: 'media' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^nestjs-s3-storage: Static file storage is not configured:\n {2}- AWS_STORAGE_BUCKET_NAME is not set/);
  });

  itRequires('signatures', 'exits 1 with "access denied" on a wrong secret, never printing it', async () => {
    const secret = 'wrong-secret-0123456789abcdefghij';
    const run = await cli(['collectstatic', dir], { ...env, AWS_SECRET_ACCESS_KEY: secret });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^nestjs-s3-storage: load manifest "static\/staticfiles\.json" in bucket "[^"]+" at .* failed: access denied/);
    expect(run.stderr + run.stdout).not.toContain(secret);
    expect(run.stderr).not.toMatch(/^\s+at /m);
  });

  it('exits 1 on an unreachable endpoint, a missing directory, a missing bucket, and 2 on a usage error', async () => {
    const down = await cli(['collectstatic', dir], { ...env, AWS_S3_ENDPOINT_URL: 'http://127.0.0.1:9' });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('the endpoint is unreachable');
    const noDir = await cli(['collectstatic', `${dir}/does-not-exist`], env);
    expect(noDir.code).toBe(1);
    expect(noDir.stderr).toMatch(/cannot read directory ".*does-not-exist" \(ENOENT\)/);
    const noBucket = await cli(['collectstatic', dir], { ...env, AWS_STORAGE_BUCKET_NAME: uniqueBucket('missing') });
    expect(noBucket.code).toBe(1);
    expect(noBucket.stderr).toContain('Create it with: nestjs-s3-storage ensure-bucket --static');
    const usage = await cli(['collectstatic'], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('collectstatic takes exactly one directory');
    const unknown = await cli(['collectstatic', dir, '--force'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown option "--force"');
  });
});

describe('collectstatic flags (built CommonJS bin)', () => {
  const flagsEnv = { ...env, AWS_LOCATION: 'flags' };
  const run = (args: string[], extra: Record<string, string> = {}) => cli(['collectstatic', ...args], { ...flagsEnv, ...extra });
  const listed = async (prefix: string) =>
    ((await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/` }))).Contents ?? []).map((o) => o.Key!.slice(prefix.length + 1)).sort();

  it('fails on a reference to a missing file, naming file, line and reference; --allow-missing only warns', async () => {
    const broken = writeTree({ 'css/a.css': '.a{background:url(../img/gone.png)}' });
    try {
      const strict = await run([broken], { AWS_LOCATION: 'flags-strict' });
      expect(strict.code).toBe(1);
      expect(strict.stderr).toContain('css/a.css:1 references "../img/gone.png" (img/gone.png)');
      expect(strict.stderr).toContain('--allow-missing');
      expect(await listed('flags-strict')).toEqual([]);
      const lax = await run([broken, '--allow-missing'], { AWS_LOCATION: 'flags-strict' });
      expect(lax.code).toBe(0);
      expect(lax.stderr).toContain('warning: css/a.css:1 references "../img/gone.png" (img/gone.png), which is not in the directory; left unchanged (--allow-missing)');
    } finally {
      removeTree(broken);
    }
  });

  it('--js-modules rewrites relative imports; a --keep-names glob matching nothing and a reference cycle are warned about', async () => {
    const site = writeTree({ 'a.js': "import './b.js';\n", 'b.js': 'export {};\n', 'c.css': '@import url("d.css");', 'd.css': '@import url("c.css");' });
    try {
      const out = await run([site, '--js-modules', '--keep-names', 'nothing/**'], { AWS_LOCATION: 'flags-js' });
      expect(out.code).toBe(0);
      expect(out.stderr).toContain('warning: keepNames: the glob "nothing/**" matches no file');
      expect(out.stderr).toContain('warning: reference cycle c.css -> d.css');
      const a = (await listed('flags-js')).find((k) => /^a\.[0-9a-f]{12}\.js$/.test(k))!;
      const body = await (await raw.send(new GetObjectCommand({ Bucket: bucket, Key: `flags-js/${a}` }))).Body!.transformToString();
      expect(body).toMatch(/\.\/b\.[0-9a-f]{12}\.js/);
    } finally {
      removeTree(site);
    }
  });

  it('--no-originals, --keep-names (repeatable, --opt=value too) and --static-url', async () => {
    const site = writeTree({ 'assets/x-B4c9Xk2a.js': 'x', 'vendor/y.js': 'y', 'img/a.png': 'A', 'css/a.css': '.a{background:url(/cdn/img/a.png)}' });
    try {
      const out = await run([site, '--no-originals', '--keep-names', 'assets/**', '--keep-names=vendor/*.js', '--static-url', '/cdn/']);
      expect(out.stderr).toBe('');
      expect(out.code).toBe(0);
      const keys = await listed('flags');
      expect(keys).toContain('assets/x-B4c9Xk2a.js');
      expect(keys).toContain('vendor/y.js');
      expect(keys).not.toContain('img/a.png');
      expect(keys).not.toContain('css/a.css');
      const css = keys.find((k) => /^css\/a\.[0-9a-f]{12}\.css$/.test(k))!;
      const body = await (await raw.send(new GetObjectCommand({ Bucket: bucket, Key: `flags/${css}` }))).Body!.transformToString();
      expect(body).toMatch(/url\("\/cdn\/img\/a\.[0-9a-f]{12}\.png"\)/);
    } finally {
      removeTree(site);
    }
  });

  it('--verify re-uploads what was deleted by hand; usage errors exit 2', async () => {
    const manifest = JSON.parse(await (await raw.send(new GetObjectCommand({ Bucket: bucket, Key: 'static/staticfiles.json' }))).Body!.transformToString());
    const gone = ['static/img/a.png', `static/${manifest.paths['img/a.png']}`];
    for (const Key of gone) await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
    const again = await run([dir, '--verify'], { AWS_LOCATION: 'static' });
    expect(again.code).toBe(0);
    expect(SUMMARY.exec(again.stdout)?.slice(1)).toEqual(['2', '4', '0']);
    for (const Key of gone) expect((await raw.send(new HeadObjectCommand({ Bucket: bucket, Key }))).ContentLength).toBe(3);
    const bad = await run([dir, '--static-url', 'static']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--static-url (static.url): must be a path or absolute URL ending in "/"');
    const noValue = await run([dir, '--keep-names']);
    expect(noValue.code).toBe(2);
    expect(noValue.stderr).toContain('--keep-names needs a value');
    const twice = await run([dir, '--static-url', '/a/', '--static-url', '/b/']);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('--static-url may be given only once');
  });
});
