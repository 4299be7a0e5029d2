/**
 * Bucket settings (lib/bucket-settings.ts) on the real server: lifecycle rules, the CORS rule
 * and the static public-read policy, applied by the bootstrap hook and by
 * `nestjs-s3-storage ensure-bucket`, merged by rule ID / statement Sid with what others put
 * there, and not written again when nothing changed.
 */
import {
  CreateBucketCommand,
  GetBucketCorsCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketPolicyCommand,
  PutBucketCorsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Test } from '@nestjs/testing';
import { existsSync } from 'node:fs';
import { applyBucketSettings, PUBLIC_READ_SID } from '../../lib/bucket-settings.js';
import { startLocalS3 } from '../../lib/local-s3.js';
import { BucketBootstrapError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import { storageFixture } from '../harness/nest-storage.js';
import { blackhole, closedPort } from '../harness/net.js';
import { CJS_CLI, runCli as cli } from '../harness/cli.js';
import { deleteTestBucket, itRequires, mediaOptions, rawClient, s3, skipWithReason, uniqueBucket } from '../harness/s3-test-env.js';

const buckets: string[] = [];
let raw: S3Client;

function bucketFor(label: string): string {
  const bucket = uniqueBucket(label);
  buckets.push(bucket);
  return bucket;
}

beforeAll(() => {
  raw = rawClient();
});
afterAll(async () => {
  raw?.destroy();
  for (const b of buckets) await deleteTestBucket(b);
});

const FOREIGN_LIFECYCLE = { ID: 'someone-elses-logs', Status: 'Enabled' as const, Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 } };
const FOREIGN_CORS = { ID: 'someone-elses-cors', AllowedOrigins: ['https://other.example'], AllowedMethods: ['GET' as const] };

