/**
 * `/users/:id/avatar` end to end: HTTP requests to the sample app, objects checked directly
 * in the bucket of the real S3 server the global setup chose.
 */
import { HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { DEFAULT_AVATAR_MAX_BYTES } from '../../sample-app/src/app.config.js';
import { createTestBucket, deleteTestBucket, rawClient, s3 } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from './app-fixture.js';
import { GIF, JPEG_HEAD, png, WEBP_HEAD } from './images.js';

let bucket: string;
let sample: SampleApp;
let client: S3Client;

beforeAll(async () => {
  bucket = await createTestBucket('sample-avatars');
  sample = await startSampleApp(mediaEnv(bucket));
  client = rawClient();
});

afterAll(async () => {
  await sample?.close();
  client?.destroy();
  await deleteTestBucket(bucket);
});

const http = () => request(sample.app.getHttpServer());
/** A user id no other test touches. */
const newUser = (label: string) => `${label}-${randomBytes(4).toString('hex')}`;

async function keysOf(userId: string): Promise<string[]> {
  const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `avatars/${userId}/` }));
  return (page.Contents ?? []).map((o) => o.Key!);
}

async function allKeys(): Promise<string[]> {
  const page = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (page.Contents ?? []).map((o) => o.Key!);
}

/** A JSON error a person can act on: status, and a sentence rather than a code. */
function expectActionableError(res: request.Response, status: number, mentions: RegExp): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body.statusCode).toBe(status);
  expect(typeof res.body.message).toBe('string');
  expect(res.body.message).toMatch(mentions);
  expect(res.body.message.length).toBeGreaterThan(20);
  expect(JSON.stringify(res.body)).not.toContain(s3.secretAccessKey);
}

