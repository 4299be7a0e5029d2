/**
 * Credentials as AWS delivers them, against the real server: temporary keys with their
 * session token (RGW's STS GetSessionToken, which test/s3-server/ceph.sh enables) for media,
 * static files and the CLI; SDK credential providers; signed URLs clamped to credentials
 * that expire; and one frozen options constant given to many `forRoot()` calls.
 */
import { ListBucketsCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { GetSessionTokenCommand, STSClient } from '@aws-sdk/client-sts';
import type { AttributedAwsCredentialIdentity } from '@aws-sdk/types';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Test, type TestingModule } from '@nestjs/testing';
import { existsSync } from 'node:fs';
import { MediaStorage } from '../../lib/media.storage.js';
import { StaticManifestStorage } from '../../lib/static-manifest.storage.js';
import { storageOptionsFromEnv } from '../../lib/storage-env.js';
import { STORAGE_OPTIONS } from '../../lib/storage.constants.js';
import { StorageOperationError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import type { StorageCredentialProvider, StorageCredentials, StorageModuleOptions } from '../../lib/storage-module-options.interface.js';
import type { ResolvedStorageOptions } from '../../lib/storage-options.validation.js';
import { CJS_CLI, runCli as cli } from '../harness/cli.js';
import { createTestBucket, deleteTestBucket, mediaOptions, s3, skipWithReason } from '../harness/s3-test-env.js';
import { removeTree, writeTree } from '../static/static-fixtures.js';

type TemporaryCredentials = Required<Pick<StorageCredentials, 'accessKeyId' | 'secretAccessKey' | 'sessionToken' | 'expiration'>>;

/** Session credentials for the test user, as `aws sts get-session-token` returns them. */
async function sessionCredentials(durationSeconds = 900): Promise<TemporaryCredentials> {
  const sts = new STSClient({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 10_000 },
  });
  try {
    const { Credentials: c } = await sts.send(new GetSessionTokenCommand({ DurationSeconds: durationSeconds }));
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) throw new Error('GetSessionToken returned no credentials');
    return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration };
  } finally {
    sts.destroy();
  }
}

// Whether the server issues session credentials decides, at load time, which tests run.
let stsProblem: string | undefined;
await sessionCredentials().catch((error: unknown) => {
  const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  stsProblem = `${e.name ?? 'Error'} (HTTP ${e.$metadata?.httpStatusCode ?? '?'})`;
});

/** `it` when the server issues session tokens; otherwise a skip with the reason printed. */
function itSts(name: string, fn: () => Promise<void>, timeout?: number): void {
  if (stsProblem === undefined) {
    it(name, fn, timeout);
    return;
  }
  skipWithReason(
    name,
    `the ${s3.kind} server at ${s3.endpoint} issues no session credentials (STS GetSessionToken failed: ${stsProblem}); test/s3-server/ceph.sh enables RGW's STS`,
    fn,
  );
}

async function boot(options: StorageModuleOptions): Promise<TestingModule> {
  const ref = await Test.createTestingModule({ imports: [StorageModule.forRoot(options)] }).compile();
  await ref.init();
  return ref;
}

/** save, read back, and fetch the signed URL anonymously, as a browser would. */
async function roundTrip(media: MediaStorage, name: string, body: string): Promise<URL> {
  const stored = await media.save(name, body);
  expect((await media.read(stored)).toString()).toBe(body);
  const url = new URL(await media.url(stored));
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(await response.text()).toBe(body);
  return url;
}

let bucket: string;
const refs: TestingModule[] = [];
beforeAll(async () => {
  bucket = await createTestBucket('creds');
});
afterAll(async () => {
  await Promise.all(refs.splice(0).map((r) => r.close()));
  await deleteTestBucket(bucket);
});