function foreignStatement(bucket: string) {
  return { Sid: 'someone-elses-statement', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/downloads/*` };
}

async function lifecycleRules(bucket: string) {
  return (await raw.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))).Rules ?? [];
}

async function policyStatements(bucket: string): Promise<{ Sid?: string; Resource?: string }[]> {
  const policy = (await raw.send(new GetBucketPolicyCommand({ Bucket: bucket }))).Policy;
  return (JSON.parse(policy ?? '{}') as { Statement?: { Sid?: string; Resource?: string }[] }).Statement ?? [];
}

const anonymous = async (bucket: string, key: string): Promise<number> => (await fetch(`${s3.endpoint}/${bucket}/${key}`)).status;

describe('lifecycle rules (media.lifecycle)', () => {
  itRequires('lifecycle', 'lifecycle: true applies both rules under the media location, with the 7-day defaults, read back with GetBucketLifecycleConfiguration', async () => {
    const bucket = bucketFor('lc');
    const fx = await storageFixture({ media: mediaOptions(bucket, { location: 'media', lifecycle: true }) });
    await fx.moduleRef.close();
    const rules = await lifecycleRules(bucket);
    expect(rules).toHaveLength(2);
    expect(rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          ID: 'nestjs-s3-storage-abort-incomplete-multipart:media',
          Status: 'Enabled',
          Filter: { Prefix: 'media/' },
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
        }),
        expect.objectContaining({
          ID: 'nestjs-s3-storage-expire-pending:media',
          Status: 'Enabled',
          Filter: { Prefix: 'media/.pending/' },
          Expiration: { Days: 7 },
        }),
      ]),
    );
  });

  itRequires('lifecycle', 'the day counts are taken from the object form, and a change of them rewrites only our rules', async () => {
    const bucket = bucketFor('lcdays');
    const first = await storageFixture({ media: mediaOptions(bucket, { location: 'media', lifecycle: { abortIncompleteMultipartUploadDays: 2 } }) });
    await first.moduleRef.close();
    const byId = async () => Object.fromEntries((await lifecycleRules(bucket)).map((r) => [r.ID, r]));
    expect((await byId())['nestjs-s3-storage-abort-incomplete-multipart:media']?.AbortIncompleteMultipartUpload?.DaysAfterInitiation).toBe(2);
    expect((await byId())['nestjs-s3-storage-expire-pending:media']?.Expiration?.Days).toBe(7);

    const second = await storageFixture({ media: mediaOptions(bucket, { location: 'media', lifecycle: { abortIncompleteMultipartUploadDays: 2, expirePendingDays: 3 } }) }, false);
    await second.moduleRef.init();
    expect(second.requests).toEqual(['HeadBucketCommand', 'GetBucketLifecycleConfigurationCommand', 'PutBucketLifecycleConfigurationCommand']);
    await second.moduleRef.close();
    expect((await byId())['nestjs-s3-storage-expire-pending:media']?.Expiration?.Days).toBe(3);
    expect(Object.keys(await byId())).toHaveLength(2);
  });

  itRequires('lifecycle', 'two named storages sharing a bucket each keep their own rules', async () => {
    const bucket = bucketFor('lcnamed');
    const moduleRef = await Test.createTestingModule({
      imports: [
        StorageModule.forRoot({ name: 'invoices', media: mediaOptions(bucket, { location: 'invoices', lifecycle: true }) }),
        StorageModule.forRoot({ name: 'exports', media: mediaOptions(bucket, { location: 'exports', lifecycle: { expirePendingDays: 1 } }) }),
      ],
    }).compile();
    // Nest runs the two modules' bootstrap hooks one after the other; the next test covers concurrent calls.
    await moduleRef.init();
    await moduleRef.close();
    const ids = (await lifecycleRules(bucket)).map((r) => r.ID).sort();
    expect(ids).toEqual([
      'nestjs-s3-storage-abort-incomplete-multipart:exports',
      'nestjs-s3-storage-abort-incomplete-multipart:invoices',
      'nestjs-s3-storage-expire-pending:exports',
      'nestjs-s3-storage-expire-pending:invoices',
    ]);
  });

  itRequires('lifecycle', 'settings applied at the same moment in one process to one bucket are applied one at a time: neither is lost', async () => {
    const bucket = bucketFor('lcrace');
    await raw.send(new CreateBucketCommand({ Bucket: bucket }));
    const locations = ['a', 'b', 'c', 'd'];
    await Promise.all(
      locations.map((location) =>
        applyBucketSettings(raw, bucket, { lifecycle: { location, abortIncompleteMultipartUploadDays: 7, expirePendingDays: 7 } }, s3.endpoint, 10_000),
      ),
    );
    const ids = (await lifecycleRules(bucket)).map((r) => r.ID).sort();
    expect(ids).toEqual(locations.flatMap((l) => [`nestjs-s3-storage-abort-incomplete-multipart:${l}`, `nestjs-s3-storage-expire-pending:${l}`]).sort());
  });
});

describe('the CORS rule (media.cors)', () => {
  it('the default rule allows PUT, exposes ETag and carries our ID', async () => {
    const bucket = bucketFor('cors');
    const fx = await storageFixture({ media: mediaOptions(bucket, { location: 'media', cors: { allowedOrigins: ['http://localhost:3000'] } }) });
    await fx.moduleRef.close();
    const rules = (await raw.send(new GetBucketCorsCommand({ Bucket: bucket }))).CORSRules ?? [];
    expect(rules).toHaveLength(1);
    expect(rules[0]!.ID).toBe('nestjs-s3-storage-cors:media');
    expect([...(rules[0]!.AllowedMethods ?? [])].sort()).toEqual(['GET', 'HEAD', 'POST', 'PUT']);
    expect(rules[0]!.ExposeHeaders).toEqual(['ETag']);
    expect(rules[0]!.AllowedOrigins).toEqual(['http://localhost:3000']);
  });

  // s3rver's preflight answers differ from S3's (as in test/uploads/direct-upload.spec.ts): real servers only.
  (s3.kind === 's3rver' ? (name: string, fn: () => Promise<void>) => skipWithReason(name, 'the embedded s3rver does not answer CORS preflights as S3 does', fn) : it)(
    'a preflight for a part PUT from the allowed origin is answered and may read ETag',
    async () => {
    const bucket = bucketFor('corsput');
    const fx = await storageFixture({ media: mediaOptions(bucket, { cors: { allowedOrigins: ['http://localhost:3000'] } }) });
    await fx.moduleRef.close();
    const preflight = await fetch(`${s3.endpoint}/${bucket}/some/part`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'PUT' },
    });
    expect(preflight.status).toBe(200);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(preflight.headers.get('access-control-allow-methods') ?? '').toContain('PUT');
    expect((preflight.headers.get('access-control-expose-headers') ?? '').toLowerCase()).toContain('etag');
    },
  );
});

describe('one rule for all three settings', () => {
  itRequires('bucket-policies', "a foreign lifecycle rule, CORS rule and policy statement survive the bootstrap, and a second bootstrap sends no PUT", async () => {
    const bucket = bucketFor('merge');
    await raw.send(new CreateBucketCommand({ Bucket: bucket }));
    await raw.send(new PutBucketLifecycleConfigurationCommand({ Bucket: bucket, LifecycleConfiguration: { Rules: [FOREIGN_LIFECYCLE] } }));
    await raw.send(new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: [FOREIGN_CORS] } }));
    await raw.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify({ Version: '2012-10-17', Statement: [foreignStatement(bucket)] }) }));
    const options = {
      media: mediaOptions(bucket, { location: 'media', lifecycle: true, cors: { allowedOrigins: ['http://localhost:3000'] } }),
      static: { ...mediaOptions(bucket), location: 'static', publicRead: true },
    };

    const first = await storageFixture(options, false);
    await first.moduleRef.init();
    expect(first.requests).toEqual([
      'HeadBucketCommand',
      'GetBucketLifecycleConfigurationCommand',
      'PutBucketLifecycleConfigurationCommand',
      'GetBucketCorsCommand',
      'PutBucketCorsCommand',
      'GetBucketPolicyCommand',
      'PutBucketPolicyCommand',
    ]);
    await first.moduleRef.close();

    const lifecycle = await lifecycleRules(bucket);
    expect(lifecycle.map((r) => r.ID).sort()).toEqual(['nestjs-s3-storage-abort-incomplete-multipart:media', 'nestjs-s3-storage-expire-pending:media', 'someone-elses-logs']);
    expect(lifecycle.find((r) => r.ID === 'someone-elses-logs')).toMatchObject({ Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 } });
    const cors = (await raw.send(new GetBucketCorsCommand({ Bucket: bucket }))).CORSRules ?? [];
    expect(cors.map((r) => r.ID).sort()).toEqual(['nestjs-s3-storage-cors:media', 'someone-elses-cors']);
    expect(cors.find((r) => r.ID === 'someone-elses-cors')).toMatchObject({ AllowedOrigins: ['https://other.example'], AllowedMethods: ['GET'] });
    const statements = await policyStatements(bucket);
    expect(statements.map((s) => s.Sid).sort()).toEqual([PUBLIC_READ_SID, 'someone-elses-statement']);
    expect(statements.find((s) => s.Sid === 'someone-elses-statement')).toEqual(foreignStatement(bucket));
    expect(statements.find((s) => s.Sid === PUBLIC_READ_SID)?.Resource).toBe(`arn:aws:s3:::${bucket}/static/*`);

    const second = await storageFixture(options, false);
    await second.moduleRef.init();
    expect(second.requests).toEqual(['HeadBucketCommand', 'GetBucketLifecycleConfigurationCommand', 'GetBucketCorsCommand', 'GetBucketPolicyCommand']);
    await second.moduleRef.close();
  });

  it("ensureBucket: 'off' applies no setting", async () => {
    const fx = await storageFixture(
      {
        media: mediaOptions(uniqueBucket('off'), { lifecycle: true, cors: { allowedOrigins: ['http://localhost:3000'] } }),
        static: { ...mediaOptions(uniqueBucket('off')), publicRead: true },
        ensureBucket: 'off',
      },
      false,
    );
    await fx.moduleRef.init();
    expect(fx.requests).toEqual([]);
    await fx.moduleRef.close();
  });
});

describe('public static files (static.publicRead)', () => {
  itRequires('bucket-policies', 'after the bootstrap, an anonymous GET of a static object answers 200 and of a media object in the same bucket 403', async () => {
    const bucket = bucketFor('pub');
    const fx = await storageFixture({
      media: mediaOptions(bucket, { location: 'media' }),
      static: { ...mediaOptions(bucket), location: 'static', publicRead: true },
    });
    await fx.moduleRef.close();
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'static/css/site.css', Body: 'body{}' }));
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'media/avatar.png', Body: 'png' }));
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'other.txt', Body: 'root' }));
    expect(await anonymous(bucket, 'static/css/site.css')).toBe(200);
    expect(await anonymous(bucket, 'media/avatar.png')).toBe(403);
    expect(await anonymous(bucket, 'other.txt')).toBe(403);
    const statements = await policyStatements(bucket);
    expect(statements).toEqual([{ Sid: PUBLIC_READ_SID, Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/static/*` }]);
  });

  itRequires('bucket-policies', 'ensure-bucket --static (AWS_S3_PUBLIC_READ=true) does the same through the CLI, and a re-run changes nothing', async () => {
    if (!existsSync(CJS_CLI)) throw new Error('dist/cjs/cli.js is missing: run "npm run build" first');
    const bucket = bucketFor('clipub');
    const env = {
      AWS_STORAGE_BUCKET_NAME: bucket,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_S3_ENDPOINT_URL: s3.endpoint,
      AWS_S3_REGION: s3.region,
      AWS_S3_PUBLIC_READ: 'true',
    };
    const first = await cli(['ensure-bucket', '--static'], env);
    expect(first).toEqual({ code: 0, stderr: '', stdout: `bucket "${bucket}" at ${s3.endpoint}: created\nbucket "${bucket}": updated bucket policy\n` });
    // Media shares the bucket under media/ (the seed's layout when MEDIA_S3_BUCKET_NAME is unset).
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'static/js/app.js', Body: 'app()' }));
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'media/private.pdf', Body: 'pdf' }));
    expect(await anonymous(bucket, 'static/js/app.js')).toBe(200);
    expect(await anonymous(bucket, 'media/private.pdf')).toBe(403);

    const again = await cli(['ensure-bucket', '--static'], env);
    expect(again).toEqual({ code: 0, stderr: '', stdout: `bucket "${bucket}" at ${s3.endpoint}: exists\nbucket "${bucket}": settings unchanged\n` });
  });

  it('ensure-bucket refuses a public-read static location that covers media, naming the variables', async () => {
    const run = await cli(['ensure-bucket', '--static'], {
      AWS_STORAGE_BUCKET_NAME: uniqueBucket('clibad'),
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_S3_ENDPOINT_URL: s3.endpoint,
      AWS_S3_PUBLIC_READ: 'true',
      MEDIA_S3_LOCATION: 'static/uploads',
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('media files (location "static/uploads") share bucket');
    expect(run.stderr).toContain('give media and static files separate locations');
  });
});

describe('a server without lifecycle or policy support', () => {
  it('fails start-up naming the option to turn off (the embedded s3rver)', async () => {
    const local = await startLocalS3();
    try {
      for (const [options, message] of [
        [{ media: local.mediaOptions('media', { lifecycle: true }) }, 'Bucket "media" at ' + local.endpoint + ': could not read the lifecycle rules (NotImplemented, HTTP 501): this server does not support it; set media.lifecycle to false here (or ensureBucket to "off") and configure the bucket by hand'],
        [{ media: local.mediaOptions('media', { location: 'media' }), static: { ...local.mediaOptions('media'), location: 'static', publicRead: true } }, 'Bucket "media" at ' + local.endpoint + ': could not read the bucket policy (MethodNotAllowed, HTTP 405): this server does not support it; set static.publicRead to false here (or ensureBucket to "off") and configure the bucket by hand'],
      ] as const) {
        const moduleRef = await Test.createTestingModule({ imports: [StorageModule.forRoot(options)] }).compile();
        const error = await moduleRef.init().then(() => undefined, (e: unknown) => e);
        await moduleRef.close().catch(() => undefined);
        expect(error).toBeInstanceOf(BucketBootstrapError);
        expect((error as BucketBootstrapError).message).toBe(message);
      }
    } finally {
      await local.close();
    }
  });
});

describe('failures', () => {
  it('a stalled server fails within the time left, as "timeout"; a closed port as "unreachable"', async () => {
    const { port, close } = await blackhole();
    const settings = { lifecycle: { location: 'media', abortIncompleteMultipartUploadDays: 7, expirePendingDays: 7 } };
    const stalled = rawClientAt(`http://127.0.0.1:${port}`);
    const started = Date.now();
    try {
      const error = await applyBucketSettings(stalled, 'media', settings, `http://127.0.0.1:${port}`, 1500).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(BucketBootstrapError);
      expect((error as BucketBootstrapError).reason).toBe('timeout');
      expect((error as BucketBootstrapError).message).toBe(
        `Bucket "media" at http://127.0.0.1:${port}: could not read the lifecycle rules: no answer within 1500 ms (bootstrapTimeout sets the limit)`,
      );
      // The deadline itself ended it: not sooner, and not a much later socket timeout.
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      stalled.destroy();
      close();
    }
    const closed = await closedPort();
    const refused = rawClientAt(`http://127.0.0.1:${closed}`);
    try {
      const error = await applyBucketSettings(refused, 'media', settings, `http://127.0.0.1:${closed}`, 5000).then(() => undefined, (e: unknown) => e);
      expect((error as BucketBootstrapError).reason).toBe('unreachable');
    } finally {
      refused.destroy();
    }
  });
});

function rawClientAt(endpoint: string): S3Client {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: 'AKID', secretAccessKey: 'secret-not-used' } });
}

