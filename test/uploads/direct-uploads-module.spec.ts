/**
 * DirectUploadsModule on the real server, on Express and on Fastify, driven through its
 * routes with plain HTTP exactly as `@uppy/aws-s3` 6.3.1 drives them (lib/s3-client/CompanionS3.js):
 * create → sign each part → PUT the parts straight to S3 → list → complete; the single-request
 * `params` POST and its confirm; per-request limits, ownership, the open-uploads cap, abort.
 */
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type DynamicModule, type INestApplication, Module, UnauthorizedException } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { createHash, randomBytes } from 'node:crypto';
import request from 'supertest';
import type { DirectUploadRequest } from '../../lib/direct-uploads-module-options.interface.js';
import { type DirectMultipart, recordName } from '../../lib/direct-multipart.js';
import { DirectUploadsModule } from '../../lib/direct-uploads.module.js';
import type { MediaStorage } from '../../lib/media.storage.js';
import { getStorageToken } from '../../lib/storage-tokens.js';
import { StorageConfigurationError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import { HTTP_PLATFORMS, createHttpApp, type HttpPlatform } from '../harness/http-platforms.js';
import { deleteTestBucket, itRequires, mediaOptions, rawClient, s3, skipWithReason, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const bucket = uniqueBucket('uppy-routes');
const client = rawClient();
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The caller is the `x-user` header; it may act only as the user in the path. */
function caller(req: DirectUploadRequest): string | undefined {
  const user = req.headers['x-user'];
  return typeof user === 'string' ? user : undefined;
}

function appModule(): DynamicModule {
  @Module({})
  class AppModule {}
  return {
    module: AppModule,
    imports: [
      StorageModule.forRoot({ media: mediaOptions(bucket, { location: 'media' }) }),
      StorageModule.forRoot({ name: 'archive', media: mediaOptions(bucket, { location: 'archive' }) }),
      DirectUploadsModule.register({
        path: 'users/:id/uploads',
        authorize: (req) => {
          if (!caller(req)) throw new UnauthorizedException('Sign in first (send x-user).');
          return caller(req) === req.params.id;
        },
        prefix: (req) => `users/${req.params.id}`,
        // Per-request limits: "small" users get 8 MiB, "pics" users images only.
        maxBytes: (req) => (req.params.id?.startsWith('small') ? 8 * MIB : 64 * MIB),
        allowedTypes: (req) => {
          const id = req.params.id ?? '';
          if (id.startsWith('pics')) return ['image/*'];
          if (id.startsWith('csv')) return ['text/csv'];
          if (id.startsWith('mixed')) return ['Image/PNG', 'TEXT/CSV'];
          return undefined;
        },
        maxOpenUploads: (req) => (req.params.id?.startsWith('capped') ? 2 : undefined),
      }),
      DirectUploadsModule.register({ path: 'archive', storage: 'archive', authorize: () => true, prefix: () => 'shared', maxBytes: 16 * MIB }),
    ],
  };
}

async function createApp(platform: HttpPlatform): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({ imports: [appModule()] }).compile();
  return createHttpApp(moduleRef, platform);
}

interface Created {
  key: string;
  uploadId: string;
}

/** PUTs `body` to a signed part URL, as Uppy's XHR does (no Content-Type); returns the ETag. */
async function putPart(url: string, body: Buffer): Promise<string> {
  const response = await fetch(url, { method: 'PUT', body });
  expect(response.status).toBe(200);
  const etag = response.headers.get('etag');
  expect(etag).toBeTruthy();
  return etag!.replace(/^"+|"+$/g, '');
}

async function openUploads(prefix: string): Promise<string[]> {
  const out = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((u) => u.Key!);
}

async function sha256Of(key: string): Promise<string> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return createHash('sha256').update(await out.Body!.transformToByteArray()).digest('hex');
}

async function exists(key: string): Promise<boolean> {
  return client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
    () => true,
    () => false,
  );
}

const listsMultipart = s3.kind !== 's3rver';
const NO_LISTING = 'the embedded s3rver answers NotImplemented to ListMultipartUploads';

afterAll(async () => {
  await deleteTestBucket(bucket);
  client.destroy();
});

