/**
 * Direct browser uploads: a presigned POST whose policy the S3 server enforces itself, and
 * confirmUpload() checking what arrived.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { InvalidKeyError, ObjectNotFoundError, UploadRejectedError } from '../../lib/storage.errors.js';
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

  it('reads only the first bytes of the version it measured, claims the name, then copies that version', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'confirm', contentType: 'image/png', maxBytes: 4 * 1024 * 1024 });
    const body = Buffer.concat([PNG, randomBytes(3 * 1024 * 1024)]);
    expect((await post(upload, body, 'image/png')).status).toBe(204);
    fx.inputs.length = 0;
    const confirmed = await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' });
    expect(confirmed.size).toBe(body.length);
    const etag = `"${confirmed.etag}"`;
    const shape = fx.inputs.map((i) => [i.command, i.input.Key, i.input.Range ?? i.input.CopySourceIfMatch ?? i.input.IfNoneMatch ?? null]);
    // The two HEADs (pending and published) go out together.
    expect(shape.slice(0, 2).sort()).toEqual([
      ['HeadObjectCommand', `media/.pending/${upload.name}`, null],
      ['HeadObjectCommand', `media/${upload.name}`, null],
    ]);
    expect(shape.slice(2)).toEqual([
      ['GetObjectCommand', `media/.pending/${upload.name}`, 'bytes=0-31'],
      ['PutObjectCommand', `media/.pending/.claims/${upload.name}`, '*'],
      ['CopyObjectCommand', `media/${upload.name}`, etag],
      ['DeleteObjectCommand', `media/.pending/${upload.name}`, null],
    ]);
    expect(fx.inputs[2]!.input.IfMatch).toBe(etag);
    expect(await fx.storage.read(upload.name)).toEqual(body);
  });

  it('confirming twice returns the published object; a missing upload is ObjectNotFoundError', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'twice', contentType: 'image/png', maxBytes: 1000 });
    expect((await post(upload, PNG, 'image/png')).status).toBe(204);
    const first = await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' });
    expect(await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' })).toMatchObject({ name: first.name, size: first.size, etag: first.etag });
    await expect(fx.storage.confirmUpload('never/uploaded.png')).rejects.toBeInstanceOf(ObjectNotFoundError);
  });
});

/** A PNG unlike `PNG`: same signature, other bytes. */
const OTHER_PNG = Buffer.concat([PNG.subarray(0, 8), randomBytes(300)]);

async function rejection(promise: Promise<unknown>): Promise<UploadRejectedError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(UploadRejectedError);
  return error as UploadRejectedError;
}

