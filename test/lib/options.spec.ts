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
