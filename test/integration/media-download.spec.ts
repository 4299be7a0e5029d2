/**
 * `sendMedia()` in a tiny Nest app, on Express and on Fastify, against the real S3 server:
 * 200/206/304/416 with their headers and the right bytes, HEAD, If-Range, several ranges, a
 * missing object, an object replaced between the HEAD and the GET, and a client that leaves
 * mid-stream (the S3 response's socket must close). The app reaches S3 through a counting TCP
 * proxy so its connections can be told apart from every other test's.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Get, Module, NotFoundException, Param, Req, Res, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import request from 'supertest';
import { sendMedia, type MediaSource } from '../../lib/media-download.js';
import { MediaStorage } from '../../lib/media.storage.js';
import { ObjectNotFoundError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import { HTTP_PLATFORMS, createHttpApp } from '../harness/http-platforms.js';
import { createTestBucket, deleteTestBucket, mediaOptions, s3 } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const BODY = randomBytes(1000);
const BIG = 64 * MIB;
let bucket: string;
let proxy: CountingProxy;

/** A loopback TCP proxy that remembers, per connection, the bytes S3 sent and whether it is open. */
interface CountingProxy {
  endpoint: string;
  connections: { down: number; open: boolean }[];
  close(): Promise<void>;
}

async function countingProxy(target: string): Promise<CountingProxy> {
  const url = new URL(target);
  const connections: CountingProxy['connections'] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(url.port), url.hostname);
    const entry = { down: 0, open: true };
    connections.push(entry);
    sockets.add(client).add(upstream);
    upstream.on('data', (chunk: Buffer) => (entry.down += chunk.length));
    client.pipe(upstream);
    upstream.pipe(client);
    const close = (): void => {
      entry.open = false;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) s.on('close', close).on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Stat, then replace the object (the first `times` stats): the GET that follows must see 412 and start over. */
function replacedOnStat(storage: MediaStorage, bytes: Buffer, times = 1): MediaSource {
  let left = times;
  return {
    stat: async (name) => {
      const stat = await storage.stat(name);
      if (left-- > 0) await storage.save(name, Buffer.concat([bytes, Buffer.from(String(left))]), { overwrite: true });
      return stat;
    },
    open: (name, options) => storage.open(name, options),
  };
}

@Controller('media')
class DownloadController {
  constructor(private readonly storage: MediaStorage) {}

  @Get('race/:times/:name')
  async race(@Param('times') times: string, @Param('name') name: string, @Req() req: object, @Res() res: object): Promise<void> {
    await sendMedia(replacedOnStat(this.storage, randomBytes(1500), Number(times)), `dl/${name}`, req, res);
  }

  @Get(':name')
  async download(@Param('name') name: string, @Req() req: object, @Res() res: object): Promise<void> {
    try {
      await sendMedia(this.storage, `dl/${name}`, req, res, { downloadAs: `résumé ${name}` });
    } catch (error) {
      if (error instanceof ObjectNotFoundError) throw new NotFoundException(`no file named ${name}`);
      throw error;
    }
  }
}

beforeAll(async () => {
  bucket = await createTestBucket('download');
  proxy = await countingProxy(s3.endpoint);
});
afterAll(async () => {
  await proxy?.close();
  await deleteTestBucket(bucket);
});

@Module({})
class AppModule {}

