/**
 * The guarded local S3 server (s3rver) that `npm start` and the test harness fall back to:
 * a request it cannot store gets an S3 error for that request, and the process and the
 * server go on. Runs its own server, whatever server the rest of the suite uses.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Test, type TestingModule } from '@nestjs/testing';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startLocalS3, type LocalS3 } from '../../lib/local-s3.js';
import { MediaStorage } from '../../lib/media.storage.js';
import { StorageError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';

const BUCKET = 'local-s3-guard';
/** The hostile-input suite's key: one 1,017-byte segment, within S3's 1,024-byte limit. */
const LONG_KEY = `tenant/${'€'.repeat(339)}`;

let root: string;
let server: LocalS3;
let client: S3Client;
const reported: string[] = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'nss3-local-s3-spec-'));
  server = await startLocalS3({ directory: join(root, 'data'), onRequestError: (error, request) => void reported.push(`${request.method} ${request.path}: ${error.message}`) });
  client = new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

afterAll(async () => {
  client?.destroy();
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

async function failure(request: Promise<unknown>): Promise<{ name: string; status?: number; message: string }> {
  const error = (await request.then(
    () => undefined,
    (e: unknown) => e,
  )) as { name: string; message: string; $metadata?: { httpStatusCode?: number } } | undefined;
  if (!error) throw new Error('the request succeeded');
  return { name: error.name, status: error.$metadata?.httpStatusCode, message: error.message };
}

async function stillServes(label: string): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `after/${label}.txt`, Body: label }));
  const object = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `after/${label}.txt` }));
  expect(await object.Body!.transformToString()).toBe(label);
}

