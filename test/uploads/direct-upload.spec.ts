/**
 * Direct browser uploads: a presigned POST whose policy the S3 server enforces itself, and
 * confirmUpload() checking what arrived.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { ObjectNotFoundError, UploadRejectedError } from '../../lib/storage.errors.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { deleteTestBucket, itRequires, mediaOptions, s3, uniqueBucket } from '../harness/s3-test-env.js';

const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(300)]);
const internal = new URL(s3.endpoint);
const publicEndpoint = `${internal.protocol}//localhost:${internal.port}`;
const bucket = uniqueBucket('direct');
let fx: StorageFixture;

beforeAll(async () => {
  fx = await storageFixture({
    media: mediaOptions(bucket, { publicEndpoint, location: 'media', cors: { allowedOrigins: ['http://localhost:3000'] } }),
  });
});
afterAll(async () => {
  await fx?.moduleRef.close();
  await deleteTestBucket(bucket);
});

/** What a browser form does: the fields, then the file last. */
async function post(upload: { url: string; fields: Record<string, string> }, body: Buffer, contentType: string): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries(upload.fields)) form.append(k, v);
  if (!('Content-Type' in upload.fields)) form.append('Content-Type', contentType);
  form.append('file', new Blob([body], { type: contentType }), 'upload.bin');
  return fetch(upload.url, { method: 'POST', body: form });
}

describe('createUpload (presigned POST)', () => {
  it('gives a form for the browser host; an upload within the policy is stored and confirmed', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'avatars/9', contentType: 'image/png', maxBytes: 1000 });
    expect(upload.url).toBe(`${publicEndpoint}/${bucket}`);
    expect(upload.name).toMatch(/^avatars\/9\/[0-9a-f-]{36}\.png$/);
    expect(upload.key).toBe(`media/${upload.name}`);
    expect(upload.fields).toMatchObject({ key: `media/.pending/${upload.name}`, 'Content-Type': 'image/png', 'X-Amz-Algorithm': 'AWS4-HMAC-SHA256' });
    const untyped = await fx.storage.createUpload({ maxBytes: 10 });
    expect(untyped.fields['Content-Type']).toBe('application/octet-stream');
    expect(Object.keys(upload.fields).some((k) => /checksum/i.test(k))).toBe(false);
    const policy = JSON.parse(Buffer.from(upload.fields.Policy!, 'base64').toString()) as { conditions: unknown[] };
    expect(policy.conditions).toContainEqual(['content-length-range', 1, 1000]);
    const response = await post(upload, PNG, 'image/png');
    expect(response.status).toBe(204);
    expect(await fx.storage.exists(upload.name)).toBe(false); // not published before it is checked
    expect(await fx.storage.confirmUpload(upload.name, { maxBytes: 1000, contentType: 'image/png' })).toMatchObject({
      name: upload.name,
      size: PNG.length,
      contentType: 'image/png',
    });
    expect(await fx.storage.read(upload.name)).toEqual(PNG);
  });

  itRequires('signatures', 'the server itself rejects a file over maxBytes, and nothing is stored', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'big', contentType: 'image/png', maxBytes: 1000 });
    const response = await post(upload, Buffer.concat([PNG, Buffer.alloc(1000)]), 'image/png');
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('EntityTooLarge');
    expect(await fx.storage.exists(upload.name)).toBe(false);
  });

  itRequires('signatures', 'the server rejects another Content-Type, another key, and a tampered policy', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'typed', contentType: 'image/png', maxBytes: 1000 });
    const wrongType = await post({ url: upload.url, fields: { ...upload.fields, 'Content-Type': 'text/html' } }, PNG, 'text/html');
    expect(wrongType.status).toBe(403);
    const otherKey = await post({ url: upload.url, fields: { ...upload.fields, key: 'media/elsewhere.png' } }, PNG, 'image/png');
    expect(otherKey.status).toBe(403);
    const policy = JSON.parse(Buffer.from(upload.fields.Policy!, 'base64').toString()) as { conditions: unknown[] };
    policy.conditions = policy.conditions.map((c) => (Array.isArray(c) && c[0] === 'content-length-range' ? ['content-length-range', 1, 10_000_000] : c));
    const tampered = await post({ url: upload.url, fields: { ...upload.fields, Policy: Buffer.from(JSON.stringify(policy)).toString('base64') } }, PNG, 'image/png');
    expect(tampered.status).toBe(403);
    expect(await fx.storage.exists(upload.name)).toBe(false);
  });
});