describe('POST /users/:id/avatar', () => {
  it('stores a PNG under avatars/<id>/<unique>.png and answers 201 { key, url } with a URL that serves it', async () => {
    const user = newUser('png');
    const image = png(8);
    const res = await http().post(`/users/${user}/avatar`).attach('avatar', image, { filename: 'me.png', contentType: 'image/png' });

    expect(res.status).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(['key', 'url']);
    expect(res.body.key).toMatch(new RegExp(`^avatars/${user}/[0-9a-z]{9}-[0-9a-f]{12}\\.png$`));
    expect(await keysOf(user)).toEqual([res.body.key]);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: res.body.key }));
    expect(head.ContentType).toBe('image/png');
    expect(head.ContentLength).toBe(image.length);

    const fetched = await fetch(res.body.url);
    expect(fetched.status).toBe(200);
    expect(Buffer.from(await fetched.arrayBuffer()).equals(image)).toBe(true);
  });

  it.each([
    ['JPEG', JPEG_HEAD, 'jpg', 'image/jpeg'],
    ['WebP', WEBP_HEAD, 'webp', 'image/webp'],
    ['GIF', GIF, 'gif', 'image/gif'],
  ])('accepts %s, typed by its bytes whatever the name and declared type say', async (_label, bytes, ext, mime) => {
    const user = newUser(ext);
    // Name and client content type both lie: the stored type must follow the bytes.
    const res = await http().post(`/users/${user}/avatar`).attach('avatar', bytes, { filename: 'picture.txt', contentType: 'text/plain' });

    expect(res.status).toBe(201);
    expect(res.body.key).toMatch(new RegExp(`\\.${ext}$`));
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: res.body.key }));
    expect(head.ContentType).toBe(mime);
  });

  it('answers 415 to text bytes named .png and stores nothing', async () => {
    const user = newUser('text');
    const res = await http()
      .post(`/users/${user}/avatar`)
      .attach('avatar', Buffer.from('just some text, not an image\n'), { filename: 'avatar.png', contentType: 'image/png' });

    expectActionableError(res, 415, /PNG, JPEG, WebP or GIF/);
    expect(await keysOf(user)).toEqual([]);
  });

  it('answers 413 to 5 MiB + 1 byte, stores nothing, and keeps serving', async () => {
    const user = newUser('big');
    const before = await allKeys();
    const res = await http()
      .post(`/users/${user}/avatar`)
      .attach('avatar', png(8, DEFAULT_AVATAR_MAX_BYTES + 1), { filename: 'big.png', contentType: 'image/png' });

    expectActionableError(res, 413, /larger than the 5 MiB limit/);
    expect(await allKeys()).toEqual(before);
    // Still up: health answers and the next upload goes through.
    expect((await http().get('/health')).status).toBe(200);
    const next = await http().post(`/users/${user}/avatar`).attach('avatar', png(4), 'small.png');
    expect(next.status).toBe(201);
    expect(await keysOf(user)).toEqual([next.body.key]);
  });

  it('accepts exactly 5 MiB', async () => {
    const user = newUser('edge');
    const res = await http()
      .post(`/users/${user}/avatar`)
      .attach('avatar', png(8, DEFAULT_AVATAR_MAX_BYTES), { filename: 'edge.png', contentType: 'image/png' });
    expect(res.status).toBe(201);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: res.body.key }));
    expect(head.ContentLength).toBe(DEFAULT_AVATAR_MAX_BYTES);
  });

  it('replacing an avatar leaves exactly one object, the new one', async () => {
    const user = newUser('replace');
    const first = await http().post(`/users/${user}/avatar`).attach('avatar', png(8), 'one.png');
    const second = await http().post(`/users/${user}/avatar`).attach('avatar', GIF, 'two.gif');

    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body.key).not.toBe(first.body.key);
    expect(await keysOf(user)).toEqual([second.body.key]);
    const current = await http().get(`/users/${user}/avatar?format=json`);
    expect(current.body.key).toBe(second.body.key);
  });

  it.each([
    ['a slash', 'a%2Fb'],
    ['dot segments', '..%2F..'],
    ['a leading dash', '-alice'],
    ['spaces', 'al%20ice'],
    ['65 characters', 'a'.repeat(65)],
  ])('answers 400 to a user id with %s and stores nothing', async (_label, id) => {
    const before = await allKeys();
    const res = await http().post(`/users/${id}/avatar`).attach('avatar', png(4), 'a.png');
    expectActionableError(res, 400, /Invalid user id: use 1 to 64 letters/);
    expect(await allKeys()).toEqual(before);
  });

  it('answers 400 when the avatar field is missing', async () => {
    const user = newUser('nofield');
    const res = await http().post(`/users/${user}/avatar`).field('name', 'value');
    expectActionableError(res, 400, /field "avatar"/);
    expect(await keysOf(user)).toEqual([]);
  });

  it('answers 400 when the file is sent in another field, naming both fields', async () => {
    const user = newUser('wrongfield');
    const res = await http().post(`/users/${user}/avatar`).attach('photo', png(4), 'a.png');
    expectActionableError(res, 400, /field "avatar" \(a file came in "photo"\)/);
    expect(await keysOf(user)).toEqual([]);
  });

  it('answers 400 to a body that is not multipart', async () => {
    const res = await http().post(`/users/${newUser('json')}/avatar`).send({ avatar: 'data' });
    expectActionableError(res, 400, /multipart\/form-data in the field "avatar"/);
  });

  it('answers 400 to two files at once', async () => {
    const user = newUser('two');
    const res = await http().post(`/users/${user}/avatar`).attach('avatar', png(4), 'a.png').attach('avatar', png(4), 'b.png');
    expectActionableError(res, 400, /one image at a time/);
    expect(await keysOf(user)).toEqual([]);
  });

  it('answers 400 to an empty file', async () => {
    const res = await http().post(`/users/${newUser('empty')}/avatar`).attach('avatar', Buffer.alloc(0), 'empty.png');
    expectActionableError(res, 400, /empty/);
  });
});