describe('startLocalS3', () => {
  it('answers a key segment over 255 bytes with 400 KeyTooLongError and a message, and keeps serving', async () => {
    expect(await failure(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: LONG_KEY, Body: 'x' })))).toEqual({
      name: 'KeyTooLongError',
      status: 400,
      message: expect.stringMatching(/allows 255 bytes per name: .* would be \d+ bytes\. Real S3 accepts it/),
    });
    expect(await failure(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: LONG_KEY })))).toMatchObject({ name: 'KeyTooLongError', status: 400 });
    await stillServes('long-key');
  });

  it('sends the error as S3 XML to any HTTP client', async () => {
    const response = await fetch(`${server.endpoint}/${BUCKET}/${encodeURIComponent('a'.repeat(300))}`, { method: 'PUT', body: 'x' });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/xml/);
    expect(await response.text()).toMatch(/<Code>KeyTooLongError<\/Code><Message>[^<]*255 bytes per name/);
  });

  it('refuses such a key when a multipart upload starts, not after its parts', async () => {
    expect(await failure(client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `mp/${'a'.repeat(300)}` })))).toMatchObject({ name: 'KeyTooLongError', status: 400 });
    await stillServes('multipart');
  });

  it('refuses "..", "." and NUL segments (they would escape or alias folders on disk) with 400 InvalidArgument', async () => {
    const escape = `escape-${Date.now()}`;
    for (const key of [`a/../../../${escape}`, `a/./b`, 'a\u0000b']) {
      expect([key, await failure(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'x' })))]).toEqual([
        key,
        { name: 'InvalidArgument', status: 400, message: expect.stringMatching(/cannot store a key/) },
      ]);
    }
    expect(existsSync(join(dirname(root), `${escape}._S3rver_object`))).toBe(false);
    expect(existsSync(join(root, `${escape}._S3rver_object`))).toBe(false);
    await stillServes('dot-segments');
  });

  it('turns a file error s3rver leaves unhandled into a 500 for that request, reported, not a crash', async () => {
    // A folder where a part's file must go: s3rver's part write stream emits EISDIR with no listener.
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'blocked-part.bin' }));
    mkdirSync(join(server.directory, BUCKET, '._S3rver_uploads', UploadId!, '1'), { recursive: true });
    expect(await failure(client.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'blocked-part.bin', UploadId, PartNumber: 1, Body: Buffer.alloc(16) })))).toEqual({
      name: 'InternalError',
      status: 500,
      message: expect.stringMatching(/could not complete this request: EISDIR/),
    });
    expect(reported).toEqual([expect.stringMatching(/^PUT \/local-s3-guard\/blocked-part\.bin: EISDIR/)]);
    await client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'blocked-part.bin', UploadId }));
    await stillServes('eisdir');
  });

  it('stores nothing when a PUT fails midway (the body goes to a temporary file first)', async () => {
    // The object's own file is a folder: the rename into place fails after the body arrived.
    mkdirSync(join(server.directory, BUCKET, 'blocked._S3rver_object'), { recursive: true });
    const before = reported.length;
    expect(await failure(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'blocked', Body: Buffer.alloc(16) })))).toMatchObject({ status: 500 });
    expect(reported.slice(before)).toEqual([expect.stringMatching(/^PUT \/local-s3-guard\/blocked: .*EISDIR/)]);
    const listed = await client.send(new ListObjectsCommand({ Bucket: BUCKET, Prefix: 'blocked' }));
    expect((listed.Contents ?? []).map((o) => o.Key)).toEqual([]);
    await stillServes('eisdir-put');
  });

  it('honours If-Match on GET and HEAD (which s3rver itself ignores): another version is 412', async () => {
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'if-match/a.txt', Body: 'version one' }));
    const { ETag } = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'if-match/a.txt' }));
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'if-match/a.txt', IfMatch: ETag, Range: 'bytes=0-6' }));
    expect(await got.Body!.transformToString()).toBe('version');
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'if-match/a.txt', Body: 'version two' }));
    expect(await failure(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'if-match/a.txt', IfMatch: ETag })))).toMatchObject({ name: 'PreconditionFailed', status: 412 });
    expect(await failure(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'if-match/a.txt', IfMatch: ETag })))).toMatchObject({ status: 412 });
    const now = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'if-match/a.txt', IfMatch: '*' }));
    expect(await now.Body!.transformToString()).toBe('version two');
  });

  it('lists and aborts in-progress multipart uploads (which s3rver itself lacks)', async () => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'open/upload.bin' }));
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'open/' }));
    expect((listed.Uploads ?? []).map((u) => [u.Key, u.UploadId])).toEqual([['open/upload.bin', UploadId]]);
    await client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'open/upload.bin', UploadId }));
    expect((await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? []).toEqual([]);
    expect(await failure(client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'open/upload.bin', UploadId })))).toMatchObject({ name: 'NoSuchUpload', status: 404 });
  });

  it('lists the parts of an open upload in order with size and ETag (ListParts, which s3rver itself lacks); another key or id is 404 NoSuchUpload', async () => {
    const Key = 'open/listed parts.bin';
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key }));
    expect((await client.send(new ListPartsCommand({ Bucket: BUCKET, Key, UploadId }))).Parts ?? []).toEqual([]);
    const bodies: [number, Buffer][] = [[3, Buffer.from('third')], [1, Buffer.alloc(5 * 1024 * 1024, 7)]];
    const etags = new Map<number, string | undefined>();
    for (const [PartNumber, Body] of bodies) etags.set(PartNumber, (await client.send(new UploadPartCommand({ Bucket: BUCKET, Key, UploadId, PartNumber, Body }))).ETag);
    const listed = await client.send(new ListPartsCommand({ Bucket: BUCKET, Key, UploadId }));
    expect((listed.Parts ?? []).map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual([
      [1, 5 * 1024 * 1024, etags.get(1)],
      [3, 5, etags.get(3)],
    ]);
    expect(listed.IsTruncated).toBe(false);
    expect(await failure(client.send(new ListPartsCommand({ Bucket: BUCKET, Key: 'open/other.bin', UploadId })))).toMatchObject({ name: 'NoSuchUpload', status: 404 });
    expect(await failure(client.send(new ListPartsCommand({ Bucket: BUCKET, Key, UploadId: 'ffff' })))).toMatchObject({ name: 'NoSuchUpload', status: 404 });
    await client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key, UploadId }));
  });

  it("gives a completed multipart upload S3's ETag (MD5 of the part MD5s, then -<parts>)", async () => {
    const Key = 'mp/two-parts.bin';
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key }));
    const bodies = [Buffer.alloc(5 * 1024 * 1024, 1), Buffer.from('tail')];
    const parts = [];
    for (const [i, Body] of bodies.entries()) parts.push({ PartNumber: i + 1, ETag: (await client.send(new UploadPartCommand({ Bucket: BUCKET, Key, UploadId, PartNumber: i + 1, Body }))).ETag });
    const done = await client.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key, UploadId, MultipartUpload: { Parts: parts } }));
    const md5 = (b: Buffer): Buffer => createHash('md5').update(b).digest();
    const expected = `"${createHash('md5').update(Buffer.concat(bodies.map(md5))).digest('hex')}-2"`;
    expect(done.ETag).toBe(expected);
    expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key }))).ETag).toBe(expected);
  });

  describe('through MediaStorage', () => {
    let moduleRef: TestingModule;
    beforeAll(async () => {
      moduleRef = await Test.createTestingModule({
        imports: [
          StorageModule.forRoot({
            media: { bucket: BUCKET, endpoint: server.endpoint, region: server.region, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } },
            ensureBucket: 'off',
          }),
        ],
      }).compile();
      await moduleRef.init();
    });
    afterAll(async () => moduleRef?.close());

    it('a save() under a too-long name rejects with a StorageError, and the next save works', async () => {
      const media = moduleRef.get(MediaStorage);
      const error = await media.save('€'.repeat(300), 'x', { overwrite: true }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StorageError);
      const name = await media.save('fine.txt', 'still here', { overwrite: true });
      expect((await media.read(name)).toString()).toBe('still here');
    });
  });
});
