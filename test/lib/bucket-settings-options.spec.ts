/** The bucket-settings options: validation messages, defaults, environment variables, and the exact rules built. */
import { describe, expect, it } from '@jest/globals';
import { corsRule, lifecycleRules, publicReadStatement, settingId } from '../../lib/bucket-settings.js';
import { storageOptionsFromEnv } from '../../lib/storage-env.js';
import type { StorageModuleOptions } from '../../lib/storage-module-options.interface.js';
import { resolveStorageOptions, validateStorageOptions } from '../../lib/storage-options.validation.js';

const validate = (options: unknown): string[] => validateStorageOptions(options);

describe('media.lifecycle', () => {
  it('true takes 7 and 7 days; an object takes its day counts; false or absent is off', () => {
    expect(resolveStorageOptions({ media: { bucket: 'media', lifecycle: true } }).media.lifecycle).toEqual({ abortIncompleteMultipartUploadDays: 7, expirePendingDays: 7 });
    expect(resolveStorageOptions({ media: { bucket: 'media', lifecycle: { expirePendingDays: 2 } } }).media.lifecycle).toEqual({
      abortIncompleteMultipartUploadDays: 2, // never after the records of resumable uploads expire
      expirePendingDays: 2,
    });
    expect(resolveStorageOptions({ media: { bucket: 'media', lifecycle: false } }).media.lifecycle).toBeUndefined();
    expect(resolveStorageOptions({ media: { bucket: 'media' } }).media.lifecycle).toBeUndefined();
  });

  it('bad values are named with what fits', () => {
    expect(validate({ media: { bucket: 'media', lifecycle: 'yes' } })).toEqual([
      'media.lifecycle: must be true, false or an object such as { abortIncompleteMultipartUploadDays: 7, expirePendingDays: 7 } (got yes)',
    ]);
    expect(validate({ media: { bucket: 'media', lifecycle: { abortIncompleteMultipartUploadDays: 0, expirePendingDays: 1.5, expireDays: 3 } } }).sort()).toEqual([
      'media.lifecycle.abortIncompleteMultipartUploadDays: must be at least 1 day (S3 counts lifecycle ages in whole days)',
      "media.lifecycle.expireDays: is not a known option; check its spelling (see the README's options table)",
      'media.lifecycle.expirePendingDays: must be a whole number of days, e.g. 7',
    ].sort());
  });

  it('builds the two rules under the location (the whole bucket only for a root location)', () => {
    expect(lifecycleRules({ location: 'media', abortIncompleteMultipartUploadDays: 3, expirePendingDays: 5 })).toEqual([
      { ID: 'nestjs-s3-storage-abort-incomplete-multipart:media', Status: 'Enabled', Filter: { Prefix: 'media/' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 3 } },
      { ID: 'nestjs-s3-storage-expire-pending:media', Status: 'Enabled', Filter: { Prefix: 'media/.pending/' }, Expiration: { Days: 5 } },
    ]);
    expect(lifecycleRules({ location: '', abortIncompleteMultipartUploadDays: 7, expirePendingDays: 7 }).map((r) => [r.ID, r.Filter?.Prefix])).toEqual([
      ['nestjs-s3-storage-abort-incomplete-multipart', ''],
      ['nestjs-s3-storage-expire-pending', '.pending/'],
    ]);
    // S3 rule IDs are at most 255 characters.
    const long = settingId('expire-pending', 'x'.repeat(300));
    expect(long.length).toBeLessThanOrEqual(255);
    expect(long).toMatch(/^nestjs-s3-storage-expire-pending:sha256-[0-9a-f]{64}$/);
  });
});

