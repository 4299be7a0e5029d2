/**
 * A password written into an endpoint's user-info (`http://key:secret@host:9000`) is refused
 * at validation and never printed: not in the configuration error, not by the app at start-up,
 * not by the CLI. Also the endpoint and region checks that keep the signer equal to the SDK.
 */
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from '@jest/globals';
import { Test } from '@nestjs/testing';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { StorageConfigurationError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import { resolveStorageOptions, validateStorageOptions } from '../../lib/storage-options.validation.js';
import type { StorageModuleOptions } from '../../lib/storage-module-options.interface.js';
import { redactUserInfo } from '../../lib/url-user-info.js';
import { deleteTestBucket, mediaOptions, rawClient, s3, uniqueBucket } from '../harness/s3-test-env.js';

const SECRET = 'Sup3rSecretPassw0rd';
const endpointHost = new URL(s3.endpoint).host;
/** User-info in every spelling a user might write, valid URLs and broken ones alike. */
const WITH_USER_INFO = [
  `http://AKIAUSER:${SECRET}@${endpointHost}`,
  `https://AKIAUSER:${SECRET}@s3.example.com/base`,
  `http://:${SECRET}@minio:9000`,
  `http://AKIAUSER:${SECRET}@minio:99999`,
  `http://AKIAUSER:${SECRET} with spaces@minio:9000`,
  `http://AKIAUSER:${SECRET}/with/slashes@minio:9000`,
  `http://AKIAUSER:${SECRET}#hash@minio:9000`,
  `AKIAUSER:${SECRET}@minio:9000`,
  `ftp://AKIAUSER:${SECRET}@minio:9000`,
];
const URL_FIELDS = [
  ['media', 'endpoint'],
  ['media', 'publicEndpoint'],
  ['media', 'customDomain'],
  ['static', 'endpoint'],
  ['static', 'publicEndpoint'],
  ['static', 'customDomain'],
] as const;

function optionsWith(section: 'media' | 'static', field: string, value: string): StorageModuleOptions {
  const base = { bucket: 'media', credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' } };
  return {
    media: section === 'media' ? { ...base, [field]: value } : base,
    ...(section === 'static' ? { static: { ...base, bucket: 'assets', [field]: value } } : {}),
  } as StorageModuleOptions;
}

function configurationError(options: StorageModuleOptions): StorageConfigurationError {
  try {
    resolveStorageOptions(options);
  } catch (error) {
    if (error instanceof StorageConfigurationError) return error;
    throw error;
  }
  throw new Error(`options were accepted: ${JSON.stringify(options)}`);
}

describe('user-info in URL options', () => {
  for (const [section, field] of URL_FIELDS) {
    it(`${section}.${field}: refused with a fix, the password never quoted`, () => {
      for (const value of WITH_USER_INFO) {
        const error = configurationError(optionsWith(section, field, value));
        expect(error.message).not.toContain(SECRET);
        expect(JSON.stringify(error.problems)).not.toContain(SECRET);
        expect(error.problems).toHaveLength(1);
        expect(error.problems[0]).toMatch(new RegExp(`^${section}\\.${field}: must not contain user-info .*Give S3 keys as credentials`));
      }
    });
  }

  it('other bad URLs are still quoted, so the user sees what was wrong', () => {
    expect(validateStorageOptions(optionsWith('media', 'endpoint', 'minio:9000'))).toEqual([
      'media.endpoint: must be an http(s) URL such as "http://minio:9000" or "https://s3.eu-west-1.amazonaws.com" (got minio:9000)',
    ]);
    expect(validateStorageOptions(optionsWith('media', 'endpoint', 'http://minio:99999'))).toEqual([
      'media.endpoint: must be an http(s) URL such as "http://minio:9000" or "https://s3.eu-west-1.amazonaws.com"; it does not parse as a URL (got http://minio:99999)',
    ]);
  });

  it('redactUserInfo hides everything between the scheme and the last "@"', () => {
    expect(redactUserInfo(`http://AK:${SECRET}@minio:9000/x`)).toBe('http://***@minio:9000/x');
    expect(redactUserInfo(`http://AK:${SECRET}#a@b@minio:9000`)).toBe('http://***@minio:9000');
    expect(redactUserInfo(`AK:${SECRET}@cdn.example.com`)).toBe('***@cdn.example.com');
    expect(redactUserInfo('https://cdn.example.com/media')).toBe('https://cdn.example.com/media');
  });

  it('a Nest app given such an endpoint fails to start with the configuration error, the password nowhere', async () => {
    const bucket = uniqueBucket('userinfo');
    const endpoint = s3.endpoint.replace('://', `://${encodeURIComponent(s3.accessKeyId)}:${SECRET}@`);
    const error = await Test.createTestingModule({ imports: [StorageModule.forRoot({ media: mediaOptions(bucket, { endpoint }) })] })
      .compile()
      .then(
        async (ref) => {
          await ref.init();
          await ref.close();
          return undefined;
        },
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect(String((error as Error).message)).not.toContain(SECRET);
    expect((error as StorageConfigurationError).problems).toEqual([expect.stringMatching(/^media\.endpoint: must not contain user-info/)]);
    // Nothing reached the server: the bucket was never created.
    const raw = rawClient();
    try {
      const buckets = await raw.send(new ListBucketsCommand({}));
      expect((buckets.Buckets ?? []).map((b) => b.Name)).not.toContain(bucket);
    } finally {
      raw.destroy();
      await deleteTestBucket(bucket);
    }
  });
});

describe('the CLI with user-info in an endpoint variable', () => {
  const CLI = resolve(process.cwd(), 'dist/cjs/cli.js');
  const bucket = uniqueBucket('userinfo-cli');
  afterAll(() => deleteTestBucket(bucket));

  function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
    return new Promise((done, fail) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', AWS_EC2_METADATA_DISABLED: 'true', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.on('error', fail);
      child.on('close', (code) => done({ code, output }));
    });
  }

  for (const variable of ['MEDIA_S3_ENDPOINT_URL', 'MEDIA_S3_URL_ENDPOINT_URL', 'MEDIA_S3_CUSTOM_DOMAIN']) {
    it(`${variable}: exits 1 naming the variable, never printing the password`, async () => {
      if (!existsSync(CLI)) throw new Error('dist/cjs/cli.js is missing: run "npm run build" first');
      const withUserInfo = s3.endpoint.replace('://', `://${encodeURIComponent(s3.accessKeyId)}:${SECRET}@`);
      const run = await cli(['ensure-bucket', '--media'], {
        MEDIA_S3_BUCKET_NAME: bucket,
        MEDIA_S3_ACCESS_KEY: s3.accessKeyId,
        MEDIA_S3_SECRET_KEY: s3.secretAccessKey,
        MEDIA_S3_REGION: s3.region,
        MEDIA_S3_ENDPOINT_URL: s3.endpoint,
        [variable]: withUserInfo,
      });
      expect(run.output).not.toContain(SECRET);
      expect(run.output).toContain(`${variable} (`);
      expect(run.output).toContain('must not contain user-info');
      expect(run.code).toBe(1);
    });
  }
});

describe('region checks', () => {
  it('aws-global with a custom endpoint is refused with a clear message; without one it is accepted', () => {
    expect(validateStorageOptions({ media: { bucket: 'media', region: 'aws-global', endpoint: 'http://minio:9000' } })).toEqual([
      'media.region: "aws-global" names AWS\'s global endpoint and cannot be used with media.endpoint; give the region your S3 server expects, e.g. "us-east-1"',
    ]);
    expect(validateStorageOptions({ media: { bucket: 'media', region: 'aws-global' } })).toEqual([]);
  });

  it('a region that is not a DNS label is refused at validation, not at the first request', () => {
    expect(validateStorageOptions({ media: { bucket: 'media', region: '-us-east-1' } })).toEqual([
      'media.region: must be a region name such as "us-east-1" (got -us-east-1)',
    ]);
  });
});