describe('confirmUpload', () => {
  it('deletes a file whose bytes are not what was promised', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'lying', contentType: 'image/png', maxBytes: 1000 });
    expect((await post(upload, Buffer.from('<script>alert(1)</script>'), 'image/png')).status).toBe(204);
    const error = await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UploadRejectedError);
    expect((error as UploadRejectedError).reason).toBe('type-not-allowed');
    expect((error as Error).message).toBe(`the file was declared image/png but its bytes are not that type; the upload "${upload.name}" was deleted`);
    expect(await fx.storage.exists(upload.name)).toBe(false);
  });

  it('deletes a file over the expected size, and rejects types outside allowedTypes', async () => {
    const big = await fx.storage.createUpload({ prefix: 'confirm', contentType: 'image/png', maxBytes: 5000 });
    expect((await post(big, Buffer.concat([PNG, Buffer.alloc(2000)]), 'image/png')).status).toBe(204);
    await expect(fx.storage.confirmUpload(big.name, { maxBytes: 1000 })).rejects.toMatchObject({ reason: 'too-large' });
    const gif = await fx.storage.createUpload({ prefix: 'confirm', contentType: 'image/gif', maxBytes: 5000 });
    expect((await post(gif, Buffer.from('GIF89a-------'), 'image/gif')).status).toBe(204);
    await expect(fx.storage.confirmUpload(gif.name, { allowedTypes: ['image/png'] })).rejects.toMatchObject({ reason: 'type-not-allowed' });
    // Nothing published, nothing left pending.
    const left: string[] = [];
    for await (const entry of fx.storage.list('')) if (entry.name.includes('confirm/')) left.push(entry.name);
    expect(left).toEqual([]);
  });

  it('reads only the first bytes of the version it measured, then moves it with a conditional copy', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'confirm', contentType: 'image/png', maxBytes: 4 * 1024 * 1024 });
    const body = Buffer.concat([PNG, randomBytes(3 * 1024 * 1024)]);
    expect((await post(upload, body, 'image/png')).status).toBe(204);
    fx.inputs.length = 0;
    const confirmed = await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' });
    expect(confirmed.size).toBe(body.length);
    const etag = `"${confirmed.etag}"`;
    expect(fx.inputs.map((i) => [i.command, i.input.Range ?? i.input.CopySourceIfMatch ?? null])).toEqual([
      ['HeadObjectCommand', null],
      ['GetObjectCommand', 'bytes=0-31'],
      ['CopyObjectCommand', etag],
      ['DeleteObjectCommand', null],
    ]);
    expect(fx.inputs[1]!.input.IfMatch).toBe(etag);
    expect(await fx.storage.read(upload.name)).toEqual(body);
  });

  itRequires('signatures', 'a second POST with the same form after confirming does not change the published object', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'replay', contentType: 'image/png', maxBytes: 1000 });
    expect((await post(upload, PNG, 'image/png')).status).toBe(204);
    await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' });
    const evil = Buffer.concat([PNG.subarray(0, 8), Buffer.from('<script>alert(1)</script>')]);
    expect((await post(upload, evil, 'image/png')).status).toBe(204); // lands in .pending/ only
    expect(await fx.storage.read(upload.name)).toEqual(PNG);
  });

  it('confirming twice returns the published object; a missing upload is ObjectNotFoundError', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'twice', contentType: 'image/png', maxBytes: 1000 });
    expect((await post(upload, PNG, 'image/png')).status).toBe(204);
    const first = await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' });
    expect(await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' })).toMatchObject({ name: first.name, size: first.size, etag: first.etag });
    await expect(fx.storage.confirmUpload('never/uploaded.png')).rejects.toBeInstanceOf(ObjectNotFoundError);
  });
});

describe('CORS applied by the start-up hook', () => {
  itRequires('signatures', 'a preflight from the allowed origin is answered, others are not', async () => {
    const preflight = (origin: string): Promise<Response> =>
      fetch(`${publicEndpoint}/${bucket}`, { method: 'OPTIONS', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' } });
    const allowed = await preflight('http://localhost:3000');
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    const other = await preflight('http://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});
