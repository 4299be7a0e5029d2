/**
 * The ways an app wires the module: forRoot, forRootAsync with useFactory (and
 * @nestjs/config's storageConfig), useClass and useExisting; isGlobal.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { Injectable, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { Test, type TestingModule } from '@nestjs/testing';
import { MediaStorage } from '../../lib/media.storage.js';
import { StaticManifestStorage } from '../../lib/static-manifest.storage.js';
import { storageConfig } from '../../lib/storage.config.js';
import { MEDIA_S3_CLIENT, STORAGE_OPTIONS } from '../../lib/storage.constants.js';
import { InjectMediaS3Client } from '../../lib/storage.decorators.js';
import { StorageConfigurationError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import type { StorageModuleOptions } from '../../lib/storage-module-options.interface.js';
import type { ResolvedStorageOptions } from '../../lib/storage-options.validation.js';
import { deleteTestBucket, mediaOptions, s3, uniqueBucket } from '../harness/s3-test-env.js';

const bucket = uniqueBucket('wiring');
let moduleRef: TestingModule | undefined;
afterEach(async () => {
  await moduleRef?.close();
  moduleRef = undefined;
});
afterAll(() => deleteTestBucket(bucket));

@Injectable()
class AvatarService {
  constructor(readonly media: MediaStorage, @InjectMediaS3Client() readonly client: S3Client) {}
}

async function roundTrip(ref: TestingModule, name: string): Promise<void> {
  const media = ref.get(MediaStorage);
  await media.save(name, 'wired');
  expect((await media.read(name)).toString()).toBe('wired');
}

describe('StorageModule wiring', () => {
  it('forRootAsync + @nestjs/config storageConfig reads the seed variables', async () => {
    const env = {
      MEDIA_S3_BUCKET_NAME: bucket,
      MEDIA_S3_ENDPOINT_URL: s3.endpoint,
      MEDIA_S3_URL_ENDPOINT_URL: s3.endpoint.replace('127.0.0.1', 'localhost'),
      MEDIA_S3_ACCESS_KEY: s3.accessKeyId,
      MEDIA_S3_SECRET_KEY: s3.secretAccessKey,
      MEDIA_S3_REGION: s3.region,
    };
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      moduleRef = await Test.createTestingModule({
        imports: [
          ConfigModule.forRoot({ ignoreEnvFile: true }),
          StorageModule.forRootAsync({ imports: [ConfigModule.forFeature(storageConfig)], inject: [storageConfig.KEY], useFactory: (c: StorageModuleOptions) => c }),
        ],
      }).compile();
      await moduleRef.init();
    } finally {
      process.env = saved;
    }
    const options = moduleRef.get<ResolvedStorageOptions>(STORAGE_OPTIONS);
    expect(options.media).toMatchObject({ bucket, endpoint: s3.endpoint, publicEndpoint: env.MEDIA_S3_URL_ENDPOINT_URL, forcePathStyle: true });
    await roundTrip(moduleRef, 'config/a.txt');
    expect(await moduleRef.get(MediaStorage).url('config/a.txt')).toMatch(/^http:\/\/localhost:\d+\//);
  });

  it('forRootAsync(storageConfig.asProvider()) is the whole wiring', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { MEDIA_S3_BUCKET_NAME: bucket, MEDIA_S3_ENDPOINT_URL: s3.endpoint, MEDIA_S3_ACCESS_KEY: s3.accessKeyId, MEDIA_S3_SECRET_KEY: s3.secretAccessKey, MEDIA_S3_LOCATION: 'as-provider' });
    try {
      moduleRef = await Test.createTestingModule({ imports: [StorageModule.forRootAsync(storageConfig.asProvider())] }).compile();
      await moduleRef.init();
    } finally {
      process.env = saved;
    }
    await roundTrip(moduleRef, 'p.txt');
    expect(moduleRef.get(MediaStorage).key('p.txt')).toBe('as-provider/p.txt');
  });

  it('forRootAsync with useClass', async () => {
    @Injectable()
    class StorageOptionsFactory {
      createStorageOptions(): StorageModuleOptions {
        return { media: mediaOptions(bucket, { location: 'by-class' }) };
      }
    }
    moduleRef = await Test.createTestingModule({ imports: [StorageModule.forRootAsync({ useClass: StorageOptionsFactory })] }).compile();
    await moduleRef.init();
    await roundTrip(moduleRef, 'x.txt');
    expect(moduleRef.get(MediaStorage).key('x.txt')).toBe('by-class/x.txt');
  });

  it('forRootAsync with useExisting, from an imported module', async () => {
    @Injectable()
    class ExistingFactory {
      createStorageOptions(): StorageModuleOptions {
        return { media: mediaOptions(bucket, { location: 'by-existing' }) };
      }
    }
    @Module({ providers: [ExistingFactory], exports: [ExistingFactory] })
    class OptionsModule {}
    moduleRef = await Test.createTestingModule({
      imports: [StorageModule.forRootAsync({ imports: [OptionsModule], useExisting: ExistingFactory })],
    }).compile();
    await moduleRef.init();
    await roundTrip(moduleRef, 'y.txt');
    expect(moduleRef.get(MediaStorage).key('y.txt')).toBe('by-existing/y.txt');
  });

  it('isGlobal makes MediaStorage and the client injectable in other modules', async () => {
    @Module({ providers: [AvatarService], exports: [AvatarService] })
    class UsersModule {}
    moduleRef = await Test.createTestingModule({
      imports: [StorageModule.forRoot({ media: mediaOptions(bucket), isGlobal: true }), UsersModule],
    }).compile();
    await moduleRef.init();
    const service = moduleRef.get(AvatarService);
    expect(service.media).toBe(moduleRef.get(MediaStorage));
    expect(service.client).toBe(moduleRef.get(MEDIA_S3_CLIENT));
  });

  it('bad options fail at compile time with the one configuration error', async () => {
    const error = await Test.createTestingModule({
      imports: [StorageModule.forRootAsync({ useFactory: () => ({ media: { bucket: 'x' } }) as StorageModuleOptions })],
    })
      .compile()
      .then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect((error as StorageConfigurationError).problems).toEqual([
      'media.bucket: must be a valid S3 bucket name: 3-63 characters, lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit (got x)',
    ]);
  });

  it('StaticManifestStorage without static options: every use throws one clear configuration error', async () => {
    moduleRef = await Test.createTestingModule({ imports: [StorageModule.forRoot({ media: mediaOptions(bucket), ensureBucket: 'off' })] }).compile();
    const assets = moduleRef.get(StaticManifestStorage);
    expect(assets).toBeInstanceOf(StaticManifestStorage);
    for (const use of [() => assets.url('app.js'), () => assets.hashedName('app.js'), () => assets.manifestObjectKey]) {
      let error: unknown;
      try {
        use();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(StorageConfigurationError);
      expect((error as Error).message).toBe(
        'StaticManifestStorage is not configured:\n  - static: StaticManifestStorage is injected but no static storage is configured: pass static: { bucket: "..." } to StorageModule.forRoot(), or set AWS_STORAGE_BUCKET_NAME when using storageConfig',
      );
    }
    await expect(assets.collect('sample-app/public')).rejects.toBeInstanceOf(StorageConfigurationError);
  });

  it('StaticManifestStorage with static options loads its manifest at start-up (a missing one only warns)', async () => {
    moduleRef = await Test.createTestingModule({
      imports: [StorageModule.forRoot({ media: mediaOptions(bucket), static: { ...mediaOptions(bucket), location: 'assets' } })],
    }).compile();
    await moduleRef.init();
    const assets = moduleRef.get(StaticManifestStorage);
    expect(assets.manifestObjectKey).toBe('assets/staticfiles.json');
    expect(() => assets.url('app.js')).toThrow(/^Missing staticfiles manifest entry for 'app\.js' \(the manifest "assets\/staticfiles\.json" was not found/);
  });

  it('sends no ACL header unless acl is configured, and the configured one when it is', async () => {
    const headersOf = async (acl: 'public-read' | undefined): Promise<Record<string, string>> => {
      const ref = await Test.createTestingModule({ imports: [StorageModule.forRoot({ media: mediaOptions(bucket, { acl }), ensureBucket: 'off' })] }).compile();
      const client = ref.get<S3Client>(MEDIA_S3_CLIENT);
      let headers: Record<string, string> = {};
      client.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === 'PutObjectCommand') headers = { ...(args.request as { headers: Record<string, string> }).headers };
          return next(args);
        },
        { step: 'finalizeRequest', name: 'captureHeaders' },
      );
      await ref.get(MediaStorage).save(`acl/${acl ?? 'none'}.txt`, 'x', { overwrite: true });
      await ref.close();
      return headers;
    };
    expect(Object.keys(await headersOf(undefined)).filter((h) => h.toLowerCase().startsWith('x-amz-acl'))).toEqual([]);
    expect((await headersOf('public-read'))['x-amz-acl']).toBe('public-read');
  });
});