describe.each(HTTP_PLATFORMS)('DirectUploadsModule on %s', (platform) => {
  let app: INestApplication;
  const as = (user: string) => ({ 'x-user': user });

  beforeAll(async () => {
    app = await createApp(platform);
  }, 60_000);
  afterAll(async () => {
    await app?.close();
  });

  /** Uppy's create: POST <path>/s3/multipart { filename, type, metadata }. */
  async function create(user: string, body: Record<string, unknown> = { filename: 'clip.bin', type: 'application/octet-stream', metadata: {} }): Promise<Created> {
    const res = await request(app.getHttpServer()).post(`/users/${user}/uploads/s3/multipart`).set(as(user)).send(body);
    expect(res.status).toBe(200);
    expect(typeof res.body.key).toBe('string');
    expect(typeof res.body.uploadId).toBe('string');
    return res.body as Created;
  }

  async function sign(user: string, upload: Created, partNumber: number): Promise<string> {
    const res = await request(app.getHttpServer())
      .get(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(upload.uploadId)}/${partNumber}`)
      .query({ key: upload.key })
      .set(as(user));
    expect(res.status).toBe(200);
    expect(res.body.url).toMatch(/^https?:\/\//);
    expect(res.body.expires).toBe(Number(new URL(res.body.url as string).searchParams.get('X-Amz-Expires')));
    expect(res.body.expires).toBeGreaterThan(0);
    return res.body.url as string;
  }

  async function uploadParts(user: string, upload: Created, parts: Buffer[]): Promise<{ PartNumber: number; ETag: string }[]> {
    const done: { PartNumber: number; ETag: string }[] = [];
    for (const [i, part] of parts.entries()) done.push({ PartNumber: i + 1, ETag: await putPart(await sign(user, upload, i + 1), part) });
    return done;
  }

  function complete(user: string, upload: Created, parts: { PartNumber: number; ETag: string }[]) {
    return request(app.getHttpServer())
      .post(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(upload.uploadId)}/complete`)
      .query({ key: upload.key })
      .set(as(user))
      .send({ parts });
  }

  it('create → sign → PUT parts straight to S3 → list → complete publishes the file with the same bytes', async () => {
    const user = `alice-${platform}`;
    const parts = [randomBytes(5 * MIB), randomBytes(5 * MIB), randomBytes(2 * MIB)];
    const upload = await create(user, { filename: 'holiday video.bin', type: 'application/octet-stream', metadata: { name: 'holiday video.bin' } });
    expect(upload.key.startsWith('media/')).toBe(true);
    const done = await uploadParts(user, upload, parts);
    // Companion's batch route, for clients that sign several parts at once.
    const batch = await request(app.getHttpServer())
      .get(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(upload.uploadId)}/batch`)
      .query({ key: upload.key, partNumbers: '1,3' })
      .set(as(user));
    expect(batch.status).toBe(200);
    expect(Object.keys(batch.body.presignedUrls)).toEqual(['1', '3']);
    expect(new URL(batch.body.presignedUrls['3'] as string).searchParams.get('partNumber')).toBe('3');

    const listed = await request(app.getHttpServer())
      .get(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(upload.uploadId)}`)
      .query({ key: upload.key })
      .set(as(user));
    expect(listed.status).toBe(200);
    // Uppy reads PartNumber and ETag of each entry to skip the parts already sent.
    expect(listed.body).toEqual(done.map((p, i) => ({ PartNumber: p.PartNumber, ETag: p.ETag, Size: parts[i]!.length })));

    const res = await complete(user, upload, done);
    expect(res.status).toBe(200);
    expect(res.body.name).toMatch(new RegExp(`^users/${user}/`));
    expect(res.body.key).toBe(`media/${res.body.name}`);
    expect(res.body.size).toBe(12 * MIB);
    expect(res.body.location).toMatch(/^https?:\/\//);
    expect(await sha256Of(res.body.key)).toBe(createHash('sha256').update(Buffer.concat(parts)).digest('hex'));
    if (listsMultipart) expect(await openUploads(`media/.pending/users/${user}/`)).toEqual([]);
  }, 120_000);

  it('refuses a complete over the per-request maxBytes with 413, aborted, nothing left', async () => {
    const user = `small-${platform}`;
    const upload = await create(user);
    const done = await uploadParts(user, upload, [randomBytes(5 * MIB), randomBytes(5 * MIB)]);
    const res = await complete(user, upload, done);
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ statusCode: 413, reason: 'too-large' });
    expect(res.body.message).toContain(`more than the ${8 * MIB} allowed`);
    if (listsMultipart) expect(await openUploads(`media/.pending/users/${user}/`)).toEqual([]);
    expect(await exists(`media/${s3KeyName(upload.key)}`)).toBe(false);
  }, 120_000);

  it('answers 413 at once for an announced size over maxBytes, and 415 for a declared type not allowed', async () => {
    const small = `small-${platform}`;
    const big = await request(app.getHttpServer()).post(`/users/${small}/uploads/s3/multipart`).set(as(small)).send({ filename: 'a.bin', type: 'application/octet-stream', size: 9 * MIB });
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ reason: 'too-large' });
    expect(big.body.message).toContain(String(8 * MIB));

    const pics = `pics-${platform}`;
    const wrong = await request(app.getHttpServer()).post(`/users/${pics}/uploads/s3/multipart`).set(as(pics)).send({ filename: 'a.zip', type: 'application/zip' });
    expect(wrong.status).toBe(415);
    expect(wrong.body.message).toContain('image/*');
    const post = await request(app.getHttpServer()).get(`/users/${pics}/uploads/s3/params`).query({ filename: 'a.zip', type: 'application/zip' }).set(as(pics));
    expect(post.status).toBe(415);
  });

  it('refuses a file whose first bytes are not an allowed type at complete (415), leaving nothing', async () => {
    const user = `pics-${platform}`;
    const upload = await create(user, { filename: 'fake.png', type: 'image/png' });
    const done = await uploadParts(user, upload, [Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(1024)])]);
    const res = await complete(user, upload, done);
    expect(res.status).toBe(415);
    expect(res.body).toMatchObject({ reason: 'type-not-allowed' });
    if (listsMultipart) expect(await openUploads(`media/.pending/users/${user}/`)).toEqual([]);
  }, 60_000);

  it('keeps each upload to its owner: 401 unauthenticated, 403 for another user, before anything changes', async () => {
    const owner = `owner-${platform}`;
    const upload = await create(owner);
    const id = encodeURIComponent(upload.uploadId);
    const server = app.getHttpServer();

    const anonymous = await request(server).post(`/users/${owner}/uploads/s3/multipart`).send({ filename: 'x' });
    expect(anonymous.status).toBe(401);
    const impostor = await request(server).post(`/users/${owner}/uploads/s3/multipart`).set(as('mallory')).send({ filename: 'x' });
    expect(impostor.status).toBe(403);
    expect(impostor.body).toMatchObject({ reason: 'forbidden' });

    // Mallory, signed in as herself, replays the owner's key and upload id under her own path.
    const base = `/users/mallory/uploads/s3/multipart/${id}`;
    const attempts = [
      request(server).get(`${base}/1`).query({ key: upload.key }).set(as('mallory')),
      request(server).get(base).query({ key: upload.key }).set(as('mallory')),
      request(server).post(`${base}/complete`).query({ key: upload.key }).set(as('mallory')).send({ parts: [{ PartNumber: 1, ETag: 'x' }] }),
      request(server).delete(base).query({ key: upload.key }).set(as('mallory')),
      request(server).post('/users/mallory/uploads/s3/confirm').set(as('mallory')).send({ key: upload.key }),
    ];
    for (const res of await Promise.all(attempts)) {
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ reason: 'not-owner' });
      expect(res.body.message).toMatch(/someone else/);
    }
    if (listsMultipart) expect(await openUploads(upload.key)).toEqual([upload.key]);
    const aborted = await request(server).delete(`/users/${owner}/uploads/s3/multipart/${id}`).query({ key: upload.key }).set(as(owner));
    expect(aborted.status).toBe(200);
  }, 60_000);

  it('answers bad input with 400 and a message that says what to send', async () => {
    const user = `bad-${platform}`;
    const server = app.getHttpServer();
    const upload = await create(user);
    const id = encodeURIComponent(upload.uploadId);
    const cases: [request.Test, RegExp][] = [
      [request(server).get(`/users/${user}/uploads/s3/multipart/${id}/1`).set(as(user)), /Missing query parameter "key"/],
      [request(server).get(`/users/${user}/uploads/s3/multipart/${id}/0`).query({ key: upload.key }).set(as(user)), /Part numbers are whole numbers from 1 to 10000/],
      [request(server).get(`/users/${user}/uploads/s3/multipart/${id}/10001`).query({ key: upload.key }).set(as(user)), /from 1 to 10000/],
      [request(server).post(`/users/${user}/uploads/s3/multipart/${id}/complete`).query({ key: upload.key }).set(as(user)).send({}), /Missing or empty "parts"/],
      [request(server).post(`/users/${user}/uploads/s3/multipart/${id}/complete`).query({ key: upload.key }).set(as(user)).send({ parts: [{ PartNumber: 1 }] }), /needs its "ETag"/],
      [request(server).post(`/users/${user}/uploads/s3/multipart`).set(as(user)).send({ filename: 42 }), /"filename" must be/],
      [request(server).post(`/users/${user}/uploads/s3/multipart`).set(as(user)).send({ filename: 'a', type: 'not a type' }), /"type" must be a MIME type/],
      [request(server).post(`/users/${user}/uploads/s3/multipart`).set(as(user)).send({ filename: 'a', size: -1 }), /"size" must be/],
      [request(server).post(`/users/${user}/uploads/s3/confirm`).set(as(user)).send({}), /Missing body field "key"/],
    ];
    for (const [pending, message] of cases) {
      const res = await pending;
      expect(res.status).toBe(400);
      expect(res.body.message).toMatch(message);
    }
    await request(server).delete(`/users/${user}/uploads/s3/multipart/${id}`).query({ key: upload.key }).set(as(user)).expect(200);
  }, 60_000);

  it('aborts: the parts are gone, and the upload can no longer be listed or completed', async () => {
    const user = `abort-${platform}`;
    const upload = await create(user);
    const done = await uploadParts(user, upload, [randomBytes(5 * MIB)]);
    const id = encodeURIComponent(upload.uploadId);
    const res = await request(app.getHttpServer()).delete(`/users/${user}/uploads/s3/multipart/${id}`).query({ key: upload.key }).set(as(user));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({});
    if (listsMultipart) expect(await openUploads(upload.key)).toEqual([]);
    const after = await complete(user, upload, done);
    expect(after.status).toBe(404);
    expect(after.body).toMatchObject({ reason: 'no-such-upload' });
    expect(after.body.message).toMatch(/start a new upload/);
  }, 60_000);

  const capTitle = 'caps the open uploads per prefix (429 with what to do), and frees a slot on abort';
  const capTest = async (): Promise<void> => {
    const user = `capped-${platform}`;
    const first = await create(user);
    const second = await create(user);
    const third = await request(app.getHttpServer()).post(`/users/${user}/uploads/s3/multipart`).set(as(user)).send({ filename: 'c' });
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({ reason: 'too-many-open-uploads' });
    expect(third.body.message).toMatch(/finish or cancel one/);
    // Another user's uploads do not count.
    await create(`other-${platform}`).then((u) => request(app.getHttpServer()).delete(`/users/other-${platform}/uploads/s3/multipart/${encodeURIComponent(u.uploadId)}`).query({ key: u.key }).set(as(`other-${platform}`)));
    await request(app.getHttpServer()).delete(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(first.uploadId)}`).query({ key: first.key }).set(as(user)).expect(200);
    const again = await create(user);
    for (const u of [second, again]) {
      await request(app.getHttpServer()).delete(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(u.uploadId)}`).query({ key: u.key }).set(as(user)).expect(200);
    }
  };
  if (listsMultipart) it(capTitle, capTest, 60_000);
  else skipWithReason(capTitle, NO_LISTING, capTest);

  const listTitle = 'lists the caller\'s open uploads (GET s3/multipart) so a locked-out page can abort them and start again';
  const listTest = async (): Promise<void> => {
    const user = `capped-list-${platform}`;
    const server = app.getHttpServer();
    // Two uploads Uppy gave up on (it never aborts after an error): the cap of 2 is reached.
    const first = await create(user);
    const second = await create(user);
    await create(`${user}x`); // a prefix that merely starts the same: not listed
    expect((await request(server).post(`/users/${user}/uploads/s3/multipart`).set(as(user)).send({ filename: 'c' })).status).toBe(429);
    const listed = await request(server).get(`/users/${user}/uploads/s3/multipart`).set(as(user));
    expect(listed.status).toBe(200);
    expect(listed.headers['cache-control']).toBe('no-store');
    const open = listed.body as { key: string; uploadId: string; initiated: string }[];
    expect(open.map((u) => u.uploadId).sort()).toEqual([first.uploadId, second.uploadId].sort());
    expect(open.map((u) => u.key).sort()).toEqual([first.key, second.key].sort());
    for (const u of open) expect(Number.isNaN(Date.parse(u.initiated))).toBe(false);
    // Nobody else's: another user gets 403 before any listing.
    expect((await request(server).get(`/users/${user}/uploads/s3/multipart`).set(as('mallory'))).status).toBe(403);
    for (const u of open) await request(server).delete(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(u.uploadId)}`).query({ key: u.key }).set(as(user)).expect(200);
    expect((await request(server).get(`/users/${user}/uploads/s3/multipart`).set(as(user))).body).toEqual([]);
    const again = await create(user);
    await request(server).delete(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(again.uploadId)}`).query({ key: again.key }).set(as(user)).expect(200);
  };
  if (listsMultipart) it(listTitle, listTest, 60_000);
  else skipWithReason(listTitle, NO_LISTING, listTest);

  it('a complete whose answer was lost: Uppy\'s retry lists the parts (all done), completes, and gets the same object, once', async () => {
    const user = `lost-${platform}`;
    const upload = await create(user);
    const done = await uploadParts(user, upload, [randomBytes(3000)]);
    // The complete ran, but its answer never reached the page.
    const storage = app.get<MediaStorage>(getStorageToken(), { strict: false });
    const name = storage.nameForKey(upload.key);
    const first = await storage.completeMultipartUpload(name, upload.uploadId, done.map((p) => ({ partNumber: p.PartNumber, etag: p.ETag })), { prefix: `users/${user}` });

    // Uppy's Retry: list, mark the chunks listed as done, upload none, complete with what the list gave.
    const listed = await request(app.getHttpServer()).get(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(upload.uploadId)}`).query({ key: upload.key }).set(as(user));
    expect(listed.status).toBe(200);
    const list = listed.body as { PartNumber: number; ETag: string }[];
    expect(list).toHaveLength(10_000);
    expect(list.slice(0, 2).map((p) => p.PartNumber)).toEqual([1, 2]);
    const chunks = 1;
    const again = await complete(user, upload, list.slice(0, chunks).map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag })));
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ name: first.name, key: first.key, etag: first.etag, size: 3000 });
    const stored = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `media/users/${user}/` }));
    expect((stored.Contents ?? []).map((o) => o.Key)).toEqual([first.key]);

    // An upload that was never published still answers 404 "start again".
    const aborted = await create(user);
    await request(app.getHttpServer()).delete(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(aborted.uploadId)}`).query({ key: aborted.key }).set(as(user));
    const gone = await request(app.getHttpServer()).get(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(aborted.uploadId)}`).query({ key: aborted.key }).set(as(user));
    if (listsMultipart) expect(gone.status).toBe(404);
  }, 90_000);

  itRequires('conditional-writes', 'a complete while another holds the upload answers 409 conflict with Retry-After and a message saying to retry', async () => {
    const user = `busy-${platform}`;
    const upload = await create(user);
    const done = await uploadParts(user, upload, [randomBytes(2000)]);
    // What a running complete holds: the lock object beside the upload's record.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `media/${recordName(upload.key, upload.uploadId)}.lock`, Body: '' }));
    const multipart = (app.get<MediaStorage>(getStorageToken(), { strict: false }) as unknown as { directMultipart: DirectMultipart }).directMultipart;
    const { lockWaitMs } = multipart;
    multipart.lockWaitMs = 2000;
    try {
      const res = await complete(user, upload, done);
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toMatch(/json/);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.body.reason).toBe('conflict');
      expect(res.body.message).toBe('Another complete of this upload is in progress; retry in a few seconds. Nothing was published by this request.');
      expect(res.body.message).not.toMatch(/\w\(\)/);
    } finally {
      multipart.lockWaitMs = lockWaitMs;
    }
    // The lock's owner ends; the abort removes the upload, its record and a left lock.
    const aborted = await request(app.getHttpServer()).delete(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(upload.uploadId)}`).query({ key: upload.key }).set(as(user));
    expect(aborted.status).toBe(200);
  }, 90_000);

  it('takes a complete of 10,000 parts (a ~600 kB body, over Express\'s 100 kB default) and answers JSON', async () => {
    const user = `many-${platform}`;
    const upload = await create(user);
    await uploadParts(user, upload, [randomBytes(1000)]);
    // What Uppy sends for a file of ~50 GiB in 5 MiB chunks; the ETags are made up.
    const parts = Array.from({ length: 10_000 }, (_, i) => ({ PartNumber: i + 1, ETag: `"${createHash('md5').update(String(i)).digest('hex')}"` }));
    expect(JSON.stringify({ parts }).length).toBeGreaterThan(500_000);
    const res = await complete(user, upload, parts);
    expect(res.headers['content-type']).toMatch(/json/);
    expect(res.status).toBe(400);
    expect(res.body.reason).toBe('parts-mismatch');
    // The route still reads small bodies, and answers malformed JSON in JSON.
    const broken = await request(app.getHttpServer())
      .post(`/users/${user}/uploads/s3/multipart/${encodeURIComponent(upload.uploadId)}/complete`)
      .query({ key: upload.key })
      .set(as(user))
      .set('Content-Type', 'application/json')
      .send('{"parts": [');
    expect(broken.status).toBe(400);
    expect(broken.headers['content-type']).toMatch(/json/);
  }, 90_000);

  /** Uppy's single request: params, the POST straight to S3, then the page's confirm. */
  async function postAndConfirm(user: string, query: Record<string, string>, bytes: Buffer, confirmType?: string) {
    const server = app.getHttpServer();
    const params = await request(server).get(`/users/${user}/uploads/s3/params`).query(query).set(as(user));
    expect(params.status).toBe(200);
    const form = new FormData();
    for (const [name, value] of Object.entries(params.body.fields as Record<string, string>)) form.set(name, value);
    form.set('file', new Blob([bytes]));
    const posted = await fetch(params.body.url, { method: 'POST', body: form });
    expect(posted.status).toBeLessThan(300);
    return request(server).post(`/users/${user}/uploads/s3/confirm`).set(as(user)).send({ key: params.body.key, ...(confirmType ? { type: confirmType } : {}) });
  }

  it('allowedTypes means the same at create and at complete/confirm: image/* wildcards, any case, parameters', async () => {
    const png = Buffer.concat([PNG_SIGNATURE, randomBytes(2048)]);
    const pics = `pics-ok-${platform}`;
    const upload = await create(pics, { filename: 'pic.png', type: 'image/png' });
    const done = await complete(pics, upload, await uploadParts(pics, upload, [png]));
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ size: png.length, contentType: 'image/png' });
    const confirmed = await postAndConfirm(pics, { filename: 'pic.png', type: 'image/png' }, png);
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ size: png.length, contentType: 'image/png' });

    // A mixed-case list, and a declared type with parameters (as MediaRecorder gives): stripped, not a 400.
    const mixed = `mixed-${platform}`;
    const upper = await create(mixed, { filename: 'pic.png', type: 'IMAGE/png; foo=bar' });
    const mixedDone = await complete(mixed, upper, await uploadParts(mixed, upper, [png]));
    expect(mixedDone.status).toBe(200);
    expect(mixedDone.body.contentType).toBe('image/png');
    // The security rule stays: bytes that contradict the declared type are refused.
    const liar = await create(mixed, { filename: 'pic.png', type: 'image/png' });
    const refused = await complete(mixed, liar, await uploadParts(mixed, liar, [Buffer.from('a,b\n1,2\n')]));
    expect(refused.status).toBe(415);
    expect(refused.body.reason).toBe('type-not-allowed');
  }, 90_000);

  it('accepts a type the bytes cannot identify (text/csv) at complete and confirm when allowed: stored as application/octet-stream', async () => {
    const csv = Buffer.from('name,size\nclip,42\n'.repeat(50));
    const user = `csv-${platform}`;
    const upload = await create(user, { filename: 'table.csv', type: 'text/csv' });
    const done = await complete(user, upload, await uploadParts(user, upload, [csv]));
    expect(done.status).toBe(200);
    // storedType(): a type no signature vouches for is served as a download.
    expect(done.body).toMatchObject({ size: csv.length, contentType: 'application/octet-stream' });
    const confirmed = await postAndConfirm(user, { filename: 'table.csv', type: 'text/csv' }, csv, 'text/csv');
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ size: csv.length, contentType: 'application/octet-stream' });
    // Not declared csv: still refused by the list.
    const other = await create(user, { filename: 'x.csv', type: 'text/csv' });
    const zip = await complete(user, other, await uploadParts(user, other, [Buffer.concat([Buffer.from('PK\x03\x04'), randomBytes(512)])]));
    expect(zip.status).toBe(415);
  }, 90_000);

  it('single request (Uppy ≤ 100 MiB): params gives a presigned POST, confirm publishes it for its owner only', async () => {
    const user = `single-${platform}`;
    const server = app.getHttpServer();
    const params = await request(server).get(`/users/${user}/uploads/s3/params`).query({ filename: 'pic.png', type: 'image/png', 'metadata[name]': 'pic.png' }).set(as(user));
    expect(params.status).toBe(200);
    expect(params.body.method).toBe('POST');
    expect(params.body.fields.key).toBe(params.body.key);
    const bytes = Buffer.concat([PNG_SIGNATURE, randomBytes(4096)]);
    // What Uppy's postObject sends: the fields, then the file last.
    const form = new FormData();
    for (const [name, value] of Object.entries(params.body.fields as Record<string, string>)) form.set(name, value);
    form.set('file', new Blob([bytes]));
    const posted = await fetch(params.body.url, { method: 'POST', body: form });
    expect(posted.status).toBeLessThan(300);

    const stolen = await request(server).post('/users/mallory/uploads/s3/confirm').set(as('mallory')).send({ key: params.body.key });
    expect(stolen.status).toBe(403);
    const confirmed = await request(server).post(`/users/${user}/uploads/s3/confirm`).set(as(user)).send({ key: params.body.key });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ size: bytes.length, contentType: 'image/png' });
    // The client's file name stays in the name, after an unguessable id, as multipart names keep it.
    expect(confirmed.body.name).toMatch(new RegExp(`^users/${user}/[0-9a-f-]{36}-pic\\.png$`));
    expect(await sha256Of(confirmed.body.key)).toBe(createHash('sha256').update(bytes).digest('hex'));

    const never = await request(server).get(`/users/${user}/uploads/s3/params`).query({ filename: 'x', type: 'text/html' }).set(as(user));
    // A type the bytes cannot vouch for is stored as a download, never served as a page.
    expect(never.body.fields['Content-Type']).toBe('application/octet-stream');
  }, 60_000);

  it('serves a named storage on its own path, under its location', async () => {
    const server = app.getHttpServer();
    const res = await request(server).post('/archive/s3/multipart').send({ filename: 'doc.pdf', type: 'application/pdf' });
    expect(res.status).toBe(200);
    expect(res.body.key.startsWith('archive/')).toBe(true);
    await request(server).delete(`/archive/s3/multipart/${encodeURIComponent(res.body.uploadId)}`).query({ key: res.body.key }).expect(200);
  });
});

