/**
 * Hostile input, table-driven. Names against MediaStorage directly: each is either refused
 * before any request (InvalidKeyError) or stored strictly inside the storage location under
 * the key the table states. Uploads over HTTP, to the sample app's avatar route and to a
 * MediaUploadInterceptor route on Express and on Fastify: each gets a 4xx with a message,
 * nothing reaches the bucket, and the app keeps serving.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Module, Post, UseInterceptors, type INestApplication } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { MediaUploadInterceptor, UploadedMedia, type UploadedMediaFile } from '../../lib/media-upload.interceptor.js';
import type { MediaStorage } from '../../lib/media.storage.js';
import { InvalidKeyError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import { DEFAULT_AVATAR_MAX_BYTES } from '../../sample-app/src/app.config.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { createTestBucket, deleteTestBucket, itRequires, mediaOptions, rawClient, s3 } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from '../sample-app/app-fixture.js';
import { png } from '../sample-app/images.js';
import { bucketContents, multipart, rawRequest, type FilePart, type RawResponse } from './http-raw.js';

const MIB = 1024 * 1024;
let bucket: string;
let raw: S3Client;

beforeAll(async () => {
  bucket = await createTestBucket('rel-hostile');
  raw = rawClient();
});
afterAll(async () => {
  raw?.destroy();
  await deleteTestBucket(bucket);
});

describe('hostile names against MediaStorage', () => {
  const LOCATION = 'tenant';
  let fx: StorageFixture;
  let storage: MediaStorage;
  beforeAll(async () => {
    fx = await storageFixture({ media: mediaOptions(bucket, { location: LOCATION, overwrite: true }), ensureBucket: 'off' });
    storage = fx.storage;
  });
  afterAll(async () => fx?.moduleRef.close());

  // 339 three-byte characters: 1,017 bytes, so `tenant/` + it is exactly S3's 1,024-byte limit.
  const EURO_1017 = '€'.repeat(339);
  const refused: [string, unknown, RegExp][] = [
    ['.. at the start', '../escape.txt', /escapes the storage location/],
    ['.. walking above the location', 'a/../../escape.txt', /escapes the storage location/],
    ['.. alone', '..', /escapes the storage location/],
    ['.. with backslashes', '..\\..\\escape.txt', /escapes the storage location/],
    ['NUL', 'a\u0000.txt', /control character/],
    ['newline (header/log injection)', 'a\r\nX-Amz-Acl: public-read', /control character/],
    ['tab', 'a\t.txt', /control character/],
    ['DEL', 'a\u007f.txt', /control character/],
    ['C1 NEL', 'a\u0085.txt', /control character/],
    ['ANSI escape', 'a\u001b[31m.txt', /control character/],
    ['empty', '', /empty/],
    ['only slashes', '///', /empty/],
    ['only dots', './.', /empty/],
    ['1,025 ASCII bytes', 'a'.repeat(1025), /S3 allows at most 1024/],
    ['1,025 bytes of 3-byte characters (340 characters)', `${EURO_1017}a`, /the key is 1025 bytes long/],
    ['not a string (null)', null, /must be a string/],
    ['not a string (number)', 42, /must be a string/],
  ];

  it.each(refused)('refuses %s before sending any request, in every operation', async (_label, name, reason) => {
    const before = await bucketContents(raw, bucket);
    fx.requests.length = 0;
    const n = name as string;
    const attempts: [string, () => Promise<unknown>][] = [
      ['save', () => storage.save(n, 'x')],
      ['read', () => storage.read(n)],
      ['open', () => storage.open(n)],
      ['exists', () => storage.exists(n)],
      ['stat', () => storage.stat(n)],
      ['delete', () => storage.delete(n)],
      ['url', () => storage.url(n)],
    ];
    for (const [operation, run] of attempts) {
      const error = await run().then(() => undefined, (e: unknown) => e);
      expect([operation, error]).toEqual([operation, expect.any(InvalidKeyError)]);
      expect((error as InvalidKeyError).reason).toMatch(reason);
      // The message quotes the name escaped: no raw control character reaches a log line.
      expect((error as Error).message).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    }
    expect(fx.requests).toEqual([]);
    expect(await bucketContents(raw, bucket)).toEqual(before);
  });

  const confined: [string, string, string][] = [
    ['an absolute path', '/etc/passwd', 'tenant/etc/passwd'],
    ['a Windows path', 'C:\\Windows\\win.ini', 'tenant/C:/Windows/win.ini'],
    ['dot and double-slash segments', 'a/./b//c.txt', 'tenant/a/b/c.txt'],
    ['.. walking within the location', 'a/b/../../c.txt', 'tenant/c.txt'],
    ['fullwidth dots and slash (．．／), not folded by NFC', '\uff0e\uff0e\uff0fescape.txt', 'tenant/\uff0e\uff0e\uff0fescape.txt'],
    ['one-dot leaders (․․) as a segment', '\u2024\u2024/x.txt', 'tenant/\u2024\u2024/x.txt'],
    ['division slash (∕) is not a separator', '..\u2215escape.txt', 'tenant/..\u2215escape.txt'],
    ['percent-encoded ../', '%2e%2e%2fescape.txt', 'tenant/%2e%2e%2fescape.txt'],
    ['an NFD name (e + combining accent) stored as NFC', 'cafe\u0301.txt', 'tenant/caf\u00e9.txt'],
  ];

  const storesConfined = async (name: string, key: string): Promise<void> => {
    const data = randomBytes(64);
    const storedName = await storage.save(name, data);
    expect(storage.key(storedName)).toBe(key);
    expect((await bucketContents(raw, bucket)).keys).toContain(key);
    expect(await storage.read(name)).toEqual(data);
    // The signed URL's path encoding must address this very key, not a decoded `../` one.
    const response = await fetch(await storage.url(name));
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(data);
    await storage.delete(name);
    expect((await bucketContents(raw, bucket)).keys).not.toContain(key);
  };
  it.each(confined)('stores %s inside the location, under the stated key, readable by name and by signed URL', (_label, name, key) => storesConfined(name, key));
  // One 1,017-byte segment: more than a file name can hold, so not on s3rver.
  itRequires('long-key-segments', 'stores exactly 1,024 key bytes of 3-byte characters inside the location, readable by name and by signed URL', () =>
    storesConfined(EURO_1017, `tenant/${EURO_1017}`),
  );

  it('NFC and NFD spellings of one name address one object (no look-alike duplicates)', async () => {
    const nfd = 'unicode/Ame\u0301lie.txt';
    const nfc = 'unicode/Am\u00e9lie.txt';
    expect(nfd).not.toBe(nfc);
    await storage.save(nfd, 'first');
    expect(await storage.exists(nfc)).toBe(true);
    expect((await storage.read(nfc)).toString()).toBe('first');
    // With overwrite off, the other spelling is "taken": it cannot silently replace the first.
    const second = await storage.save(nfc, 'second', { overwrite: false });
    expect(second).not.toBe(nfc);
    expect((await storage.read(nfd)).toString()).toBe('first');
    const keys = (await bucketContents(raw, bucket)).keys.filter((k) => k.startsWith('tenant/unicode/'));
    expect(keys.sort()).toEqual([`tenant/${nfc}`, `tenant/${second}`].sort());
    await storage.delete(nfc);
    await storage.delete(second);
  });

  it('after the whole table, nothing in the bucket lies outside the location', async () => {
    const { keys, uploads } = await bucketContents(raw, bucket);
    expect(keys.filter((k) => !k.startsWith(`${LOCATION}/`) && !k.startsWith('avatars/') && !k.startsWith('hostile/'))).toEqual([]);
    expect(uploads).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Uploads over HTTP

const INTERCEPTOR_MAX = 1 * MIB;

@Controller('interceptor')
class InterceptorController {
  // The same field name as the sample app's route, so one table serves both.
  @Post(':id/avatar')
  @UseInterceptors(
    MediaUploadInterceptor({
      field: 'avatar',
      maxBytes: INTERCEPTOR_MAX,
      allowedTypes: ['image/png', 'image/jpeg', 'image/gif', 'image/webp'],
      name: (c) => `hostile/${c.request.params?.id}/${randomUUID()}.${c.extension}`,
    }),
  )
  upload(@UploadedMedia() file: UploadedMediaFile): UploadedMediaFile {
    return file;
  }
}

interface Target {
  name: 'sample app' | 'MediaUploadInterceptor' | 'MediaUploadInterceptor on Fastify';
  port: () => number;
  path: (user: string) => string;
  maxBytes: number;
}

let sample: SampleApp;
let interceptorApp: INestApplication;
let fastifyApp: INestApplication;
const targets: Target[] = [
  { name: 'sample app', port: () => (sample.app.getHttpServer().address() as AddressInfo).port, path: (u) => `/users/${u}/avatar`, maxBytes: DEFAULT_AVATAR_MAX_BYTES },
  {
    name: 'MediaUploadInterceptor',
    port: () => (interceptorApp.getHttpServer().address() as AddressInfo).port,
    path: (u) => `/interceptor/${u}/avatar`,
    maxBytes: INTERCEPTOR_MAX,
  },
  {
    name: 'MediaUploadInterceptor on Fastify',
    port: () => (fastifyApp.getHttpServer().address() as AddressInfo).port,
    path: (u) => `/interceptor/${u}/avatar`,
    maxBytes: INTERCEPTOR_MAX,
  },
];

interface UploadCase {
  label: string;
  status: number;
  /** What the message must say (both targets word it their own way, so a pattern). */
  message?: RegExp;
  /** The raw request: headers and body. */
  request: (t: Target) => { headers: Record<string, string>; body: Buffer; path?: string };
}