describe('confirmUpload publishes only what a createUpload() form uploaded', () => {
  it('every form carries a marker its policy pins', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'marked', contentType: 'image/png', maxBytes: 1000 });
    const marker = upload.fields['x-amz-meta-direct-upload'];
    expect(marker).toMatch(/^[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/);
    const policy = JSON.parse(Buffer.from(upload.fields.Policy!, 'base64').toString()) as { conditions: unknown[] };
    expect(policy.conditions).toContainEqual({ 'x-amz-meta-direct-upload': marker });
    const again = await fx.storage.createUpload({ name: upload.name, contentType: 'image/png', maxBytes: 1000 });
    expect(again.fields['x-amz-meta-direct-upload']).not.toBe(marker); // a new upload id each time
    expect(JSON.stringify(upload)).not.toContain(s3.secretAccessKey);
  });

  itRequires('signatures', 'the server refuses a form whose marker was changed', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'marked', contentType: 'image/png', maxBytes: 1000 });
    const forged = { ...upload.fields, 'x-amz-meta-direct-upload': `${'A'.repeat(16)}.${'B'.repeat(43)}` };
    expect((await post({ url: upload.url, fields: forged }, PNG, 'image/png')).status).toBe(403);
    expect(await fx.storage.exists(`.pending/${upload.name}`)).toBe(false);
  });

  it('refuses an object that save() put at .pending/<name>, leaves it there and publishes nothing', async () => {
    await fx.storage.save('.pending/forged/saved.png', PNG, { contentType: 'image/png' });
    const error = await rejection(fx.storage.confirmUpload('forged/saved.png', { contentType: 'image/png' }));
    expect(error.reason).toBe('not-direct-upload');
    expect(error.message).toBe('the object waiting at ".pending/forged/saved.png" was not uploaded with a createUpload() form for "forged/saved.png"; it was not published');
    expect(await fx.storage.exists('forged/saved.png')).toBe(false);
    expect(await fx.storage.exists('.pending/forged/saved.png')).toBe(true);
  });

  it("refuses a marker copied from another name's form (it is bound to the key)", async () => {
    const form = await fx.storage.createUpload({ name: 'forged/mine.png', contentType: 'image/png', maxBytes: 1000 });
    const marker = form.fields['x-amz-meta-direct-upload']!;
    await fx.storage.save('.pending/forged/theirs.png', PNG, { contentType: 'image/png', metadata: { 'direct-upload': marker } });
    expect((await rejection(fx.storage.confirmUpload('forged/theirs.png'))).reason).toBe('not-direct-upload');
    expect(await fx.storage.exists('forged/theirs.png')).toBe(false);
    // The same marker at the right name is accepted: the check is the binding, not the presence.
    await fx.storage.save('.pending/forged/mine.png', PNG, { contentType: 'image/png', metadata: { 'direct-upload': marker } });
    expect((await fx.storage.confirmUpload('forged/mine.png')).size).toBe(PNG.length);
  });

  it('refuses to confirm an existing object that no form published, and deletes nothing', async () => {
    await fx.storage.save('existing/plain.png', PNG, { contentType: 'image/png' });
    const error = await rejection(fx.storage.confirmUpload('existing/plain.png', { contentType: 'image/png' }));
    expect(error.reason).toBe('not-direct-upload');
    expect(error.message).toBe('"existing/plain.png" exists but was not published by confirmUpload() from a createUpload() form for that name; nothing was changed');
    expect(await fx.storage.read('existing/plain.png')).toEqual(PNG);
  });

  it('checks the expectations on an already-published name too, and leaves it in place', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'published', contentType: 'image/png', maxBytes: 1000 });
    expect((await post(upload, PNG, 'image/png')).status).toBe(204);
    await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' });
    const tooLarge = await rejection(fx.storage.confirmUpload(upload.name, { maxBytes: 100 }));
    expect(tooLarge.reason).toBe('too-large');
    expect(tooLarge.message).toBe(`the file has ${PNG.length} bytes, more than the 100 allowed; "${upload.name}" was already published and was left as it is`);
    expect((await rejection(fx.storage.confirmUpload(upload.name, { allowedTypes: ['image/gif'] }))).reason).toBe('type-not-allowed');
    expect((await rejection(fx.storage.confirmUpload(upload.name, { contentType: 'image/jpeg' }))).reason).toBe('type-not-allowed');
    expect(await fx.storage.read(upload.name)).toEqual(PNG);
  });

  it('a used form posted again and confirmed again does not change the published bytes', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'replay', contentType: 'image/png', maxBytes: 1000 });
    expect((await post(upload, PNG, 'image/png')).status).toBe(204);
    const first = await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' });
    expect((await post(upload, OTHER_PNG, 'image/png')).status).toBe(204); // a valid PNG: passes every check
    const again = await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' });
    expect(again.etag).toBe(first.etag);
    expect(await fx.storage.read(upload.name)).toEqual(PNG);
    expect(await fx.storage.exists(`.pending/${upload.name}`)).toBe(false); // the replayed file is cleared away
  });

  itRequires('conditional-writes', 'a used form cannot publish again even after the published object was removed', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'replay', contentType: 'image/png', maxBytes: 1000 });
    expect((await post(upload, PNG, 'image/png')).status).toBe(204);
    await fx.storage.confirmUpload(upload.name, { contentType: 'image/png' });
    await fx.storage.delete(upload.name);
    expect((await post(upload, OTHER_PNG, 'image/png')).status).toBe(204);
    const error = await rejection(fx.storage.confirmUpload(upload.name, { contentType: 'image/png' }));
    expect(error.reason).toBe('conflict');
    expect(await fx.storage.exists(upload.name)).toBe(false);
  }, 30_000);

  itRequires('conditional-writes', 'confirmations racing for one name all answer the one object that was published', async () => {
    const upload = await fx.storage.createUpload({ prefix: 'race', contentType: 'image/png', maxBytes: 1000 });
    expect((await post(upload, PNG, 'image/png')).status).toBe(204);
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => fx.storage.confirmUpload(upload.name, { contentType: 'image/png' })));
    const etags = new Set(results.map((r) => (r.status === 'fulfilled' ? r.value.etag : `rejected: ${String(r.reason)}`)));
    expect([...etags]).toEqual([(await fx.storage.stat(upload.name)).etag]);
    expect(await fx.storage.read(upload.name)).toEqual(PNG);
  }, 30_000);

  it('names under .pending/ are reserved', async () => {
    await expect(fx.storage.createUpload({ name: '.pending/x.png', maxBytes: 10 })).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(fx.storage.createUpload({ name: '.claims/x.png', maxBytes: 10 })).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(fx.storage.confirmUpload('.pending/forged/saved.png')).rejects.toBeInstanceOf(InvalidKeyError);
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
