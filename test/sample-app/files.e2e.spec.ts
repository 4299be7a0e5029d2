/**
 * `POST /users/:id/files` (streamed to S3) and the page's direct avatar upload (presigned
 * POST, then confirm), end to end against the real S3 server.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import request from 'supertest';
import { createTestBucket, deleteTestBucket, itRequires, rawClient, s3 } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from './app-fixture.js';
import { png } from './images.js';

const MIB = 1024 * 1024;
let bucket: string;
let sample: SampleApp;
let client: S3Client;
const publicEndpoint = s3.endpoint.replace('127.0.0.1', 'localhost');

beforeAll(async () => {
  bucket = await createTestBucket('sample-files');
  sample = await startSampleApp({ ...mediaEnv(bucket), MEDIA_S3_URL_ENDPOINT_URL: publicEndpoint, FILE_MAX_BYTES: String(20 * MIB) });
  client = rawClient();
});
afterAll(async () => {
  await sample?.close();
  client?.destroy();
  await deleteTestBucket(bucket);
});

const http = () => request(sample.app.getHttpServer());

async function stored(prefix: string): Promise<{ keys: string[]; uploads: number }> {
  const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return { keys: (objects.Contents ?? []).map((o) => o.Key!), uploads: (uploads.Uploads ?? []).length };
}

describe('POST /users/:id/files', () => {
  it('streams a 12 MiB file to S3 and answers 201 with key, size, type and ETag', async () => {
    const body = randomBytes(12 * MIB);
    const response = await http().post('/users/fil-1/files').attach('file', body, 'clip.bin');
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({ size: body.length, contentType: 'application/octet-stream', originalName: 'clip.bin' });
    expect(response.body.key).toMatch(/^files\/fil-1\/[0-9a-f-]{36}\.bin$/);
    expect(response.body.etag).toMatch(/^[0-9a-f]{32}-2$/);
    const object = await sample.app.get((await import('nestjs-s3-storage')).MediaStorage).read(response.body.name as string);
    expect(createHash('sha256').update(object).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  }, 60_000);

  it('answers 413 over FILE_MAX_BYTES, with nothing stored and no multipart upload left', async () => {
    const response = await http().post('/users/fil-2/files').attach('file', randomBytes(20 * MIB + 1), 'big.bin');
    expect(response.status).toBe(413);
    expect(response.body.message).toBe('The file is larger than the 20,971,520-byte limit; nothing was stored.');
    expect(await stored('files/fil-2/')).toEqual({ keys: [], uploads: 0 });
  }, 60_000);

  it('answers 400 for a bad user id before storing anything', async () => {
    const response = await http().post('/users/bad.id/files').attach('file', randomBytes(1000), 'a.bin');
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/^Invalid user id/);
    expect(await stored('files/')).toEqual({ keys: expect.not.arrayContaining([expect.stringMatching(/^files\/bad/)]), uploads: 0 });
  });
});

describe('direct avatar upload (presigned POST)', () => {
  async function direct(userId: string, bytes: Buffer, contentType: string): Promise<{ name: string; status: number }> {
    const start = await http().post(`/users/${userId}/avatar/direct`).send({ contentType });
    expect(start.status).toBe(201);
    expect(start.body.url).toBe(`${publicEndpoint}/${bucket}`);
    const form = new FormData();
    for (const [k, v] of Object.entries(start.body.fields as Record<string, string>)) form.append(k, v);
    form.append('file', new Blob([bytes], { type: contentType }));
    const response = await fetch(start.body.url as string, { method: 'POST', body: form });
    return { name: start.body.name as string, status: response.status };
  }

  it('stores straight to the bucket; confirm makes it the avatar and replaces the old one', async () => {
    await http().post('/users/dir-1/avatar').attach('avatar', png(4), 'old.png').expect(201);
    const image = png(6);
    const { name, status } = await direct('dir-1', image, 'image/png');
    expect(status).toBe(204);
    const confirm = await http().post('/users/dir-1/avatar/direct/confirm').send({ name });
    expect(confirm.status).toBe(201);
    expect(confirm.body.key).toBe(name);
    expect((await stored('avatars/dir-1/')).keys).toEqual([name]);
    const shown = await fetch(confirm.body.url as string);
    expect(Buffer.from(await shown.arrayBuffer())).toEqual(image);
  });

  it('confirm rejects bytes that are not the declared image (415) and deletes them', async () => {
    const { name, status } = await direct('dir-2', Buffer.from('<html>not an image</html>'), 'image/png');
    expect(status).toBe(204);
    const confirm = await http().post('/users/dir-2/avatar/direct/confirm').send({ name });
    expect(confirm.status).toBe(415);
    expect(confirm.body.message).toBe(`The file was declared image/png but its bytes are not that type; the upload "${name}" was deleted.`);
    expect((await stored('avatars/dir-2/')).keys).toEqual([]);
  });

  itRequires('signatures', 'the storage itself refuses an avatar over the limit', async () => {
    const { name, status } = await direct('dir-3', Buffer.concat([png(2), Buffer.alloc(5 * MIB)]), 'image/png');
    expect(status).toBe(400);
    expect((await stored(`${name}`)).keys).toEqual([]);
  });

  it('refuses to start for a non-image type, and to confirm a name of another user', async () => {
    const start = await http().post('/users/dir-4/avatar/direct').send({ contentType: 'text/html' });
    expect(start.status).toBe(415);
    const other = await http().post('/users/dir-4/avatar/direct/confirm').send({ name: 'avatars/someone-else/000000000-000000000000.png' });
    expect(other.status).toBe(400);
    expect(other.body.message).toBe('Confirm the "name" that the direct-upload form was created for.');
  });
});

describe('GET /users/:id/files/:file (downloads through the app, with Range)', () => {
  /** supertest: the body as one Buffer, whatever the Content-Type. */
  const binary = (res: request.Response, done: (error: Error | null, body: Buffer) => void): void => {
    const stream = res as unknown as NodeJS.ReadableStream;
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => done(null, Buffer.concat(chunks)));
  };

  it('serves an uploaded file: 200, 206 for bytes=0-99 and bytes=-100, 416 past the end, 304, HEAD, 404', async () => {
    const body = randomBytes(5000);
    const upload = await http().post('/users/dl-1/files').attach('file', body, 'clip.bin');
    expect(upload.status).toBe(201);
    const path = `/users/dl-1/files/${(upload.body.name as string).split('/').pop()}`;

    const whole = await http().get(path).buffer(true).parse(binary);
    expect(whole.status).toBe(200);
    expect(whole.headers).toMatchObject({ 'accept-ranges': 'bytes', 'content-length': '5000', etag: `"${upload.body.etag}"` });
    expect(whole.headers['content-disposition']).toMatch(/^inline; filename="/);
    expect(Buffer.compare(whole.body as Buffer, body)).toBe(0);

    const first = await http().get(path).set('Range', 'bytes=0-99').buffer(true).parse(binary);
    expect([first.status, first.headers['content-range']]).toEqual([206, 'bytes 0-99/5000']);
    expect(Buffer.compare(first.body as Buffer, body.subarray(0, 100))).toBe(0);

    const last = await http().get(path).set('Range', 'bytes=-100').buffer(true).parse(binary);
    expect([last.status, last.headers['content-range']]).toEqual([206, 'bytes 4900-4999/5000']);
    expect(Buffer.compare(last.body as Buffer, body.subarray(4900))).toBe(0);

    const past = await http().get(path).set('Range', 'bytes=5000-');
    expect([past.status, past.headers['content-range']]).toEqual([416, 'bytes */5000']);

    const unchanged = await http().get(path).set('If-None-Match', whole.headers.etag!);
    expect(unchanged.status).toBe(304);

    const head = await http().head(path);
    expect([head.status, head.headers['content-length']]).toEqual([200, '5000']);

    const attachment = await http().get(`${path}?download`).buffer(true).parse(binary);
    expect(attachment.headers['content-disposition']).toMatch(/^attachment; filename="/);

    const missing = await http().get('/users/dl-1/files/00000000-0000-0000-0000-000000000000.bin');
    expect([missing.status, missing.body.message]).toEqual([404, 'Not found.']);
    const bad = await http().get('/users/dl-1/files/..%2Fx.bin');
    expect(bad.status).toBe(400);
  }, 60_000);
});
