/**
 * `StaticManifestStorage` in an app without `static` options: injectable, told apart by
 * `isConfigured === false`, and every use fails with `StorageConfigurationError` (sync members
 * throw, async ones reject). With `static` options it is configured and works.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { StaticManifestStorage } from '../../lib/static-manifest.storage.js';
import { StorageConfigurationError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import { deleteTestBucket, mediaOptions, rawClient, uniqueBucket } from '../harness/s3-test-env.js';
import { removeTree, writeTree } from '../static/static-fixtures.js';

const bucket = uniqueBucket('static-unconf');
let moduleRef: TestingModule | undefined;
afterEach(async () => {
  await moduleRef?.close();
  moduleRef = undefined;
});
afterAll(() => deleteTestBucket(bucket));

/** What an app with optional static files writes. */
@Injectable()
class AssetLinks {
  constructor(readonly assets: StaticManifestStorage) {}
  script(name: string): string {
    return this.assets.isConfigured ? this.assets.url(name) : `/static/${name}`;
  }
}

/** Every public member of the class, so a member added later is covered here too. */
const MEMBERS = Object.getOwnPropertyNames(StaticManifestStorage.prototype).filter((name) => name !== 'constructor' && name !== 'isConfigured');

async function outcome(use: () => unknown): Promise<{ kind: 'threw' | 'rejected' | 'returned'; error?: unknown }> {
  let result: unknown;
  try {
    result = use();
  } catch (error) {
    return { kind: 'threw', error };
  }
  if (result instanceof Promise) return result.then(() => ({ kind: 'returned' as const }), (error: unknown) => ({ kind: 'rejected' as const, error }));
  return { kind: 'returned' };
}

describe('StaticManifestStorage without static options', () => {
  it('is injectable and says isConfigured === false; an app can fall back on it', async () => {
    moduleRef = await Test.createTestingModule({ imports: [StorageModule.forRoot({ media: mediaOptions(bucket) })], providers: [AssetLinks] }).compile();
    await moduleRef.init();
    const assets = moduleRef.get(StaticManifestStorage);
    expect(assets).toBeInstanceOf(StaticManifestStorage);
    expect(assets.isConfigured).toBe(false);
    expect(moduleRef.get(AssetLinks).script('app.js')).toBe('/static/app.js');
  });

  it('every use fails with StorageConfigurationError: sync members throw, async ones reject', async () => {
    moduleRef = await Test.createTestingModule({ imports: [StorageModule.forRoot({ media: mediaOptions(bucket), ensureBucket: 'off' })] }).compile();
    const assets = moduleRef.get(StaticManifestStorage);
    const dir = writeTree({ 'app.js': 'a()' });
    try {
      const uses: Record<string, [() => unknown, 'threw' | 'rejected']> = {
        url: [() => assets.url('app.js'), 'threw'],
        hashedName: [() => assets.hashedName('app.js'), 'threw'],
        manifestObjectKey: [() => assets.manifestObjectKey, 'threw'],
        load: [() => assets.load(), 'rejected'],
        collect: [() => assets.collect(dir), 'rejected'],
      };
      for (const [name, [use, expected]] of Object.entries(uses)) {
        const result = await outcome(use);
        expect({ name, kind: result.kind }).toEqual({ name, kind: expected });
        expect(result.error).toBeInstanceOf(StorageConfigurationError);
        expect((result.error as Error).message).toMatch(/^StaticManifestStorage is not configured:\n {2}- static: .*pass static: \{ bucket: "\.\.\." \}/);
      }
      // Private members too: nothing reaches the missing client with a TypeError.
      for (const name of MEMBERS) {
        const result = await outcome(() => {
          const member = (assets as unknown as Record<string, unknown>)[name];
          return typeof member === 'function' ? (member as () => unknown).call(assets) : member;
        });
        expect({ name, error: result.error instanceof StorageConfigurationError }).toEqual({ name, error: true });
      }
    } finally {
      removeTree(dir);
    }
  });
});

describe('StaticManifestStorage with static options', () => {
  it('says isConfigured === true and collects and resolves through the real server', async () => {
    moduleRef = await Test.createTestingModule({
      imports: [StorageModule.forRoot({ media: mediaOptions(bucket), static: { ...mediaOptions(bucket), location: 'assets' } })],
      providers: [AssetLinks],
    }).compile();
    await moduleRef.init();
    const assets = moduleRef.get(StaticManifestStorage);
    expect(assets.isConfigured).toBe(true);
    const dir = writeTree({ 'app.js': 'console.log(1)' });
    try {
      await assets.collect(dir);
      await assets.load();
      expect(moduleRef.get(AssetLinks).script('app.js')).toMatch(/\/assets\/app\.[0-9a-f]{12}\.js$/);
      const key = decodeURIComponent(new URL(assets.url('app.js')).pathname).replace(`/${bucket}/`, '');
      const raw = rawClient();
      try {
        const object = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        expect(await object.Body!.transformToString()).toBe('console.log(1)');
      } finally {
        raw.destroy();
      }
    } finally {
      removeTree(dir);
    }
  });
});
