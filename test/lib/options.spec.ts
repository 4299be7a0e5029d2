import { describe, expect, it } from '@jest/globals';
import { StorageConfigurationError } from '../../lib/storage.errors.js';
import { resolveStorageOptions, validateStorageOptions } from '../../lib/storage-options.validation.js';
import type { StorageModuleOptions } from '../../lib/storage-module-options.interface.js';

describe('option validation', () => {
  it('lists every problem with its fix in one error', () => {
    const options = {
      media: {
        bucket: 'My_Bucket',
        endpoint: 'minio:9000',
        publicEndpoint: 'localhost:9000',
        urlExpiresIn: 700000,
        acl: 'public',
        credentials: { accessKeyId: 'AKIA', secretAccessKey: '' },
        partSize: 1024,
        endPoint: 'typo',
      },
      ensureBucket: 'maybe',
    } as unknown as StorageModuleOptions;
    let error: unknown;
    try {
      resolveStorageOptions(options);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StorageConfigurationError);
    const problems = (error as StorageConfigurationError).problems;
    expect([...problems].sort()).toEqual(
      [
        'ensureBucket: must be "create", "check" or "off" (got maybe)',
        'media.bucket: must be a valid S3 bucket name: 3-63 characters, lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit (got My_Bucket)',
        'media.endpoint: must be an http(s) URL such as "http://minio:9000" or "https://s3.eu-west-1.amazonaws.com" (got minio:9000)',
        'media.publicEndpoint: must be an http(s) URL such as "http://minio:9000" or "https://s3.eu-west-1.amazonaws.com"; it is the host the browser uses, e.g. "http://localhost:9000" (got localhost:9000)',
        'media.urlExpiresIn: must be at most 604800 seconds (7 days, the SigV4 limit)',
        'media.acl: must be one of private, public-read, public-read-write, authenticated-read, aws-exec-read, bucket-owner-read, bucket-owner-full-control, or omitted to keep objects private (got public)',
        'media.credentials.secretAccessKey: must not be empty: set MEDIA_S3_SECRET_KEY, or omit credentials to use the AWS provider chain',
        'media.partSize: must be at least 5242880 bytes (5 MiB, the S3 minimum part size)',
        'media.endPoint: is not a known option; check its spelling (see the README\'s options table)',
      ].sort(),
    );
    expect((error as Error).message).toMatch(/^Invalid nestjs-s3-storage configuration:\n {2}- /);
  });

  it('never quotes a credential value', () => {
    const problems = validateStorageOptions({
      media: { bucket: 'media', credentials: { accessKeyId: 123, secretAccessKey: 'super-secret-value' } },
    });
    expect(problems).toEqual(['media.credentials.accessKeyId: must be a string (the access key id)']);
    expect(problems.join('\n')).not.toContain('super-secret-value');
  });

  it('requires media', () => {
    expect(validateStorageOptions({})).toEqual([
      'media: is required: pass { media: { bucket: "..." } } (or set MEDIA_S3_BUCKET_NAME with storageConfig)',
    ]);
    expect(validateStorageOptions(null)).toEqual(['options: must be an object such as { media: { bucket: "media" } }']);
  });

  it('rejects signedUrls with a customDomain', () => {
    expect(validateStorageOptions({ media: { bucket: 'media', customDomain: 'cdn.example.com', signedUrls: true } })).toEqual([
      'media.signedUrls: cannot be true with media.customDomain: URLs on a custom domain or CDN are unsigned; remove one of the two',
    ]);
  });

  it('applies defaults: path-style, us-east-1 and WHEN_REQUIRED checksums on custom endpoints', () => {
    const resolved = resolveStorageOptions({ media: { bucket: 'media', endpoint: 'http://minio:9000/', location: '/uploads/' } });
    expect(resolved).toEqual({
      media: {
        bucket: 'media',
        endpoint: 'http://minio:9000',
        region: 'us-east-1',
        credentials: undefined,
        forcePathStyle: true,
        checksums: 'when-required',
        requestTimeout: 30000,
        timeout: 60000,
        connectionTimeout: 5000,
        maxAttempts: 3,
        maxSockets: 64,
        publicEndpoint: undefined,
        location: 'uploads',
        acl: undefined,
        overwrite: false,
        urlExpiresIn: 3600,
        urlCacheWindow: 0,
        signedUrls: true,
        customDomain: undefined,
        objectParameters: {},
        cors: undefined,
        partSize: 8 * 1024 * 1024,
        queueSize: 4,
        multipartCopyThreshold: 5 * 1024 ** 3,
      },
      static: undefined,
      ensureBucket: 'create',
      bootstrapTimeout: 10000,
    });
  });

  it('leaves region and addressing to the SDK on AWS, and customDomain implies unsigned', () => {
    const { media } = resolveStorageOptions({ media: { bucket: 'media', customDomain: 'cdn.example.com/m/' } });
    expect(media.region).toBeUndefined();
    expect(media.forcePathStyle).toBe(false);
    expect(media.checksums).toBe('when-supported');
    expect(media.signedUrls).toBe(false);
    expect(media.customDomain).toBe('https://cdn.example.com/m');
  });
});

