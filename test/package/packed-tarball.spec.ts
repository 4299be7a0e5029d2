/**
 * The published artifact, as users get it: `npm pack` of a copy of the sources with no
 * build (so its `prepack` must build `dist`), installed into a Nest 11 CommonJS app and a
 * Nest 12 ESM app, each of which injects MediaStorage and round-trips an object through
 * the test S3 server and runs the bin; each also imports `nestjs-s3-storage/testing` and runs
 * the same service on StorageTestingModule's InMemoryStorage.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { deleteTestBucket, s3, uniqueBucket } from '../harness/s3-test-env.js';

const run = promisify(execFile);
const root = resolve('.');
const work = mkdtempSync(join(tmpdir(), 'nss3-pack-'));
const bucket = uniqueBucket('pack');
let tarball: string;

const APP_BODY = (load: string): string => `
${load}
const { Injectable, Inject, Module } = common;
const { NestFactory } = core;
const { StorageModule, MediaStorage } = storage;

class AvatarService {
  constructor(media) { this.media = media; }
  async roundTrip() {
    const name = await this.media.save('pack/hello.txt', 'hello from ' + process.argv[2]);
    return (await this.media.read(name)).toString();
  }
}
Inject(MediaStorage)(AvatarService, undefined, 0);
Injectable()(AvatarService);

class AppModule {}
Module({
  imports: [StorageModule.forRoot({ media: JSON.parse(process.env.MEDIA_OPTIONS) })],
  providers: [AvatarService],
})(AppModule);

// The same service under test with the test kit: an InMemoryStorage where it injects MediaStorage.
class TestModule {}
Module({ imports: [testing.StorageTestingModule.forRoot()], providers: [AvatarService] })(TestModule);

(async () => {
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const text = await app.get(AvatarService).roundTrip();
  await app.close();
  const unit = await NestFactory.createApplicationContext(TestModule, { logger: false });
  const kitText = await unit.get(AvatarService).roundTrip();
  const memory = unit.get(testing.InMemoryStorage);
  await memory.assertCount('pack/', 1);
  const kit = { kitText, isInMemory: unit.get(MediaStorage) === memory, localS3: typeof testing.startLocalS3 };
  await unit.close();
  console.log(JSON.stringify({ text, isMediaStorage: app.get(MediaStorage, { strict: false }) instanceof MediaStorage, ...kit }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

async function makeApp(name: string, type: 'module' | 'commonjs', deps: Record<string, string>, main: string): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type, dependencies: { 'nestjs-s3-storage': `file:${tarball}`, ...deps } }, null, 2));
  writeFileSync(join(dir, type === 'module' ? 'main.mjs' : 'main.cjs'), main);
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: dir, timeout: 240_000 });
  return dir;
}

interface AppResult {
  text: string;
  isMediaStorage: boolean;
  kitText: string;
  isInMemory: boolean;
  localS3: string;
}

async function runApp(dir: string, file: string, label: string): Promise<AppResult> {
  const media = { bucket, endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } };
  const { stdout } = await run('node', [file, label], {
    cwd: dir,
    env: { ...process.env, MEDIA_OPTIONS: JSON.stringify(media), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as AppResult;
}

beforeAll(async () => {
  // Packed from a copy: prepack rebuilds dist there, not under the suites using this one's.
  const source = join(work, 'source');
  mkdirSync(source);
  for (const entry of ['lib', 'package.json', 'README.md', 'tsconfig.json']) cpSync(join(root, entry), join(source, entry), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(source, 'node_modules'), 'dir');
  expect(existsSync(join(source, 'dist'))).toBe(false);
  await run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: source, timeout: 180_000 });
  tarball = join(work, readdirSync(work).find((f) => f.endsWith('.tgz'))!);
}, 240_000);

afterAll(async () => {
  rmSync(work, { recursive: true, force: true });
  await deleteTestBucket(bucket);
});

describe('the packed tarball', () => {
  it('ships the dual build and no sources or tests', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball]);
    const files = stdout.split('\n').filter(Boolean);
    expect(files).toEqual(expect.arrayContaining(['package/dist/esm/index.js', 'package/dist/esm/index.d.ts', 'package/dist/cjs/index.js', 'package/dist/cjs/package.json', 'package/README.md', 'package/package.json']));
    expect(files).toEqual(expect.arrayContaining(['package/dist/esm/testing/index.js', 'package/dist/esm/testing/index.d.ts', 'package/dist/cjs/testing/index.js', 'package/dist/cjs/testing/index.d.ts']));
    expect(files.filter((f) => /^package\/(lib|test|sample-app)\//.test(f) || f.includes('dist/sample-app'))).toEqual([]);
  });

  it('ships the bin executable', async () => {
    const { stdout } = await run('tar', ['-tvzf', tarball, 'package/dist/cjs/cli.js']);
    expect(stdout).toMatch(/^-rwxr-xr-x /);
  });

  it('works in a Nest 12 ESM app (import)', async () => {
    const dir = await makeApp('nest12-esm', 'module', { '@nestjs/common': '^12.0.0', '@nestjs/core': '^12.0.0', '@nestjs/config': '^12.0.0', 'reflect-metadata': '^0.2.0', rxjs: '^7.8.0' },
      APP_BODY(`import 'reflect-metadata';\nimport * as common from '@nestjs/common';\nimport * as core from '@nestjs/core';\nimport * as storage from 'nestjs-s3-storage';\nimport * as testing from 'nestjs-s3-storage/testing';`));
    expect(await runApp(dir, 'main.mjs', 'nest12')).toEqual({ text: 'hello from nest12', isMediaStorage: true, kitText: 'hello from nest12', isInMemory: true, localS3: 'function' });
  }, 300_000);

  it('works in a Nest 11 CommonJS app (require)', async () => {
    const dir = await makeApp('nest11-cjs', 'commonjs', { '@nestjs/common': '^11.0.0', '@nestjs/core': '^11.0.0', '@nestjs/config': '^4.0.0', 'reflect-metadata': '^0.2.0', rxjs: '^7.8.0' },
      APP_BODY(`require('reflect-metadata');\nconst common = require('@nestjs/common');\nconst core = require('@nestjs/core');\nconst storage = require('nestjs-s3-storage');\nconst testing = require('nestjs-s3-storage/testing');`));
    expect(await runApp(dir, 'main.cjs', 'nest11')).toEqual({ text: 'hello from nest11', isMediaStorage: true, kitText: 'hello from nest11', isInMemory: true, localS3: 'function' });
    // The way a user runs the command line: through npx and the installed bin link.
    const { stdout } = await run('npx', ['--no-install', 'nestjs-s3-storage', '--help'], { cwd: dir, timeout: 60_000 });
    expect(stdout).toMatch(/collectstatic/);
  }, 300_000);
});

/** `nestjs-s3-storage/terminus` in the apps above, with the terminus major of their Nest. */
const HEALTH_BODY = (load: string): string => `
${load}
const { Injectable, Inject, Module, ServiceUnavailableException } = common;
const { NestFactory } = core;
const { StorageModule } = storage;
const { HealthCheckService, TerminusModule } = terminus;
const { StorageHealthIndicator } = storageHealth;

class Checker {
  constructor(health, indicator) { this.health = health; this.indicator = indicator; }
  async run(fns) {
    try { return await this.health.check(fns(this.indicator)); }
    catch (e) { if (e instanceof ServiceUnavailableException) return e.getResponse(); throw e; }
  }
}
Inject(HealthCheckService)(Checker, undefined, 0);
Inject(StorageHealthIndicator)(Checker, undefined, 1);
Injectable()(Checker);

const media = JSON.parse(process.env.MEDIA_OPTIONS);
class AppModule {}
Module({
  imports: [
    StorageModule.forRoot({ media }),
    StorageModule.forRoot({ name: 'gone', media: { ...media, bucket: media.bucket + '-gone' }, ensureBucket: 'off' }),
    TerminusModule,
  ],
  providers: [StorageHealthIndicator, Checker],
})(AppModule);

(async () => {
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const checker = app.get(Checker);
  const up = await checker.run((h) => [() => h.isHealthy('media')]);
  const down = await checker.run((h) => [() => h.isHealthy('gone', { storage: 'gone' })]);
  await app.close();
  console.log(JSON.stringify({ up, down }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe('nestjs-s3-storage/terminus from the packed tarball', () => {
  const expected = {
    up: { status: 'ok', info: { media: { status: 'up', bucket } }, error: {}, details: { media: { status: 'up', bucket } } },
    down: expect.objectContaining({ status: 'error', error: { gone: { status: 'down', bucket: `${bucket}-gone`, reason: 'NoSuchBucket', message: 'Storage unavailable (NoSuchBucket); the server log has the details.' } } }),
  };
  const withTerminus = async (app: string, range: string, file: string, body: string): Promise<string> => {
    const dir = join(work, app);
    // The apps of the suite above, with terminus added the way a user adds it.
    if (!existsSync(dir)) throw new Error(`${dir} is missing: run the whole file (the suite above makes the app)`);
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', `@nestjs/terminus@${range}`], { cwd: dir, timeout: 240_000 });
    writeFileSync(join(dir, file), body);
    return dir;
  };

  it('runs a health check in the Nest 12 ESM app with @nestjs/terminus 12 (import)', async () => {
    const dir = await withTerminus('nest12-esm', '^12.0.0', 'health.mjs',
      HEALTH_BODY(`import 'reflect-metadata';\nimport * as common from '@nestjs/common';\nimport * as core from '@nestjs/core';\nimport * as terminus from '@nestjs/terminus';\nimport * as storage from 'nestjs-s3-storage';\nimport * as storageHealth from 'nestjs-s3-storage/terminus';`));
    expect(await runApp(dir, 'health.mjs', 'nest12')).toEqual(expected);
  }, 300_000);

  it('runs a health check in the Nest 11 CommonJS app with @nestjs/terminus 11 (require)', async () => {
    const dir = await withTerminus('nest11-cjs', '^11.0.0', 'health.cjs',
      HEALTH_BODY(`require('reflect-metadata');\nconst common = require('@nestjs/common');\nconst core = require('@nestjs/core');\nconst terminus = require('@nestjs/terminus');\nconst storage = require('nestjs-s3-storage');\nconst storageHealth = require('nestjs-s3-storage/terminus');`));
    expect(await runApp(dir, 'health.cjs', 'nest11')).toEqual(expected);
  }, 300_000);
});