/** The storage name inside a pending key `media/.pending/<name>`. */
function s3KeyName(key: string): string {
  return key.replace(/^media\/\.pending\//, '');
}

describe('DirectUploadsModule options', () => {
  it('refuses bad options at start-up with one error naming each problem and its fix', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        StorageModule.forRoot({ media: mediaOptions(bucket) }),
        DirectUploadsModule.register({ path: 'up', authorize: 'yes' as never, prefix: undefined as never, maxBytes: 0, maxOpenUploads: -1 }),
      ],
    }).compile();
    const started = moduleRef.init();
    await expect(started).rejects.toBeInstanceOf(StorageConfigurationError);
    await expect(started).rejects.toThrow(/authorize: must be a function[\s\S]*prefix: must be a function[\s\S]*maxBytes: must be a whole number[\s\S]*maxOpenUploads: must be/);
  });

  it('fails at start-up, saying what to import, when its storage is not defined', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [StorageModule.forRoot({ media: mediaOptions(bucket) }), DirectUploadsModule.register({ path: 'up', storage: 'videos', authorize: () => true, prefix: () => 'x', maxBytes: 1 })],
    }).compile();
    await expect(moduleRef.init()).rejects.toThrow(/uploads to the storage "videos" \(StorageModule.forRoot\(\{ name: "videos" \}\)\), which this app does not define/);
  });

  it('refuses an empty path when registering', () => {
    expect(() => DirectUploadsModule.register({ path: '/', authorize: () => true, prefix: () => 'x', maxBytes: 1 })).toThrow(/path: must be the route prefix/);
  });
});