describe('GET /users/:id/avatar', () => {
  it('redirects (302, cacheable no longer than the URL lives) to a signed URL that serves the image', async () => {
    const user = newUser('redirect');
    const image = png(6);
    const uploaded = await http().post(`/users/${user}/avatar`).attach('avatar', image, 'me.png');

    const res = await http().get(`/users/${user}/avatar`).redirects(0);
    expect(res.status).toBe(302);
    const location = new URL(res.headers.location!);
    // Following the cached redirect, then keeping the image for its max-age, ends before the signature does.
    const redirectAge = Number(/^private, max-age=(\d+)$/.exec(res.headers['cache-control'] ?? '')?.[1]);
    const imageAge = Number(/^private, max-age=(\d+)$/.exec(location.searchParams.get('response-cache-control') ?? '')?.[1]);
    const d = location.searchParams.get('X-Amz-Date')!;
    const expiresAt = Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +d.slice(9, 11), +d.slice(11, 13), +d.slice(13, 15)) + Number(location.searchParams.get('X-Amz-Expires')) * 1000;
    expect(redirectAge).toBeGreaterThanOrEqual(0);
    expect(redirectAge).toBeLessThanOrEqual(60);
    expect(imageAge).toBe(3600);
    expect(Date.now() + (redirectAge + imageAge) * 1000).toBeLessThanOrEqual(expiresAt);
    expect(location.pathname).toBe(`/${bucket}/${uploaded.body.key}`);
    expect(location.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    const fetched = await fetch(location);
    expect(fetched.status).toBe(200);
    expect(fetched.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await fetched.arrayBuffer()).equals(image)).toBe(true);
  });

  it('?format=json answers { key, url } for the current avatar', async () => {
    const user = newUser('json');
    const uploaded = await http().post(`/users/${user}/avatar`).attach('avatar', GIF, 'me.gif');
    const res = await http().get(`/users/${user}/avatar?format=json`);
    expect(res.status).toBe(200);
    expect(res.body.key).toBe(uploaded.body.key);
    expect((await fetch(res.body.url)).status).toBe(200);
  });

  it('answers 404 with a message when the user has no avatar', async () => {
    const user = newUser('none');
    expectActionableError(await http().get(`/users/${user}/avatar`).redirects(0), 404, /has no avatar yet: upload one first/);
    expectActionableError(await http().get(`/users/${user}/avatar?format=json`), 404, /has no avatar yet/);
  });

  it('answers 400 to an unknown format and to a bad id', async () => {
    expectActionableError(await http().get(`/users/${newUser('fmt')}/avatar?format=xml`), 400, /format=json/);
    expectActionableError(await http().get('/users/a%2F..%2Fb/avatar'), 400, /Invalid user id/);
  });
});

describe('DELETE /users/:id/avatar', () => {
  it('answers 204 and removes the avatar; GET then answers 404', async () => {
    const user = newUser('delete');
    await http().post(`/users/${user}/avatar`).attach('avatar', png(4), 'a.png');
    expect(await keysOf(user)).toHaveLength(1);

    const res = await http().delete(`/users/${user}/avatar`);
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(await keysOf(user)).toEqual([]);
    expect((await http().get(`/users/${user}/avatar?format=json`)).status).toBe(404);
  });

  it('answers 204 for a user without an avatar, and 400 for a bad id', async () => {
    expect((await http().delete(`/users/${newUser('nothing')}/avatar`)).status).toBe(204);
    expectActionableError(await http().delete('/users/%2E%2E/avatar'), 400, /Invalid user id/);
  });
});

