/**
 * The sample app's Files section without a browser: the DirectUploadsModule routes the page's
 * Uppy calls (`/users/:id/uploads/s3/…`), the user's file list and the download links, with
 * `FILE_MAX_BYTES` and the user id checked before anything is signed.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import request from 'supertest';
import { createTestBucket, deleteTestBucket } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from './app-fixture.js';

const MIB = 1024 * 1024;
let bucket: string;
let sample: SampleApp;

beforeAll(async () => {
  bucket = await createTestBucket('sample-direct');
  sample = await startSampleApp({ ...mediaEnv(bucket), FILE_MAX_BYTES: String(16 * MIB) });
}, 60_000);
afterAll(async () => {
  await sample?.close();
  await deleteTestBucket(bucket);
});

const http = () => request(sample.app.getHttpServer());
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('the Files section\'s direct uploads', () => {
  it('shows the Files section with the FILE_MAX_BYTES limit and the Uppy bundle', async () => {
    const page = await http().get('/');
    expect(page.text).toContain('<main id="files" data-max-bytes="16777216">');
    expect(page.text).toContain('Any file up to 16 MiB');
    expect(page.text).toMatch(/<script src="\/static\/files\.[0-9a-f]{12}\.js" defer><\/script>/);
  });

  it('uploads through the multipart routes, lists the file and serves it back with Range', async () => {
    const body = randomBytes(6 * MIB);
    const created = await http().post('/users/dora/uploads/s3/multipart').send({ filename: 'notes.bin', type: 'application/octet-stream', metadata: {} });
    expect(created.status).toBe(200);
    const { key, uploadId } = created.body as { key: string; uploadId: string };
    const signed = await http().get(`/users/dora/uploads/s3/multipart/${encodeURIComponent(uploadId)}/1`).query({ key });
    const put = await fetch(signed.body.url as string, { method: 'PUT', body });
    expect(put.status).toBe(200);
    const completed = await http()
      .post(`/users/dora/uploads/s3/multipart/${encodeURIComponent(uploadId)}/complete`)
      .query({ key })
      .send({ parts: [{ PartNumber: 1, ETag: put.headers.get('etag') }] });
    expect(completed.status).toBe(200);
    expect(completed.body.name).toMatch(/^files\/dora\/[^/]+\/notes\.bin$/);

    const list = await http().get('/users/dora/files');
    expect(list.status).toBe(200);
    expect(list.body).toEqual([expect.objectContaining({ name: completed.body.name, file: completed.body.name.slice('files/dora/'.length), size: body.length })]);
    const link = `/users/dora/files/${list.body[0].file as string}`;
    const all = await http().get(link).buffer(true).parse((r, done) => binary(r, done));
    expect(all.status).toBe(200);
    expect(sha(all.body as Buffer)).toBe(sha(body));
    const range = await http().get(link).set('Range', 'bytes=-100').buffer(true).parse((r, done) => binary(r, done));
    expect(range.status).toBe(206);
    expect(Buffer.compare(range.body as Buffer, body.subarray(body.length - 100))).toBe(0);
  }, 60_000);

  it('refuses over FILE_MAX_BYTES (413) and a bad user id (400) before anything is signed', async () => {
    const big = await http().post('/users/dora/uploads/s3/multipart').send({ filename: 'big.bin', size: 17 * MIB });
    expect(big.status).toBe(413);
    expect(big.body.message).toContain(String(16 * MIB));
    // The module's stable word for programs survives the app's error filter.
    expect(big.body.reason).toBe('too-large');
    const bad = await http().post('/users/..%2Fevil/uploads/s3/multipart').send({ filename: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/Invalid user id/);
    const badPath = await http().get('/users/dora/files/not%20a%20folder/x.bin');
    expect(badPath.status).toBe(400);
  });
});

function binary(res: { on(event: string, listener: (chunk?: Buffer) => void): unknown }, done: (error: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c) => chunks.push(c!));
  res.on('end', () => done(null, Buffer.concat(chunks)));
}