const form = (parts: FilePart[]): { headers: Record<string, string>; body: Buffer } => {
  const { body, contentType } = multipart(parts);
  return { headers: { 'Content-Type': contentType, 'Content-Length': String(body.length) }, body };
};
const avatar = (data: Buffer | string, filename = 'me.png', contentType = 'image/png'): FilePart => ({ field: 'avatar', filename, contentType, data });

const uploadCases: UploadCase[] = [
  { label: 'a text file named .png and sent as image/png', status: 415, message: /image|type|allowed/i, request: () => form([avatar('just some text, not an image\n'.repeat(20))]) },
  { label: 'an SVG with a script, sent as image/png', status: 415, message: /image|type|allowed/i, request: () => form([avatar('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', 'x.png')]) },
  { label: 'HTML named .jpg, sent as image/jpeg', status: 415, message: /image|type|allowed/i, request: () => form([avatar('<!doctype html><html><body>hi</body></html>', 'x.jpg', 'image/jpeg')]) },
  { label: 'a Windows executable named .gif', status: 415, message: /image|type|allowed/i, request: () => form([avatar(Buffer.concat([Buffer.from('MZ'), randomBytes(510)]), 'x.gif', 'image/gif')]) },
  { label: 'zero bytes', status: 400, message: /empty/i, request: () => form([avatar(Buffer.alloc(0))]) },
  { label: 'a form with no file at all', status: 400, message: /no (image|file)/i, request: () => form([{ field: 'caption', data: 'hello' }]) },
  { label: 'the file in another field', status: 400, message: /field/i, request: () => form([{ ...avatar(png(8)), field: 'photo' }]) },
  { label: 'two files in one field', status: 400, message: /one (image|file)/i, request: () => form([avatar(png(8)), avatar(png(9), 'b.png')]) },
  {
    label: 'a truncated multipart body (closing boundary cut off)',
    status: 400,
    message: /malformed|cut off|end/i,
    request: () => {
      const { body, contentType } = multipart([avatar(png(16))]);
      const cut = body.subarray(0, body.length - 40);
      return { headers: { 'Content-Type': contentType, 'Content-Length': String(cut.length) }, body: cut };
    },
  },
  { label: 'JSON instead of multipart', status: 400, message: /multipart/i, request: () => ({ headers: { 'Content-Type': 'application/json', 'Content-Length': '13' }, body: Buffer.from('{"avatar":1}\n') }) },
  {
    label: 'multipart without a boundary',
    status: 400,
    message: /boundary|malformed|multipart/i,
    request: () => ({ headers: { 'Content-Type': 'multipart/form-data', 'Content-Length': '20' }, body: Buffer.from('--x\r\n\r\nnothing\r\n--x--') }),
  },
  { label: 'one byte over the size limit', status: 413, message: /larger|limit/i, request: (t) => form([avatar(png(8, t.maxBytes + 1))]) },
  // Node itself answers 431 (max header size 16 KiB), with no body, before the app sees it.
  {
    label: 'a 64 KiB header value',
    status: 431,
    request: () => {
      const valid = form([avatar(png(8))]);
      return { body: valid.body, headers: { ...valid.headers, 'X-Filler': 'a'.repeat(64 * 1024) } };
    },
  },
];