describe('media.cors', () => {
  it('the default rule allows PUT and exposes ETag, with our ID', () => {
    const cors = resolveStorageOptions({ media: { bucket: 'media', location: 'up', cors: { allowedOrigins: ['http://localhost:3000'] } } }).media.cors!;
    expect(corsRule({ ...cors, location: 'up' })).toEqual({
      ID: 'nestjs-s3-storage-cors:up',
      AllowedOrigins: ['http://localhost:3000'],
      AllowedMethods: ['GET', 'HEAD', 'POST', 'PUT'],
      AllowedHeaders: ['*'],
      ExposeHeaders: ['ETag'],
      MaxAgeSeconds: 3000,
    });
  });
});

describe('static.publicRead', () => {
  const media = { bucket: 'shared', location: 'media' };

  it('defaults to false and grants GetObject on <location>/* only', () => {
    expect(resolveStorageOptions({ media, static: { bucket: 'shared' } }).static?.publicRead).toBe(false);
    expect(resolveStorageOptions({ media, static: { bucket: 'shared', publicRead: true } }).static?.publicRead).toBe(true);
    expect(publicReadStatement('shared', 'static')).toEqual({
      Sid: 'nestjs-s3-storage-static-public-read',
      Effect: 'Allow',
      Principal: '*',
      Action: 's3:GetObject',
      Resource: 'arn:aws:s3:::shared/static/*',
    });
  });

  it('is refused where it would make more than the static files public', () => {
    const problems = (options: Partial<StorageModuleOptions>): string[] => validate({ media, ...options });
    expect(problems({ static: { bucket: 'shared', publicRead: 'yes' as never } })).toEqual(['static.publicRead: must be true or false (AWS_S3_PUBLIC_READ: "true" or "false")']);
    expect(problems({ static: { bucket: 'assets', location: '', publicRead: true } })).toEqual([
      'static.publicRead: cannot be true with static files at the bucket root (static.location ""): the whole bucket would be public; give static files a location such as "static"',
    ]);
    expect(problems({ static: { bucket: 'assets', location: 'st*', publicRead: true } })).toEqual([
      'static.publicRead: cannot be true with a static.location containing "*" or "?" ("st*"): the policy\'s resource would match other prefixes too',
    ]);
    const overlap = (mediaLocation: string, staticLocation: string) =>
      validate({ media: { bucket: 'shared', location: mediaLocation }, static: { bucket: 'shared', location: staticLocation, publicRead: true } });
    for (const [m, s] of [['', 'static'], ['static', 'static'], ['static/uploads', 'static'], ['assets', 'assets/static']]) {
      expect(overlap(m!, s!)).toEqual([
        `static.publicRead: media files (location "${m}") share bucket "shared" with static files (location "${s}") and their prefixes overlap, so media would become public too; give media and static files separate locations (e.g. "media" and "static")`,
      ]);
    }
    // Another bucket, or separate prefixes: fine.
    expect(overlap('media', 'static')).toEqual([]);
    expect(overlap('staticky', 'static')).toEqual([]);
    expect(validate({ media: { bucket: 'other', location: '' }, static: { bucket: 'shared', publicRead: true } })).toEqual([]);
  });
});

describe('environment variables', () => {
  it('MEDIA_S3_LIFECYCLE and AWS_S3_PUBLIC_READ read true/false; other values reach validation', () => {
    const env = { AWS_STORAGE_BUCKET_NAME: 'shared', AWS_S3_PUBLIC_READ: 'TRUE', MEDIA_S3_LIFECYCLE: 'true' };
    const options = storageOptionsFromEnv(env);
    expect(options.static?.publicRead).toBe(true);
    expect(options.media.lifecycle).toBe(true);
    expect(storageOptionsFromEnv({ ...env, AWS_S3_PUBLIC_READ: 'false' }).static?.publicRead).toBe(false);
    expect(validate(storageOptionsFromEnv({ ...env, MEDIA_S3_LIFECYCLE: 'on' }))).toEqual([
      'media.lifecycle: must be true, false or an object such as { abortIncompleteMultipartUploadDays: 7, expirePendingDays: 7 } (got on)',
    ]);
  });
});