describe('temporary credentials (session token)', () => {
  itSts('work for media with their session token: save, read, exists, signed URL, delete', async () => {
    const temporary = await sessionCredentials();
    const ref = await boot({ media: mediaOptions(bucket, { credentials: temporary, location: 'sts' }) });
    refs.push(ref);
    const media = ref.get(MediaStorage);
    const url = await roundTrip(media, 'a.txt', 'temporary keys');
    expect(url.searchParams.get('X-Amz-Security-Token')).toBe(temporary.sessionToken);
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(new RegExp(`^${temporary.accessKeyId}/`));
    // The URL cannot outlive the 900 s the credentials have (the default urlExpiresIn is 3600).
    expect(Number(url.searchParams.get('X-Amz-Expires'))).toBeLessThanOrEqual(900);
    expect(await media.exists('a.txt')).toBe(true);
    await media.delete('a.txt');
    expect(await media.exists('a.txt')).toBe(false);
  });

  itSts('are refused by the server without the token (403), as before this fix', async () => {
    const { accessKeyId, secretAccessKey } = await sessionCredentials();
    const ref = await boot({ media: mediaOptions(bucket, { credentials: { accessKeyId, secretAccessKey }, location: 'sts' }), ensureBucket: 'off' });
    refs.push(ref);
    const error = await ref.get(MediaStorage).save('b.txt', 'x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageOperationError);
    expect((error as StorageOperationError).status).toBe(403);
  });

  itSts('from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN work in the CLI, for static files and for media sharing them', async () => {
    if (!existsSync(CJS_CLI)) throw new Error('dist/cjs/cli.js is missing: run "npm run build" first');
    const temporary = await sessionCredentials();
    // Exactly what Lambda, CodeBuild and GitHub's configure-aws-credentials export.
    const env = {
      AWS_ACCESS_KEY_ID: temporary.accessKeyId,
      AWS_SECRET_ACCESS_KEY: temporary.secretAccessKey,
      AWS_SESSION_TOKEN: temporary.sessionToken,
      AWS_STORAGE_BUCKET_NAME: bucket,
      AWS_S3_ENDPOINT_URL: s3.endpoint,
      AWS_S3_REGION: s3.region,
      AWS_LOCATION: 'sts-static',
    };
    const dir = writeTree({ 'css/site.css': 'body{background:url(../img/bg.png)}', 'img/bg.png': 'png' });
    try {
      const withoutToken = await cli(['collectstatic', dir], { ...env, AWS_SESSION_TOKEN: '' });
      expect(withoutToken.code).toBe(1);
      expect(withoutToken.stderr).not.toContain(temporary.secretAccessKey);

      const run = await cli(['collectstatic', dir], env);
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
      expect(run.stdout).toMatch(/^uploaded 4, unchanged 0, deleted 0 in /); // 2 hashed copies + 2 originals
      const ensure = await cli(['ensure-bucket'], env);
      expect(ensure.code).toBe(0);
      expect(ensure.stdout).toContain(`bucket "${bucket}"`);
    } finally {
      removeTree(dir);
    }

    // The app, configured from the same variables: the manifest is read with the session
    // token, and media shares the AWS_* connection under media/.
    const ref = await boot(storageOptionsFromEnv(env));
    refs.push(ref);
    expect(ref.get(StaticManifestStorage).url('css/site.css')).toMatch(/\/sts-static\/css\/site\.[0-9a-f]{12}\.css$/);
    const media = ref.get(MediaStorage);
    await roundTrip(media, 'env.txt', 'from AWS_*');
    expect(media.key('env.txt')).toBe('media/env.txt');
  });

  itSts('from MEDIA_S3_ACCESS_KEY / MEDIA_S3_SECRET_KEY / MEDIA_S3_SESSION_TOKEN work for media', async () => {
    const temporary = await sessionCredentials();
    const ref = await boot(
      storageOptionsFromEnv({
        MEDIA_S3_BUCKET_NAME: bucket,
        MEDIA_S3_ACCESS_KEY: temporary.accessKeyId,
        MEDIA_S3_SECRET_KEY: temporary.secretAccessKey,
        MEDIA_S3_SESSION_TOKEN: temporary.sessionToken,
        MEDIA_S3_ENDPOINT_URL: s3.endpoint,
        MEDIA_S3_REGION: s3.region,
        MEDIA_S3_LOCATION: 'sts-media',
      }),
    );
    refs.push(ref);
    await roundTrip(ref.get(MediaStorage), 'm.txt', 'from MEDIA_S3_*');
  });
});

describe('credential providers', () => {
  itSts('a provider of credentials expiring in 10 minutes: called once, and url() is clamped to 600 s and works', async () => {
    let calls = 0;
    const provider: StorageCredentialProvider = async () => {
      calls += 1;
      // Valid for 15 minutes on the server; announced as expiring in 10.
      return { ...(await sessionCredentials(900)), expiration: new Date(Date.now() + 600_000) };
    };
    const ref = await boot({ media: mediaOptions(bucket, { credentials: provider, location: 'provider' }) });
    refs.push(ref);
    const media = ref.get(MediaStorage);
    await media.save('p.txt', 'from a provider');
    expect((await media.read('p.txt')).toString()).toBe('from a provider');

    const url = new URL(await media.url('p.txt', { expiresIn: 3600 }));
    const expires = Number(url.searchParams.get('X-Amz-Expires'));
    expect(expires).toBeLessThanOrEqual(600);
    expect(expires).toBeGreaterThan(300);
    expect(url.searchParams.get('X-Amz-Security-Token')).toBeTruthy();
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('from a provider');
    // The client and the signer share the client's memoized provider.
    expect(calls).toBe(1);
  });

  it("accepts the SDK's provider type; URLs never outlive what it announces (10 minutes), on any server", async () => {
    type SdkCredentials = NonNullable<S3ClientConfig['credentials']>;
    // Long-term keys announced as expiring in 10 minutes: the clamp without needing STS.
    const sdkProvider: Extract<SdkCredentials, (...args: never[]) => unknown> = async () => ({
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      expiration: new Date(Date.now() + 600_000),
    });
    // Both ways: what the SDK's providers are fits our option, and ours fits the SDK's.
    const credentials: StorageCredentialProvider = sdkProvider;
    const back: SdkCredentials = credentials;
    expect(back).toBe(sdkProvider);
    // The SDK packages' own names for the same shapes (compile-time checks).
    const smithy: AwsCredentialIdentityProvider = credentials;
    const attributed: AttributedAwsCredentialIdentity = { accessKeyId: 'a', secretAccessKey: 'b', $source: { CREDENTIALS_CODE: 'e' } };
    const asOption: StorageCredentials = attributed;
    expect([typeof smithy, asOption.accessKeyId]).toEqual(['function', 'a']);
    const ref = await boot({ media: mediaOptions(bucket, { credentials, location: 'provider-long' }) });
    refs.push(ref);
    const media = ref.get(MediaStorage);
    await roundTrip(media, 'l.txt', 'long-term keys from a provider');
    const url = new URL(await media.url('l.txt', { expiresIn: 3600 }));
    expect(Number(url.searchParams.get('X-Amz-Expires'))).toBeLessThanOrEqual(600);
    expect(Number(url.searchParams.get('X-Amz-Expires'))).toBeGreaterThan(300);
    expect((await fetch(url)).status).toBe(200);
  });
});

describe('options are never changed, and what the SDK touched is accepted', () => {
  it('a credentials object an S3 client has already used (the SDK added $source) starts the module', async () => {
    const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
    const client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials });
    try {
      await client.send(new ListBucketsCommand({}));
    } finally {
      client.destroy();
    }
    const ref = await boot({ media: mediaOptions(bucket, { credentials, location: 'used' }) });
    refs.push(ref);
    await roundTrip(ref.get(MediaStorage), 'u.txt', 'used credentials');
  });

  it('an already-memoized provider (another client\'s config.credentials) is used, never written to', async () => {
    // The SDK marks the function it is given as memoized; a Proxy records any such write
    // (a frozen function would only throw in strict-mode builds of the SDK).
    const writes: PropertyKey[] = [];
    const memoized = Object.assign(async () => ({ accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }), { memoized: true });
    const provider = new Proxy(memoized, {
      set: (target, key, value) => (writes.push(key), Reflect.set(target, key, value)),
      defineProperty: (target, key, descriptor) => (writes.push(key), Reflect.defineProperty(target, key, descriptor)),
    });
    const ref = await boot({ media: mediaOptions(bucket, { credentials: provider, location: 'memoized-provider' }) });
    refs.push(ref);
    await roundTrip(ref.get(MediaStorage), 'f.txt', 'memoized provider');
    expect(writes).toEqual([]);
  });

  it("the module's own resolved options, passed back in after use, start another module", async () => {
    const first = await boot({ media: mediaOptions(bucket, { location: 'resolved' }), static: { bucket, endpoint: s3.endpoint, credentials: mediaOptions(bucket).credentials } });
    refs.push(first);
    await roundTrip(first.get(MediaStorage), 'r1.txt', 'first');
    const resolved = first.get<ResolvedStorageOptions>(STORAGE_OPTIONS);
    const second = await boot(resolved);
    refs.push(second);
    await roundTrip(second.get(MediaStorage), 'r2.txt', 'second');
    expect(second.get<ResolvedStorageOptions>(STORAGE_OPTIONS)).toEqual(resolved);
  });

  it('one deep-frozen options constant boots ten apps in parallel, then ten in series, and never changes', async () => {
    const OPTIONS: StorageModuleOptions = deepFreeze({
      media: {
        ...mediaOptions(bucket, { location: 'frozen' }),
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
        objectParameters: { cacheControl: 'max-age=60', metadata: { app: 'frozen' } },
        cors: { allowedOrigins: ['http://localhost:3000'], allowedMethods: ['GET', 'POST'] },
      },
      static: { bucket, endpoint: s3.endpoint, region: s3.region, location: 'frozen-static', credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
      ensureBucket: 'create',
    });
    const snapshot = structuredClone(OPTIONS);
    const run = async (i: number) => {
      const ref = await boot(OPTIONS);
      try {
        const media = ref.get(MediaStorage);
        const name = await media.save(`app-${i}.txt`, `app ${i}`);
        expect((await media.read(name)).toString()).toBe(`app ${i}`);
        // Nor do the module's resolved options change once the SDK has used their credentials.
        const resolved = ref.get<ResolvedStorageOptions>(STORAGE_OPTIONS);
        expect(resolved.media.credentials).toEqual(OPTIONS.media.credentials);
        expect(resolved.static?.credentials).toEqual(OPTIONS.static?.credentials);
      } finally {
        await ref.close();
      }
    };
    await Promise.all(Array.from({ length: 10 }, (_, i) => run(i)));
    for (let i = 10; i < 20; i++) await run(i);
    expect(OPTIONS).toEqual(snapshot);
  }, 120_000);
});

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
