import { describe, expect, it } from '@jest/globals';
import { storageConfig, storageConfigFor } from '../../lib/storage.config.js';
import { namedStorageOptionsFromEnv, storageEnvPrefix, storageOptionsFromEnv } from '../../lib/storage-env.js';
import { resolveStorageOptions } from '../../lib/storage-options.validation.js';
import { StorageConfigurationError } from '../../lib/storage.errors.js';

describe('storageOptionsFromEnv', () => {
  it("maps the seed's local MinIO .env", () => {
    const options = storageOptionsFromEnv({
      MEDIA_S3_ACCESS_KEY: 'minioadmin',
      MEDIA_S3_SECRET_KEY: 'minioadmin',
      MEDIA_S3_ENDPOINT_URL: 'http://minio:9000',
      MEDIA_S3_URL_ENDPOINT_URL: 'http://localhost:9000',
      MEDIA_S3_BUCKET_NAME: 'media',
    });
    expect(options).toEqual({
      media: {
        bucket: 'media',
        endpoint: 'http://minio:9000',
        publicEndpoint: 'http://localhost:9000',
        credentials: { accessKeyId: 'minioadmin', secretAccessKey: 'minioadmin' },
      },
    });
  });

  it('maps production AWS settings with region and no endpoint', () => {
    expect(
      storageOptionsFromEnv({ MEDIA_S3_BUCKET_NAME: 'prod-media', MEDIA_S3_REGION: 'eu-west-1', MEDIA_S3_URL_EXPIRES_IN: '600' }),
    ).toEqual({ media: { bucket: 'prod-media', region: 'eu-west-1', urlExpiresIn: 600 } });
    expect(storageOptionsFromEnv({ MEDIA_S3_BUCKET_NAME: 'm3d', MEDIA_S3_CORS_ORIGINS: 'http://localhost:3000, http://127.0.0.1:3000' }).media.cors).toEqual({
      allowedOrigins: ['http://localhost:3000', 'http://127.0.0.1:3000'],
    });
  });

  it('maps the AWS_* static settings, and lets media share them under media/', () => {
    const options = storageOptionsFromEnv({
      AWS_ACCESS_KEY_ID: 'AKID',
      AWS_SECRET_ACCESS_KEY: 'SECRET',
      AWS_STORAGE_BUCKET_NAME: 'assets',
      AWS_S3_REGION: 'us-east-2',
      STORAGE_ENSURE_BUCKET: 'check',
    });
    const connection = { bucket: 'assets', region: 'us-east-2', credentials: { accessKeyId: 'AKID', secretAccessKey: 'SECRET' } };
    expect(options).toEqual({ media: { ...connection, location: 'media' }, static: connection, ensureBucket: 'check' });
  });

  it('reads AWS_SESSION_TOKEN with the AWS_* keys, for static files and for media sharing them', () => {
    // What Lambda, CodeBuild and GitHub OIDC (configure-aws-credentials) export.
    const options = storageOptionsFromEnv({
      AWS_ACCESS_KEY_ID: 'ASIATEMP',
      AWS_SECRET_ACCESS_KEY: 'SECRET',
      AWS_SESSION_TOKEN: 'TOKEN',
      AWS_STORAGE_BUCKET_NAME: 'assets',
      AWS_S3_REGION: 'eu-west-1',
    });
    const credentials = { accessKeyId: 'ASIATEMP', secretAccessKey: 'SECRET', sessionToken: 'TOKEN' };
    expect(options.static?.credentials).toEqual(credentials);
    expect(options.media.credentials).toEqual(credentials);
    expect(resolveStorageOptions(options).static?.credentials).toEqual(credentials);
  });

  it('reads MEDIA_S3_SESSION_TOKEN with the MEDIA_S3_* keys, and never mixes the two sets', () => {
    const options = storageOptionsFromEnv({
      MEDIA_S3_BUCKET_NAME: 'media',
      MEDIA_S3_ACCESS_KEY: 'ASIAMEDIA',
      MEDIA_S3_SECRET_KEY: 'MSECRET',
      MEDIA_S3_SESSION_TOKEN: 'MTOKEN',
      AWS_STORAGE_BUCKET_NAME: 'assets',
      AWS_ACCESS_KEY_ID: 'AKIALONG',
      AWS_SECRET_ACCESS_KEY: 'SECRET',
    });
    expect(options.media.credentials).toEqual({ accessKeyId: 'ASIAMEDIA', secretAccessKey: 'MSECRET', sessionToken: 'MTOKEN' });
    expect(options.static?.credentials).toEqual({ accessKeyId: 'AKIALONG', secretAccessKey: 'SECRET' });
  });

  it('names the missing keys when only a session token is set', () => {
    const options = storageOptionsFromEnv({ MEDIA_S3_BUCKET_NAME: 'media', MEDIA_S3_SESSION_TOKEN: 'orphan-token' });
    expect(() => resolveStorageOptions(options)).toThrow(StorageConfigurationError);
    try {
      resolveStorageOptions(options);
    } catch (error) {
      expect((error as StorageConfigurationError).problems).toEqual([
        'media.credentials.accessKeyId: must not be empty: set MEDIA_S3_ACCESS_KEY, or omit credentials to use the AWS provider chain',
        'media.credentials.secretAccessKey: must not be empty: set MEDIA_S3_SECRET_KEY, or omit credentials to use the AWS provider chain',
      ]);
      expect((error as Error).message).not.toContain('orphan-token');
    }
  });

  it('passes bad values through for validation to name, without the secret', () => {
    const options = storageOptionsFromEnv({ MEDIA_S3_BUCKET_NAME: 'media', MEDIA_S3_SECRET_KEY: 'hunter2', MEDIA_S3_URL_EXPIRES_IN: 'soon' });
    let error: unknown;
    try {
      resolveStorageOptions(options);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect((error as StorageConfigurationError).problems).toEqual([
      'media.urlExpiresIn: must be a whole number of seconds',
      'media.credentials.accessKeyId: must not be empty: set MEDIA_S3_ACCESS_KEY, or omit credentials to use the AWS provider chain',
    ]);
    expect((error as Error).message).not.toContain('hunter2');
  });

  it('is a registerAs("storage") factory for @nestjs/config', () => {
    expect(storageConfig.KEY).toBe('CONFIGURATION(storage)');
  });
});

describe('named storages from the environment', () => {
  const invoicesEnv = {
    INVOICES_S3_BUCKET_NAME: 'invoices',
    INVOICES_S3_ACCESS_KEY: 'AKINV',
    INVOICES_S3_SECRET_KEY: 'INVSECRET',
    INVOICES_S3_SESSION_TOKEN: 'INVTOKEN',
    INVOICES_S3_ENDPOINT_URL: 'http://minio:9000',
    INVOICES_S3_URL_ENDPOINT_URL: 'http://localhost:9000',
    INVOICES_S3_REGION: 'eu-central-1',
    INVOICES_S3_LOCATION: 'inv',
    INVOICES_S3_URL_EXPIRES_IN: '600',
    INVOICES_S3_CUSTOM_DOMAIN: 'cdn.example.com',
    INVOICES_S3_URL_CACHE_WINDOW: '300',
    INVOICES_S3_CORS_ORIGINS: 'http://a.test, http://b.test',
    INVOICES_S3_TIMEOUT: '5000',
    INVOICES_S3_MAX_ATTEMPTS: '2',
    INVOICES_S3_CLOUDFRONT_DOMAIN: 'd1.cloudfront.net',
    INVOICES_S3_CLOUDFRONT_KEY_ID: 'K1',
    INVOICES_S3_CLOUDFRONT_KEY: 'line1\\nline2',
    STORAGE_ENSURE_BUCKET: 'check',
  };

  it('reads <NAME>_S3_* with the MEDIA_S3_* suffixes, and nothing of the unnamed storage', () => {
    const options = namedStorageOptionsFromEnv('invoices', {
      ...invoicesEnv,
      MEDIA_S3_BUCKET_NAME: 'media',
      MEDIA_S3_ACCESS_KEY: 'AKMEDIA',
      AWS_STORAGE_BUCKET_NAME: 'assets',
      AWS_ACCESS_KEY_ID: 'AKAWS',
    });
    expect(options).toEqual({
      media: {
        bucket: 'invoices',
        credentials: { accessKeyId: 'AKINV', secretAccessKey: 'INVSECRET', sessionToken: 'INVTOKEN' },
        endpoint: 'http://minio:9000',
        publicEndpoint: 'http://localhost:9000',
        region: 'eu-central-1',
        location: 'inv',
        urlExpiresIn: 600,
        customDomain: 'cdn.example.com',
        urlCacheWindow: 300,
        cors: { allowedOrigins: ['http://a.test', 'http://b.test'] },
        timeout: 5000,
        maxAttempts: 2,
        cloudfront: { domain: 'd1.cloudfront.net', keyPairId: 'K1', privateKey: 'line1\nline2' },
      },
      ensureBucket: 'check',
    });
  });

  it('maps the name to the prefix upper-cased with "-" as "_"', () => {
    expect(storageEnvPrefix()).toBe('MEDIA');
    expect(storageEnvPrefix('invoices')).toBe('INVOICES');
    expect(storageEnvPrefix('exports-v2')).toBe('EXPORTS_V2');
    expect(namedStorageOptionsFromEnv('exports-v2', { EXPORTS_V2_S3_BUCKET_NAME: 'exports', EXPORTS_V2_S3_REGION: 'us-west-2' })).toEqual({
      media: { bucket: 'exports', region: 'us-west-2' },
    });
    expect(() => storageEnvPrefix('no spaces')).toThrow(StorageConfigurationError);
  });

  it('storageConfigFor(name) is its registerAs factory, one per name; a lone session token keeps empty keys for validation to name', () => {
    expect(storageConfigFor('invoices').KEY).toBe('CONFIGURATION(storage:invoices)');
    expect(storageConfigFor('invoices')).toBe(storageConfigFor('invoices'));
    expect(storageConfigFor('exports')).not.toBe(storageConfigFor('invoices'));
    expect(() => storageConfigFor('')).toThrow(StorageConfigurationError);
    const options = namedStorageOptionsFromEnv('invoices', { INVOICES_S3_BUCKET_NAME: 'invoices', INVOICES_S3_SESSION_TOKEN: 'orphan' });
    expect(options.media.credentials).toEqual({ accessKeyId: '', secretAccessKey: '', sessionToken: 'orphan' });
  });
});