describe.each(targets)('hostile uploads to the $name', (target) => {
  beforeAll(async () => {
    if (target.name === 'sample app' && !sample) sample = await startSampleApp(mediaEnv(bucket), { quiet: true });
    if (target.name !== 'sample app') {
      @Module({ imports: [StorageModule.forRoot({ media: mediaOptions(bucket, { partSize: 5 * MIB }), ensureBucket: 'off' })], controllers: [InterceptorController] })
      class InterceptorModule {}
      const moduleRef = await Test.createTestingModule({ imports: [InterceptorModule] }).compile();
      const app = target.name === 'MediaUploadInterceptor' ? moduleRef.createNestApplication({ logger: false }) : moduleRef.createNestApplication(new FastifyAdapter(), { logger: false });
      await app.listen(0, '127.0.0.1');
      if (target.name === 'MediaUploadInterceptor') interceptorApp = app;
      else fastifyApp = app;
    }
  });
  afterAll(async () => {
    if (target.name === 'sample app') await sample?.close();
    else if (target.name === 'MediaUploadInterceptor') await interceptorApp?.close();
    else await fastifyApp?.close();
  });

  it.each(uploadCases)('$label → $status with a message, nothing stored', async ({ status, message, request }) => {
    const user = `hostile-${randomBytes(4).toString('hex')}`;
    const before = await bucketContents(raw, bucket);
    const { headers, body, path } = request(target);
    const res = await rawRequest(target.port(), 'POST', path ?? target.path(user), headers, body);
    expect(res.status).toBe(status);
    if (message) expectMessage(res, message);
    expect(await bucketContents(raw, bucket)).toEqual(before);
  });

  it('a client that disconnects mid-upload leaves nothing behind', async () => {
    const before = await bucketContents(raw, bucket);
    const { body, contentType } = multipart([avatar(png(8, Math.min(target.maxBytes, 512 * 1024)))]);
    // Promise the whole form, send half of it (the file cut in the middle), then hang up.
    const headers = { 'Content-Type': contentType, 'Content-Length': String(body.length) };
    const half = body.subarray(0, Math.floor(body.length / 2));
    const gone = await rawRequest(target.port(), 'POST', target.path(`gone-${randomBytes(4).toString('hex')}`), headers, half, 5000, 300).then(
      () => 'answered',
      (error: Error) => error.message,
    );
    // The server cannot answer half a body; what matters is that it stored nothing.
    expect(gone).toMatch(/closed without an HTTP answer/);
    await waitFor(async () => expect(await bucketContents(raw, bucket)).toEqual(before));
  });

  it('after the table, a valid upload still succeeds and stores exactly the bytes sent', async () => {
    const image = png(32);
    const user = `valid-${randomBytes(4).toString('hex')}`;
    const valid = form([avatar(image, '../../../etc/passwd.png')]);
    const res = await rawRequest(target.port(), 'POST', target.path(user), valid.headers, valid.body);
    expect(res.status).toBe(201);
    const key = String(res.json && (res.json as { key?: string }).key);
    // The client's file name is never used for the key.
    expect(key).toMatch(target.name === 'sample app' ? new RegExp(`^avatars/${user}/[^/]+\\.png$`) : new RegExp(`^hostile/${user}/[^/]+\\.png$`));
    const stored = await fetchKey(key);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(createHash('sha256').update(image).digest('hex'));
  });
});

function expectMessage(res: RawResponse, pattern: RegExp): void {
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const text = typeof res.json?.message === 'string' ? res.json.message : JSON.stringify(res.json?.message);
  expect(text).toMatch(pattern);
  expect(text.length).toBeGreaterThan(15);
  // A message for people: no stack trace, no internals, no credential.
  expect(res.body).not.toMatch(/\bat [\w.]+ \(|node_modules|\.ts:\d+/);
  expect(res.text).not.toContain(s3.secretAccessKey);
}

async function fetchKey(key: string): Promise<Buffer> {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const out = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

/** Retries `check` for up to `ms`: the server notices a vanished client a moment later. */
async function waitFor(check: () => Promise<void>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