describe('locations', () => {
  it('are normalized like names, and may not escape the bucket root', () => {
    expect(resolveStorageOptions({ media: { bucket: 'media', location: '\\uploads\\./x/' } }).media.location).toBe('uploads/x');
    expect(resolveStorageOptions({ media: { bucket: 'media', location: '/' } }).media.location).toBe('');
    expect(validateStorageOptions({ media: { bucket: 'media', location: 'a/../../etc' } })).toEqual([
      "media.location: it escapes the storage location with '..'",
    ]);
    expect(validateStorageOptions({ media: { bucket: 'media' }, static: { bucket: 'assets', location: 'st\u0000atic', manifestName: '../m.json' } })).toEqual([
      'static.location: it contains a control character (NUL, newline, tab, …)',
      "static.manifestName: it escapes the storage location with '..'",
    ]);
  });
});

describe('credentials', () => {
  const keys = { accessKeyId: 'AKIA', secretAccessKey: 'secret-value' };

  it('accept a credential provider function, kept as it is', () => {
    const provider = async () => ({ ...keys, sessionToken: 't', expiration: new Date(Date.now() + 600_000) });
    expect(validateStorageOptions({ media: { bucket: 'media', credentials: provider } })).toEqual([]);
    expect(resolveStorageOptions({ media: { bucket: 'media', credentials: provider } }).media.credentials).toBe(provider);
  });

  it("accept the SDK's own fields on a static object ($source, expiration, credentialScope, accountId)", () => {
    const credentials = {
      ...keys,
      sessionToken: 'token',
      expiration: new Date('2030-01-01T00:00:00Z'),
      credentialScope: 'us-east-1',
      accountId: '123456789012',
      $source: { CREDENTIALS_CODE: 'e' },
    };
    expect(validateStorageOptions({ media: { bucket: 'media' }, static: { bucket: 'assets', credentials } })).toEqual([]);
    const resolved = resolveStorageOptions({ media: { bucket: 'media', credentials } }).media.credentials;
    // A frozen copy without the SDK's attribution: the S3 client adds its own to its own copy.
    expect(resolved).toEqual({ ...keys, sessionToken: 'token', expiration: credentials.expiration, credentialScope: 'us-east-1', accountId: '123456789012' });
    expect(resolved).not.toBe(credentials);
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(credentials.$source).toEqual({ CREDENTIALS_CODE: 'e' });
  });

  it('still refuse misspelt fields and wrong types, without quoting a value', () => {
    const problems = validateStorageOptions({
      media: { bucket: 'media', credentials: { ...keys, secretKey: 'typo-secret', expiration: '2030-01-01' } },
      static: { bucket: 'assets', credentials: 'AKIA:secret-in-a-string' },
    });
    expect(problems.sort()).toEqual(
      [
        'media.credentials.expiration: must be a Date (when the temporary credentials expire)',
        "media.credentials.secretKey: is not a known option; check its spelling (see the README's options table)",
        'static.credentials: must be an object { accessKeyId, secretAccessKey, sessionToken? } or a credential provider function such as fromTemporaryCredentials({ ... }); omit it to use the AWS provider chain',
      ].sort(),
    );
    expect(problems.join('\n')).not.toMatch(/typo-secret|secret-in-a-string|secret-value/);
  });

  it('are valid again when the resolved options are passed back in', () => {
    const resolved = resolveStorageOptions({
      media: { bucket: 'media', endpoint: 'http://minio:9000', credentials: { ...keys, sessionToken: 't' } },
      static: { bucket: 'assets', credentials: async () => keys },
    });
    expect(validateStorageOptions(resolved)).toEqual([]);
    expect(resolveStorageOptions(resolved)).toEqual(resolved);
  });

  it('never change the object passed in', () => {
    const options = deepFreeze({
      media: {
        bucket: 'media',
        credentials: { ...keys, expiration: new Date('2030-01-01T00:00:00Z') },
        objectParameters: { metadata: { a: 'b' } },
        cors: { allowedOrigins: ['http://localhost:3000'], allowedMethods: ['GET' as const] },
      },
      static: { bucket: 'assets', credentials: { ...keys, $source: { CREDENTIALS_CODE: 'e' } } },
    });
    const before = structuredClone(options);
    resolveStorageOptions(options);
    resolveStorageOptions(options);
    expect(options).toEqual(before);
  });
});

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