describe.each(HTTP_PLATFORMS)('sendMedia on %s', (platform) => {
  let app: INestApplication;
  let storage: MediaStorage;
  let etag: string;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule, StorageModule.forRoot({ media: mediaOptions(bucket, { endpoint: proxy.endpoint }) })],
      controllers: [DownloadController],
    }).compile();
    app = await createHttpApp(moduleRef, platform);
    // The retry test's 500 would be logged by Nest's exception handler.
    app.useLogger(false);
    storage = app.get(MediaStorage);
    await storage.save('dl/clip.bin', BODY, { overwrite: true, contentType: 'video/mp4' });
    etag = (await storage.stat('dl/clip.bin')).etag;
  });
  afterAll(async () => {
    // fetch's keep-alive connection from the abort test would hold close() open.
    (app?.getHttpServer() as import('node:http').Server | undefined)?.closeAllConnections();
    await app?.close();
  });

  it('a plain GET answers 200 with length, type, ETag, Last-Modified, Accept-Ranges and the bytes', async () => {
    const response = await http().get('/media/clip.bin').buffer(true).parse(binary);
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({
      'content-length': '1000',
      'content-type': 'video/mp4',
      etag: `"${etag}"`,
      'accept-ranges': 'bytes',
      'content-disposition': `attachment; filename="r_sum_ clip.bin"; filename*=UTF-8''r%C3%A9sum%C3%A9%20clip.bin`,
      'x-content-type-options': 'nosniff',
    });
    expect(new Date(response.headers['last-modified']!).getTime()).not.toBeNaN();
    expect(Buffer.compare(response.body as Buffer, BODY)).toBe(0);
  });

  it('bytes=0-99 answers 206 with the first 100 bytes', async () => {
    const response = await http().get('/media/clip.bin').set('Range', 'bytes=0-99').buffer(true).parse(binary);
    expect(response.status).toBe(206);
    expect(response.headers['content-range']).toBe('bytes 0-99/1000');
    expect(response.headers['content-length']).toBe('100');
    expect(Buffer.compare(response.body as Buffer, BODY.subarray(0, 100))).toBe(0);
  });

  it('bytes=-100 answers 206 with the last 100 bytes; bytes=900- the same; an end past the size is clamped', async () => {
    for (const range of ['bytes=-100', 'bytes=900-', 'bytes=900-5000']) {
      const response = await http().get('/media/clip.bin').set('Range', range).buffer(true).parse(binary);
      expect([range, response.status, response.headers['content-range']]).toEqual([range, 206, 'bytes 900-999/1000']);
      expect(Buffer.compare(response.body as Buffer, BODY.subarray(900))).toBe(0);
    }
  });

  it('a range past the end answers 416 with Content-Range: bytes */size and no body', async () => {
    for (const range of ['bytes=1000-1100', 'bytes=1000-']) {
      const response = await http().get('/media/clip.bin').set('Range', range).buffer(true).parse(binary);
      expect([range, response.status, response.headers['content-range']]).toEqual([range, 416, 'bytes */1000']);
      expect((response.body as Buffer).length).toBe(0);
    }
  });

  it('If-None-Match with the ETag answers 304 without a body, also on a Range request', async () => {
    for (const headers of [{ 'If-None-Match': `"${etag}"` }, { 'If-None-Match': `W/"other", "${etag}"`, Range: 'bytes=0-9' }]) {
      const response = await http().get('/media/clip.bin').set(headers).buffer(true).parse(binary);
      expect(response.status).toBe(304);
      expect(response.headers.etag).toBe(`"${etag}"`);
      expect((response.body as Buffer).length).toBe(0);
    }
    const stale = await http().get('/media/clip.bin').set('If-None-Match', '"0123"').buffer(true).parse(binary);
    expect(stale.status).toBe(200);
  });

  it('If-Range with the ETag honours the range; with another ETag it answers the whole object', async () => {
    const fresh = await http().get('/media/clip.bin').set({ Range: 'bytes=10-19', 'If-Range': `"${etag}"` }).buffer(true).parse(binary);
    expect([fresh.status, fresh.headers['content-range']]).toEqual([206, 'bytes 10-19/1000']);
    const stale = await http().get('/media/clip.bin').set({ Range: 'bytes=10-19', 'If-Range': '"not-it"' }).buffer(true).parse(binary);
    expect(stale.status).toBe(200);
    expect(Buffer.compare(stale.body as Buffer, BODY)).toBe(0);
  });

  it('several ranges answer the whole object with 200 (no multipart/byteranges)', async () => {
    const response = await http().get('/media/clip.bin').set('Range', 'bytes=0-1,5-6').buffer(true).parse(binary);
    expect(response.status).toBe(200);
    expect(response.headers['content-range']).toBeUndefined();
    expect(Buffer.compare(response.body as Buffer, BODY)).toBe(0);
  });

  it('HEAD answers the headers without a body, for the whole object and for a range', async () => {
    const whole = await http().head('/media/clip.bin');
    expect(whole.status).toBe(200);
    expect(whole.headers).toMatchObject({ 'content-length': '1000', etag: `"${etag}"`, 'accept-ranges': 'bytes' });
    const part = await http().head('/media/clip.bin').set('Range', 'bytes=-100');
    expect([part.status, part.headers['content-range'], part.headers['content-length']]).toEqual([206, 'bytes 900-999/1000', '100']);
  });

  it('a missing object throws ObjectNotFoundError before anything is written (the route answers 404)', async () => {
    const response = await http().get('/media/nothing-here.bin');
    expect(response.status).toBe(404);
    expect(response.body.message).toBe('no file named nothing-here.bin');
  });

  it('an object replaced between the HEAD and the GET is sent whole and consistent: new ETag, new size, its bytes', async () => {
    await storage.save('dl/race.bin', randomBytes(1000), { overwrite: true });
    const response = await http().get('/media/race/1/race.bin').set('Range', 'bytes=0-').buffer(true).parse(binary);
    const now = await storage.read('dl/race.bin');
    const stat = await storage.stat('dl/race.bin');
    expect(response.status).toBe(206);
    expect(response.headers.etag).toBe(`"${stat.etag}"`);
    expect(response.headers['content-range']).toBe(`bytes 0-${now.length - 1}/${now.length}`);
    expect(Buffer.compare(response.body as Buffer, now)).toBe(0);
  });

  it('an object replaced again on the retry fails with an error, never with bytes under a wrong Content-Range', async () => {
    await storage.save('dl/race2.bin', randomBytes(1000), { overwrite: true });
    const response = await http().get('/media/race/2/race2.bin').set('Range', 'bytes=0-99');
    expect(response.status).toBe(500);
    expect(response.headers['content-range']).toBeUndefined();
  });

  it('a client that leaves mid-stream gets the S3 response destroyed: its socket closes', async () => {
    const big = randomBytes(BIG);
    await storage.save('dl/big.bin', big, { overwrite: true });
    const server = app.getHttpServer() as import('node:http').Server;
    if (!server.listening) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const before = new Map(proxy.connections.map((c) => [c, c.down]));
    const abort = new AbortController();
    const response = await fetch(`http://127.0.0.1:${port}/media/big.bin`, { signal: abort.signal });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    let received = 0;
    while (received < MIB) received += (await reader.read()).value?.length ?? 0;
    abort.abort();
    // The GET's connection is the one that carried the body; it must close (a paused one would stay open).
    const deadline = Date.now() + 15_000;
    const carrying = () => proxy.connections.filter((c) => c.down - (before.get(c) ?? 0) >= 512 * 1024);
    while (Date.now() < deadline && carrying().some((c) => c.open)) await new Promise((r) => setTimeout(r, 100));
    expect(carrying().length).toBeGreaterThanOrEqual(1);
    expect(carrying().filter((c) => c.open)).toEqual([]);
    // It stopped early: S3 never had to send the whole 64 MiB.
    const sent = carrying().reduce((n, c) => n + c.down - (before.get(c) ?? 0), 0);
    expect(sent).toBeLessThan(BIG);
    // A later download still works (the pool was not left with a dead socket).
    const after = await http().get('/media/big.bin').set('Range', `bytes=${BIG - 100}-`).buffer(true).parse(binary);
    expect(sha(after.body as Buffer)).toBe(sha(big.subarray(BIG - 100)));
  }, 60_000);
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** supertest: the body as one Buffer, whatever the Content-Type. */
function binary(res: request.Response, done: (error: Error | null, body: Buffer) => void): void {
  // superagent hands a parser the Node response stream, typed as its own Response.
  const stream = res as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => done(null, Buffer.concat(chunks)));
  stream.on('error', (error: Error) => done(error, Buffer.alloc(0)));
}