describe('direct avatar upload: confirm takes only what this user\'s form uploaded', () => {
  /** Starts a direct upload for `userId` and POSTs `bytes` to the form the way a browser does. */
  async function startAndPost(userId: string, bytes: Buffer): Promise<{ name: string; fields: Record<string, string>; url: string }> {
    const start = await http().post(`/users/${userId}/avatar/direct`).send({ contentType: 'image/png' });
    expect(start.status).toBe(201);
    const upload = start.body as { name: string; fields: Record<string, string>; url: string };
    expect(await postForm(upload, bytes)).toBe(204);
    return upload;
  }

  async function postForm(upload: { fields: Record<string, string>; url: string }, bytes: Buffer): Promise<number> {
    const form = new FormData();
    for (const [k, v] of Object.entries(upload.fields)) form.append(k, v);
    form.append('file', new Blob([bytes], { type: 'image/png' }));
    return (await fetch(upload.url, { method: 'POST', body: form })).status;
  }

  async function shownBytes(userId: string): Promise<Buffer> {
    const current = await http().get(`/users/${userId}/avatar?format=json`);
    expect(current.status).toBe(200);
    return Buffer.from(await (await fetch(current.body.url as string)).arrayBuffer());
  }

  it('POST to the signed form, confirm, and the avatar serves those bytes', async () => {
    const user = newUser('direct');
    const image = png(7);
    const upload = await startAndPost(user, image);
    const confirm = await http().post(`/users/${user}/avatar/direct/confirm`).send({ name: upload.name });
    expect(confirm.status).toBe(201);
    expect(confirm.body.key).toBe(upload.name);
    expect(await keysOf(user)).toEqual([upload.name]);
    expect((await shownBytes(user)).equals(image)).toBe(true);
  });

  it("one user's confirm cannot take another user's upload; the owner still can", async () => {
    const alice = newUser('alice');
    const mallory = newUser('mallory');
    const image = png(5);
    const upload = await startAndPost(alice, image);
    const stolen = await http().post(`/users/${mallory}/avatar/direct/confirm`).send({ name: upload.name });
    expectActionableError(stolen, 400, /Confirm the "name" that the direct-upload form was created for/);
    // Nor by aliasing it into Mallory's prefix: the form's marker is bound to Alice's key.
    const aliased = await http()
      .post(`/users/${mallory}/avatar/direct/confirm`)
      .send({ name: upload.name.replace(`avatars/${alice}/`, `avatars/${mallory}/`) });
    expect(aliased.status).toBe(404);
    expect(await keysOf(mallory)).toEqual([]);
    const own = await http().post(`/users/${alice}/avatar/direct/confirm`).send({ name: upload.name });
    expect(own.status).toBe(201);
    expect((await shownBytes(alice)).equals(image)).toBe(true);
  });

  it('refuses to confirm an avatar that was stored through the app, and keeps it', async () => {
    const user = newUser('stored');
    const uploaded = await http().post(`/users/${user}/avatar`).attach('avatar', png(4), 'me.png');
    expect(uploaded.status).toBe(201);
    const confirm = await http().post(`/users/${user}/avatar/direct/confirm`).send({ name: uploaded.body.key });
    expectActionableError(confirm, 400, /was not published by confirmUpload\(\) from a createUpload\(\) form/);
    expect(await keysOf(user)).toEqual([uploaded.body.key]);
  });

  it('a used form posted again and confirmed again does not change the avatar', async () => {
    const user = newUser('replay');
    const first = png(6);
    const upload = await startAndPost(user, first);
    expect((await http().post(`/users/${user}/avatar/direct/confirm`).send({ name: upload.name })).status).toBe(201);
    expect(await postForm(upload, png(9))).toBe(204); // a valid PNG, within the limit: it passes every check
    const again = await http().post(`/users/${user}/avatar/direct/confirm`).send({ name: upload.name });
    expect(again.status).toBe(201);
    expect((await shownBytes(user)).equals(first)).toBe(true);
  });
});

describe('AVATAR_MAX_BYTES', () => {
  it('lowers the limit, and the 413 message names the new one', async () => {
    const small = await startSampleApp({ ...mediaEnv(bucket), AVATAR_MAX_BYTES: '2048' });
    try {
      const user = newUser('limit');
      const res = await request(small.app.getHttpServer()).post(`/users/${user}/avatar`).attach('avatar', png(8, 2049), 'a.png');
      expectActionableError(res, 413, /larger than the 2 KiB limit/);
      const ok = await request(small.app.getHttpServer()).post(`/users/${user}/avatar`).attach('avatar', png(8, 2048), 'a.png');
      expect(ok.status).toBe(201);
    } finally {
      await small.close();
    }
  });

  it('refuses to start with a value that is not a positive whole number', async () => {
    await expect(startSampleApp({ ...mediaEnv(bucket), AVATAR_MAX_BYTES: '5MB' }, { quiet: true })).rejects.toThrow(
      'AVATAR_MAX_BYTES must be a whole number of bytes greater than 0 (got "5MB")',
    );
  });
});
