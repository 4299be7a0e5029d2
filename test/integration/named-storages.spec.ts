/**
 * Named storages: several `StorageModule.forRoot({ name, media })` imports in one app, each
 * with its own bucket, credentials and bucket check, injected by name; tokens from
 * lib/storage-tokens.ts; S3 clients shared within one app where the settings are equal, and
 * never destroyed by another app's shutdown.
 */
import { GetObjectCommand, HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, describe, expect, it, jest } from '@jest/globals';
import { Injectable, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { Test, type TestingModule } from '@nestjs/testing';
import { MediaStorage } from '../../lib/media.storage.js';
import { S3ClientRegistry } from '../../lib/s3-client-registry.js';
import { statusOf } from '../../lib/s3-errors.js';
import { storageConfigFor } from '../../lib/storage.config.js';
import { MEDIA_S3_CLIENT, STORAGE_OPTIONS } from '../../lib/storage.constants.js';
import { InjectMediaS3Client, InjectStorage } from '../../lib/storage.decorators.js';
import { StorageConfigurationError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import type { StorageCredentialProvider, StorageModuleOptions } from '../../lib/storage-module-options.interface.js';
import type { ResolvedStorageOptions } from '../../lib/storage-options.validation.js';
import { getMediaS3ClientToken, getStorageOptionsToken, getStorageToken } from '../../lib/storage-tokens.js';
import { deleteTestBucket, mediaOptions, rawClient, s3, skipWithReason, uniqueBucket } from '../harness/s3-test-env.js';

const owned: { bucket: string; owner?: { accessKeyId: string; secretAccessKey: string } }[] = [];
function bucketFor(label: string, owner?: { accessKeyId: string; secretAccessKey: string }): string {
  const bucket = uniqueBucket(label);
  owned.push({ bucket, owner });
  return bucket;
}
const refs: TestingModule[] = [];
async function compile(imports: Parameters<typeof Test.createTestingModule>[0]['imports'], providers: Parameters<typeof Test.createTestingModule>[0]['providers'] = []): Promise<TestingModule> {
  const ref = await Test.createTestingModule({ imports, providers }).compile();
  refs.push(ref);
  await ref.init();
  return ref;
}
afterEach(async () => {
  for (const ref of refs.splice(0)) await ref.close();
});
afterAll(async () => {
  for (const { bucket, owner } of owned) await deleteTestBucket(bucket, owner);
});

/** The HTTP status a request got (403 for another account's object), or 200. */
async function statusOfGet(client: S3Client, Bucket: string, Key: string): Promise<number | undefined> {
  return client.send(new GetObjectCommand({ Bucket, Key })).then(
    async (r) => {
      await r.Body?.transformToByteArray();
      return 200;
    },
    (error: unknown) => statusOf(error),
  );
}

@Injectable()
class Billing {
  constructor(
    @InjectStorage('invoices') readonly invoices: MediaStorage,
    @InjectStorage('exports') readonly exports: MediaStorage,
    @InjectMediaS3Client('invoices') readonly invoicesClient: S3Client,
    @InjectMediaS3Client('exports') readonly exportsClient: S3Client,
  ) {}
}

describe('named storages', () => {
  it('tokens: the unnamed storage keeps MediaStorage and its symbols; a named one has string tokens', () => {
    expect(getStorageToken()).toBe(MediaStorage);
    expect(getMediaS3ClientToken()).toBe(MEDIA_S3_CLIENT);
    expect(getStorageOptionsToken()).toBe(STORAGE_OPTIONS);
    expect(getStorageToken('invoices')).toBe('nestjs-s3-storage:storage:invoices');
    expect(getMediaS3ClientToken('invoices')).toBe('nestjs-s3-storage:media-s3-client:invoices');
    expect(getStorageOptionsToken('invoices')).toBe('nestjs-s3-storage:options:invoices');
    for (const bad of ['', 'in voices', '-x', 'a/b', 'x'.repeat(64)]) {
      expect(() => getStorageToken(bad)).toThrow(StorageConfigurationError);
    }
    expect(() => StorageModule.forRoot({ name: 'bad name', media: mediaOptions('x-bucket') })).toThrow(
      'Invalid nestjs-s3-storage configuration:\n  - name: must be 1-63 letters, digits, "-" or "_", starting with a letter or digit (got "bad name"); omit it for the unnamed storage',
    );
  });

  if (s3.secondUser) {
    const second = s3.secondUser;
    it('one app, two named storages on two buckets of two S3 users: each injected by name, neither can read the other\'s objects', async () => {
      const invoicesBucket = bucketFor('invoices');
      const exportsBucket = bucketFor('exports', second);
      @Module({ providers: [Billing], exports: [Billing] })
      class BillingModule {}
      const ref = await compile([
        // isGlobal: BillingModule injects them without importing StorageModule itself.
        StorageModule.forRoot({ name: 'invoices', media: mediaOptions(invoicesBucket, { location: 'inv' }), isGlobal: true }),
        StorageModule.forRoot({ name: 'exports', media: mediaOptions(exportsBucket, { credentials: { ...second } }), isGlobal: true }),
        BillingModule,
      ]);
      const billing = ref.get(Billing);
      // Each bootstrap created its own bucket, as its own user.
      await expect(billing.invoicesClient.send(new HeadBucketCommand({ Bucket: invoicesBucket }))).resolves.toBeDefined();
      await expect(billing.exportsClient.send(new HeadBucketCommand({ Bucket: exportsBucket }))).resolves.toBeDefined();
      expect(billing.invoices).toBe(ref.get(getStorageToken('invoices')));
      expect(billing.invoices).not.toBe(billing.exports);
      expect(billing.invoicesClient).not.toBe(billing.exportsClient); // different credentials: two clients

      const invoice = await billing.invoices.save('2026/0001.pdf', 'invoice bytes');
      const dump = await billing.exports.save('daily.csv', 'export bytes');
      expect((await billing.invoices.read(invoice)).toString()).toBe('invoice bytes');
      expect((await billing.exports.read(dump)).toString()).toBe('export bytes');
      expect(billing.invoices.key(invoice)).toBe('inv/2026/0001.pdf');
      expect(await fetch(await billing.exports.url(dump)).then((r) => r.text())).toBe('export bytes');

      // Through the other storage's client: the other account's bucket answers 403.
      expect(await statusOfGet(billing.exportsClient, invoicesBucket, billing.invoices.key(invoice))).toBe(403);
      expect(await statusOfGet(billing.invoicesClient, exportsBucket, billing.exports.key(dump))).toBe(403);
      // And the owner's own client reads it (the 403 is about the account, not the key).
      expect(await statusOfGet(billing.invoicesClient, invoicesBucket, billing.invoices.key(invoice))).toBe(200);
      const user2 = rawClient(second);
      try {
        expect(await statusOfGet(user2, exportsBucket, billing.exports.key(dump))).toBe(200);
        expect(await statusOfGet(user2, invoicesBucket, billing.invoices.key(invoice))).toBe(403);
      } finally {
        user2.destroy();
      }
    });
  } else {
    skipWithReason(
      "one app, two named storages on two buckets of two S3 users: each injected by name, neither can read the other's objects",
      `the ${s3.kind} server at ${s3.endpoint} has no second S3 user (set S3_TEST_ACCESS_KEY_2 and S3_TEST_SECRET_KEY_2; test/s3-server/ceph.sh creates one)`,
      async () => undefined,
    );
  }

  it('the unnamed storage and a named one side by side: @InjectStorage() is MediaStorage, buckets stay apart, equal connections share one client', async () => {
    const mediaBucket = bucketFor('side-media');
    const invoicesBucket = bucketFor('side-inv');
    @Injectable()
    class Both {
      constructor(
        readonly plain: MediaStorage,
        @InjectStorage() readonly unnamed: MediaStorage,
        @InjectStorage('invoices') readonly invoices: MediaStorage,
      ) {}
    }
    const ref = await compile(
      [StorageModule.forRoot({ media: mediaOptions(mediaBucket) }), StorageModule.forRoot({ name: 'invoices', media: mediaOptions(invoicesBucket) })],
      [Both],
    );
    const both = ref.get(Both);
    expect(both.unnamed).toBe(both.plain);
    expect(both.unnamed).toBe(ref.get(MediaStorage));
    expect(both.invoices).toBe(ref.get(getStorageToken('invoices')));
    expect(both.invoices).not.toBe(both.unnamed);
    expect(ref.get<ResolvedStorageOptions>(STORAGE_OPTIONS).media.bucket).toBe(mediaBucket);
    expect(ref.get<ResolvedStorageOptions>(getStorageOptionsToken('invoices')).media.bucket).toBe(invoicesBucket);
    // Same endpoint, region and (equal, separately made) credentials: one client.
    expect(ref.get(getMediaS3ClientToken('invoices'))).toBe(ref.get(MEDIA_S3_CLIENT));

    const name = await both.invoices.save('side/a.txt', 'only in invoices');
    expect(await both.invoices.exists(name)).toBe(true);
    expect(await both.unnamed.exists(name)).toBe(false);
    await both.unnamed.save('side/a.txt', 'only in media');
    expect((await both.invoices.read(name)).toString()).toBe('only in invoices');
    expect((await both.unnamed.read('side/a.txt')).toString()).toBe('only in media');
  });

  it('forRootAsync with name: useFactory, and storageConfigFor(name) reading <NAME>_S3_*', async () => {
    const exportsBucket = bucketFor('async-exp');
    const archiveBucket = bucketFor('async-arc');
    const env = {
      EXPORTS_V2_S3_BUCKET_NAME: exportsBucket,
      EXPORTS_V2_S3_ENDPOINT_URL: s3.endpoint,
      EXPORTS_V2_S3_URL_ENDPOINT_URL: s3.endpoint.replace('127.0.0.1', 'localhost'),
      EXPORTS_V2_S3_ACCESS_KEY: s3.accessKeyId,
      EXPORTS_V2_S3_SECRET_KEY: s3.secretAccessKey,
      EXPORTS_V2_S3_REGION: s3.region,
      EXPORTS_V2_S3_LOCATION: 'v2',
      // The unnamed storage's variables must not leak into a named one.
      MEDIA_S3_BUCKET_NAME: 'not-this-bucket',
    };
    const saved = { ...process.env };
    Object.assign(process.env, env);
    let ref: TestingModule;
    try {
      ref = await compile([
        ConfigModule.forRoot({ ignoreEnvFile: true }),
        StorageModule.forRootAsync({ name: 'exports-v2', ...storageConfigFor('exports-v2').asProvider() }),
        StorageModule.forRootAsync({ name: 'archive', useFactory: async (): Promise<StorageModuleOptions> => ({ media: mediaOptions(archiveBucket, { location: 'arc' }) }) }),
      ]);
    } finally {
      process.env = saved;
    }
    const exportsV2 = ref.get<MediaStorage>(getStorageToken('exports-v2'));
    const archive = ref.get<MediaStorage>(getStorageToken('archive'));
    expect(ref.get<ResolvedStorageOptions>(getStorageOptionsToken('exports-v2')).media).toMatchObject({ bucket: exportsBucket, location: 'v2', publicEndpoint: env.EXPORTS_V2_S3_URL_ENDPOINT_URL });
    await exportsV2.save('e.txt', 'exported');
    await archive.save('a.txt', 'archived');
    expect((await exportsV2.read('e.txt')).toString()).toBe('exported');
    expect((await archive.read('a.txt')).toString()).toBe('archived');
    expect(archive.key('a.txt')).toBe('arc/a.txt');
    expect(await exportsV2.url('e.txt')).toMatch(new RegExp(`^http://localhost:\\d+/${exportsBucket}/v2/e\\.txt\\?`));
    expect(() => ref.get(MediaStorage)).toThrow(); // no unnamed storage was imported
    expect(storageConfigFor('exports-v2')).toBe(storageConfigFor('exports-v2'));
  });

  it('overrideProvider(getStorageToken(name)) replaces that storage only', async () => {
    const bucket = bucketFor('override');
    const fake = { save: async (name: string) => `fake:${name}` } as unknown as MediaStorage;
    @Injectable()
    class Invoicing {
      constructor(@InjectStorage('invoices') readonly invoices: MediaStorage, readonly media: MediaStorage) {}
    }
    const ref = await Test.createTestingModule({
      imports: [StorageModule.forRoot({ media: mediaOptions(bucket) }), StorageModule.forRoot({ name: 'invoices', media: mediaOptions(bucket, { location: 'inv' }) })],
      providers: [Invoicing],
    })
      .overrideProvider(getStorageToken('invoices'))
      .useValue(fake)
      .compile();
    refs.push(ref);
    await ref.init();
    const service = ref.get(Invoicing);
    expect(service.invoices).toBe(fake);
    expect(ref.get(getStorageToken('invoices'))).toBe(fake);
    expect(await service.invoices.save('x.pdf', 'x')).toBe('fake:x.pdf');
    expect(service.media).toBeInstanceOf(MediaStorage);
    await service.media.save('real.txt', 'real');
    expect(await service.media.exists('real.txt')).toBe(true);
  });

  it('static options on a named storage are a configuration error, for forRoot and forRootAsync', async () => {
    const message =
      'Invalid nestjs-s3-storage configuration of the storage "invoices":\n  - static: a named storage cannot have static options: StaticManifestStorage is app-wide; configure static on the unnamed StorageModule.forRoot() (without name)';
    for (const storage of [
      StorageModule.forRoot({ name: 'invoices', media: mediaOptions('nss3-a'), static: mediaOptions('nss3-b'), ensureBucket: 'off' }),
      StorageModule.forRootAsync({ name: 'invoices', useFactory: () => ({ media: mediaOptions('nss3-a'), static: mediaOptions('nss3-b'), ensureBucket: 'off' as const }) }),
    ]) {
      const error = await Test.createTestingModule({ imports: [storage] })
        .compile()
        .then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(StorageConfigurationError);
      expect((error as Error).message).toBe(message);
    }
  });

  it("a named storage's validation problems name its own variables", async () => {
    const error = await Test.createTestingModule({
      imports: [StorageModule.forRoot({ name: 'exports-v2', media: { bucket: 'nss3-x', credentials: { accessKeyId: '', secretAccessKey: 's' } }, ensureBucket: 'off' })],
    })
      .compile()
      .then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect((error as Error).message).toBe(
      'Invalid nestjs-s3-storage configuration of the storage "exports-v2":\n  - media.credentials.accessKeyId: must not be empty: set EXPORTS_V2_S3_ACCESS_KEY, or omit credentials to use the AWS provider chain',
    );
  });

  it('a name returned by an async factory is refused with where it belongs', async () => {
    const error = await Test.createTestingModule({
      imports: [StorageModule.forRootAsync({ useFactory: () => ({ name: 'invoices', media: mediaOptions('nss3-x'), ensureBucket: 'off' }) as StorageModuleOptions })],
    })
      .compile()
      .then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect((error as StorageConfigurationError).problems).toEqual([
      'name: is not an option a factory can return: Nest fixes tokens when the module is defined; pass it next to useFactory, as forRootAsync({ name: "…", useFactory })',
    ]);
  });
});

describe('S3 clients shared within one app', () => {
  it('deep-equal settings share a client: static credentials by value, providers by identity; any other difference gets its own', async () => {
    const keys = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
    const provider: StorageCredentialProvider = async () => ({ ...keys });
    const otherProvider: StorageCredentialProvider = async () => ({ ...keys });
    const named = (name: string, credentials: StorageModuleOptions['media']['credentials'], extra: Partial<StorageModuleOptions['media']> = {}) =>
      StorageModule.forRoot({ name, media: mediaOptions(`nss3-share-${name}`, { credentials, ...extra }), ensureBucket: 'off' });
    const ref = await compile([
      named('a', { ...keys }),
      named('b', { ...keys }),
      named('c', provider),
      named('d', provider),
      named('e', otherProvider),
      named('f', { ...keys }, { maxAttempts: 5 }),
      named('g', { ...keys, sessionToken: 'token' }),
    ]);
    const client = (name: string): S3Client => ref.get(getMediaS3ClientToken(name));
    expect(client('a')).toBe(client('b'));
    expect(client('c')).toBe(client('d'));
    for (const other of ['c', 'e', 'f', 'g']) expect(client(other)).not.toBe(client('a'));
    expect(client('e')).not.toBe(client('c'));
    expect(ref.get(S3ClientRegistry).size).toBe(5); // a=b, c=d, e, f, g
  });

  it('two apps in one process, each with two storages sharing a client: closing app A leaves app B\'s client working', async () => {
    const bucket1 = bucketFor('apps-1');
    const bucket2 = bucketFor('apps-2');
    const appModule = () => [StorageModule.forRoot({ media: mediaOptions(bucket1) }), StorageModule.forRoot({ name: 'invoices', media: mediaOptions(bucket2) })];
    const a = await Test.createTestingModule({ imports: appModule() }).compile();
    const b = await Test.createTestingModule({ imports: appModule() }).compile();
    refs.push(b);
    await a.init();
    await b.init();
    const clientOf = (ref: TestingModule): S3Client => ref.get(MEDIA_S3_CLIENT);
    expect(a.get(getMediaS3ClientToken('invoices'))).toBe(clientOf(a));
    expect(b.get(getMediaS3ClientToken('invoices'))).toBe(clientOf(b));
    expect(clientOf(a)).not.toBe(clientOf(b)); // one registry per app
    const destroyA = jest.spyOn(clientOf(a), 'destroy');
    const destroyB = jest.spyOn(clientOf(b), 'destroy');

    await a.close();
    expect(destroyA).toHaveBeenCalledTimes(1);
    expect(destroyB).not.toHaveBeenCalled();
    const media = b.get(MediaStorage);
    const invoices = b.get<MediaStorage>(getStorageToken('invoices'));
    await media.save('after-a-closed.txt', 'b media');
    await invoices.save('after-a-closed.txt', 'b invoices');
    expect((await media.read('after-a-closed.txt')).toString()).toBe('b media');
    expect((await invoices.read('after-a-closed.txt')).toString()).toBe('b invoices');

    await b.close();
    refs.splice(refs.indexOf(b), 1);
    expect(destroyB).toHaveBeenCalledTimes(1); // the shared client is destroyed once
  });
});
